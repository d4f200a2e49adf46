# Shared by the local-engine benchmarks (sourced by local.sh and rightsize.sh): a release jobrun
# (or $JOBRUN), a work folder and a job name whose containers, images and files are removed on
# exit, and the tests' task program built static into that folder beside a FROM scratch
# Dockerfile, so the job's image is the program alone.
#
#   local_job NAME   sets root, work, job, JOBRUN; the caller writes $work/jobrun.toml

local_job() {
  root=$(cd "$(dirname "$0")/.." && pwd)
  work=$(mktemp -d)
  job=$1-$$
  trap 'docker ps -aq --filter "label=jobrun.job=$job" | xargs -r docker rm -f >/dev/null
        docker images --format "{{.Repository}}:{{.Tag}}" "$job" | xargs -r docker rmi -f >/dev/null
        rm -rf "$work"' EXIT
  if [ -z "${JOBRUN:-}" ]; then
    (cd "$root" && cargo build --release --quiet)
    JOBRUN="${CARGO_TARGET_DIR:-$root/target}/release/jobrun"
  fi
  rustc --edition 2021 -O -C target-feature=+crt-static -o "$work/task" "$root/tests/fixtures/task.rs"
  printf 'FROM scratch\nCOPY task /task\n' > "$work/Dockerfile"
}
