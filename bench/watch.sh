#!/usr/bin/env bash
# Watch benchmark (not a test): `jobrun watch` of big ECS runs, direct and queue, through
# tests/moto/aws_proxy.py --rates (AWS's DescribeTasks bucket: 50, then 20 calls/s; a call over
# it is throttled and counted) with --sqs-sink (SendMessageBatch answered by the proxy: moto's
# queue slows down as it grows). For each N it reports, for the watch alone (the dispatch is
# done first by `submit --detach`):
#   direct  wall time, peak RSS, rounds, DescribeTasks calls (counted at the proxy) against the
#           bound sum over rounds of ceil(active / 100) (active: what jobrun's debug log says it
#           watched that round), DescribeTasks throttled (must be 0: never above the rate)
#   queue   wall time, peak RSS, rounds, S3 ListObjectsV2 calls (counted at the proxy) against
#           the bound rounds × ceil(N / 1000)
# moto runs no workers: the queue run's results are written into the bucket by this script, as
# the agents would write them, before the watch starts. The direct run's tasks are held
# RUNNING until its dispatch is over (then moto moves a task one step per look: RUNNING →
# DEACTIVATING → STOPPING → DEPROVISIONING → STOPPED), so the watch meets all N running. moto's
# own DescribeTasks slows down with the number of tasks it holds, which the wall time includes.
#
# Usage: bench/watch.sh [N...]     (default: 10 1000 10000, the first the baseline; use a release jobrun for RSS:
#                                   JOBRUN=target/release/jobrun bench/watch.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${*:-10 1000 10000}
. bench/lib.sh
start_aws_world --rates --sqs-sink

export AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 JOBRUN_STATE_DIR="$work/state"
export JOBRUN_POLL_INTERVAL=1s
stats() { curl -s "http://127.0.0.1:$PROXY/__proxy/stats"; }
reset() { curl -s -X POST "http://127.0.0.1:$PROXY/__proxy/reset" >/dev/null; }
now() { date +%s.%N; }

job() { # name mode
  mkdir -p "$work/$1" && cd "$work/$1"
  echo task >task
  echo agent >agent
  printf 'FROM scratch\nCOPY task /task\n' >Dockerfile
  printf '[job]\nname = "%s"\ntarget = "ecs"\n[resources]\ncpu = 0.25\nmemory = "512MB"\n[run]\ncommand = ["/task"]\nconcurrency = 10000\n[ecr]\nregistry_endpoint = "127.0.0.1:%s"\n[ecs]\nmode = "%s"\n[queue]\nagent_binaries = { arm64 = "agent" }\nmax_workers = 20\n' "$1" "$REG" "$2" >jobrun.toml
  AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO" "$JOBRUN" build --push >/dev/null
  AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO" "$JOBRUN" up -o json >up.json
  cd "$REPO"
}
job wdirect direct
job wqueue queue
export AWS_ENDPOINT_URL="http://127.0.0.1:$PROXY"

# watch DIR RUN: wall, peak RSS (KiB), debug log in $work/watch.err
watch_run() {
  local t0 t1
  reset
  t0=$(now)
  (cd "$work/$1" && JOBRUN_LOG=jobrun=debug /usr/bin/time -f "rss %M" -o "$work/time.txt" \
    "$JOBRUN" watch "$2" -o json >/dev/null 2>"$work/watch.err")
  t1=$(now)
  WALL=$(echo "$t1 - $t0" | bc)
  RSS=$(awk '/^rss/ {print $2}' "$work/time.txt")
  cp "$work/watch.err" "${TMPDIR:-/tmp}/jobrun-bench-watch-$1.err"
}

printf '%-7s %6s %8s %9s %8s %9s %6s %12s %12s %10s\n' mode N wall_s rss_MiB x_base KiB/task rounds calls bound throttled
# The first size is the baseline, measured in the same run: each row's RSS as a multiple of the
# baseline's (same mode), and its growth per task beyond the baseline's tasks.
declare -A BASE_RSS BASE_N
growth() { # mode: sets XB and PER (x_base, KiB/task) of $RSS at $N against the mode's first row
  if [ -z "${BASE_RSS[$1]:-}" ]; then BASE_RSS[$1]=$RSS; BASE_N[$1]=$N; XB=1.00; PER=-; return; fi
  local n=$((N - BASE_N[$1]))
  [ "$n" -gt 0 ] || n=1
  XB=$(printf '%.2f' "$(echo "$RSS / ${BASE_RSS[$1]}" | bc -l)")
  PER=$(printf '%.2f' "$(echo "($RSS - ${BASE_RSS[$1]}) / $n" | bc -l)")
}
for N in $SIZES; do
  # Direct: N RunTasks (paced at 20/s by jobrun, through the proxy's buckets). moto holds every
  # task RUNNING while the file $work/hold is there: until the dispatch is over, so the watch
  # meets all N running, as after re-attaching to a run in full swing.
  touch "$work/hold"
  "$PY" -c "import json, sys; [print(json.dumps({'fake': {'hold_while_file': sys.argv[2]}})) for _ in range(int(sys.argv[1]))]" "$N" "$work/hold" >"$work/configs.jsonl"
  RUN=$(cd "$work/wdirect" && "$JOBRUN" submit --configs "$work/configs.jsonl" --detach -o json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')
  rm "$work/hold"
  watch_run wdirect "$RUN"
  read -r rounds bound < <("$PY" - "$work/watch.err" <<'PY'
import math, re, sys
active = [int(m.group(1)) for m in re.finditer(r"describe round.*?active=(\d+)", open(sys.argv[1]).read())]
print(len(active), sum(math.ceil(a / 100) for a in active))
PY
)
  read -r calls throttled < <(stats | "$PY" -c 'import json,sys; s=json.load(sys.stdin); print(s["requests"].get("DescribeTasks", 0), s["throttled"].get("DescribeTasks", 0))')
  growth direct
  printf '%-7s %6s %8.1f %9.1f %8s %9s %6s %12s %12s %10s\n' direct "$N" "$WALL" "$(echo "$RSS / 1024" | bc -l)" "$XB" "$PER" "$rounds" "DT $calls" "<= $bound" "$throttled"

  # Queue: N messages (into the proxy's sink), N results written as the agents would, the watch.
  RUN=$(cd "$work/wqueue" && "$JOBRUN" submit --configs "$work/configs.jsonl" --detach -o json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')
  BUCKET=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["outputs"]["bucket"])' "$work/wqueue/up.json")
  AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO" "$PY" - "$N" "$BUCKET" "$RUN" <<'PY'
import json, sys, boto3, botocore.config
from concurrent.futures import ThreadPoolExecutor
n, bucket, run = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s3 = boto3.client("s3", config=botocore.config.Config(max_pool_connections=32))
def put(i):
    body = {"run_id": run, "index": i, "attempt": 1, "outcome": "succeeded", "exit_code": 0,
            "reason": None, "final": True, "receive_count": 1,
            "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:01:00Z",
            "log": None, "log_tail": [], "worker": "bench"}
    s3.put_object(Bucket=bucket, Key=f"jobs/wqueue/runs/{run}/results/{i}/1-succeeded.json",
                  Body=json.dumps(body).encode())
with ThreadPoolExecutor(32) as pool:
    list(pool.map(put, range(n)))
PY
  watch_run wqueue "$RUN"
  rounds=$(grep -c "results listing round" "$work/watch.err" || true)
  calls=$(stats | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["requests"].get("s3:ListObjectsV2", 0))')
  growth queue
  printf '%-7s %6s %8.1f %9.1f %8s %9s %6s %12s %12s %10s\n' queue "$N" "$WALL" "$(echo "$RSS / 1024" | bc -l)" "$XB" "$PER" "$rounds" "List $calls" "<= $((rounds * ((N + 999) / 1000)))" "-"
done
echo "rss: peak resident memory of the watch (goal <= 64 MiB at 10000); x_base, KiB/task: against the first size; calls/bound: over the whole watch"
