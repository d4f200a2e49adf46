#!/usr/bin/env python3
"""Check aws_proxy.py in front of jobrun_moto.py.

Usage: tests/.venv/bin/python3 tests/moto/check_proxy.py [MOTO_URL]   (tests/setup makes the venv)
Without MOTO_URL it starts jobrun_moto.py itself; it always starts its own proxies.
Prints one line per check and the proxy counters; exits non-zero on a failed check.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
CREDS = dict(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
procs = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, ready):
    p = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(p)
    if ready is None:
        return p
    line = p.stdout.readline()
    assert line.strip() == ready, f"{args[0]} did not become ready: {line!r}"
    return p


def start_moto():
    port = free_port()
    start([os.path.join(HERE, "jobrun_moto.py"), "-H", "127.0.0.1", "-p", str(port)], None)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return url
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto did not start")


def start_proxy(moto, *flags):
    port = free_port()
    start([os.path.join(HERE, "aws_proxy.py"), "--upstream", moto, "--port", str(port), *flags], "ready")
    return f"http://127.0.0.1:{port}"


def stats(proxy):
    return json.load(urllib.request.urlopen(proxy + "/__proxy/stats"))


def ecs_client(url, **retries):
    cfg = Config(retries=retries or {"mode": "standard", "max_attempts": 10},
                 max_pool_connections=32, connect_timeout=5, read_timeout=30)
    return boto3.client("ecs", endpoint_url=url, config=cfg, **CREDS)


def launch_many(ecs, cluster, td, net, n, threads, started_by, app_retries=5):
    """n RunTask calls with distinct clientTokens -> (arns, client errors seen)."""
    errors = []

    def one(i):
        token = str(uuid.uuid4())
        for _ in range(app_retries):  # like jobrun: retry the same call with the same token
            try:
                r = ecs.run_task(cluster=cluster, taskDefinition=td, networkConfiguration=net,
                                 launchType="FARGATE", startedBy=started_by, clientToken=token)
                return [t["taskArn"] for t in r["tasks"]]
            except (ClientError, BotoCoreError) as e:
                errors.append(type(e).__name__ + ":" + getattr(e, "response", {}).get("Error", {}).get("Code", ""))
        return []

    with ThreadPoolExecutor(threads) as pool:
        arns = [a for batch in pool.map(one, range(n)) for a in batch]
    return arns, errors


def moto_tasks(moto_ecs, cluster, started_by):
    arns = []
    for page in moto_ecs.get_paginator("list_tasks").paginate(cluster=cluster, startedBy=started_by):
        arns += page["taskArns"]
    return arns


def main():
    import check_plugin  # reuse its cluster / task definition / network setup

    moto = sys.argv[1] if len(sys.argv) > 1 else start_moto()
    for name in ("ecs", "ec2", "logs"):
        setattr(check_plugin, name, boto3.client(name, endpoint_url=moto, **CREDS))
    cluster, td, net = check_plugin.setup()
    moto_ecs = check_plugin.ecs

    # --- idempotency and faults -------------------------------------------------------------
    proxy = start_proxy(moto, "--fault-rate", "0.2", "--seed", "1")
    ecs = ecs_client(proxy)
    t0 = time.time()
    arns, errors = launch_many(ecs, cluster, td, net, 200, 8, "proxy-faults")
    s = stats(proxy)
    in_moto = moto_tasks(moto_ecs, cluster, "proxy-faults")
    print(f"fault run: {time.time() - t0:.1f}s, stats {json.dumps(s)}")
    print(f"           client errors after botocore retries: {len(errors)} {sorted(set(errors))}")
    check(len(set(arns)) == 200, f"200 distinct task ARNs returned to the client ({len(set(arns))})")
    check(len(set(in_moto)) == 200 and set(in_moto) == set(arns), f"exactly 200 tasks in moto ({len(in_moto)})")
    check(s["faults"].get("drop_response", 0) > 0 and s["token_replays"] > 0,
          "some responses were lost after launching and were answered by token replay")

    # same token twice, and concurrently, reaches moto once
    quiet = start_proxy(moto)
    ecs = ecs_client(quiet)
    kw = dict(cluster=cluster, taskDefinition=td, networkConfiguration=net, launchType="FARGATE",
              startedBy="proxy-dupe", clientToken="dupe-token")
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: ecs.run_task(**kw)["tasks"][0]["taskArn"], range(10)))
    s = stats(quiet)
    check(len(set(results)) == 1 and len(moto_tasks(moto_ecs, cluster, "proxy-dupe")) == 1
          and s["token_replays"] == 9 and s["run_task_launched"] == 1,
          "10 concurrent RunTask with one clientToken launch one task (9 replays)")

    # --- rate limits --------------------------------------------------------------------------
    proxy = start_proxy(moto, "--rates")
    ecs = ecs_client(proxy, total_max_attempts=1)
    t0 = time.time()
    arns, errors = launch_many(ecs, cluster, td, net, 200, 20, "proxy-rates", app_retries=1)
    s = stats(proxy)
    throttled = errors.count("ClientError:ThrottlingException")
    print(f"rates, no retries: {time.time() - t0:.1f}s, launched {len(arns)}, throttled {throttled}, stats {json.dumps(s)}")
    check(throttled > 0 and s["throttled"].get("RunTask") == throttled and len(arns) + throttled == 200,
          "20 threads x RunTask get throttled, and the proxy counts it")

    urllib.request.urlopen(urllib.request.Request(proxy + "/__proxy/reset", method="POST"))
    ecs = ecs_client(proxy)
    t0 = time.time()
    arns, errors = launch_many(ecs, cluster, td, net, 200, 20, "proxy-rates-retry")
    s = stats(proxy)
    print(f"rates, standard retries: {time.time() - t0:.1f}s, launched {len(arns)}, stats {json.dumps(s)}")
    check(len(arns) == 200 and s["throttled"].get("RunTask", 0) > 0, "with botocore retries all 200 launch despite throttling")

    ecs = ecs_client(proxy, total_max_attempts=1)
    some = arns[:1]

    def describe(_):
        try:
            ecs.describe_tasks(cluster=cluster, tasks=some)
            return "ok"
        except ClientError as e:
            return e.response["Error"]["Code"]

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(describe, range(200)))
    s = stats(proxy)
    print(f"describe burst: {outcomes.count('ok')} ok, {outcomes.count('ThrottlingException')} throttled")
    check(s["throttled"].get("DescribeTasks", 0) == outcomes.count("ThrottlingException") > 0,
          "DescribeTasks bursts are throttled too")
    print("all proxy checks passed")


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in procs:
            p.terminate()
