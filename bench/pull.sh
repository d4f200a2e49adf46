#!/usr/bin/env bash
# Pull benchmark (not a test): the same realistic image pushed by `jobrun push` with
# `[image] compression = "gzip"` (the baseline) and `"zstd"`, to a loopback registry, in the same
# run. The image is made here without a pull: a Debian bookworm rootfs with python3 and numpy
# (debootstrap, cached between runs under ~/.cache/jobrun-bench), `docker import`ed, with the
# test task on top. Each compression gets its own copy of the base (a marker file in it), so
# neither pull finds the other's snapshot. For each it prints:
#
#   bytes     the compressed layers' size (the registry's manifest)
#   push_s    `jobrun push` wall time with a cold layer cache (compress + upload)
#   cpu1_s    CPU time to decompress every layer on one core (gzip -dc / zstd -dc, taskset)
#   cpu_task  that time on the job's vCPU (0.25 vCPU: a quarter of a core, four times as long)
#   pull_s    a cold pull + unpack with containerd's ctr (the runtime Fargate uses) — the
#             check that the image really pulls; on this disk it is I/O-bound and noisy
#
# and zstd's ratios to gzip against the goals: bytes <= 1, decompression CPU <= 0.35, push <= 1.
#
#   bench/pull.sh           (JOBRUN=path/to/jobrun to skip the release build; needs root for
#                            debootstrap and ctr, and Debian's mirror for the first run)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
VCPU=0.25
work=$(mktemp -d)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/jobrun-bench
ctr_() { ctr --address /run/docker/containerd/containerd.sock "$@"; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for c in gzip zstd; do
    ctr_ -n "jobrun-bench-$c" images list -q 2>/dev/null | xargs -r -n1 ctr_ -n "jobrun-bench-$c" images rm --sync >/dev/null 2>&1 || true
    ctr_ namespaces rm "jobrun-bench-$c" >/dev/null 2>&1 || true
    docker rmi -f "jobrun-bench-pull-$c:latest" "jobrun-bench-base-$c:latest" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${JOBRUN:-}" ]; then
  (cd "$root" && cargo build --release --locked --quiet)
  JOBRUN="${CARGO_TARGET_DIR:-$root/target}/release/jobrun"
fi
for tool in debootstrap zstd docker-registry; do
  command -v "$tool" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null
done

# The base: made once, kept.
mkdir -p "$cache"
if [ ! -s "$cache/rootfs.tar" ]; then
  echo "debootstrap of bookworm with python3 and numpy (once, ~2-3 minutes)..."
  debootstrap --variant=minbase --include=python3,python3-numpy bookworm "$work/rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
    { tail "$work/debootstrap.log"; exit 1; }
  tar -C "$work/rootfs" -cf "$cache/rootfs.tar" .
  rm -rf "$work/rootfs"
fi

# A registry on loopback.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/reg\nhttp:\n  addr: 127.0.0.1:%s\n' "$work" "$port" >"$work/reg.yml"
docker-registry serve "$work/reg.yml" >"$work/reg.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done
rustc --edition 2021 -O -C target-feature=+crt-static -o "$work/task" "$root/tests/fixtures/task.rs"

now() { date +%s.%N; }
declare -A BYTES PUSH CPU PULL
for c in gzip zstd; do
  job="$work/$c"
  mkdir -p "$job/marker/etc"
  echo "$c" >"$job/marker/etc/jobrun-bench"
  cp "$cache/rootfs.tar" "$job/base.tar"
  tar -C "$job/marker" -rf "$job/base.tar" ./etc/jobrun-bench
  docker import "$job/base.tar" "jobrun-bench-base-$c:latest" >/dev/null
  rm "$job/base.tar"
  cp "$work/task" "$job/task"
  printf 'FROM jobrun-bench-base-%s:latest\nCOPY task /task\n' "$c" >"$job/Dockerfile"
  cat >"$job/jobrun.toml" <<TOML
[job]
name = "jobrun-bench-pull-$c"
[image]
registry = "127.0.0.1:$port/bench"
compression = "$c"
[resources]
cpu = $VCPU
memory = "512MB"
[run]
command = ["/task", "out", "pulled"]
TOML
  export JOBRUN_STATE_DIR="$job/state"
  (cd "$job" && "$JOBRUN" build >/dev/null 2>"$job/build.log") || { cat "$job/build.log"; exit 1; }
  t0=$(now)
  (cd "$job" && "$JOBRUN" push -o json >"$job/pushed.json" 2>"$job/push.log") || { cat "$job/push.log"; exit 1; }
  PUSH[$c]=$(echo "$(now) - $t0" | bc)
  digest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["digest"])' "$job/pushed.json")
  ref="127.0.0.1:$port/bench/jobrun-bench-pull-$c@$digest"
  BYTES[$c]=$(curl -s -H 'Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' \
    "http://127.0.0.1:$port/v2/bench/jobrun-bench-pull-$c/manifests/$digest" |
    python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')
  # Decompression CPU on one core, over the very blobs that were pushed.
  ext=$([ "$c" = gzip ] && echo tar.gz || echo tar.zst)
  tool=$([ "$c" = gzip ] && echo "gzip -dc" || echo "zstd -dcq")
  cpu=0
  for blob in "$job/state/blobs/"*."$ext"; do
    /usr/bin/time -f '%U %S' -o "$work/t" taskset -c 0 $tool "$blob" >/dev/null
    cpu=$(echo "$cpu + $(awk '{print $1 + $2}' "$work/t")" | bc)
  done
  CPU[$c]=$cpu
  sync
  t0=$(now)
  ctr_ -n "jobrun-bench-$c" images pull --plain-http "$ref" >/dev/null
  PULL[$c]=$(echo "$(now) - $t0" | bc)
  out=$(ctr_ -n "jobrun-bench-$c" run --rm "$ref" "jobrun-bench-$c" /task out pulled)
  [ "$out" = pulled ] || { echo "the $c image did not run: $out"; exit 1; }
done

echo "image: Debian bookworm + python3 + numpy, $(($(stat -c %s "$cache/rootfs.tar") / 1000000)) MB uncompressed, and the test task; job vCPU $VCPU"
printf '%-5s %12s %8s %8s %9s %8s\n' comp bytes push_s cpu1_s cpu_task pull_s
for c in gzip zstd; do
  awk -v c="$c" -v b="${BYTES[$c]}" -v p="${PUSH[$c]}" -v u="${CPU[$c]}" -v v="$VCPU" -v l="${PULL[$c]}" \
    'BEGIN { printf "%-5s %12d %8.2f %8.2f %9.2f %8.2f\n", c, b, p, u, u / v, l }'
done
awk -v bg="${BYTES[gzip]}" -v bz="${BYTES[zstd]}" -v pg="${PUSH[gzip]}" -v pz="${PUSH[zstd]}" \
  -v cg="${CPU[gzip]}" -v cz="${CPU[zstd]}" -v lg="${PULL[gzip]}" -v lz="${PULL[zstd]}" 'BEGIN {
  printf "zstd/gzip: bytes %.3f (goal <= 1) %s; decompression CPU %.3f (goal <= 0.35) %s; push %.3f (goal <= 1) %s; pull+unpack %.3f (the check, not a goal)\n",
    bz / bg, (bz <= bg ? "ok" : "OVER"), cz / cg, (cz <= 0.35 * cg ? "ok" : "OVER"), pz / pg, (pz <= pg ? "ok" : "OVER"), lz / lg
}'
