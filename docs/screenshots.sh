#!/usr/bin/env bash
# The README's pictures of `jobrun ui` (docs/ui-*.png), made again: two runs of a 100-config
# sweep of a FROM-scratch job on the local engine ("last week" and "this week", the same
# configurations: the loss depends on lr and batch), then headless Chromium's screenshot of the runs page, the newer
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
command = ["/task", "out", "training lr={config.lr} batch={config.batch}", "write", "model/weights.bin", "w{index}", "fail-if", "{index}", "17,58", "1", "sleep", "{config.secs}", "write", "result.json", "{{\"loss\": {config.sim_loss}, \"accuracy\": {config.sim_acc}}}"]
concurrency = 8
[results]
metric = "loss"
TOML
cd "$work"
# The same 100 configurations both weeks; the task writes this week's sim_loss / sim_acc as its
# result (a stand-in for training), last week's run wrote the prev_ ones.
python3 - >configs.jsonl <<'PY'
import json, random
rng = random.Random(27)
for i in range(100):
    lr = round(10 ** rng.uniform(-4, -1), 5)
    batch = rng.choice([16, 32, 64, 128])
    loss = round(abs(lr - 0.01) * 20 + 16 / batch + rng.random() * 0.05, 4)
    prev = round(loss + 0.01 + rng.random() * 0.06, 4)
    secs = round(rng.uniform(0.2, 1.5), 2)
    print(json.dumps({"lr": lr, "batch": batch, "secs": secs, "sim_loss": loss, "sim_acc": round(1 - loss / 3, 4),
                      "prev_loss": prev, "prev_acc": round(1 - prev / 3, 4)}))
PY
export JOBRUN_STATE_DIR="$work/state"
"$JOBRUN" build >/dev/null
cp jobrun.toml this.toml
sed -e 's/config.sim_loss/config.prev_loss/' -e 's/config.sim_acc/config.prev_acc/' this.toml >jobrun.toml
"$JOBRUN" submit --configs configs.jsonl >/dev/null || true
cp this.toml jobrun.toml
"$JOBRUN" submit --configs configs.jsonl >/dev/null || true
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
shot run "/runs/$run" 860
shot results "/runs/$run/results?sort=result.loss&x=config.lr&y=result.loss&color=config.batch" 1300
shot compare "/runs/$run/compare?key=result.loss" 800
shot trend "/jobs/$job/trend?key=result.loss" 700
