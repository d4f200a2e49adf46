#!/usr/bin/env python3
"""moto server with a scripted "fake Fargate" for jobrun's tests.

Usage: python3 tests/moto/jobrun_moto.py -H 127.0.0.1 -p PORT   (same flags as moto_server)

Stock moto's ECS is too kind to test a job runner against: every task exits 0, there is
no stopCode/startedAt/stoppedAt, and RunTask with a capacityProviderStrategy (how jobrun
asks for FARGATE_SPOT) fails with a 500. This wrapper monkeypatches moto's ECS models before
serving so that tasks behave like Fargate tasks whose outcome the test picks:

* RunTask with capacityProviderStrategy and no launchType runs as FARGATE; every task carries
  capacityProviderName (the first strategy item's provider, or FARGATE for launchType FARGATE).
* Each task reads overrides.containerOverrides[0].environment: JOBRUN_CONFIG (JSON object),
  JOBRUN_ATTEMPT, JOBRUN_INDEX. A "fake" object inside the config scripts the task:
    exit: N            container exit code (default 0)
    stop_code: S       task stopCode (default EssentialContainerExited), stopped_reason: R
                       (TaskFailedToStart: the container gets no exitCode)
    until_attempt: K   exit/stop_code only apply while JOBRUN_ATTEMPT < K
    hold: true         the task stays RUNNING until StopTask
    spot_capacity: false  FARGATE_SPOT RunTask returns a "Capacity is unavailable" failure
    logs: [..]         lines written to CloudWatch Logs at launch (every task gets some)
* Tasks get startedAt/createdAt at launch, and stoppedAt/stopCode/stoppedReason/container
  exitCode when they reach STOPPED (still one lifecycle step per DescribeTasks, like moto).
  StopTask stops at once: stopCode UserInitiated, exitCode 143.

Outside ECS: GetBucketNotificationConfiguration of a bucket without notifications answers
<GetBucketNotificationResponse/>, a root element the Rust SDK cannot parse; it answers the empty
<NotificationConfiguration/> that S3 itself sends.

moto 5.2 serialises responses from model attributes, trying the camelCase shape member name
and then its snake_case form (stopCode -> stop_code), so the patches just set attributes.
Everything is patched defensively: if moto changes shape, the server still starts and warns.
"""

import functools
import inspect
import json
import sys
import threading
import time
from datetime import datetime, timezone

from moto.ecs import models as ecs_models
from moto.ecs import responses as ecs_responses

try:
    from moto.core.responses import ActionResult
except ImportError:  # older moto: responses return JSON strings
    ActionResult = None

SPOT_UNAVAILABLE = (
    "Capacity is unavailable at this time. "
    "Please try again later or in a different availability zone"
)
DEFAULT_REASONS = {
    "SpotInterruption": "Your Spot Task was interrupted.",
    "TaskFailedToStart": "CannotPullContainerError: fake",
}
ESSENTIAL_EXITED = "Essential container in task exited"

_request = threading.local()  # the RunTask request being served on this thread
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


def outcome(fake, attempt):
    """(stop_code, stopped_reason, exit_code) for a task that ends by itself."""
    if "until_attempt" in fake and attempt >= int(fake["until_attempt"]):
        return "EssentialContainerExited", ESSENTIAL_EXITED, 0
    code = fake.get("stop_code", "EssentialContainerExited")
    reason = fake.get("stopped_reason", DEFAULT_REASONS.get(code, ESSENTIAL_EXITED))
    exit_code = None if code == "TaskFailedToStart" else int(fake.get("exit", 0))
    return code, reason, exit_code


def set_exit_code(container, value):
    # moto 5.2 names it `exitCode`; set the snake_case form too in case that changes.
    container.exitCode = value
    container.exit_code = value


def finish(task, stop_code, reason, exit_code):
    """Mark a task STOPPED with AWS's fields (once; later calls keep the first outcome)."""
    if getattr(task, "_jobrun_stopped", False):
        return
    task._jobrun_stopped = True
    task.last_status = "STOPPED"
    task.desired_status = "STOPPED"
    task.stopped_at = task.stopping_at = task.execution_stopped_at = now()
    task.stop_code = stop_code
    task.stopped_reason = reason
    for c in getattr(task, "containers", []):
        set_exit_code(c, exit_code)
        c.last_status = "STOPPED"
        if exit_code is None:
            c.reason = reason


def write_logs(backend, task, task_definition, env, fake):
    """Write the task's log lines where the awslogs driver would put them."""
    try:
        from moto.logs.models import logs_backends

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


def launched(backend, task, provider):
    """Set up a freshly created task: provider, timestamps and its script."""
    env, _config, fake, attempt = task_script(getattr(task, "overrides", None))
    if provider:
        task.capacity_provider_name = provider
    task.created_at = task.started_at = now()
    task.stopped_reason = None  # moto sets "" which would serialise as an empty reason
    task._jobrun_hold = bool(fake.get("hold"))
    task._jobrun_outcome = outcome(fake, attempt)
    for c in getattr(task, "containers", []):
        set_exit_code(c, None)  # ECS reports no exit code until the container stops
        c.last_status = "RUNNING"
        # ECS's Container shape has cpu and memory as strings; moto copies the task
        # definition's integers, which strict clients (the Rust SDK) refuse to parse.
        for field in ("cpu", "memory", "memory_reservation"):
            value = getattr(c, field, None)
            if value is not None and not isinstance(value, str):
                setattr(c, field, str(value))
    try:
        td = backend.describe_task_definition(task.task_definition_arn)
        write_logs(backend, task, td, env, fake)
    except Exception as e:
        warn(f"no task definition for logs: {e!r}")


def provider_for(strategy, launch_type):
    if not launch_type and strategy:
        return strategy[0].get("capacityProvider") or "FARGATE"
    if launch_type == "FARGATE":
        return "FARGATE"
    return None


# ----- patches ------------------------------------------------------------------------------


def patch_backend_run_task(orig):
    sig = inspect.signature(orig)

    @functools.wraps(orig)
    def run_task(self, *args, **kwargs):
        ctx = getattr(_request, "run_task", None) or {}
        bound = sig.bind(self, *args, **kwargs)
        bound.apply_defaults()
        launch_type = bound.arguments.get("launch_type")
        provider = ctx.get("provider") or provider_for(None, launch_type)
        if ctx.get("provider") and not launch_type and "launch_type" in bound.arguments:
            bound.arguments["launch_type"] = "FARGATE"  # a capacity provider strategy
        tasks = orig(*bound.args, **bound.kwargs)
        for task in tasks:
            launched(self, task, provider)
        return tasks

    return run_task


def patch_response_run_task(orig):
    @functools.wraps(orig)
    def run_task(self):
        strategy = self._get_param("capacityProviderStrategy") or []
        provider = provider_for(strategy, self._get_param("launchType"))
        _env, _config, fake, _attempt = task_script(self._get_param("overrides"))
        if provider == "FARGATE_SPOT" and fake.get("spot_capacity") is False:
            td = self.ecs_backend.describe_task_definition(self._get_param("taskDefinition"))
            result = {"tasks": [], "failures": [{"arn": td.arn, "reason": SPOT_UNAVAILABLE}]}
            return ActionResult(result) if ActionResult else json.dumps(result)
        _request.run_task = {"provider": provider}
        try:
            return orig(self)
        finally:
            _request.run_task = None

    return run_task


def patch_describe_tasks(orig):
    @functools.wraps(orig)
    def describe_tasks(self, *args, **kwargs):
        tasks = orig(self, *args, **kwargs)
        for task in tasks:
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


EMPTY_NOTIFICATIONS = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
                       b'<NotificationConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>')


def patch_get_bucket_notification(orig):
    @functools.wraps(orig)
    def wrapper(self, *args, **kwargs):
        if not self.backend.get_bucket_notification_configuration(self.bucket_name):
            return 200, {"Content-Type": "application/xml"}, EMPTY_NOTIFICATIONS
        return orig(self, *args, **kwargs)
    return wrapper


def install():
    try:
        from moto.s3 import responses as s3_responses
    except ImportError:
        s3_responses = None
    patches = [
        (getattr(s3_responses, "S3Response", None), "get_bucket_notification",
         patch_get_bucket_notification),
        (getattr(ecs_models, "EC2ContainerServiceBackend", None), "run_task", patch_backend_run_task),
        (getattr(ecs_models, "EC2ContainerServiceBackend", None), "describe_tasks", patch_describe_tasks),
        (getattr(ecs_models, "EC2ContainerServiceBackend", None), "stop_task", patch_stop_task),
        (getattr(ecs_models, "Task", None), "advance", patch_advance),
        (getattr(ecs_responses, "EC2ContainerServiceResponse", None), "run_task", patch_response_run_task),
    ]
    for cls, name, patch in patches:
        orig = getattr(cls, name, None) if cls is not None else None
        if orig is None:
            warn(f"cannot patch {getattr(cls, '__name__', '?')}.{name}: not found in this moto")
            continue
        try:
            setattr(cls, name, patch(orig))
        except Exception as e:
            warn(f"cannot patch {cls.__name__}.{name}: {e!r}")


def main():
    install()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
