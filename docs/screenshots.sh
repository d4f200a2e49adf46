#!/usr/bin/env bash
# The README's pictures of `jobrun ui` (docs/ui-*.png), made again: two runs of a 100-config
# sweep of a FROM-scratch job on the local engine ("last week" and "this week": the loss
# depends on lr and batch), then headless Chromium's screenshot of the runs page, the newer
# run, its results with the plots, the compare and the trend.
#
#   docs/screenshots.sh      (JOBRUN=path/to/jobrun to skip the build; needs chromium)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
job=sweep
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  docker images --format '{{.Repository}}:{{.Tag}}' "$job" | xargs -r docker rmi -f >/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
if [ -z "${JOBRUN:-}" ]; then
  (cd "$root" && cargo build --locked --quiet)
  JOBRUN="${CARGO_TARGET_DIR:-$root/target}/debug/jobrun"
fi

rustc --edition 2021 -O -C target-feature=+crt-static -o "$work/task" "$root/tests/fixtures/task.rs"
printf 'FROM scratch\nCOPY task /task\n' >"$work/Dockerfile"
cat >"$work/jobrun.toml" <<TOML
[job]
name = "$job"
[resources]
cpu = 1
memory = "2GB"
[run]
command = ["/task", "out", "training lr={config.lr} batch={config.batch}", "write", "model/weights.bin", "w{index}", "fail-if", "{index}", "17,58", "1", "write", "result.json", "{{\"loss\": {config.loss}, \"accuracy\": {config.acc}}}"]
concurrency = 8
TOML
configs() { # shift
  python3 - "$1" <<'PY'
import json, random, sys
rng = random.Random(int(sys.argv[1]))
for i in range(100):
    lr = round(10 ** rng.uniform(-4, -1), 5)
    batch = rng.choice([16, 32, 64, 128])
    loss = round(abs(lr - 0.01) * 20 + 16 / batch + rng.random() * 0.05 + float(sys.argv[1]) * 0.02, 4)
    print(json.dumps({"lr": lr, "batch": batch, "loss": loss, "acc": round(1 - loss / 3, 4)}))
PY
}
export JOBRUN_STATE_DIR="$work/state"
cd "$work"
"$JOBRUN" build >/dev/null
configs 1 >last.jsonl
configs 0 >this.jsonl
"$JOBRUN" submit --configs last.jsonl >/dev/null || true
"$JOBRUN" submit --configs this.jsonl >/dev/null || true
run=$(ls "$work/state/runs" | sort | tail -1)

"$JOBRUN" ui --port 0 >"$work/url" 2>/dev/null &
pid=$!
for _ in $(seq 1 100); do grep -q token "$work/url" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^jobrun ui: //p' "$work/url")
origin=${url%%/\?*}
token=${url##*token=}
shot() { # name path height
  local sep='?'
  case $2 in *\?*) sep='&' ;; esac
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$work/profile" \
    --window-size=1200,"$3" --screenshot="$root/docs/ui-$1.png" "$origin$2${sep}token=$token" >/dev/null 2>&1
  echo "docs/ui-$1.png"
}
shot runs "/" 500
shot run "/runs/$run" 700
shot results "/runs/$run/results?sort=result.loss" 1300
shot compare "/runs/$run/compare?key=result.loss" 800
shot trend "/jobs/$job/trend?key=result.loss" 700
