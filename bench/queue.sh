#!/usr/bin/env bash
# Queue dispatch benchmark (not a test): `jobrun submit --mode queue` against a bare parallel SDK
# loop making the same SendMessageBatch calls, in the same run, through the same endpoint.
#
# moto is behind tests/moto/aws_proxy.py --sqs-sink: SendMessageBatch is answered by the proxy
# (moto's own SQS slows down as the queue grows, which would measure moto, not the clients);
# every other call goes to moto. Three clients enqueue N messages:
#   jobrun     `jobrun submit --configs N --detach` (from a cold process: config, record, S3
#              copy, N/10 SendMessageBatch calls, record saved), timed from outside
#   rust sdk   benches/sqs_baseline.rs: the AWS SDK for Rust, 16 calls in flight, bodies of the
#              same shape, timed from inside (no process start), no bookkeeping at all
#   boto3      16 threads doing the same with boto3
# Printed: the times, calls counted at the proxy, and jobrun's time as a ratio of each baseline
# (goal <= 1.1 against the bare SDK loop). Use a release jobrun (JOBRUN=target/release/jobrun):
# a debug build spends most of the difference serialising the run record.
#
# Usage: bench/queue.sh [N]     (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
cargo build --quiet --release --bench sqs_baseline
. bench/lib.sh
start_aws_world --sqs-sink

export AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 JOBRUN_STATE_DIR="$work/state"
mkdir -p "$work/job" && cd "$work/job"
echo agent >agent
echo task >task
printf 'FROM scratch\nCOPY task /task\n' >Dockerfile
printf '[job]\nname = "qbench"\ntarget = "ecs"\n[resources]\ncpu = 0.25\nmemory = "512MB"\n[run]\ncommand = ["/task", "{config.n}"]\n[ecr]\nregistry_endpoint = "127.0.0.1:%s"\n[ecs]\nmode = "queue"\n[queue]\nagent_binaries = { arm64 = "agent" }\n' "$REG" >jobrun.toml
AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO" "$JOBRUN" build --push >/dev/null
AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO" "$JOBRUN" up -o json >"$work/up.json"
QUEUE=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["outputs"]["queue"]["queue_url"])' "$work/up.json")
"$PY" -c "import json; [print(json.dumps({'n': i, 'name': f'config-{i}'})) for i in range($N)]" >configs.jsonl
export AWS_ENDPOINT_URL="http://127.0.0.1:$PROXY"
calls() { curl -s "$AWS_ENDPOINT_URL/__proxy/stats" | "$PY" -c 'import json,sys; s=json.load(sys.stdin)["sqs"]; print(s["calls"], s["distinct"], s["duplicates"])'; }
reset() { curl -s -X POST "$AWS_ENDPOINT_URL/__proxy/reset" >/dev/null; }
now() { date +%s.%N; }

reset
t0=$(now)
JOBRUN_LOG=${JOBRUN_BENCH_LOG:-jobrun=warn} "$JOBRUN" submit --configs configs.jsonl --detach -o json >/dev/null 2>"${JOBRUN_BENCH_ERR:-/dev/null}"
t1=$(now)
jr=$(echo "$t1 - $t0" | bc)
read -r jc jd jdup < <(calls)

reset
t0=$(now)
"$PY" - "$N" "$QUEUE" <<'EOF'
import json, sys, boto3, botocore.config
from concurrent.futures import ThreadPoolExecutor
n, url = int(sys.argv[1]), sys.argv[2]
sqs = boto3.client("sqs", config=botocore.config.Config(max_pool_connections=16))
def body(i):
    return json.dumps({"jobrun": 1, "job": "qbench", "run_id": "baseline", "index": i, "count": n,
                       "attempt": 1, "command": ["/task", str(i)], "config": {"n": i, "name": f"config-{i}"},
                       "timeout_secs": 3600})
def send(start):
    entries = [{"Id": str(i), "MessageBody": body(i)} for i in range(start, min(start + 10, n))]
    while entries:
        out = sqs.send_message_batch(QueueUrl=url, Entries=entries)
        failed = {f["Id"] for f in out.get("Failed", [])}
        entries = [e for e in entries if e["Id"] in failed]
with ThreadPoolExecutor(16) as pool:
    list(pool.map(send, range(0, n, 10)))
EOF
t1=$(now)
bl=$(echo "$t1 - $t0" | bc)
read -r bc_ bd bdup < <(calls)

reset
rs=$(cd "$REPO" && cargo bench --quiet --bench sqs_baseline -- "$N" "$QUEUE" 2>/dev/null | tail -1)
read -r rc rd rdup < <(calls)
"$PY" - "$N" "$jr" "$jc" "$jd" "$jdup" "$bl" "$bc_" "$bd" "$rs" "$rc" "$rd" <<'EOF'
import sys
n, jr, jc, jd, jdup, bl, bc, bd, rs, rc, rd = sys.argv[1:]
print(f"N={n}")
print(f"jobrun     {float(jr):6.2f} s   SendMessageBatch calls {jc}, messages {jd}, duplicates {jdup}")
print(f"rust sdk   {float(rs):6.2f} s   SendMessageBatch calls {rc}, messages {rd}")
print(f"boto3      {float(bl):6.2f} s   SendMessageBatch calls {bc}, messages {bd}")
print(f"ratio jobrun / bare Rust SDK loop = {float(jr)/float(rs):.2f}   (goal <= 1.10)")
print(f"ratio jobrun / bare boto3 loop    = {float(jr)/float(bl):.2f}")
EOF
