# jobrun's everyday commands. `just --list` shows them.

# Build a debug binary
build:
    cargo build

# The test suite, set-up included (the same command README.md gives and .ci/run runs)
test:
    tests/setup && cargo test --locked

# Formatting and lints, as required before a commit
lint:
    cargo fmt --check
    cargo clippy --all-targets -- -D warnings

# The slim agent's bans (crates/agent/deny.toml) with cargo-deny itself (`cargo install
# cargo-deny --locked`); the test command checks the same list with `cargo tree`
deny:
    cargo deny --manifest-path crates/agent/Cargo.toml check bans

# Everything CI checks
ci: lint
    bash .ci/run

# Install jobrun and run the main job (examples/wordcount) on the local engine
demo:
    cargo install --locked --path .
    cd examples/wordcount && jobrun build && jobrun submit --configs 16

# Local fan-out against `xargs docker run --rm` (ratio, goal <= 1.10)
bench n="100":
    bench/local.sh {{n}}

# An over-sized sweep run twice with `size = "auto"`: the second's cost against the first's (goal <= 0.60)
bench-rightsize n="20":
    bench/rightsize.sh {{n}}

# ECS dispatch through a proxy enforcing AWS's rate limits, vs boto3 and the aws CLI (ratio to the floor)
bench-dispatch n="1000" n_cli="60":
    bench/dispatch.sh {{n}} {{n_cli}}

# Queue-mode dispatch (SendMessageBatch) against bare Rust-SDK and boto3 loops (ratio, goal <= 1.10)
bench-queue n="10000":
    cargo build --release --locked
    JOBRUN=target/release/jobrun bench/queue.sh {{n}}

# A static in-AWS jobrun for an image architecture (what `[image] agent.<arch>` points at)
# (the full jobrun: it also runs the schedules' dispatcher; the slim agent is jobrun-agent beside it)
agent-amd64: release-x86_64
    @echo "[image] agent = { amd64 = \"$PWD/target/x86_64-unknown-linux-musl/agent/jobrun\" }"

agent-arm64: release-aarch64
    @echo "[image] agent = { arm64 = \"$PWD/target/aarch64-unknown-linux-musl/agent/jobrun\" }"

# Release binaries for Linux on both architectures, through `cross` (static: musl, the CA
# roots built in, no NSS; the size-optimised `agent` profile of Cargo.toml), on a release machine: this needs cross's images, so it cannot run
# where nothing can be pulled.
release-x86_64:
    cross build --profile agent --locked --target x86_64-unknown-linux-musl -p jobrun -p jobrun-agent

release-aarch64:
    cross build --profile agent --locked --target aarch64-unknown-linux-musl -p jobrun -p jobrun-agent

release: release-x86_64 release-aarch64

# The release files: the static jobrun and slim agent for both architectures and their SHA-256
# checksums, in dist/
release-files: release
    mkdir -p dist
    cp target/x86_64-unknown-linux-musl/agent/jobrun dist/jobrun-linux-amd64
    cp target/aarch64-unknown-linux-musl/agent/jobrun dist/jobrun-linux-arm64
    cp target/x86_64-unknown-linux-musl/agent/jobrun-agent dist/jobrun-agent-linux-amd64
    cp target/aarch64-unknown-linux-musl/agent/jobrun-agent dist/jobrun-agent-linux-arm64
    cd dist && sha256sum jobrun-linux-* jobrun-agent-linux-* > SHA256SUMS

# A wheel carrying this machine's jobrun (`pip install target/wheels/jobrun-*.whl`), as the
# release workflow builds one per platform (maturin, `bindings = "bin"`)
wheel:
    pip install "maturin>=1.5,<2"
    maturin build --release --locked --out target/wheels

# The multi-architecture agent image `jobrun build` pulls for job images (an OCI index:
# linux/amd64 and linux/arm64 of the slim agent), e.g. `just agent-image
# public.ecr.aws/jobrun/agent:0.1.0` after a registry login
agent-image ref: release
    target/x86_64-unknown-linux-musl/agent/jobrun agent-image {{ref}} \
        --amd64 target/x86_64-unknown-linux-musl/agent/jobrun-agent \
        --arm64 target/aarch64-unknown-linux-musl/agent/jobrun-agent

# The same of the full jobrun, which the dispatcher's image takes
# (`public.ecr.aws/jobrun/jobrun:0.1.0`)
jobrun-image ref: release
    target/x86_64-unknown-linux-musl/agent/jobrun agent-image {{ref}} \
        --amd64 target/x86_64-unknown-linux-musl/agent/jobrun \
        --arm64 target/aarch64-unknown-linux-musl/agent/jobrun

# A static jobrun for this x86_64 machine without a musl toolchain (glibc's static libc), to
# measure its size or try it in a FROM-scratch image
static-x86_64:
    RUSTFLAGS='-C target-feature=+crt-static' cargo build --profile agent --locked --target x86_64-unknown-linux-gnu -p jobrun -p jobrun-agent
