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
  strategy is refused, as AWS does. (Managed Instances providers: see below.)
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

Amazon ECS Managed Instances (jobrun's GPU capacity; the rules and the pages they come from are
beside the patches, "Amazon ECS Managed Instances" below):
* CreateCapacityProvider with a managedInstancesProvider (stock moto fails without an Auto
  Scaling group) makes a provider of type MANAGED_INSTANCES, ACTIVE, with its `cluster`, its
  managedInstancesProvider as given (capacityOptionType defaults to ON_DEMAND), listed in the
  cluster's capacityProviders. Refused: a name in use (not INACTIVE) or prefixed aws/ecs/fargate
  (ClientException); an unknown cluster (ClusterNotFoundException); no cluster, an
  infrastructureRoleArn that is no IAM role, an ec2InstanceProfileArn that is no instance
  profile, both or neither of autoScalingGroupProvider and managedInstancesProvider
  (InvalidParameterException).
* DescribeCapacityProviders renders it (with `cluster` given: only that cluster's providers,
  another's as a MISSING failure; without names: all). UpdateCapacityProvider updates it in
  place (capacityOptionType stays), updateStatus UPDATE_COMPLETE. Update/DeleteCapacityProvider
  of an unknown or deleted provider is ClientException, in another cluster than its own
  InvalidParameterException. DeleteCapacityProvider while an ACTIVE service of its cluster has it
  in its strategy answers 200, the provider ACTIVE with updateStatus DELETE_FAILED and a reason;
  else the answer is DEPROVISIONING / DELETE_IN_PROGRESS and the provider is INACTIVE /
  DELETE_COMPLETE from then on, off its cluster (its name free again).
* PutClusterCapacityProviders naming one is InvalidParameterException; one that omits them keeps
  the cluster's own. DeleteCluster while the cluster has an ACTIVE one is
  ClusterContainsCapacityProviderException.
* RegisterTaskDefinition requiring MANAGED_INSTANCES: compatibilities EC2 and what it requires
  (moto says EC2, FARGATE), network mode as given (awsvpc by default); a GPU
  resourceRequirement with FARGATE required is ClientException.
* RunTask with a strategy naming one (and no launchType) runs the task as the fake Fargate runs
  its own (the "fake" scripting, logs, receipts, phases), launchType MANAGED_INSTANCES,
  capacityProviderName the provider; no Fargate size check, not counted in (nor held to) the
  Fargate vCPU quotas. InvalidParameterException: a provider not of the task's cluster (or
  unknown, or deleted), a task definition not MANAGED_INSTANCES-compatible, and a FARGATE /
  FARGATE_SPOT strategy with a MANAGED_INSTANCES-only one. CreateService keeps its
  capacityProviderStrategy (no launch type; both is InvalidParameterException), CreateService and
  UpdateService check it as RunTask does, and a `jobrun-fake-workers` service on one runs its
  tasks there.
* IAM: the AWS managed policies AmazonECSInfrastructureRolePolicyForManagedInstances and
  AmazonECSInstanceRolePolicyForManagedInstances exist (with the documents moto imported from
  AWS) even without MOTO_IAM_LOAD_MANAGED_POLICIES, so AttachRolePolicy of them works.

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

import copy
import functools
import inspect
import json
import os
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

from moto.core.responses import ActionResult
from moto.ecs import models as ecs_models
from moto.ecs.exceptions import ECSException, EcsClientException, InvalidParameterException
from moto.ecs import responses as ecs_responses
from moto.logs.models import logs_backends
from moto.iam import models as iam_models
from moto.iam.access_control import IAMRequest
from moto.iam.aws_managed_policies import aws_managed_policies_data
from moto.iam.exceptions import NotFoundException as IamNotFound
from moto.s3 import responses as s3_responses
from moto.servicequotas import responses as sq_responses
from moto.servicequotas.exceptions import NoSuchResource
from moto.utilities.utils import get_partition
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
# EC2's vCPU quotas of the GPU instance families (Service Quotas, service code "ec2"), which
# ECS Managed Instances' instances count against; 0 on many accounts, so 0 here until a test
# raises them (RequestServiceQuotaIncrease).
EC2_QUOTAS = {
    "L-DB2E81BA": "Running On-Demand G and VT instances",
    "L-3819A6DF": "All G and VT Spot Instance Requests",
    "L-417A185B": "Running On-Demand P instances",
    "L-7212CCBC": "All P Spot Instance Requests",
}


def quota_known(service, code):
    """The quotas the fake plays, with their AWS default."""
    if service == "fargate" and code in FARGATE_QUOTAS:
        return AWS_DEFAULT_VCPU
    if service == "ec2" and code in EC2_QUOTAS:
        return 0.0
    return None
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
    signature = inspect.signature(orig)

    @functools.wraps(orig)
    def run_task(self, *args, **kwargs):
        call = signature.bind(self, *args, **kwargs)
        strategy = call.arguments.get("capacity_provider_strategy") or [{}]
        provider = mi_provider(self, strategy[0].get("capacityProvider"))
        if provider:  # moto runs only FARGATE providers without container instances
            call.arguments["capacity_provider_strategy"] = [{"capacityProvider": "FARGATE"}]
        tasks = orig(*call.args, **call.kwargs)
        for task in tasks:
            if provider:
                task.capacity_provider_name, task.launch_type = provider.name, MI
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


def check_fargate_size(backend, task_definition, overrides, managed=None):
    """RunTask's task-level cpu/memory override (or the task definition's) is a Fargate size
    (not on Managed Instances, which take any size: the instance is picked to fit)."""
    overrides = overrides or {}
    if managed or ("cpu" not in overrides and "memory" not in overrides):
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
        managed = None if self._get_param("launchType") else check_strategy(
            self.ecs_backend, self._get_param("cluster", "default"),
            self._get_param("taskDefinition"), strategy)
        check_fargate_size(self.ecs_backend, self._get_param("taskDefinition"),
                           self._get_param("overrides"), managed)
        if provider == "FARGATE_SPOT" and fake.get("spot_capacity") is False:
            td = self.ecs_backend.describe_task_definition(self._get_param("taskDefinition"))
            return ActionResult({"tasks": [], "failures": [{"arn": td.arn, "reason": SPOT_UNAVAILABLE}]})
        if over_quota(self, provider, self._get_param("launchType")):
            td = self.ecs_backend.describe_task_definition(self._get_param("taskDefinition"))
            return ActionResult({"tasks": [], "failures": [{"arn": td.arn, "reason": QUOTA_REACHED}]})
        return orig(self)

    return run_task


def quota_shape(account, region, code, value):
    service = "fargate" if code in FARGATE_QUOTAS else "ec2"
    name = FARGATE_QUOTAS[code][0] if service == "fargate" else EC2_QUOTAS[code]
    return {
        "ServiceCode": service,
        "ServiceName": "AWS Fargate" if service == "fargate" else "Amazon Elastic Compute Cloud (Amazon EC2)",
        "QuotaCode": code, "QuotaName": name, "Value": value, "Unit": "None",
        "Adjustable": True, "GlobalQuota": False,
        "QuotaArn": f"arn:aws:servicequotas:{region}:{account}:{service}/{code}",
    }


def patch_get_service_quota(orig):
    @functools.wraps(orig)
    def get_service_quota(self):
        params = json.loads(self.body)
        code = params.get("QuotaCode")
        if params.get("ServiceCode") not in ("fargate", "ec2"):
            return orig(self)
        default = quota_known(params.get("ServiceCode"), code)
        if default is None:
            raise NoSuchResource()
        key = (self.current_account, self.region, code)
        value = _quota_values.get(key, default)
        return json.dumps({"Quota": quota_shape(key[0], key[1], code, value)})

    return get_service_quota


def get_aws_default_service_quota(self):
    params = json.loads(self.body)
    code = params.get("QuotaCode")
    default = quota_known(params.get("ServiceCode"), code)
    if default is None:
        raise NoSuchResource()
    shape = quota_shape(self.current_account, self.region, code, default)
    return json.dumps({"Quota": shape})


def request_service_quota_increase(self):
    params = json.loads(self.body)
    code = params.get("QuotaCode")
    if quota_known(params.get("ServiceCode"), code) is None:
        raise NoSuchResource()
    value = float(params["DesiredValue"])
    _quota_values[(self.current_account, self.region, code)] = value
    return json.dumps({"RequestedQuota": {
        "Id": f"fake-{code}", "ServiceCode": params.get("ServiceCode"), "QuotaCode": code,
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
        strategy = getattr(service, "capacity_provider_strategy", None) or [{}]
        # On a Managed Instances provider by its strategy, else as Fargate (moto's default EC2
        # launch type would want container instances).
        placement = ({"capacity_provider_strategy": strategy}
                     if mi_provider(backend, strategy[0].get("capacityProvider")) else {})
        for task in backend.run_task(cluster.name, service.task_definition, missing, {},
                                     deployment, None, None if placement else "FARGATE",
                                     network, group=f"service:{service.name}", **placement):
            start_later(task, phases)
            task._jobrun_hold = True  # a worker runs until it is stopped
    for task in reversed(running[service.desired_count:]):
        backend.stop_task(cluster.name, task.task_arn, "Scaling activity initiated by deployment")


def patch_update_service(orig):
    @functools.wraps(orig)
    def update_service(self, service_properties, *args, **kwargs):
        check_service_strategy(self, service_properties)
        service = orig(self, dict(service_properties), *args, **kwargs)
        if service_properties.get("capacity_provider_strategy"):
            service.launch_type = None  # a strategy replaces the launch type
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


# ----- Amazon ECS Managed Instances ---------------------------------------------------------
# Capacity providers of type MANAGED_INSTANCES (moto 5.2 knows only Auto Scaling group ones, and
# fails without one), their tasks (run as the fake Fargate runs its own), and the two AWS managed
# IAM policies their roles take. Each rule names the page it plays.

MI = "MANAGED_INSTANCES"
NO_SUCH_PROVIDER = ("The specified capacity provider does not exist. Specify a valid name or ARN "
                    "and try again.")
PROVIDER_EXISTS = ("The specified capacity provider already exists. To change the configuration "
                   "of an existing capacity provider, update the capacity provider.")
NOT_ASSOCIATED = ("The specified capacity provider strategy cannot contain a capacity provider "
                  "that is not associated with the cluster. Associate the capacity provider with "
                  "the cluster or specify a valid capacity provider and try again.")
GPU_ON_FARGATE = ("Tasks using the Fargate launch type do not support GPU resource requirements: "
                  "gpu is not valid in Fargate tasks.")
# AWS managed policies for the two roles of a Managed Instances provider, with the documents moto
# imported from AWS (https://docs.aws.amazon.com/aws-managed-policy/latest/reference/
# AmazonECSInfrastructureRolePolicyForManagedInstances.html and
# AmazonECSInstanceRolePolicyForManagedInstances.html); moto loads them only with
# MOTO_IAM_LOAD_MANAGED_POLICIES=true, and AttachRolePolicy of a policy it lacks is NoSuchEntity.
MI_POLICIES = ("AmazonECSInfrastructureRolePolicyForManagedInstances",
               "AmazonECSInstanceRolePolicyForManagedInstances")
_mi_policy_data = {}


class ManagedInstancesProvider:
    """A capacity provider of type MANAGED_INSTANCES, scoped to one cluster (API_CapacityProvider:
    `cluster` "is required for Managed instances", `type` MANAGED_INSTANCES). Not a subclass of
    moto's CapacityProvider, whose __init__ wants an Auto Scaling group."""

    def __init__(self, backend, name, cluster, config, tags):
        partition = get_partition(backend.region_name)
        self._id = name
        self.capacity_provider_arn = (f"arn:{partition}:ecs:{backend.region_name}:"
                                      f"{backend.account_id}:capacity-provider/{name}")
        self.name, self.cluster, self.tags, self.type = name, cluster, tags, MI
        self.status, self.update_status, self.update_status_reason = "ACTIVE", None, None
        self.auto_scaling_group_provider = None
        self.managed_instances_provider = config


def mi_provider(backend, name):
    """The ACTIVE Managed Instances provider of that name or ARN, else None."""
    provider = backend._get_provider(name) if name else None
    if getattr(provider, "type", None) == MI and provider.status == "ACTIVE":
        return provider
    return None


def check_strategy(backend, cluster_str, task_definition, strategy):
    """A capacity provider strategy of RunTask, CreateService or UpdateService: its Managed
    Instances provider (None for Fargate's), refused where AWS refuses it."""
    name = (strategy or [{}])[0].get("capacityProvider")
    if not name or not task_definition:
        return None
    compatible = backend.describe_task_definition(task_definition).compatibilities
    if name in FARGATE_PROVIDERS:
        # A MANAGED_INSTANCES-only task definition does not validate for Fargate
        # (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html).
        if MI in compatible and "FARGATE" not in compatible:
            raise InvalidParameterException("Task definition does not support launch_type FARGATE.")
        return None
    provider, known = mi_provider(backend, name), backend._get_provider(name)
    if known is not None and getattr(known, "type", None) != MI:
        return None  # an Auto Scaling group provider: stock moto
    # Managed Instances providers are cluster-scoped: "it becomes available only within the
    # specified cluster" (API_CreateCapacityProvider, `cluster`).
    if provider is None or provider.cluster != backend._get_cluster(cluster_str).name:
        raise InvalidParameterException(NOT_ASSOCIATED)
    if MI not in compatible:
        raise InvalidParameterException("Task definition does not support launch_type "
                                        "MANAGED_INSTANCES.")
    return provider


def check_service_strategy(backend, properties):
    """UpdateService's new strategy, against the service's task definition (or its new one)."""
    strategy = properties.get("capacity_provider_strategy")
    if not strategy:
        return
    cluster = properties.get("cluster", "default")
    service = backend._get_service(cluster, properties["service"].split("/")[-1])
    definition = properties.get("task_definition") or service.task_definition
    check_strategy(backend, cluster, definition, strategy)


def patch_create_service(orig):
    """CreateService keeps its capacityProviderStrategy (moto drops it and makes the launch type
    EC2): "If you want to use Amazon ECS Managed Instances, you must use the
    capacityProviderStrategy request parameter and omit the launchType request parameter"
    (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CreateService.html)."""
    @functools.wraps(orig)
    def create_service(self):
        strategy = self._get_param("capacityProviderStrategy")
        cluster = self._get_param("cluster", "default")
        if strategy and self._get_param("launchType"):
            raise InvalidParameterException(
                "Specify either Launch Type or Capacity Provider Strategy, but not both.")
        check_strategy(self.ecs_backend, cluster, self._get_param("taskDefinition"), strategy)
        answer = orig(self)
        if strategy:
            service = self.ecs_backend._get_service(cluster, self._get_param("serviceName"))
            service.capacity_provider_strategy, service.launch_type = strategy, None
            for deployment in service.deployments:
                deployment.update(launchType=None, capacityProviderStrategy=strategy)
        return answer

    return create_service


def check_provider_name(backend, name):
    """CreateCapacityProvider's name: "can't be prefixed with "aws", "ecs", or "fargate""
    (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CreateCapacityProvider.html),
    and not one in use (ClientException, as ECS words it)."""
    if name.lower().startswith(("aws", "ecs", "fargate")):
        raise EcsClientException("The capacity provider name can't be prefixed with \"aws\", "
                                 "\"ecs\", or \"fargate\". Specify a different name and try again.")
    existing = backend._get_provider(name)
    if existing is not None and existing.status != "INACTIVE":
        raise EcsClientException(PROVIDER_EXISTS)


def check_mi_roles(backend, config):
    """The infrastructure role and the instance profile a provider names exist in IAM."""
    iam = iam_models.iam_backends[backend.account_id][get_partition(backend.region_name)]
    role = config.get("infrastructureRoleArn")
    profile = (config.get("instanceLaunchTemplate") or {}).get("ec2InstanceProfileArn")
    for arn, lookup, what in ((role, iam.get_role_by_arn, "infrastructure role"),
                              (profile, iam.get_instance_profile_by_arn, "instance profile")):
        try:
            if arn:
                lookup(arn)
        except IamNotFound:
            raise InvalidParameterException(f"The specified {what} {arn} does not exist. Specify "
                                            "a valid ARN and try again.")


def patch_create_capacity_provider(orig):
    """CreateCapacityProvider with a managedInstancesProvider (API_CreateCapacityProvider): the
    provider is ACTIVE, of type MANAGED_INSTANCES, associated with its cluster (listed in the
    cluster's capacityProviders)."""
    @functools.wraps(orig)
    def create_capacity_provider(self):
        backend, name = self.ecs_backend, self._get_param("name")
        config, asg = self._get_param("managedInstancesProvider"), self._get_param(
            "autoScalingGroupProvider")
        check_provider_name(backend, name)
        if bool(config) == bool(asg):
            raise InvalidParameterException("Specify exactly one of autoScalingGroupProvider "
                                            "and managedInstancesProvider.")
        if asg:
            return orig(self)
        return ActionResult({"capacityProvider": create_mi_provider(self, name, config)})

    return create_capacity_provider


def create_mi_provider(response, name, config):
    backend, cluster_str = response.ecs_backend, response._get_param("cluster")
    if not cluster_str:  # "This is required for Managed instances" (API_CapacityProvider)
        raise InvalidParameterException("A Managed Instances capacity provider needs a cluster.")
    cluster = backend._get_cluster(cluster_str)  # ClusterNotFoundException
    check_mi_roles(backend, config)
    # capacityOptionType: "The default is On-Demand" (API_InstanceLaunchTemplate).
    config["instanceLaunchTemplate"].setdefault("capacityOptionType", "ON_DEMAND")
    provider = ManagedInstancesProvider(backend, name, cluster.name, config,
                                        response._get_param("tags") or [])
    backend.capacity_providers[name] = provider
    cluster.capacity_providers = (cluster.capacity_providers or []) + [name]
    return provider


def cluster_provider(backend, name, cluster_str):
    """The Managed Instances provider an Update/DeleteCapacityProvider names, in the cluster it
    names: MI providers "can only be updated (deleted) within their associated cluster"
    (API_UpdateCapacityProvider, API_DeleteCapacityProvider, `cluster`)."""
    provider = backend._get_provider(name)
    if provider is None or provider.status == "INACTIVE":
        raise EcsClientException(NO_SUCH_PROVIDER)
    own = getattr(provider, "cluster", None)  # an Auto Scaling group provider has none
    if cluster_str and backend._get_cluster(cluster_str).name != own:
        raise InvalidParameterException(f"The capacity provider {provider.name} is not "
                                        f"associated with the cluster {cluster_str}.")
    return provider


def patch_update_capacity_provider(orig):
    """UpdateCapacityProvider of a Managed Instances provider: the infrastructure role, the
    launch template (InstanceLaunchTemplateUpdate: capacityOptionType is not in it, so it stays),
    propagateTags and infrastructureOptimization, in place
    (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_UpdateCapacityProvider.html)."""
    @functools.wraps(orig)
    def update_capacity_provider(self):
        config = self._get_param("managedInstancesProvider")
        if not config:
            return orig(self)
        provider = cluster_provider(self.ecs_backend, self._get_param("name"),
                                    self._get_param("cluster"))
        if provider.type != MI:
            raise InvalidParameterException("The capacity provider is not a Managed Instances one.")
        check_mi_roles(self.ecs_backend, config)
        current = provider.managed_instances_provider
        template = dict(config.get("instanceLaunchTemplate") or {})
        template.pop("capacityOptionType", None)
        current["instanceLaunchTemplate"].update(template)
        for key in ("infrastructureRoleArn", "propagateTags", "infrastructureOptimization",
                    "autoRepairConfiguration"):
            if key in config:
                current[key] = config[key]
        provider.update_status, provider.update_status_reason = "UPDATE_COMPLETE", None
        return ActionResult({"capacityProvider": provider})

    return update_capacity_provider


def services_using(backend, provider):
    """The cluster's active services whose capacity provider strategy names the provider."""
    return [s.name for s in backend.services.values()
            if s.cluster_name == provider.cluster and s.status == "ACTIVE"
            and any(i.get("capacityProvider") == provider.name
                    for i in getattr(s, "capacity_provider_strategy", None) or [])]


def delete_mi_provider(backend, provider):
    """DeleteCapacityProvider of a Managed Instances provider: answered DEPROVISIONING
    (DELETE_IN_PROGRESS), INACTIVE (DELETE_COMPLETE) from then on, "When a capacity provider is
    successfully deleted, it has an INACTIVE status" (API_CapacityProvider), and off its cluster.
    Still in a service's strategy, it "must be removed from the capacity provider strategy from
    all services" (API_DeleteCapacityProvider): ECS answers 200 with updateStatus DELETE_FAILED
    and the reason, the provider ACTIVE
    (https://repost.aws/knowledge-center/ecs-capacity-provider-error)."""
    users = services_using(backend, provider)
    if users:
        provider.update_status = "DELETE_FAILED"
        provider.update_status_reason = (
            f"The capacity provider cannot be deleted because it is in use by service: "
            f"{users[0]}. Remove the capacity provider from the service's capacity provider "
            "strategy and try again.")
        return provider
    answer = copy.copy(provider)
    answer.status, answer.update_status, answer.update_status_reason = (
        "DEPROVISIONING", "DELETE_IN_PROGRESS", None)
    provider.status, provider.update_status, provider.update_status_reason = (
        "INACTIVE", "DELETE_COMPLETE", None)
    cluster = backend.clusters.get(provider.cluster)
    if cluster is not None and provider.name in (cluster.capacity_providers or []):
        cluster.capacity_providers = [p for p in cluster.capacity_providers if p != provider.name]
    return answer


def patch_delete_capacity_provider(orig):
    """DeleteCapacityProvider: an unknown (or deleted) provider is AWS's ClientException (moto
    fails with a 500); a Managed Instances one see delete_mi_provider."""
    @functools.wraps(orig)
    def delete_capacity_provider(self):
        backend, name = self.ecs_backend, self._get_param("capacityProvider")
        provider = cluster_provider(backend, name, None)
        if getattr(provider, "type", None) != MI:
            return orig(self)
        provider = cluster_provider(backend, name, self._get_param("cluster"))
        return ActionResult({"capacityProvider": delete_mi_provider(backend, provider)})

    return delete_capacity_provider


def in_cluster(provider, cluster):
    if cluster is None:
        return True
    if getattr(provider, "type", None) == MI:
        return provider.cluster == cluster.name
    return provider.name in (cluster.capacity_providers or [])


def patch_describe_capacity_providers(orig):
    """DescribeCapacityProviders' `cluster`: "only capacity providers associated with this
    cluster are returned, including Amazon ECS Managed Instances capacity providers"
    (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeCapacityProviders.html);
    without names, all of them (moto fails with a 500)."""
    @functools.wraps(orig)
    def describe_capacity_providers(self):
        backend, names = self.ecs_backend, self._get_param("capacityProviders")
        cluster_str = self._get_param("cluster")
        if names and not cluster_str:
            return orig(self)
        cluster = backend._get_cluster(cluster_str) if cluster_str else None
        if not names:
            found, failures = list(backend.capacity_providers.values()), []
        else:
            found, failures = backend.describe_capacity_providers(names)
        failures += [ecs_models.CapacityProviderFailure("MISSING", p.name, backend.account_id,
                                                        backend.region_name)
                     for p in found if names and not in_cluster(p, cluster)]
        return ActionResult({"capacityProviders": [p for p in found if in_cluster(p, cluster)],
                             "failures": failures})

    return describe_capacity_providers


def patch_put_cluster_capacity_providers(orig):
    """PutClusterCapacityProviders: a Managed Instances provider is associated with its cluster
    when made, and this call cannot associate one (InvalidParameterException "Cannot associate
    Managed Instances capacity provider to clusters using this API.", as reported in
    https://github.com/hashicorp/terraform-provider-aws/issues/44783); the cluster's own stay."""
    @functools.wraps(orig)
    def put_cluster_capacity_providers(self, cluster_name, providers, strategy, *args, **kwargs):
        if any(mi_provider(self, name) for name in providers or []):
            raise InvalidParameterException("Cannot associate Managed Instances capacity "
                                            "provider to clusters using this API.")
        cluster = orig(self, cluster_name, providers, strategy, *args, **kwargs)
        if providers is not None:
            own = [p.name for p in self.capacity_providers.values()
                   if mi_provider(self, p.name) and p.cluster == cluster.name]
            cluster.capacity_providers = list(providers) + own
        return cluster

    return put_cluster_capacity_providers


def patch_delete_cluster(orig):
    """DeleteCluster of a cluster that still has an ACTIVE Managed Instances provider is
    ClusterContainsCapacityProviderException: "You must first delete all capacity providers from
    the cluster before you can delete the cluster itself" (the model's documentation of it,
    https://docs.aws.amazon.com/botocore/latest/reference/services/ecs/client/exceptions/
    ClusterContainsCapacityProviderException.html)."""
    @functools.wraps(orig)
    def delete_cluster(self, cluster_str, *args, **kwargs):
        cluster = self._get_cluster(cluster_str)
        if any(mi_provider(self, p.name) and p.cluster == cluster.name
               for p in self.capacity_providers.values()):
            raise ECSException("ClusterContainsCapacityProviderException",
                               "The Cluster cannot be deleted while capacity providers are "
                               "associated with it.")
        return orig(self, cluster_str, *args, **kwargs)

    return delete_cluster


def wants_gpu(containers):
    return any(r.get("type") == "GPU" for c in containers or []
               for r in c.get("resourceRequirements") or [])


def patch_register_task_definition(orig):
    """RegisterTaskDefinition: `gpu` "is not valid in Fargate tasks"
    (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html), and
    "If the task definition doesn't validate against the compatibilities specified, a client
    exception is returned" (task_definition_parameters.html#requires_compatibilities): a GPU
    resourceRequirement with FARGATE required is ClientException. A MANAGED_INSTANCES task
    definition's compatibilities are EC2 and what it requires (moto says EC2, FARGATE), and its
    network mode the one given, else awsvpc (task_definition_parameters-managed-instances.html)."""
    signature = inspect.signature(orig)

    @functools.wraps(orig)
    def register_task_definition(self, *args, **kwargs):
        call = signature.bind(self, *args, **kwargs).arguments
        requires = call.get("requires_compatibilities") or []
        if "FARGATE" in requires and wants_gpu(call.get("container_definitions")):
            raise EcsClientException(GPU_ON_FARGATE)
        definition = orig(self, *args, **kwargs)
        if MI in requires:
            definition.compatibilities = ["EC2"] + sorted(set(requires) - {"EC2"})
            definition.network_mode = call.get("network_mode") or "awsvpc"
        return definition

    return register_task_definition


def patch_init_aws_policies(orig):
    """The IAM backend's AWS managed policies: moto's whole list with
    MOTO_IAM_LOAD_MANAGED_POLICIES=true, else (moto's default: none) the two MI_POLICIES."""
    @functools.wraps(orig)
    def init_aws_policies(self):
        if iam_models.load_iam_aws_managed_policies():
            return orig(self)
        return [iam_models.AWSManagedPolicy.from_data(name, self.account_id, self.region_name,
                                                      data)
                for name, data in _mi_policy_data.items()]

    return init_aws_policies


def load_mi_policies():
    policies = json.loads(aws_managed_policies_data)
    missing = [name for name in MI_POLICIES if name not in policies]
    if missing:
        sys.exit(f"jobrun_moto: moto's AWS managed policies lack {missing}: check the plugin")
    _mi_policy_data.update((name, policies[name]) for name in MI_POLICIES)


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
        (backend, "register_task_definition", patch_register_task_definition),
        (backend, "put_cluster_capacity_providers", patch_put_cluster_capacity_providers),
        (backend, "delete_cluster", patch_delete_cluster),
        (ecs_responses.EC2ContainerServiceResponse, "create_service", patch_create_service),
        (ecs_responses.EC2ContainerServiceResponse, "create_capacity_provider",
         patch_create_capacity_provider),
        (ecs_responses.EC2ContainerServiceResponse, "update_capacity_provider",
         patch_update_capacity_provider),
        (ecs_responses.EC2ContainerServiceResponse, "delete_capacity_provider",
         patch_delete_capacity_provider),
        (ecs_responses.EC2ContainerServiceResponse, "describe_capacity_providers",
         patch_describe_capacity_providers),
        (iam_models.IAMBackend, "_init_aws_policies", patch_init_aws_policies),
    ]
    load_mi_policies()
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
