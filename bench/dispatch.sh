#!/usr/bin/env bash
# Dispatch benchmark (not a test): how close does `jobrun submit` get to AWS's own limits?
#
# moto (with the fake-Fargate plugin) sits behind tests/moto/aws_proxy.py --rates, which enforces
# AWS's token buckets: RunTask 20 calls/s (burst 20), Fargate launches 100 burst then 20/s,
# DescribeTasks 20/s. Four clients dispatch against it in the same run:
#   jobrun        `jobrun submit --configs N --detach --driver here` (returns when every task is
#                 launched by this process)
#   driver        `jobrun submit --configs N --detach` (driver "aws", the default), then the job's
#                 driver started in a container of the dispatcher image `up` pushed, as ECS would
#                 (its task definition's entrypoint, command and environment): until the proxy
#                 has seen N tasks launched. The container's start is in the figure; Fargate's
#                 own provisioning of the driver (tens of seconds) is not.
#   boto3         a 16-thread pool of run_task calls, botocore standard retries (10 attempts)
#   aws cli       `aws ecs run-task` in a shell loop (N_CLI tasks; one process per call)
# Each prints its time as a ratio of the floor the issue names, (N - 100) / 20 s, and of the
# floor one-task-per-call RunTask really allows, (N - 20) / 20 s; plus the throttles the proxy
# answered (jobrun paces itself, so it should see none) and errors surfaced to the user.
#
# Usage: bench/dispatch.sh [N] [N_CLI]     (defaults 1000 and 120)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
N_CLI=${2:-120}
. bench/lib.sh
start_aws_world --rates

export AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 JOBRUN_STATE_DIR="$work/state"
mkdir -p "$work/job" && cd "$work/job"
echo task >task
printf 'FROM scratch\nCOPY task /task\n' >Dockerfile
# The host's platform: this jobrun is the in-AWS jobrun of the image and of the driver's.
printf '[job]\nname = "bench"\ntarget = "ecs"\n[image]\nplatform = "linux/amd64"\n[resources]\ncpu = 0.25\nmemory = "512MB"\n[run]\ncommand = ["/task"]\n[ecr]\nregistry_endpoint = "127.0.0.1:%s"\n' "$REG" >jobrun.toml
AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO" "$JOBRUN" build --push >/dev/null
AWS_ENDPOINT_URL="http://127.0.0.1:$MOTO" "$JOBRUN" up -o json >"$work/up.json" 2>"$work/up.err"
read -r CLUSTER TD SUBNET SG < <("$PY" -c 'import json,sys; o=json.load(open(sys.argv[1]))["outputs"]; print(o["cluster"], o["task_definition"], o["subnets"][0], o["security_groups"][0])' "$work/up.json")
export AWS_ENDPOINT_URL="http://127.0.0.1:$PROXY"
stats() { curl -s "$AWS_ENDPOINT_URL/__proxy/stats"; }
reset() { curl -s -X POST "$AWS_ENDPOINT_URL/__proxy/reset" >/dev/null; sleep 5; }  # refill buckets
now() { date +%s.%N; }
report() { # name n seconds errors
  "$PY" - "$@" "$(stats)" <<'EOF'
import json, sys
name, n, secs, errors, stats = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], json.loads(sys.argv[5])
issue = max(n - 100, 1) / 20
real = max(n - 20, 1) / 20
print(f"{name:8} n={n:5}  {secs:7.1f} s   ÷(n-100)/20 = {secs/issue:5.2f}   ÷(n-20)/20 = {secs/real:5.2f}   "
      f"throttled by AWS: {stats['throttled'].get('RunTask', 0):5}   errors surfaced: {errors}")
EOF
}

echo "floor: RunTask 20/s (burst 20), launches 100 burst + 20/s; N=$N"
reset
t0=$(now)
out=$("$JOBRUN" submit --configs "$N" --detach --driver here -o json 2>"$work/jobrun.err") && errors=0 || errors="exit $?: $(tail -1 "$work/jobrun.err")"
t1=$(now)
report jobrun "$N" "$(echo "$t1 - $t0" | bc)" "$errors"

# The driver in AWS: the same dispatch, by `jobrun drive` in the dispatcher image.
launched() { "$PY" -c 'import json,sys; print(json.loads(sys.argv[1])["run_task_launched"])' "$(stats)"; }
driver_cmd() { # the driver service's task definition: its environment, entrypoint, arguments
  "$PY" - "$CLUSTER" <<'EOF'
import boto3, sys
ecs = boto3.client("ecs")
svc = ecs.describe_services(cluster=sys.argv[1], services=["jobrun-bench-driver"])["services"][0]
c = ecs.describe_task_definition(taskDefinition=svc["taskDefinition"])["taskDefinition"]["containerDefinitions"][0]
print(" ".join(["-e " + e["name"] + "=" + e["value"] for e in c.get("environment", [])]))
print(c["entryPoint"][0])
print(" ".join(c["entryPoint"][1:] + c.get("command", [])))
EOF
}
{ read -r DENV; read -r DENTRY; read -r DARGS; } < <(driver_cmd)
DIMAGE=$(docker images --format '{{.Repository}}:{{.Tag}}' bench | grep ':dispatcher-' | head -1)
reset
t0=$(now)
"$JOBRUN" submit --configs "$N" --detach -o json >/dev/null 2>"$work/driver.err" && errors=0 || errors="exit $?: $(tail -1 "$work/driver.err")"
# shellcheck disable=SC2086 # DENV and DARGS are word lists
cid=$(docker run -d --network host $DENV -e AWS_ENDPOINT_URL -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY \
  -e JOBRUN_POLL_INTERVAL=200ms --entrypoint "$DENTRY" "$DIMAGE" $DARGS)
until [ "$(launched)" -ge "$N" ]; do
  docker inspect -f '{{.State.Running}}' "$cid" | grep -q true || { errors="driver ended: $(docker logs "$cid" 2>&1 | tail -1)"; break; }
  sleep 0.2
done
t1=$(now)
docker rm -f "$cid" >/dev/null
report driver "$N" "$(echo "$t1 - $t0" | bc)" "$errors"

reset
t0=$(now)
errors=$("$PY" - "$N" "$CLUSTER" "$TD" "$SUBNET" "$SG" <<'EOF'
import sys, boto3, botocore.config
from concurrent.futures import ThreadPoolExecutor
n, cluster, td, subnet, sg = int(sys.argv[1]), *sys.argv[2:]
ecs = boto3.client("ecs", config=botocore.config.Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=16))
def one(i):
    try:
        r = ecs.run_task(cluster=cluster, taskDefinition=td, startedBy="boto3", count=1,
            capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
            networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [sg]}},
            overrides={"containerOverrides": [{"name": "job", "environment": [{"name": "JOBRUN_INDEX", "value": str(i)}]}]})
        return 0 if r["tasks"] else 1
    except Exception:
        return 1
with ThreadPoolExecutor(16) as pool:
    print(sum(pool.map(one, range(n))))
EOF
)
t1=$(now)
report boto3 "$N" "$(echo "$t1 - $t0" | bc)" "$errors"

reset
t0=$(now)
errors=0
for i in $(seq 1 "$N_CLI"); do
  aws ecs run-task --cluster "$CLUSTER" --task-definition "$TD" --started-by cli \
    --capacity-provider-strategy capacityProvider=FARGATE_SPOT,weight=1 \
    --network-configuration "awsvpcConfiguration={subnets=[$SUBNET],securityGroups=[$SG]}" \
    --overrides "{\"containerOverrides\":[{\"name\":\"job\",\"environment\":[{\"name\":\"JOBRUN_INDEX\",\"value\":\"$i\"}]}]}" \
    >/dev/null 2>&1 || errors=$((errors + 1))
done
t1=$(now)
# One process per call: extrapolated to N from N_CLI calls.
echo "(aws cli: $N_CLI calls in $(echo "$t1 - $t0" | bc) s, extrapolated to N=$N)"
report "aws cli" "$N" "$(echo "($t1 - $t0) * $N / $N_CLI" | bc -l)" "$errors"
