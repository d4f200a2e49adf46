"""The reduce of the weekly retrain: pick the best configuration.

jobrun runs this once after every configuration has trained, with each task's folder at
JOBRUN_INPUTS_DIR/<index>/ (its model.json and result.json). It leaves in its own
JOBRUN_OUTPUT_DIR:
  best-model.json  the winning model
  result.json      {"best_index", "best_loss", "trained", "diverged"}: the run's answer, shown
                   by `jobrun results` under the table
"""

import json
import math
import os
import shutil


def main():
    inputs = os.environ["JOBRUN_INPUTS_DIR"]
    best, trained, diverged = None, 0, 0
    for name in sorted(os.listdir(inputs), key=lambda n: int(n) if n.isdigit() else -1):
        path = os.path.join(inputs, name, "result.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            loss = json.load(f).get("loss")
        trained += 1
        if loss is None or not math.isfinite(loss):
            diverged += 1
            continue
        if best is None or loss < best[1]:
            best = (name, loss)
    if best is None:
        raise SystemExit("no configuration trained without diverging")
    out = os.environ.get("JOBRUN_OUTPUT_DIR", ".")
    shutil.copy(os.path.join(inputs, best[0], "model.json"), os.path.join(out, "best-model.json"))
    result = {"best_index": int(best[0]), "best_loss": best[1], "trained": trained, "diverged": diverged}
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f)
    print(f"best of {trained}: task {best[0]} with loss {best[1]:.5f}", flush=True)


if __name__ == "__main__":
    main()
