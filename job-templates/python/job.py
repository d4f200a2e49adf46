"""One task of the job.

jobrun runs this once per configuration, with:
  JOBRUN_CONFIG  the configuration, as JSON      JOBRUN_INDEX / JOBRUN_COUNT  which task of how many
  JOBRUN_RUN_ID  the run                         JOBRUN_ATTEMPT               1 for the first try
Exit with 0 for success; an exception (exit 1) marks the task failed.
"""

import json
import os
import time


def main() -> None:
    config = json.loads(os.environ.get("JOBRUN_CONFIG", "{}"))
    index = int(os.environ.get("JOBRUN_INDEX", "0"))
    count = int(os.environ.get("JOBRUN_COUNT", "1"))
    print(f"task {index} of {count}: config {config}", flush=True)

    learning_rate = float(config.get("lr", 0.01))
    # ... the heavy work goes here ...
    time.sleep(1)
    print(f"done with lr={learning_rate}", flush=True)


if __name__ == "__main__":
    main()
