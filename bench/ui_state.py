"""bench/ui.sh's state folder: RUNS runs of N tasks made from one real run record (SEED), so
the records have the format of the jobrun being measured. Each task gets its own index,
configuration (lr, batch) and result (loss); one task in 50 failed with exit code 3 and no
result. The runs are an hour apart, the newest last; logs are not written (no page of the
benchmark reads them).

    python3 bench/ui_state.py SEED/run.json STATE_DIR N RUNS
"""

import copy
import datetime
import json
import os
import random
import sys


def tasks_of(seed, n, rng):
    template = next(t for t in seed["tasks"] if t.get("result"))
    out = []
    for i in range(n):
        t = copy.deepcopy(template)
        lr = round(rng.uniform(0.0001, 0.1), 5)
        batch = rng.choice([16, 32, 64, 128])
        t["index"] = i
        t["config"] = {"lr": lr, "batch": batch}
        if t.get("log"):
            t["log"] = t["log"].replace(f"/{template['index']}-", f"/{i}-")
        if i % 50 == 7:
            t.update(state="failed", exit_code=3, reason="exit code 3", result=None)
        else:
            t["result"] = {"loss": round((lr - 0.03) ** 2 * 100 + 32 / batch + rng.random() * 0.1, 6)}
        out.append(t)
    return out


def main():
    seed_path, state, n, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    seed = json.load(open(seed_path))
    rng = random.Random(27)
    tasks = tasks_of(seed, n, rng)
    created = datetime.datetime.fromisoformat(seed["created_at"].replace("Z", "+00:00"))
    # One serialisation, then per run only its id and times change.
    text = json.dumps(dict(seed, run_id="@RUN@", created_at="@CREATED@", tasks=tasks,
                           finished_at="@FINISHED@" if seed.get("finished_at") else None))
    iso = lambda t: t.isoformat().replace("+00:00", "Z")
    for r in range(runs):
        at = created - datetime.timedelta(hours=runs - 1 - r)
        run_id = f"{at:%Y%m%d-%H%M%S}-{seed['job']}-{r:04x}"
        folder = os.path.join(state, "runs", run_id)
        os.makedirs(folder)
        body = (text.replace('"@RUN@"', json.dumps(run_id))
                .replace('"@CREATED@"', json.dumps(iso(at)))
                .replace('"@FINISHED@"', json.dumps(iso(at + datetime.timedelta(minutes=30)))))
        with open(os.path.join(folder, "run.json"), "w") as f:
            f.write(body)

main()
