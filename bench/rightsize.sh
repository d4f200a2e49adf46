#!/usr/bin/env bash
# Benchmark: `[resources] size = "auto"`. An over-sized 20-task sweep (1 vCPU / 4 GB for tasks
# that hold 100 MiB for two seconds) runs twice on the local engine; the second run takes the size
# learned from the first's measured peaks. Prints both runs' cost (what they would have cost on
# Fargate, on-demand, from each attempt's billed seconds), their failed tasks, and the ratio
# second/first (goal: <= 0.60, with no more failed tasks).
#
#   bench/rightsize.sh [N]        (default N=20; JOBRUN=path/to/jobrun to skip the release build)
set -euo pipefail
N=${1:-20}
. "$(dirname "$0")/local_lib.sh"
local_job jobrun-rightsize
cat > "$work/jobrun.toml" <<TOML
[job]
name = "$job"
[resources]
cpu = 1
memory = "4GB"
size = "auto"
[run]
command = ["/task", "alloc", "100", "sleep", "2"]
concurrency = $(nproc)
TOML
export JOBRUN_STATE_DIR="$work/state"
(cd "$work" && "$JOBRUN" build >/dev/null 2>&1)

run_once() {
  (cd "$work" && "$JOBRUN" submit --configs "$N" -o json >/dev/null 2>&1) || true
  (cd "$work" && "$JOBRUN" status -o json)
}
first=$(run_once)
second=$(run_once)

python3 - "$first" "$second" <<'PY'
import json, sys
runs = [json.loads(a) for a in sys.argv[1:]]
def usd(s):
    u = s["cost"]["usd"]
    return u if isinstance(u, (int, float)) else u["high"]
for name, s in zip(("first", "second"), runs):
    size = s["size"]
    print(f"{name:6} run: {s['succeeded']} succeeded, {s['failed']} failed at {size['cpu']} vCPU / {size['memory_mib']} MiB; "
          f"would have cost ${usd(s):.5f} on Fargate")
ratio = usd(runs[1]) / usd(runs[0])
print(f"ratio second/first: {ratio:.3f} (goal <= 0.60); failed: {runs[0]['failed']} then {runs[1]['failed']}")
PY
