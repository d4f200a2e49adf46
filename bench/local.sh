#!/usr/bin/env bash
# Benchmark: `jobrun submit --configs N` of a 1-second task on the local engine, against the
# baseline `seq N | xargs -P$(nproc) docker run --rm IMAGE` measured in the same run, on the
# same image and the same machine. Prints both times and their ratio (goal: <= 1.10).
#
#   bench/local.sh [N]        (default N=100; JOBRUN=path/to/jobrun to skip the release build)
set -euo pipefail
N=${1:-100}
P=$(nproc)
. "$(dirname "$0")/local_lib.sh"
local_job jobrun-bench
cat > "$work/jobrun.toml" <<TOML
[job]
name = "$job"
[resources]
cpu = 0.25
memory = "512MB"
[run]
command = ["/task", "sleep", "1"]
concurrency = $P
TOML
export JOBRUN_STATE_DIR="$work/state"
(cd "$work" && "$JOBRUN" build >/dev/null 2>&1)

now() { date +%s.%N; }

t0=$(now)
seq "$N" | xargs -P"$P" -I{} docker run --rm "$job:latest" /task sleep 1 >/dev/null
t1=$(now)
(cd "$work" && "$JOBRUN" submit --configs "$N" >/dev/null 2>&1)
t2=$(now)

awk -v n="$N" -v p="$P" -v t0="$t0" -v t1="$t1" -v t2="$t2" 'BEGIN {
  base = t1 - t0; ours = t2 - t1
  printf "tasks=%d parallel=%d  ideal=%.1fs\n", n, p, n / p
  printf "baseline xargs docker run --rm: %.2fs\n", base
  printf "jobrun submit --configs %d:      %.2fs\n", n, ours
  printf "ratio jobrun/baseline: %.3f (goal <= 1.10)\n", ours / base
}'
