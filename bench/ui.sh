#!/usr/bin/env bash
# UI benchmark (not a test): `jobrun ui` over a state folder of big runs, against the same
# server over a baseline folder (one 10-task run) measured in the same run, on the same machine.
#
# A real 10-task local run of a FROM-scratch job is made first (the baseline); bench/ui_state.py
# then writes RUNS runs of N tasks shaped like it (same record format, loss/lr per task, a few
# failures) and `jobrun runs` indexes them once, as the jobrun that saved them would have. For
# both folders it prints: server time of the runs page, the big run's page, its /live poll and
# its results page with the plot (first answer: the record is parsed; then the median of 5),
# headless Chromium's time to load and render the run page and the results page (its
# --dump-dom wall time less that of about:blank, measured in the same run), and the server's
# peak RSS after all of it.
#
# Goals (issue 27): run page <= 100 ms, its render <= 1 s, results of 10,000 rows with the plot
# <= 2 s, peak RSS <= 100 MB with 300 runs of 10,000 tasks.
#
# Usage: bench/ui.sh [N] [RUNS]   (default 10000 300; JOBRUN=path/to/jobrun to skip the release build)
set -euo pipefail
N=${1:-10000}
RUNS=${2:-300}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
job=jobrun-bench-ui-$$
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  docker images --format '{{.Repository}}:{{.Tag}}' "$job" | xargs -r docker rmi -f >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${JOBRUN:-}" ]; then
  (cd "$root" && cargo build --release --locked --quiet)
  JOBRUN="${CARGO_TARGET_DIR:-$root/target}/release/jobrun"
fi
command -v chromium >/dev/null || { echo "chromium is needed (tests/setup installs it)"; exit 1; }

# The seed: a real run, so the big ones have the record format of this jobrun.
rustc --edition 2021 -O -C target-feature=+crt-static -o "$work/task" "$root/tests/fixtures/task.rs"
printf 'FROM scratch\nCOPY task /task\n' >"$work/Dockerfile"
cat >"$work/jobrun.toml" <<TOML
[job]
name = "$job"
[resources]
cpu = 0.25
memory = "512MB"
[run]
command = ["/task", "out", "lr={config.lr}", "write", "result.json", "{{\"loss\": {config.loss}}}"]
concurrency = 4
TOML
for i in $(seq 0 9); do echo "{\"lr\": 0.0$i, \"loss\": 0.$((9 - i))}"; done >"$work/configs.jsonl"
export JOBRUN_STATE_DIR="$work/base"
(cd "$work" && "$JOBRUN" build >/dev/null 2>"$work/build.log" && "$JOBRUN" submit --configs configs.jsonl >/dev/null 2>&1) ||
  { cat "$work/build.log"; exit 1; }
seed=$(ls "$work/base/runs")
python3 "$root/bench/ui_state.py" "$work/base/runs/$seed/run.json" "$work/big" "$N" "$RUNS"
big=$(ls "$work/big/runs" | sort | tail -1)
t0=$(date +%s.%N)
JOBRUN_STATE_DIR="$work/big" "$JOBRUN" runs >/dev/null
index_s=$(echo "$(date +%s.%N) - $t0" | bc)
echo "state: $RUNS runs of $N tasks ($(du -sm "$work/big" | cut -f1) MB; indexed once by \`jobrun runs\` in ${index_s}s); baseline: 1 run of 10 tasks"

# ui STATE NAME: starts a server, sets URL_<NAME> (with the token) and PID_<NAME>
ui() {
  JOBRUN_STATE_DIR="$1" "$JOBRUN" ui --port 0 >"$work/$2.url" 2>"$work/$2.err" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 1 100); do grep -q token "$work/$2.url" 2>/dev/null && break; sleep 0.1; done
  printf -v "URL_$2" '%s' "$(sed -n 's/^jobrun ui: //p' "$work/$2.url")"
  printf -v "PID_$2" '%s' "$pid"
}
ui "$work/base" base
ui "$work/big" big

# first SERVER PATH / median SERVER PATH: seconds for one answer (curl, cookie from the token)
curl_s() { # url-with-token path
  local origin=${1%%/\?*} token=${1##*token=}
  local cookie="jobrun_ui_${origin##*:}=$token"
  curl -s -o /dev/null -w '%{time_total}\n' -H "Cookie: $cookie" "$origin$2"
}
first() { curl_s "$1" "$2"; }
median() { for _ in 1 2 3 4 5; do curl_s "$1" "$2"; done | sort -n | sed -n 3p; }
render() { # url: wall seconds of chromium --dump-dom, the median of three
  local t0 t1
  for _ in 1 2 3; do
    t0=$(date +%s.%N)
    chromium --headless --no-sandbox --disable-gpu --user-data-dir="$work/profile" --dump-dom "$1" >"$work/dom.html" 2>/dev/null
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc
  done | sort -n | sed -n 2p
}
with_token() { # url-with-token path
  echo "${1%%/\?*}$2?token=${1##*token=}"
}

row() { # name base big goal_s
  awk -v n="$1" -v a="$2" -v b="$3" -v g="$4" 'BEGIN {
    printf "%-34s %9.1f %9.1f %8.1f %8s %s\n", n, a * 1000, b * 1000, (a > 0 ? b / a : 0), (g == "-" ? "-" : g * 1000), (g == "-" ? "" : (b <= g ? "ok" : "OVER"))
  }'
}
printf '%-34s %9s %9s %8s %8s\n' "what" "base_ms" "big_ms" "x_base" "goal_ms"
bseed=$seed
row "runs page, first" "$(first "$URL_base" /)" "$(first "$URL_big" /)" -
row "runs page, median" "$(median "$URL_base" /)" "$(median "$URL_big" /)" -
row "run page, first (parses record)" "$(first "$URL_base" "/runs/$bseed")" "$(first "$URL_big" "/runs/$big")" -
row "run page, median" "$(median "$URL_base" "/runs/$bseed")" "$(median "$URL_big" "/runs/$big")" 0.1
row "live poll, median" "$(median "$URL_base" "/api/runs/$bseed/live")" "$(median "$URL_big" "/api/runs/$big/live")" -
row "results + plot data, median" "$(median "$URL_base" "/runs/$bseed/results")" "$(median "$URL_big" "/runs/$big/results")" -
row "results sorted by loss, median" "$(median "$URL_base" "/runs/$bseed/results?sort=loss")" "$(median "$URL_big" "/runs/$big/results?sort=loss")" -

blank=$(render about:blank)
render_less() { echo "$(render "$1") - $blank" | bc; }
rb=$(render_less "$(with_token "$URL_base" "/runs/$bseed")")
rg=$(render_less "$(with_token "$URL_big" "/runs/$big")")
cells=$(grep -o '<i class="t [a-z]*"' "$work/dom.html" | wc -l)
row "chromium: run page rendered" "$rb" "$rg" 1
rb=$(render_less "$(with_token "$URL_base" "/runs/$bseed/results")")
rg=$(render_less "$(with_token "$URL_big" "/runs/$big/results")")
points=$(grep -o 'data-points="[0-9]*"' "$work/dom.html" | head -1)
row "chromium: results + plot rendered" "$rb" "$rg" 2
echo "(chromium about:blank: ${blank}s, taken off; the big run page had $cells cells incl. the legend's 5; the big plot: $points)"

rss() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
awk -v a="$(rss "$PID_base")" -v b="$(rss "$PID_big")" 'BEGIN {
  printf "%-34s %7.1fMB %7.1fMB %8.1f %6sMB %s\n", "server peak RSS", a / 1024, b / 1024, b / a, 100, (b / 1024 <= 100 ? "ok" : "OVER")
}'
