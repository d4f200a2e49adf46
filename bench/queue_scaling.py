#!/usr/bin/env python3
"""Queue mode's workers: the target-tracking policy alone vs jobrun's start-now/stop-when-done.

A model, not a measurement: moto runs no CloudWatch alarms, so this simulates, second by
second, what AWS documents about the pieces involved, fed with the queue a run makes. Each
modelled number and where it comes from:

  metric period 60 s, available 60 s after its minute ends
      SQS sends its CloudWatch metrics at one-minute intervals:
      https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-available-cloudwatch-metrics.html
  scale-out alarm: 3 datapoints of 1 minute above the target; scale-in alarm: 15 datapoints of
  1 minute below 90 % of it (the two alarms target tracking creates and manages)
      https://docs.aws.amazon.com/autoscaling/application/userguide/target-tracking-scaling-policy-overview.html
  capacity after a scale-out: ceil(current × metric / target), at most the scalable target's
  maximum; no new scale-out within the scale-out cooldown (jobrun: 60 s), no scale-in within
  the scale-in cooldown (jobrun: 120 s)
      same page ("Define cooldown periods"); jobrun's values: src/infra/resources/scaling.rs
  from zero tasks, ECS waits for one data point and scales out by the minimum possible amount
  (one task) as a starting point
      https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-autoscaling-targettracking.html
  the metric: (visible + in flight) / (in flight + 0.5), target 1 (src/infra/resources/scaling.rs)
  a worker starts 60 s after the desired count asks for it (Fargate pull and start: an
  assumption; 30-90 s is typical) and is billed from then; it exits after 15 min idle
  (`[queue] idle_exit` default); busy workers are protected from scale-in (the agent sets
  ECS task scale-in protection).

jobrun's start-now sets the desired count to min(sent, max_workers) right after the send;
stop-when-done sets it to 0 when the run has ended and the queue is empty.

Usage: python3 bench/queue_scaling.py [MAX_WORKERS]      (default 20)
"""

import math
import sys

START = 60
IDLE_EXIT = 15 * 60
OUT_COOLDOWN, IN_COOLDOWN = 60, 120
HIGH_POINTS, LOW_POINTS = 3, 15


def simulate(n, task_secs, max_workers, jobrun):
    visible, in_flight, done = n, 0, 0
    workers = []  # dicts: ready (s), busy_until (s or None), idle_since (s)
    desired = min(n, max_workers) if jobrun else 0
    points = []  # metric datapoints, one per minute
    last_out = last_in = -10**9
    first_running = all_running = finished = None
    worker_secs = 0
    t = 0
    while True:
        # The service starts workers up to the desired count; scale-in removes idle ones.
        while len(workers) < desired:
            workers.append({"ready": t + START, "busy_until": None, "idle_since": t + START})
        if len(workers) > desired:
            idle = [w for w in workers if w["busy_until"] is None]
            for w in idle[: len(workers) - desired]:
                workers.remove(w)
        running = [w for w in workers if w["ready"] <= t]
        if running and first_running is None:
            first_running = t
        if all_running is None and len(running) >= min(n, max_workers):
            all_running = t
        for w in running:
            if w["busy_until"] is not None and w["busy_until"] <= t:
                w["busy_until"], w["idle_since"] = None, t
                in_flight -= 1
                done += 1
            if w["busy_until"] is None and visible > 0:
                visible -= 1
                in_flight += 1
                w["busy_until"] = t + task_secs
        # Workers idle for idle_exit exit; the service replaces them while desired says so.
        for w in [w for w in running if w["busy_until"] is None and t - w["idle_since"] >= IDLE_EXIT]:
            workers.remove(w)
        worker_secs += len(workers)
        if done == n and finished is None:
            finished = t
            if jobrun:
                desired = 0  # stop when done: the run ended, the queue is empty
        if finished is not None and not workers and desired == 0:
            return first_running, all_running, finished, worker_secs / 60, t
        if t % 60 == 59:
            points.append((visible + in_flight) / (in_flight + 0.5))
        # A datapoint is there a minute after its minute: evaluate at each minute boundary.
        if t % 60 == 0 and len(points) >= 2:
            seen = points[:-1]
            if desired == 0 and seen[-1] > 1.0:
                desired, last_out = 1, t  # from zero: one data point, one task
            elif len(seen) >= HIGH_POINTS and all(p > 1.0 for p in seen[-HIGH_POINTS:]) and t - last_out >= OUT_COOLDOWN:
                wanted = min(max_workers, math.ceil(desired * seen[-1] / 1.0))
                if wanted > desired:
                    desired, last_out = wanted, t
            elif len(seen) >= LOW_POINTS and all(p < 0.9 for p in seen[-LOW_POINTS:]) and t - last_in >= IN_COOLDOWN:
                wanted = math.ceil(desired * seen[-1] / 1.0)
                if wanted < desired:
                    desired, last_in = wanted, t
        t += 1
        if t > 48 * 3600:
            raise RuntimeError("the model did not settle")


def mmss(s):
    return "-" if s is None else f"{s // 60}m{s % 60:02d}s"


def main():
    max_workers = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    print(f"max_workers = {max_workers}; times from submit; worker-minutes until the last worker is gone")
    head = f"{'N':>4} {'task':>5} | {'policy alone: first':>19} {'all':>7} {'done':>7} {'w-min':>6} | {'jobrun: first':>13} {'all':>7} {'done':>7} {'w-min':>6} | {'wall':>5} {'w-min':>5}"
    print(head)
    print("-" * len(head))
    for n in (10, 20, 100):
        for minutes in (10, 60):
            a = simulate(n, minutes * 60, max_workers, jobrun=False)
            b = simulate(n, minutes * 60, max_workers, jobrun=True)
            print(
                f"{n:>4} {minutes:>4}m | {mmss(a[0]):>19} {mmss(a[1]):>7} {mmss(a[2]):>7} {a[3]:>6.0f} | "
                f"{mmss(b[0]):>13} {mmss(b[1]):>7} {mmss(b[2]):>7} {b[3]:>6.0f} | "
                f"{b[2] / a[2]:>5.2f} {b[3] / a[3]:>5.2f}"
            )
    print("wall, w-min: jobrun's as a ratio of the policy alone's (below 1: faster, cheaper)")


if __name__ == "__main__":
    main()
