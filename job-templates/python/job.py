"""One task of the job.

jobrun runs this once per configuration, with:
  JOBRUN_CONFIG  the configuration, as JSON      JOBRUN_INDEX / JOBRUN_COUNT  which task of how many
  JOBRUN_RUN_ID  the run                         JOBRUN_ATTEMPT               1 for the first try
On Fargate a configuration over ECS's 8 KiB of overrides comes as JOBRUN_CONFIG_URL (s3://…)
instead of JOBRUN_CONFIG; load_config() reads either.
  JOBRUN_OUTPUT_DIR  an empty folder for what the task makes, kept after it (on Fargate uploaded
                     to the job's bucket); result.json there (a JSON object, at most 64 KiB) is
                     the task's result, which `jobrun results` tables
  JOBRUN_STAGE       "map", or "reduce" for the [reduce] task, which reads every task's folder
                     at JOBRUN_INPUTS_DIR/<index>/
  JOBRUN_CHECKPOINT_DIR  a folder kept across the task's attempts: save progress there and
                     start from it when it is there (a Spot interruption then loses minutes)
Exit with 0 for success; an exception (exit 1) marks the task failed.
"""

import json
import os
import time


def load_config() -> dict:
    url = os.environ.get("JOBRUN_CONFIG_URL")
    if not url:
        return json.loads(os.environ.get("JOBRUN_CONFIG", "{}"))
    import boto3  # only needed for configurations passed by pointer

    bucket, key = url.removeprefix("s3://").split("/", 1)
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return json.loads(body)


def checkpoint_path() -> str | None:
    folder = os.environ.get("JOBRUN_CHECKPOINT_DIR")
    return os.path.join(folder, "state.json") if folder else None


def resume() -> dict:
    """The progress an earlier attempt of this task saved, or a fresh start."""
    path = checkpoint_path()
    if path and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"step": 0}


def save(state: dict) -> None:
    """Saves progress: written, then renamed, so an interruption never leaves half a file."""
    path = checkpoint_path()
    if path:
        with open(path + ".tmp", "w") as f:
            json.dump(state, f)
        os.replace(path + ".tmp", path)


def main() -> None:
    config = load_config()
    index = int(os.environ.get("JOBRUN_INDEX", "0"))
    count = int(os.environ.get("JOBRUN_COUNT", "1"))
    print(f"task {index} of {count}: config {config}", flush=True)

    learning_rate = float(config.get("lr", 0.01))
    state = resume()
    for step in range(state["step"], 3):
        # ... the heavy work goes here, a step (an epoch) at a time ...
        time.sleep(1 / 3)
        state["step"] = step + 1
        save(state)
    out = os.environ.get("JOBRUN_OUTPUT_DIR", ".")
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump({"lr": learning_rate, "score": 1.0 - learning_rate}, f)
    print(f"done with lr={learning_rate}", flush=True)


if __name__ == "__main__":
    main()
