#!/usr/bin/env python3
"""Check jobrun_moto.py's fake Fargate against a running server.

Usage: tests/.venv/bin/python3 tests/moto/check_plugin.py http://127.0.0.1:PORT
(start the server with tests/.venv/bin/python3 tests/moto/jobrun_moto.py -H 127.0.0.1 -p PORT;
tests/setup makes the venv). Prints one line per check and exits non-zero on the first failure.
Run it after changing the moto pinned in tests/requirements.txt.
"""

import json
import os
import sys
import uuid

import boto3

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5000"
KW = dict(
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
)
ecs = boto3.client("ecs", **KW)
ec2 = boto3.client("ec2", **KW)
logs = boto3.client("logs", **KW)


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        sys.exit(1)


def setup():
    """Cluster, task definition and network configuration; returns (cluster, td arn, net)."""
    cluster = "jobrun-check-" + uuid.uuid4().hex[:6]
    ecs.create_cluster(clusterName=cluster, capacityProviders=["FARGATE", "FARGATE_SPOT"])
    td = ecs.register_task_definition(
        family="jobrun-check",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": "job",
                "image": "example/job:latest",
                "memory": 512,
                "essential": True,
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": "/jobrun/x",
                        "awslogs-region": "us-east-1",
                        "awslogs-stream-prefix": "jobrun",
                    },
                },
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    sgs = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    net = {
        "awsvpcConfiguration": {
            "subnets": [subnets["Subnets"][0]["SubnetId"]],
            "securityGroups": [sgs["SecurityGroups"][0]["GroupId"]],
            "assignPublicIp": "ENABLED",
        }
    }
    return cluster, td, net


def run(cluster, td, net, config, attempt=1, index=0, spot=False, **extra):
    """RunTask as jobrun sends it: a one-provider capacity provider strategy."""
    env = [
        {"name": "JOBRUN_CONFIG", "value": json.dumps(config)},
        {"name": "JOBRUN_ATTEMPT", "value": str(attempt)},
        {"name": "JOBRUN_INDEX", "value": str(index)},
    ]
    provider = "FARGATE_SPOT" if spot else "FARGATE"
    placement = {"capacityProviderStrategy": [{"capacityProvider": provider, "weight": 1}]}
    overrides = extra.pop("overrides", {"containerOverrides": [{"name": "job", "environment": env}]})
    return ecs.run_task(
        cluster=cluster,
        taskDefinition=td,
        networkConfiguration=net,
        overrides=overrides,
        startedBy="check",
        **placement,
        **extra,
    )


def wait_stopped(cluster, arn, limit=10):
    for _ in range(limit):
        task = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        if task["lastStatus"] == "STOPPED":
            return task
    return task


def main():
    cluster, td, net = setup()

    # plain task: exit 0, EssentialContainerExited, timestamps, provider FARGATE
    r = run(cluster, td, net, {"n": 1})
    check(len(r["tasks"]) == 1 and not r["failures"], "RunTask with capacity provider FARGATE launches one task")
    t = r["tasks"][0]
    check(t.get("capacityProviderName") == "FARGATE" and t.get("launchType") == "FARGATE",
          "capacityProviderName FARGATE, launchType FARGATE")
    check("startedAt" in t and "exitCode" not in t["containers"][0], "startedAt set, no exitCode while running")
    t = wait_stopped(cluster, t["taskArn"])
    c = t["containers"][0]
    check(t["lastStatus"] == "STOPPED", "task reaches STOPPED")
    check(c.get("exitCode") == 0 and t.get("stopCode") == "EssentialContainerExited", "exit 0 / EssentialContainerExited")
    check(t.get("stoppedReason") == "Essential container in task exited", "default stoppedReason")
    check("stoppedAt" in t and t["stoppedAt"] >= t["startedAt"], "stoppedAt >= startedAt")

    # scripted failure on FARGATE_SPOT via capacityProviderStrategy
    r = run(cluster, td, net, {"fake": {"exit": 3}}, spot=True)
    t = r["tasks"][0]
    check(t.get("capacityProviderName") == "FARGATE_SPOT" and t.get("launchType") == "FARGATE",
          "capacityProviderStrategy FARGATE_SPOT runs as FARGATE with capacityProviderName")
    t = wait_stopped(cluster, t["taskArn"])
    check(t["containers"][0].get("exitCode") == 3, "fake exit 3")

    # a launch type and a strategy together: refused, as AWS does (no plugin may add one)
    try:
        run(cluster, td, net, {}, launchType="FARGATE")
        check(False, "launchType with capacityProviderStrategy is refused")
    except ecs.exceptions.InvalidParameterException as e:
        check("not both" in str(e), "launchType with capacityProviderStrategy is refused")

    # a task-level size override: one of Fargate's sizes, else ClientException
    r = run(cluster, td, net, {}, overrides={"cpu": "256", "memory": "1024",
            "containerOverrides": [{"name": "job", "environment": []}]})
    check(len(r["tasks"]) == 1, "RunTask with a Fargate size override (256/1024) launches")
    try:
        run(cluster, td, net, {}, overrides={"memory": "3072",
            "containerOverrides": [{"name": "job", "environment": []}]})
        check(False, "a memory override not on Fargate's table for 256 CPU is refused")
    except ecs.exceptions.ClientException:
        check(True, "a memory override not on Fargate's table for 256 CPU is refused")

    # spot interruption, until_attempt
    fake = {"fake": {"stop_code": "SpotInterruption", "exit": 143, "until_attempt": 3}}
    t = wait_stopped(cluster, run(cluster, td, net, fake, attempt=2, spot=True)["tasks"][0]["taskArn"])
    check(t.get("stopCode") == "SpotInterruption" and t.get("stoppedReason") == "Your Spot Task was interrupted.",
          "SpotInterruption with default reason (attempt 2 < until_attempt 3)")
    t = wait_stopped(cluster, run(cluster, td, net, fake, attempt=3, spot=True)["tasks"][0]["taskArn"])
    check(t.get("stopCode") == "EssentialContainerExited" and t["containers"][0].get("exitCode") == 0,
          "attempt 3 >= until_attempt succeeds")

    # failed to start: no exit code
    fake = {"fake": {"stop_code": "TaskFailedToStart"}}
    t = wait_stopped(cluster, run(cluster, td, net, fake)["tasks"][0]["taskArn"])
    check(t.get("stopCode") == "TaskFailedToStart" and "exitCode" not in t["containers"][0]
          and t.get("stoppedReason") == "CannotPullContainerError: fake", "TaskFailedToStart without exitCode")

    # hold + StopTask
    arn = run(cluster, td, net, {"fake": {"hold": True}})["tasks"][0]["taskArn"]
    for _ in range(8):
        t = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
    check(t["lastStatus"] == "RUNNING" and "stopCode" not in t, "hold keeps the task RUNNING")
    s = ecs.stop_task(cluster=cluster, task=arn, reason="cancelled by jobrun")["task"]
    check(s["lastStatus"] == "STOPPED" and s.get("stopCode") == "UserInitiated", "StopTask -> STOPPED UserInitiated")
    t = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
    check(t.get("stoppedReason") == "cancelled by jobrun" and t["containers"][0].get("exitCode") == 143
          and "stoppedAt" in t, "stopped task: reason passed, exitCode 143, stoppedAt")

    # no spot capacity
    r = run(cluster, td, net, {"fake": {"spot_capacity": False}}, spot=True)
    check(r["tasks"] == [] and r["failures"] == [{"arn": td, "reason": "Capacity is unavailable at this time. "
          "Please try again later or in a different availability zone"}], "spot_capacity false -> failures entry")
    r = run(cluster, td, net, {"fake": {"spot_capacity": False}})
    check(len(r["tasks"]) == 1, "spot_capacity false still launches on FARGATE")

    # logs
    r = run(cluster, td, net, {"fake": {"logs": ["hello", "world"]}}, index=7)
    tid = r["tasks"][0]["taskArn"].split("/")[-1]
    ev = logs.get_log_events(logGroupName="/jobrun/x", logStreamName=f"jobrun/job/{tid}", startFromHead=True)
    check([e["message"] for e in ev["events"]] == ["hello", "world"], "fake logs in jobrun/job/<task id>")
    r = run(cluster, td, net, {"k": "v"}, index=4, attempt=2)
    tid = r["tasks"][0]["taskArn"].split("/")[-1]
    ev = logs.get_log_events(logGroupName="/jobrun/x", logStreamName=f"jobrun/job/{tid}", startFromHead=True)
    msgs = [e["message"] for e in ev["events"]]
    check(msgs == ["task 4 attempt 2", 'config {"k": "v"}'], f"default logs {msgs}")
    ts = [e["timestamp"] for e in ev["events"]]
    check(ts == sorted(ts) and len(set(ts)) == len(ts), "log timestamps increase")

    # a service tagged jobrun-fake-workers runs its desired count, which come up after the spans
    svc = ecs.create_service(cluster=cluster, serviceName="workers", taskDefinition=td,
                             desiredCount=0, launchType="FARGATE", networkConfiguration=net,
                             tags=[{"key": "jobrun-fake-workers",
                                    "value": json.dumps({"provisioning": 0.2, "pull": 0.2})}])
    ecs.update_service(cluster=cluster, service="workers", desiredCount=2)
    arns = ecs.list_tasks(cluster=cluster, serviceName="workers")["taskArns"]
    check(len(arns) == 2, "UpdateService desiredCount 2 runs two tasks, listed by serviceName")
    first = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
    check(all(t["lastStatus"] == "PENDING" and "pullStartedAt" not in t for t in first),
          "a new worker is PENDING, its pull not started yet")
    import time
    time.sleep(0.5)
    later = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
    check(all(t["lastStatus"] == "RUNNING" and t["startedAt"] >= t["pullStoppedAt"]
              >= t["pullStartedAt"] > t["createdAt"] for t in later),
          "after the spans it is RUNNING with createdAt < pullStartedAt <= pullStoppedAt <= startedAt")
    ecs.update_service(cluster=cluster, service="workers", desiredCount=0)
    check(ecs.list_tasks(cluster=cluster, serviceName="workers")["taskArns"] == [],
          "desiredCount 0 stops them")
    check(svc["service"]["serviceName"] == "workers", "service made")

    print("all plugin checks passed")


if __name__ == "__main__":
    main()
