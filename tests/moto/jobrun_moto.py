#!/usr/bin/env python3
"""moto server with a scripted "fake Fargate" for jobrun's tests.

Usage: tests/.venv/bin/python3 tests/moto/jobrun_moto.py -H 127.0.0.1 -p PORT
       (same flags as moto_server; tests/setup makes the venv with the moto that
       tests/requirements.txt pins, which is the moto these patches are written for)

Stock moto's ECS is too kind to test a job runner against: every task exits 0 (its container
reports exitCode 0 even while running), there is no stopCode/startedAt/stoppedAt, and a
stopped task's reason is "". This wrapper monkeypatches moto's ECS models before serving so
that tasks behave like Fargate tasks whose outcome the test picks:

* RunTask with a capacityProviderStrategy (how jobrun asks for FARGATE or FARGATE_SPOT) is
  stock moto: the task carries capacityProviderName. The plugin only adds launchType FARGATE
  to such a task (moto leaves it "", AWS says FARGATE). RunTask with both a launchType and a
  strategy is refused, as AWS does.
* Each task reads overrides.containerOverrides[0].environment: JOBRUN_CONFIG (JSON object),
  JOBRUN_ATTEMPT, JOBRUN_INDEX. A "fake" object inside the config scripts the task:
    exit: N            container exit code (default 0)
    stop_code: S       task stopCode (default EssentialContainerExited), stopped_reason: R
                       (TaskFailedToStart: the container gets no exitCode)
    until_attempt: K   exit/stop_code only apply while JOBRUN_ATTEMPT < K
    oom_until_attempt: K  while JOBRUN_ATTEMPT < K the container is killed for its memory
                       (exit 137, reason "OutOfMemoryError: Container killed due to memory usage")
    hold: true         the task stays RUNNING until StopTask
    hold_until: T      the task stays RUNNING until the clock passes T (seconds since the epoch)
    hold_while_file: P the task stays RUNNING while the file P exists (on moto's machine)
    hold_until_receipt: true  the task stays RUNNING until the receipt of its attempt
                       (jobs/<job>/runs/<run>/receipts/<index>-<attempt>.json, what `jobrun
                       task` writes before a task ends) is in one of moto's buckets. A later
                       task of the same run without a fake of its own (the reduce, whose config
                       is {}) holds so too: its jobrun, played by the test, also ends only after
                       its receipt, and ECS would not see it stop before
    spot_capacity: false  FARGATE_SPOT RunTask returns a "Capacity is unavailable" failure
    logs: [..]         lines written to CloudWatch Logs at launch (every task gets some)
    phases: {provisioning: S, pull: S, start: S, stop: S}  seconds between createdAt,
                       pullStartedAt, pullStoppedAt and startedAt (backdated from the launch),
                       and from executionStoppedAt to stoppedAt (default: all 0)
* RunTask's task-level cpu/memory override must be one of Fargate's sizes (with the task
  definition's value for the one not overridden), else ClientException, as on Fargate.
* Tasks get createdAt/pullStartedAt/pullStoppedAt/startedAt at launch, and stoppedAt/
  stoppingAt/executionStoppedAt/stopCode/stoppedReason/container exitCode when they reach STOPPED (still one lifecycle step per DescribeTasks, like moto).
  StopTask stops at once: stopCode UserInitiated, exitCode 143.

Services (opt in): moto keeps only a service's counts and runs no task for it. A service tagged
`jobrun-fake-workers` (value: JSON {provisioning: S, pull: S, start: S}, as "phases" above)
runs its desired count as tasks: UpdateService's desiredCount starts tasks (group
"service:NAME", startedBy the deployment's id, created then, PENDING until the spans have
passed, then RUNNING until stopped; DescribeTasks reports pullStartedAt, pullStoppedAt and
startedAt only once they are past) or stops the newest extra ones, and ListTasks' serviceName
(which moto ignores) lists them: those meant to run, as AWS's default desiredStatus RUNNING
does (other ListTasks keep moto's answer, stopped tasks too, which tests count launches by).

Fargate vCPU quotas: Service Quotas' GetServiceQuota (service code "fargate", quota codes
L-3032A538 on-demand and L-36FBB829 Spot, which stock moto does not know) answers the account's
value: AWS's default (4000 vCPU, also what GetAWSDefaultServiceQuota answers) until a test calls
RequestServiceQuotaIncrease, which here is granted at once (any value, lower too). RunTask of a
Fargate task whose vCPUs would take the account's running tasks on that capacity (every cluster,
not yet STOPPED) over the quota starts nothing and answers a failure whose reason is AWS's:
"You’ve reached the limit on the number of vCPUs you can run concurrently". A test that sets
a quota uses a moto of its own: the quota is the account's, as on AWS.

DescribeTasks finds the asked tasks in one pass over a set of their ids (moto's own lookup is a
substring test of every asked ARN against every task it holds).

Outside ECS: with IAM enforced (POST /moto-api/reset-auth), a form body's signature is
checked over the body as the SDKs encode it (moto re-encoded spaces as '+'). And
GetBucketNotificationConfiguration of a bucket without notifications answers
<GetBucketNotificationResponse/>, a root element the Rust SDK cannot parse; it answers the empty
<NotificationConfiguration/> that S3 itself sends.

moto serialises responses from model attributes, trying the camelCase shape member name and
then its snake_case form (stopCode -> stop_code), and converts values to the shape's types
(a container's cpu/memory come out as strings), so the patches just set attributes. A patch
that finds nothing to patch stops the server: the tests must not run against a moto the
plugin does not fit (pin a new version in tests/requirements.txt and check it with
tests/moto/check_plugin.py).
"""

import functools
import json
import os
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

from moto.core.responses import ActionResult
from moto.ecs import models as ecs_models
from moto.ecs.exceptions import EcsClientException
from moto.ecs import responses as ecs_responses
from moto.logs.models import logs_backends
from moto.iam.access_control import IAMRequest
from moto.s3 import responses as s3_responses
from moto.servicequotas import responses as sq_responses
from moto.servicequotas.exceptions import NoSuchResource
from urllib.parse import quote, urlencode

SPOT_UNAVAILABLE = (
    "Capacity is unavailable at this time. "
    "Please try again later or in a different availability zone"
)
DEFAULT_REASONS = {
    "SpotInterruption": "Your Spot Task was interrupted.",
    "TaskFailedToStart": "CannotPullContainerError: fake",
}
ESSENTIAL_EXITED = "Essential container in task exited"
FARGATE_QUOTAS = {
    "L-3032A538": ("Fargate On-Demand vCPU resource count", "FARGATE"),
    "L-36FBB829": ("Fargate Spot vCPU resource count", "FARGATE_SPOT"),
}
AWS_DEFAULT_VCPU = 4000.0
QUOTA_REACHED = "You\u2019ve reached the limit on the number of vCPUs you can run concurrently"
# (account, region, quota code) -> the value RequestServiceQuotaIncrease set.
_quota_values = {}
FARGATE_PROVIDERS = ("FARGATE", "FARGATE_SPOT")

_log_lock = threading.Lock()
_last_log_ms = [0]


def warn(msg):
    print(f"jobrun_moto: warning: {msg}", file=sys.stderr, flush=True)


def now():
    return datetime.now(timezone.utc)


def task_env(overrides):
    """The first container override's environment as a dict."""
    try:
        env = (overrides or {}).get("containerOverrides", [])[0].get("environment", [])
        return {e["name"]: e.get("value", "") for e in env}
    except (IndexError, AttributeError, KeyError, TypeError):
        return {}


def task_script(overrides):
    """(env, config dict, fake dict, attempt) for a RunTask's overrides."""
    env = task_env(overrides)
    try:
        config = json.loads(env.get("JOBRUN_CONFIG", "{}"))
    except ValueError:
        config = {}
    fake = config.get("fake") if isinstance(config, dict) else None
    try:
        attempt = int(env.get("JOBRUN_ATTEMPT", "0"))
    except ValueError:
        attempt = 0
    return env, config, fake if isinstance(fake, dict) else {}, attempt


# Runs (JOBRUN_RUN_ID) whose tasks asked for "hold_until_receipt": their tasks without a fake
# of their own hold so too.
RUNS_HELD_UNTIL_RECEIPT = set()


def held_until_receipt(env, fake):
    """Whether a task stays RUNNING until its receipt (its own fake, or its run's)."""
    run = env.get("JOBRUN_RUN_ID", "")
    if fake.get("hold_until_receipt"):
        RUNS_HELD_UNTIL_RECEIPT.add(run)
        return True
    return not fake and run in RUNS_HELD_UNTIL_RECEIPT


OUT_OF_MEMORY = "OutOfMemoryError: Container killed due to memory usage"


def outcome(fake, attempt):
    """(stop_code, stopped_reason, exit_code[, container reason]) for a task that ends by itself."""
    if "oom_until_attempt" in fake and attempt < int(fake["oom_until_attempt"]):
        return "EssentialContainerExited", ESSENTIAL_EXITED, 137, OUT_OF_MEMORY
    if "until_attempt" in fake and attempt >= int(fake["until_attempt"]):
        return "EssentialContainerExited", ESSENTIAL_EXITED, 0
    code = fake.get("stop_code", "EssentialContainerExited")
    reason = fake.get("stopped_reason", DEFAULT_REASONS.get(code, ESSENTIAL_EXITED))
    exit_code = None if code == "TaskFailedToStart" else int(fake.get("exit", 0))
    return code, reason, exit_code


def finish(task, stop_code, reason, exit_code, container_reason=None):
    """Mark a task STOPPED with AWS's fields (once; later calls keep the first outcome)."""
    if getattr(task, "_jobrun_stopped", False):
        return
    task._jobrun_stopped = True
    task.last_status = "STOPPED"
    task.desired_status = "STOPPED"
    task.stopped_at = now()
    stop = getattr(task, "_jobrun_stop_span", timedelta(0))
    started = getattr(task, "started_at", None) or task.stopped_at
    task.stopping_at = task.execution_stopped_at = max(started, task.stopped_at - stop)
    task.stop_code = stop_code
    task.stopped_reason = reason
    for c in task.containers:
        c.exitCode = exit_code
        c.last_status = "STOPPED"
        if exit_code is None:
            c.reason = reason
        if container_reason:
            c.reason = container_reason


def write_logs(backend, task, task_definition, env, fake):
    """Write the task's log lines where the awslogs driver would put them."""
    try:
        container = task_definition.container_definitions[0]
        log_conf = container.get("logConfiguration") or {}
        opts = log_conf.get("options") or {}
        group = opts.get("awslogs-group")
        if not group:
            return
        prefix = opts.get("awslogs-stream-prefix")
        name = container.get("name", "")
        stream = f"{prefix}/{name}/{task.id}" if prefix else f"{name}/{task.id}"
        lines = fake.get("logs")
        if lines is None:
            lines = [
                f"task {env.get('JOBRUN_INDEX', '')} attempt {env.get('JOBRUN_ATTEMPT', '')}",
                f"config {env.get('JOBRUN_CONFIG', '')}",
            ]
        logs = logs_backends[backend.account_id][task.region_name]
        with _log_lock:
            if group not in logs.groups:
                logs.create_log_group(group, tags={})
            if stream not in logs.groups[group].streams:
                logs.create_log_stream(group, stream)
            events = []
            for line in lines:
                ms = max(int(time.time() * 1000), _last_log_ms[0] + 1)
                _last_log_ms[0] = ms
                events.append({"timestamp": ms, "message": str(line)})
            if events:
                logs.put_log_events(group, stream, events)
    except Exception as e:  # logs are a nicety; never fail RunTask over them
        warn(f"could not write logs for task {getattr(task, 'id', '?')}: {e!r}")


def backdate(task, phases):
    """createdAt … startedAt so that the task starts now after the spans `phases` gives."""
    span = lambda k: timedelta(seconds=float(phases.get(k, 0)))
    task.started_at = now()
    task.pull_stopped_at = task.started_at - span("start")
    task.pull_started_at = task.pull_stopped_at - span("pull")
    task.created_at = task.pull_started_at - span("provisioning")
    task._jobrun_stop_span = span("stop")


def launched(backend, task):
    """Set up a freshly created task: launch type, timestamps and its script."""
    env, _config, fake, attempt = task_script(task.overrides)
    if task.capacity_provider_name in FARGATE_PROVIDERS and not task.launch_type:
        task.launch_type = "FARGATE"  # moto leaves it "" for a capacity provider strategy
    # What Fargate reports of a start (createdAt, pullStartedAt, pullStoppedAt, startedAt):
    # "phases" backdates them so that the task starts now after those spans.
    backdate(task, fake.get("phases") or {})
    task.stopped_reason = None  # moto sets "" which would serialise as an empty reason
    task._jobrun_hold = bool(fake.get("hold"))
    task._jobrun_hold_until = float(fake.get("hold_until", 0))
    task._jobrun_hold_file = fake.get("hold_while_file")
    task._jobrun_receipt = receipt_key(env) if held_until_receipt(env, fake) else None
    task._jobrun_outcome = outcome(fake, attempt)
    for c in task.containers:
        c.exitCode = None  # ECS reports no exit code until the container stops
        c.last_status = "RUNNING"
    try:
        td = backend.describe_task_definition(task.task_definition_arn)
        write_logs(backend, task, td, env, fake)
    except Exception as e:
        warn(f"no task definition for logs: {e!r}")


def receipt_key(env):
    return "jobs/{}/runs/{}/receipts/{}-{}.json".format(
        env.get("JOBRUN_JOB", ""), env.get("JOBRUN_RUN_ID", ""),
        env.get("JOBRUN_INDEX", ""), env.get("JOBRUN_ATTEMPT", ""))


# With `--second-s3 URL`, S3 is another emulator's (LocalStack, behind the tests' proxy): the
# receipt is looked for there, over HTTP, instead of in moto's own buckets.
SECOND_S3 = None


def receipt_written(key):
    """Whether any bucket of any account holds the key."""
    if SECOND_S3:
        return second_s3_has(key)
    from moto.s3.models import s3_backends
    for account in list(s3_backends.keys()):
        backend = s3_backends[account]["global"]
        for bucket in list(backend.buckets.values()):
            if key in bucket.keys:
                return True
    return False


def second_s3_has(key):
    """Whether a bucket of the second S3 holds the key (ListBuckets, then HeadObject)."""
    import re
    import urllib.error
    import urllib.request
    auth = {"Authorization": "AWS4-HMAC-SHA256 Credential=123456789012/20260101/us-east-1/s3/"
                             "aws4_request, SignedHeaders=host, Signature=0"}
    try:
        with urllib.request.urlopen(urllib.request.Request(SECOND_S3 + "/", headers=auth)) as r:
            buckets = re.findall(r"<Name>([^<]+)</Name>", r.read().decode())
    except OSError:
        return False
    for bucket in buckets:
        head = urllib.request.Request(f"{SECOND_S3}/{bucket}/{quote(key)}", headers=auth,
                                      method="HEAD")
        try:
            with urllib.request.urlopen(head):
                return True
        except (urllib.error.HTTPError, OSError):
            continue
    return False


# ----- patches ------------------------------------------------------------------------------


def patch_backend_run_task(orig):
    @functools.wraps(orig)
    def run_task(self, *args, **kwargs):
        tasks = orig(self, *args, **kwargs)
        for task in tasks:
            launched(self, task)
        return tasks

    return run_task


# Fargate's task sizes: for each cpu, the memory values it takes (MiB), the table of
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-cpu-memory-error.html. That
# page documents the refusal of a pair outside it as a ClientException (for
# RegisterTaskDefinition); a RunTask task-level override outside it is refused the same way
# here ("No Fargate configuration exists for given values", as AWS words it).
FARGATE_SIZES = {
    256: [512, 1024, 2048],
    512: list(range(1024, 4097, 1024)),
    1024: list(range(2048, 8193, 1024)),
    2048: list(range(4096, 16385, 1024)),
    4096: list(range(8192, 30721, 1024)),
    8192: list(range(16384, 61441, 4096)),
    16384: list(range(32768, 122881, 8192)),
}


def check_fargate_size(backend, task_definition, overrides):
    """RunTask's task-level cpu/memory override (or the task definition's) is a Fargate size."""
    overrides = overrides or {}
    if "cpu" not in overrides and "memory" not in overrides:
        return
    td = backend.describe_task_definition(task_definition)
    if "FARGATE" not in (getattr(td, "requires_compatibilities", None) or []):
        return
    cpu, memory = overrides.get("cpu", td.cpu), overrides.get("memory", td.memory)
    try:
        ok = int(memory) in FARGATE_SIZES.get(int(cpu), [])
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise EcsClientException("No Fargate configuration exists for given values: "
                                 f"{cpu} CPU, {memory} memory.")


def patch_response_run_task(orig):
    @functools.wraps(orig)
    def run_task(self):
        strategy = self._get_param("capacityProviderStrategy") or []
        provider = strategy[0].get("capacityProvider") if strategy else None
        _env, _config, fake, _attempt = task_script(self._get_param("overrides"))
        check_fargate_size(self.ecs_backend, self._get_param("taskDefinition"),
                           self._get_param("overrides"))
        if provider == "FARGATE_SPOT" and fake.get("spot_capacity") is False:
            td = self.ecs_backend.describe_task_definition(self._get_param("taskDefinition"))
            return ActionResult({"tasks": [], "failures": [{"arn": td.arn, "reason": SPOT_UNAVAILABLE}]})
        if over_quota(self, provider, self._get_param("launchType")):
            td = self.ecs_backend.describe_task_definition(self._get_param("taskDefinition"))
            return ActionResult({"tasks": [], "failures": [{"arn": td.arn, "reason": QUOTA_REACHED}]})
        return orig(self)

    return run_task


def quota_shape(account, region, code, value):
    name, _ = FARGATE_QUOTAS[code]
    return {
        "ServiceCode": "fargate", "ServiceName": "AWS Fargate", "QuotaCode": code,
        "QuotaName": name, "Value": value, "Unit": "None", "Adjustable": True,
        "GlobalQuota": False,
        "QuotaArn": f"arn:aws:servicequotas:{region}:{account}:fargate/{code}",
    }


def patch_get_service_quota(orig):
    @functools.wraps(orig)
    def get_service_quota(self):
        params = json.loads(self.body)
        code = params.get("QuotaCode")
        if params.get("ServiceCode") != "fargate":
            return orig(self)
        if code not in FARGATE_QUOTAS:
            raise NoSuchResource()
        key = (self.current_account, self.region, code)
        value = _quota_values.get(key, AWS_DEFAULT_VCPU)
        return json.dumps({"Quota": quota_shape(key[0], key[1], code, value)})

    return get_service_quota


def get_aws_default_service_quota(self):
    params = json.loads(self.body)
    code = params.get("QuotaCode")
    if params.get("ServiceCode") != "fargate" or code not in FARGATE_QUOTAS:
        raise NoSuchResource()
    shape = quota_shape(self.current_account, self.region, code, AWS_DEFAULT_VCPU)
    return json.dumps({"Quota": shape})


def request_service_quota_increase(self):
    params = json.loads(self.body)
    code = params.get("QuotaCode")
    if params.get("ServiceCode") != "fargate" or code not in FARGATE_QUOTAS:
        raise NoSuchResource()
    value = float(params["DesiredValue"])
    _quota_values[(self.current_account, self.region, code)] = value
    return json.dumps({"RequestedQuota": {
        "Id": f"fake-{code}", "ServiceCode": "fargate", "QuotaCode": code,
        "DesiredValue": value, "Status": "CASE_CLOSED",
    }})


def task_vcpu(backend, task_definition, overrides):
    cpu = (overrides or {}).get("cpu")
    if cpu is None:
        cpu = backend.describe_task_definition(task_definition).cpu
    try:
        return int(cpu) / 1024.0
    except (TypeError, ValueError):
        return 0.25


def over_quota(response, provider, launch_type):
    """Whether one more task would take the account over its Fargate vCPU quota there."""
    capacity = provider or ("FARGATE" if launch_type == "FARGATE" else None)
    code = next((c for c, (_, p) in FARGATE_QUOTAS.items() if p == capacity), None)
    key = (response.current_account, response.region, code)
    if code is None or key not in _quota_values:
        return False
    backend = response.ecs_backend
    running = 0.0
    for cluster_tasks in backend.tasks.values():
        for task in cluster_tasks.values():
            if task.last_status == "STOPPED" or task.desired_status == "STOPPED":
                continue
            on = task.capacity_provider_name or (
                "FARGATE" if getattr(task, "launch_type", None) == "FARGATE" else None)
            if on == capacity:
                running += task_vcpu(backend, task.task_definition_arn, task.overrides)
    wanted = task_vcpu(backend, response._get_param("taskDefinition"),
                       response._get_param("overrides"))
    return running + wanted > _quota_values[key] + 1e-9


def patch_indexed_describe_tasks(orig):
    """moto looks for each asked task by a substring test against every task it holds
    (O(held × asked): ~1 s a call with thousands of tasks, which would make a watch benchmark
    measure moto). The same answer — every held task whose ARN or id was asked, in moto's
    order, each advanced once — from one pass over a set of the asked ids."""
    @functools.wraps(orig)
    def describe_tasks(self, cluster_str, tasks, *args, **kwargs):
        if not tasks or args or kwargs:
            return orig(self, cluster_str, tasks, *args, **kwargs)
        self._get_cluster(cluster_str)
        wanted = {t.split("/")[-1] for t in tasks}
        response = []
        for cluster_tasks in self.tasks.values():
            for task_arn, task in cluster_tasks.items():
                if task_arn.split("/")[-1] in wanted:
                    task.advance()
                    response.append(task)
        return response

    return describe_tasks


def patch_describe_tasks(orig):
    @functools.wraps(orig)
    def describe_tasks(self, *args, **kwargs):
        tasks = orig(self, *args, **kwargs)
        for task in tasks:
            report_due(task)
            # Reading the status applies moto's pending transition; finish tasks that got there.
            if task.last_status == "STOPPED" and hasattr(task, "_jobrun_outcome"):
                finish(task, *task._jobrun_outcome)
        return tasks

    return describe_tasks


def patch_advance(orig):
    @functools.wraps(orig)
    def advance(self):
        if getattr(self, "_jobrun_hold", False) and not getattr(self, "_jobrun_stopped", False):
            return  # "hold": stays RUNNING until StopTask
        if time.time() < getattr(self, "_jobrun_hold_until", 0):
            return  # "hold_until": RUNNING until then
        hold_file = getattr(self, "_jobrun_hold_file", None)
        if hold_file and os.path.exists(hold_file):
            return  # "hold_while_file": RUNNING while it is there
        key = getattr(self, "_jobrun_receipt", None)
        if key and not getattr(self, "_jobrun_stopped", False) and not receipt_written(key):
            return  # "hold_until_receipt": RUNNING until jobrun task wrote the receipt
        return orig(self)

    return advance


def patch_stop_task(orig):
    @functools.wraps(orig)
    def stop_task(self, cluster_str, task_str, reason, *args, **kwargs):
        task_id = task_str.split("/")[-1]
        for cluster_tasks in self.tasks.values():
            for arn, task in cluster_tasks.items():
                if arn.endswith(task_id) and getattr(task, "_jobrun_stopped", False):
                    return task  # already stopped: AWS returns it unchanged
        task = orig(self, cluster_str, task_str, reason, *args, **kwargs)
        task._jobrun_stopped = False
        finish(task, "UserInitiated", reason or "Task stopped by user", 143)
        return task

    return stop_task


FAKE_WORKERS = "jobrun-fake-workers"


def service_tasks(backend, cluster_name, service_name):
    """The service's tasks that are meant to run, oldest first."""
    group = f"service:{service_name}"
    tasks = backend.tasks.get(cluster_name, {}).values()
    return [t for t in tasks if getattr(t, "group", None) == group and t.desired_status == "RUNNING"]


def start_later(task, phases):
    """A task created now whose pull and start come after the spans `phases` gives."""
    at = now()
    task.created_at = at
    task._jobrun_due = []
    for attr, key in (("pull_started_at", "provisioning"), ("pull_stopped_at", "pull"),
                      ("started_at", "start")):
        at += timedelta(seconds=float(phases.get(key, 0)))
        task._jobrun_due.append((attr, at))
        setattr(task, attr, None)
    task.last_status = "PENDING"
    for c in task.containers:
        c.last_status = "PENDING"


def report_due(task):
    """What of a later start has happened by now (see start_later)."""
    for attr, at in getattr(task, "_jobrun_due", []):
        if at <= now() and getattr(task, attr, None) is None:
            setattr(task, attr, at)
    if getattr(task, "_jobrun_due", None) and task.started_at and task.desired_status == "RUNNING":
        task.last_status = "RUNNING"
        for c in task.containers:
            c.last_status = "RUNNING"


def run_service_tasks(backend, service, cluster, phases):
    """Starts or stops the service's tasks to its desired count (see the header)."""
    running = service_tasks(backend, cluster.name, service.name)
    missing = service.desired_count - len(running)
    if missing > 0:
        deployment = (service.deployments or [{}])[0].get("id", "ecs-svc/0")
        network = getattr(service, "network_configuration", None)
        for task in backend.run_task(cluster.name, service.task_definition, missing, {},
                                     deployment, None, "FARGATE", network,
                                     group=f"service:{service.name}"):
            start_later(task, phases)
            task._jobrun_hold = True  # a worker runs until it is stopped
    for task in reversed(running[service.desired_count:]):
        backend.stop_task(cluster.name, task.task_arn, "Scaling activity initiated by deployment")


def patch_update_service(orig):
    @functools.wraps(orig)
    def update_service(self, service_properties, *args, **kwargs):
        service = orig(self, dict(service_properties), *args, **kwargs)
        tags = {t.get("key"): t.get("value") for t in (service.tags or [])}
        if FAKE_WORKERS in tags and service_properties.get("desired_count") is not None:
            cluster = self._get_cluster(service_properties.get("cluster", "default"))
            run_service_tasks(self, service, cluster, json.loads(tags[FAKE_WORKERS] or "{}"))
        return service

    return update_service


def patch_list_tasks(orig):
    @functools.wraps(orig)
    def list_tasks(self, cluster_str=None, container_instance=None, family=None,
                   started_by=None, service_name=None, *args, **kwargs):
        tasks = orig(self, cluster_str, container_instance, family, started_by, service_name,
                     *args, **kwargs)
        if service_name:
            group = "service:" + service_name.split("/")[-1]
            tasks = [t for t in tasks if getattr(t, "group", None) == group]
            desired = args[0] if args else kwargs.get("desiredStatus")
            if desired is None:  # AWS's default desiredStatus is RUNNING
                tasks = [t for t in tasks if t.desired_status == "RUNNING"]
        return tasks

    return list_tasks


EMPTY_NOTIFICATIONS = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
                       b'<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>')


def patch_get_bucket_notification(orig):
    @functools.wraps(orig)
    def wrapper(self, *args, **kwargs):
        if not self.backend.get_bucket_notification_configuration(self.bucket_name):
            return 200, {"Content-Type": "application/xml"}, EMPTY_NOTIFICATIONS
        return orig(self, *args, **kwargs)
    return wrapper


def patch_signed_form_body(orig):
    """With IAM enforced, moto checks a request's SigV4 signature against its body; when
    werkzeug has parsed a form body away, moto re-encodes the parsed parameters with
    urllib's quote_plus (a space as '+'), so a query-protocol request whose values hold a
    space, signed over '%20' as AWS SDKs send it, fails with SignatureDoesNotMatch (AWS checks
    the bytes sent). The body is re-encoded as the SDKs do: RFC 3986, '%20'. A GET has no
    body: its parameters are in the URL (moto would otherwise sign a body a REST-JSON GET,
    EventBridge Scheduler's, never had)."""
    @functools.wraps(orig)
    def wrapper(self, *args, **kwargs):
        request = orig(self, *args, **kwargs)
        if self._method == "GET":
            request.data = b""
        elif not self._body and isinstance(self._data, dict):
            request.data = urlencode(self._data, doseq=True, safe="~", quote_via=quote)
        return request
    return wrapper


def install():
    backend = ecs_models.EC2ContainerServiceBackend
    patches = [
        (s3_responses.S3Response, "get_bucket_notification", patch_get_bucket_notification),
        (IAMRequest, "_create_aws_request", patch_signed_form_body),
        (backend, "run_task", patch_backend_run_task),
        (backend, "describe_tasks", patch_indexed_describe_tasks),
        (backend, "describe_tasks", patch_describe_tasks),
        (backend, "stop_task", patch_stop_task),
        (backend, "update_service", patch_update_service),
        (backend, "list_tasks", patch_list_tasks),
        (ecs_models.Task, "advance", patch_advance),
        (ecs_responses.EC2ContainerServiceResponse, "run_task", patch_response_run_task),
        (sq_responses.ServiceQuotasResponse, "get_service_quota", patch_get_service_quota),
    ]
    for cls, name, patch in patches:
        orig = getattr(cls, name, None)
        if orig is None:
            sys.exit(f"jobrun_moto: {cls.__name__}.{name} not found: this moto is not the one "
                     "tests/requirements.txt pins (run tests/setup)")
        setattr(cls, name, patch(orig))
    # Service Quotas calls stock moto does not answer at all.
    for name, f in [("get_aws_default_service_quota", get_aws_default_service_quota),
                    ("request_service_quota_increase", request_service_quota_increase)]:
        if hasattr(sq_responses.ServiceQuotasResponse, name):
            sys.exit(f"jobrun_moto: moto answers {name} itself now: check the plugin's")
        setattr(sq_responses.ServiceQuotasResponse, name, f)


def main():
    global SECOND_S3
    args = sys.argv[1:]
    if "--second-s3" in args:
        at = args.index("--second-s3")
        SECOND_S3 = args[at + 1].rstrip("/")
        del args[at:at + 2]
    install()
    from moto.server import main as moto_main

    moto_main(args)


if __name__ == "__main__":
    main()
