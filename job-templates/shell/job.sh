#!/bin/sh
# One task of the job. jobrun sets:
#   JOBRUN_INDEX   this task's index (0 … JOBRUN_COUNT-1)
#   JOBRUN_COUNT   how many tasks the run has
#   JOBRUN_CONFIG  this task's configuration, as JSON
#   JOBRUN_RUN_ID, JOBRUN_ATTEMPT
#   JOBRUN_OUTPUT_DIR  an empty folder for what the task makes: kept after the task (on Fargate
#                  uploaded to the job's bucket); result.json there (a JSON object, at most
#                  64 KiB) is the task's result, which `jobrun results` tables
#   JOBRUN_STAGE   "map", or "reduce" for the [reduce] task, which reads every task's folder
#                  at JOBRUN_INPUTS_DIR/<index>/
# Exit 0 for success; anything else marks the task failed.
set -eu

echo "task ${JOBRUN_INDEX} of ${JOBRUN_COUNT} (run ${JOBRUN_RUN_ID})"
echo "config: ${JOBRUN_CONFIG}"

# Read one key of the configuration (here "size", defaulting to 10).
size=$(printf '%s' "$JOBRUN_CONFIG" | jq -r '.size // 10')
echo "working on size ${size}"
sleep 1
printf '{"size": %s, "score": %s}\n' "$size" "$((size * 2))" > "${JOBRUN_OUTPUT_DIR:-.}/result.json"
echo "done"
