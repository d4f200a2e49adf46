"""One configuration of the weekly retrain: fit a small model, report how good it is.

jobrun runs this once per line of configs.jsonl with the line in JOBRUN_CONFIG
({"lr": …, "width": …, "seed": …}). It trains a one-hidden-layer network (plain Python, no
downloads) on a synthetic regression problem for a few seconds, then leaves in
JOBRUN_OUTPUT_DIR:
  model.json   the weights (what a real job would ship)
  result.json  {"loss": validation MSE, "train_loss": …, "seconds": …}: the task's result,
               which `jobrun results --sort loss` ranks
Every 20 epochs it saves the model and the epoch in JOBRUN_CHECKPOINT_DIR (written, then
renamed) and starts from there when an earlier attempt left one: a Spot interruption costs at
most 20 epochs.
"""

import json
import math
import os
import random
import time


def data(n, rng):
    """y = sin(3x) + x/2 with a little noise, x in [-1, 1]."""
    xs = [rng.uniform(-1, 1) for _ in range(n)]
    return [(x, math.sin(3 * x) + x / 2 + rng.gauss(0, 0.05)) for x in xs]


def predict(model, x):
    hidden = [math.tanh(w * x + b) for w, b in zip(model["w1"], model["b1"])]
    return sum(v * h for v, h in zip(model["w2"], hidden)) + model["b2"]


def mse(model, points):
    return sum((predict(model, x) - y) ** 2 for x, y in points) / len(points)


def checkpoint_path():
    folder = os.environ.get("JOBRUN_CHECKPOINT_DIR")
    return os.path.join(folder, "train.json") if folder else None


def train(config):
    rng = random.Random(config.get("seed", 1))
    width = int(config.get("width", 8))
    lr = float(config.get("lr", 0.01))
    epochs = int(config.get("epochs", 200))
    points = data(200, random.Random(7))
    held_out = data(100, random.Random(8))
    model = {
        "w1": [rng.gauss(0, 1) for _ in range(width)],
        "b1": [rng.gauss(0, 1) for _ in range(width)],
        "w2": [rng.gauss(0, 1 / math.sqrt(width)) for _ in range(width)],
        "b2": 0.0,
    }
    start = 0
    saved = checkpoint_path()
    if saved and os.path.exists(saved):
        with open(saved) as f:
            state = json.load(f)
        model, start = state["model"], state["epoch"]
    for epoch in range(start, epochs):
        if saved and epoch > start and epoch % 20 == 0:
            with open(saved + ".tmp", "w") as f:
                json.dump({"model": model, "epoch": epoch}, f)
            os.replace(saved + ".tmp", saved)
        for x, y in points:
            hidden = [math.tanh(w * x + b) for w, b in zip(model["w1"], model["b1"])]
            err = sum(v * h for v, h in zip(model["w2"], hidden)) + model["b2"] - y
            for j, h in enumerate(hidden):
                grad_h = err * model["w2"][j] * (1 - h * h)
                model["w2"][j] -= lr * err * h
                model["w1"][j] -= lr * grad_h * x
                model["b1"][j] -= lr * grad_h
            model["b2"] -= lr * err
    return model, mse(model, points), mse(model, held_out)


def main():
    config = json.loads(os.environ.get("JOBRUN_CONFIG", "{}"))
    started = time.time()
    model, train_loss, loss = train(config)
    if not math.isfinite(loss):
        loss = None  # diverged: the table shows it empty
    out = os.environ.get("JOBRUN_OUTPUT_DIR", ".")
    with open(os.path.join(out, "model.json"), "w") as f:
        json.dump(model, f)
    result = {"loss": loss, "train_loss": train_loss if math.isfinite(train_loss) else None,
              "seconds": round(time.time() - started, 2)}
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f)
    print(f"task {os.environ.get('JOBRUN_INDEX', '0')}: {config} -> {result}", flush=True)


if __name__ == "__main__":
    main()
