# Shared by the AWS benchmarks (sourced from the repository root): the jobrun to measure, a
# work folder cleaned up on exit, and moto (with the fake-Fargate plugin), a loopback registry
# and tests/moto/aws_proxy.py in front of moto, each on a free port.
#
#   start_aws_world [PROXY_FLAGS...]   sets REPO, JOBRUN, work, MOTO, PROXY, REG
#   "$PY" is the tests' python (tests/.venv: moto, boto3).

REPO=$PWD
JOBRUN=${JOBRUN:-}
if [ -z "$JOBRUN" ]; then
  cargo build --quiet
  JOBRUN=$PWD/${CARGO_TARGET_DIR:-target}/debug/jobrun
fi
# The tests' world: docker-registry, and moto and boto3 pinned in tests/.venv (tests/setup).
tests/setup
PY=$REPO/tests/.venv/bin/python3

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1"; exit 1; }

start_aws_world() {
  MOTO=$(port); PROXY=$(port); REG=$(port)
  (cd "$work" && exec "$PY" "$REPO/tests/moto/jobrun_moto.py" -H 127.0.0.1 -p "$MOTO" >"$work/moto.log" 2>&1) & pids+=($!)
  printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/reg\nhttp:\n  addr: 127.0.0.1:%s\n' "$work" "$REG" >"$work/reg.yml"
  docker-registry serve "$work/reg.yml" >"$work/reg.log" 2>&1 & pids+=($!)
  wait_http "http://127.0.0.1:$MOTO/moto-api/"
  wait_http "http://127.0.0.1:$REG/v2/"
  "$PY" "$REPO/tests/moto/aws_proxy.py" --upstream "http://127.0.0.1:$MOTO" --port "$PROXY" "$@" >"$work/proxy.log" 2>&1 & pids+=($!)
  wait_http "http://127.0.0.1:$PROXY/__proxy/stats"
}
