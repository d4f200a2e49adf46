#!/usr/bin/env python3
"""Check jobrun_moto.py's fake Fargate (and its Amazon ECS Managed Instances) against a running
server.

Usage: tests/.venv/bin/python3 tests/moto/check_plugin.py http://127.0.0.1:PORT
(start the server with tests/.venv/bin/python3 tests/moto/jobrun_moto.py -H 127.0.0.1 -p PORT;
tests/setup makes the venv). Prints one line per check and exits non-zero on the first failure.
Run it after changing the moto pinned in tests/requirements.txt.
"""

import json
import os
import sys
import uuid

import boto3
from botocore.exceptions import ClientError

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
ENDPOINT = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:5000"
KW = dict(
    endpoint_url=ENDPOINT,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
)
ecs = boto3.client("ecs", **KW)
ec2 = boto3.client("ec2", **KW)
logs = boto3.client("logs", **KW)
iam = boto3.client("iam", **KW)
LOG_CONFIGURATION = {
    "logDriver": "awslogs",
    "options": {
        "awslogs-group": "/jobrun/x",
        "awslogs-region": "us-east-1",
        "awslogs-stream-prefix": "jobrun",
    },
}


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        sys.exit(1)


def client(service, account):
    """A client whose requests moto serves as another account's (x-moto-account-id)."""
    c = boto3.client(service, **KW)
    c.meta.events.register("before-sign.*.*", lambda request, **_: request.headers.__setitem__(
        "x-moto-account-id", account))
    return c


def refused(code, what, call, **kwargs):
    """The call fails with that AWS error code."""
    try:
        call(**kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        check(got == code, f"{what}: {code}" + ("" if got == code else f" (got {got}: {e})"))
        return
    check(False, f"{what}: {code} (it was accepted)")


def setup(ecs=None, ec2=None):
    """Cluster, task definition and network configuration; returns (cluster, td arn, net).
    The clients default to this module's (check_proxy.py sets them), as in run and wait_stopped."""
    ecs, ec2 = ecs or globals()["ecs"], ec2 or globals()["ec2"]
    cluster = "jobrun-check-" + uuid.uuid4().hex[:6]
    ecs.create_cluster(clusterName=cluster, capacityProviders=["FARGATE", "FARGATE_SPOT"])
    td = ecs.register_task_definition(
        family="jobrun-check",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[
            {
                "name": "job",
                "image": "example/job:latest",
                "memory": 512,
                "essential": True,
                "logConfiguration": LOG_CONFIGURATION,
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    vpc = ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    sgs = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])
    net = {
        "awsvpcConfiguration": {
            "subnets": [subnets["Subnets"][0]["SubnetId"]],
            "securityGroups": [sgs["SecurityGroups"][0]["GroupId"]],
            "assignPublicIp": "ENABLED",
        }
    }
    return cluster, td, net


def run(cluster, td, net, config, attempt=1, index=0, spot=False, provider=None, ecs=None,
        **extra):
    """RunTask as jobrun sends it: a one-provider capacity provider strategy."""
    ecs = ecs or globals()["ecs"]
    env = [
        {"name": "JOBRUN_CONFIG", "value": json.dumps(config)},
        {"name": "JOBRUN_ATTEMPT", "value": str(attempt)},
        {"name": "JOBRUN_INDEX", "value": str(index)},
    ]
    provider = provider or ("FARGATE_SPOT" if spot else "FARGATE")
    placement = {"capacityProviderStrategy": [{"capacityProvider": provider, "weight": 1}]}
    overrides = extra.pop("overrides", {"containerOverrides": [{"name": "job", "environment": env}]})
    return ecs.run_task(
        cluster=cluster,
        taskDefinition=td,
        networkConfiguration=net,
        overrides=overrides,
        startedBy="check",
        **placement,
        **extra,
    )


def wait_stopped(cluster, arn, limit=10, ecs=None):
    ecs = ecs or globals()["ecs"]
    for _ in range(limit):
        task = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
        if task["lastStatus"] == "STOPPED":
            return task
    return task


# ----- Amazon ECS Managed Instances (GPU capacity providers, as jobrun makes them) -----------

MI = "MANAGED_INSTANCES"
MI_POLICIES = ("arn:aws:iam::aws:policy/AmazonECSInfrastructureRolePolicyForManagedInstances",
               "arn:aws:iam::aws:policy/AmazonECSInstanceRolePolicyForManagedInstances")


def trust(service):
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


def mi_roles(iam, job):
    """jobrun's infrastructure role and instance role (in its instance profile), with their AWS
    managed policies; returns (infrastructure role ARN, instance profile ARN)."""
    infra, instance = f"jobrun-{job}-instances-infra", f"ecsInstanceRole-jobrun-{job}"
    arn = iam.create_role(RoleName=infra, AssumeRolePolicyDocument=trust("ecs.amazonaws.com"))
    iam.create_role(RoleName=instance, AssumeRolePolicyDocument=trust("ec2.amazonaws.com"))
    iam.attach_role_policy(RoleName=infra, PolicyArn=MI_POLICIES[0])
    iam.attach_role_policy(RoleName=instance, PolicyArn=MI_POLICIES[1])
    profile = iam.create_instance_profile(InstanceProfileName=instance)["InstanceProfile"]["Arn"]
    iam.add_role_to_instance_profile(InstanceProfileName=instance, RoleName=instance)
    return arn["Role"]["Arn"], profile


def mi_config(infra, profile, net, option="SPOT"):
    """CreateCapacityProvider's managedInstancesProvider as jobrun sends it."""
    vpc = net["awsvpcConfiguration"]
    return {
        "infrastructureRoleArn": infra,
        "instanceLaunchTemplate": {
            "ec2InstanceProfileArn": profile,
            "networkConfiguration": {"subnets": vpc["subnets"],
                                     "securityGroups": vpc["securityGroups"]},
            "capacityOptionType": option,
            "instanceRequirements": {
                "vCpuCount": {"min": 4}, "memoryMiB": {"min": 16384},
                "acceleratorTypes": ["gpu"], "acceleratorCount": {"min": 1},
                "acceleratorNames": ["t4"], "allowedInstanceTypes": ["g4dn.*"],
            },
        },
        "propagateTags": "CAPACITY_PROVIDER",
        "infrastructureOptimization": {"scaleInAfter": 300},
    }


def gpu_task_definition(ecs, requires=(MI,)):
    return ecs.register_task_definition(
        family="jobrun-check-gpu", networkMode="awsvpc", requiresCompatibilities=list(requires),
        cpu="4096", memory="16384",
        containerDefinitions=[{"name": "job", "image": "example/job:latest", "essential": True,
                               "memory": 16384,
                               "resourceRequirements": [{"type": "GPU", "value": "1"}],
                               "logConfiguration": LOG_CONFIGURATION}],
    )["taskDefinition"]


def check_mi_iam(job):
    infra, profile = mi_roles(iam, job)
    role = f"ecsInstanceRole-jobrun-{job}"
    attached = iam.list_attached_role_policies(RoleName=f"jobrun-{job}-instances-infra")
    check([p["PolicyArn"] for p in attached["AttachedPolicies"]] == [MI_POLICIES[0]],
          "AttachRolePolicy of AmazonECSInfrastructureRolePolicyForManagedInstances")
    policy = iam.get_policy(PolicyArn=MI_POLICIES[1])["Policy"]
    check(policy["PolicyName"] == "AmazonECSInstanceRolePolicyForManagedInstances",
          "the instance role's AWS managed policy exists (GetPolicy)")
    got = iam.get_instance_profile(InstanceProfileName=role)["InstanceProfile"]
    check(got["Arn"] == profile and [r["RoleName"] for r in got["Roles"]] == [role],
          "GetInstanceProfile: the instance role in its profile")
    return infra, profile


def check_mi_iam_teardown(job):
    role, infra = f"ecsInstanceRole-jobrun-{job}", f"jobrun-{job}-instances-infra"
    refused("DeleteConflict", "DeleteInstanceProfile with its role still in",
            iam.delete_instance_profile, InstanceProfileName=role)
    iam.remove_role_from_instance_profile(InstanceProfileName=role, RoleName=role)
    iam.delete_instance_profile(InstanceProfileName=role)
    iam.detach_role_policy(RoleName=infra, PolicyArn=MI_POLICIES[0])
    iam.detach_role_policy(RoleName=role, PolicyArn=MI_POLICIES[1])
    check(iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == [],
          "RemoveRoleFromInstanceProfile, DeleteInstanceProfile, DetachRolePolicy")
    for name in (role, infra):
        iam.delete_role(RoleName=name)


def check_mi_create(cluster, job, infra, profile, net):
    """Returns the spot and on-demand providers' names."""
    spot, demand = f"jobrun-{job}-spot", f"jobrun-{job}-on-demand"
    config = mi_config(infra, profile, net)
    tags = [{"key": "jobrun:job", "value": job}]
    cp = ecs.create_capacity_provider(name=spot, cluster=cluster, managedInstancesProvider=config,
                                      tags=tags)["capacityProvider"]
    check(cp["type"] == MI and cp["status"] == "ACTIVE" and cp["cluster"] == cluster
          and cp["managedInstancesProvider"] == config and "autoScalingGroupProvider" not in cp,
          "CreateCapacityProvider: ACTIVE, MANAGED_INSTANCES, in its cluster, as given")
    on_demand = mi_config(infra, profile, net, "ON_DEMAND")
    ecs.create_capacity_provider(name=demand, cluster=cluster, managedInstancesProvider=on_demand)
    listed = ecs.describe_clusters(clusters=[cluster])["clusters"][0]["capacityProviders"]
    check(spot in listed and demand in listed and "FARGATE" in listed,
          "DescribeClusters lists the cluster's Managed Instances providers")
    return spot, demand


def check_mi_create_refusals(cluster, job, infra, profile, net):
    config = mi_config(infra, profile, net)
    create = ecs.create_capacity_provider
    refused("ClientException", "a capacity provider name in use", create,
            name=f"jobrun-{job}-spot", cluster=cluster, managedInstancesProvider=config)
    for prefix in ("aws", "ecs", "fargate"):
        refused("ClientException", f"a capacity provider name prefixed {prefix}", create,
                name=f"{prefix}-{job}", cluster=cluster, managedInstancesProvider=config)
    refused("ClusterNotFoundException", "an unknown cluster", create,
            name=f"jobrun-{job}-x", cluster="no-such-cluster", managedInstancesProvider=config)
    refused("InvalidParameterException", "no cluster for a Managed Instances provider", create,
            name=f"jobrun-{job}-x", managedInstancesProvider=config)
    bad_role = mi_config(infra + "-gone", profile, net)
    refused("InvalidParameterException", "an infrastructure role that does not exist", create,
            name=f"jobrun-{job}-x", cluster=cluster, managedInstancesProvider=bad_role)
    bad_profile = mi_config(infra, profile + "-gone", net)
    refused("InvalidParameterException", "an instance profile that does not exist", create,
            name=f"jobrun-{job}-x", cluster=cluster, managedInstancesProvider=bad_profile)
    asg = {"autoScalingGroupArn": "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:"
                                  "x:autoScalingGroupName/x"}
    refused("InvalidParameterException", "both an Auto Scaling group and Managed Instances", create,
            name=f"jobrun-{job}-x", cluster=cluster, managedInstancesProvider=config,
            autoScalingGroupProvider=asg)


def check_mi_describe_update(cluster, other, spot, demand, infra, profile, net):
    d = ecs.describe_capacity_providers(capacityProviders=[spot, "jobrun-no-such"])
    check([p["name"] for p in d["capacityProviders"]] == [spot] and len(d["failures"]) == 1
          and d["failures"][0]["reason"] == "MISSING",
          "DescribeCapacityProviders: the provider, and MISSING for an unknown name")
    d = ecs.describe_capacity_providers(capacityProviders=[spot], cluster=other)
    check(d["capacityProviders"] == [] and len(d["failures"]) == 1,
          "DescribeCapacityProviders with another cluster: not there")
    d = ecs.describe_capacity_providers(cluster=cluster)
    check({p["name"] for p in d["capacityProviders"]} == {spot, demand},
          "DescribeCapacityProviders of a cluster: its providers")
    template = {"instanceRequirements": {"vCpuCount": {"min": 8}, "memoryMiB": {"min": 32768},
                                         "acceleratorTypes": ["gpu"],
                                         "acceleratorCount": {"min": 2}}}
    cp = ecs.update_capacity_provider(name=spot, cluster=cluster, managedInstancesProvider={
        "infrastructureRoleArn": infra, "instanceLaunchTemplate": template,
        "propagateTags": "NONE", "infrastructureOptimization": {"scaleInAfter": 600}},
    )["capacityProvider"]
    mip = cp["managedInstancesProvider"]
    check(mip["instanceLaunchTemplate"]["instanceRequirements"]["acceleratorCount"] == {"min": 2}
          and mip["instanceLaunchTemplate"]["capacityOptionType"] == "SPOT"
          and mip["instanceLaunchTemplate"]["ec2InstanceProfileArn"] == profile
          and mip["infrastructureOptimization"] == {"scaleInAfter": 600}
          and mip["propagateTags"] == "NONE" and cp["updateStatus"] == "UPDATE_COMPLETE",
          "UpdateCapacityProvider: in place, capacityOptionType kept")
    update = {"infrastructureRoleArn": infra, "instanceLaunchTemplate": template}
    refused("InvalidParameterException", "UpdateCapacityProvider in another cluster",
            ecs.update_capacity_provider, name=spot, cluster=other, managedInstancesProvider=update)
    refused("ClientException", "UpdateCapacityProvider of an unknown provider",
            ecs.update_capacity_provider, name="jobrun-no-such", cluster=cluster,
            managedInstancesProvider=update)
    refused("InvalidParameterException", "PutClusterCapacityProviders naming an MI provider",
            ecs.put_cluster_capacity_providers, cluster=cluster,
            capacityProviders=["FARGATE", spot], defaultCapacityProviderStrategy=[])
    ecs.put_cluster_capacity_providers(
        cluster=cluster, capacityProviders=["FARGATE", "FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}])
    listed = ecs.describe_clusters(clusters=[cluster])["clusters"][0]["capacityProviders"]
    check(spot in listed, "PutClusterCapacityProviders keeps the cluster's Managed Instances ones")


def check_mi_task_definitions():
    td = gpu_task_definition(ecs)
    check(td["compatibilities"] == ["EC2", MI] and td["requiresCompatibilities"] == [MI]
          and td["networkMode"] == "awsvpc"
          and td["containerDefinitions"][0]["resourceRequirements"] == [{"type": "GPU",
                                                                          "value": "1"}],
          "RegisterTaskDefinition MANAGED_INSTANCES, a GPU: compatibilities EC2, MANAGED_INSTANCES")
    refused("ClientException", "a GPU resource requirement on a FARGATE task definition",
            gpu_task_definition, ecs=ecs, requires=("FARGATE",))
    return td["taskDefinitionArn"]


def check_mi_run(cluster, other, spot, gpu_td, td, net):
    fake = {"fake": {"exit": 3, "logs": ["on a GPU"]}}
    t = run(cluster, gpu_td, net, fake, provider=spot)["tasks"][0]
    check(t["launchType"] == MI and t["capacityProviderName"] == spot,
          "RunTask on a Managed Instances provider: launchType MANAGED_INSTANCES, its provider")
    t = wait_stopped(cluster, t["taskArn"])
    check(t["containers"][0].get("exitCode") == 3
          and t.get("stopCode") == "EssentialContainerExited",
          "a Managed Instances task plays its fake like a Fargate one (exit 3)")
    tid = t["taskArn"].split("/")[-1]
    ev = logs.get_log_events(logGroupName="/jobrun/x", logStreamName=f"jobrun/job/{tid}")
    check([e["message"] for e in ev["events"]] == ["on a GPU"], "and writes its logs")
    overrides = {"cpu": "3000", "memory": "7777",
                 "containerOverrides": [{"name": "job", "environment": []}]}
    sized = run(cluster, gpu_td, net, {}, provider=spot, overrides=overrides)
    check(len(sized["tasks"]) == 1, "any task size on Managed Instances (no Fargate size table)")
    refused("InvalidParameterException", "a FARGATE-only task definition on Managed Instances",
            run, cluster=cluster, td=td, net=net, config={}, provider=spot)
    refused("InvalidParameterException", "a MANAGED_INSTANCES-only task definition on FARGATE",
            run, cluster=cluster, td=gpu_td, net=net, config={})
    refused("InvalidParameterException", "FARGATE_SPOT with a MANAGED_INSTANCES-only one",
            run, cluster=cluster, td=gpu_td, net=net, config={}, spot=True)
    refused("InvalidParameterException", "a provider of another cluster",
            run, cluster=other, td=gpu_td, net=net, config={}, provider=spot)
    refused("InvalidParameterException", "an unknown capacity provider",
            run, cluster=cluster, td=gpu_td, net=net, config={}, provider="jobrun-no-such")
    refused("InvalidParameterException", "launchType MANAGED_INSTANCES (a strategy is needed)",
            ecs.run_task, cluster=cluster, taskDefinition=gpu_td, launchType=MI,
            networkConfiguration=net)


def check_mi_service(cluster, other_provider, spot, gpu_td, net):
    strategy = [{"capacityProvider": spot, "weight": 1}]
    svc = ecs.create_service(cluster=cluster, serviceName="gpu-workers", taskDefinition=gpu_td,
                             desiredCount=0, capacityProviderStrategy=strategy,
                             networkConfiguration=net,
                             tags=[{"key": "jobrun-fake-workers", "value": "{}"}])["service"]
    check(svc["capacityProviderStrategy"] == strategy and "launchType" not in svc,
          "CreateService with a Managed Instances strategy keeps it, no launch type")
    ecs.update_service(cluster=cluster, service="gpu-workers", desiredCount=1)
    arns = ecs.list_tasks(cluster=cluster, serviceName="gpu-workers")["taskArns"]
    t = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
    check(len(t) == 1 and t[0]["launchType"] == MI and t[0]["capacityProviderName"] == spot
          and t[0]["lastStatus"] == "RUNNING", "its worker runs on the provider")
    refused("InvalidParameterException", "CreateService with a strategy and a launch type",
            ecs.create_service, cluster=cluster, serviceName="x", taskDefinition=gpu_td,
            capacityProviderStrategy=strategy, launchType="FARGATE", networkConfiguration=net)
    refused("InvalidParameterException", "UpdateService to a provider of another cluster",
            ecs.update_service, cluster=cluster, service="gpu-workers", forceNewDeployment=True,
            capacityProviderStrategy=[{"capacityProvider": other_provider, "weight": 1}])
    cp = ecs.delete_capacity_provider(capacityProvider=spot, cluster=cluster)["capacityProvider"]
    check(cp["status"] == "ACTIVE" and cp["updateStatus"] == "DELETE_FAILED"
          and "gpu-workers" in cp["updateStatusReason"],
          "DeleteCapacityProvider in a service's strategy: DELETE_FAILED, still ACTIVE")
    ecs.update_service(cluster=cluster, service="gpu-workers", desiredCount=0)
    ecs.delete_service(cluster=cluster, service="gpu-workers")


def check_mi_delete(cluster, other, spot, other_provider, gpu_td, net):
    refused("InvalidParameterException", "DeleteCapacityProvider from another cluster",
            ecs.delete_capacity_provider, capacityProvider=spot, cluster=other)
    cp = ecs.delete_capacity_provider(capacityProvider=spot, cluster=cluster)["capacityProvider"]
    check(cp["status"] == "DEPROVISIONING" and cp["updateStatus"] == "DELETE_IN_PROGRESS",
          "DeleteCapacityProvider: DEPROVISIONING, DELETE_IN_PROGRESS")
    cp = ecs.describe_capacity_providers(capacityProviders=[spot])["capacityProviders"][0]
    listed = ecs.describe_clusters(clusters=[cluster])["clusters"][0]["capacityProviders"]
    check(cp["status"] == "INACTIVE" and cp["updateStatus"] == "DELETE_COMPLETE"
          and spot not in listed, "then INACTIVE, DELETE_COMPLETE, off its cluster")
    refused("InvalidParameterException", "RunTask on a deleted provider",
            run, cluster=cluster, td=gpu_td, net=net, config={}, provider=spot)
    refused("ClientException", "DeleteCapacityProvider of a deleted provider",
            ecs.delete_capacity_provider, capacityProvider=spot, cluster=cluster)
    refused("ClusterContainsCapacityProviderException", "DeleteCluster with a provider left",
            ecs.delete_cluster, cluster=other)
    ecs.delete_capacity_provider(capacityProvider=other_provider, cluster=other)
    check(ecs.delete_cluster(cluster=other)["cluster"]["status"] == "INACTIVE",
          "DeleteCluster once its providers are deleted")


def check_mi_quota(job):
    """Managed Instances tasks are not Fargate's: no Fargate vCPU quota, not counted in it."""
    account = str(uuid.uuid4().int)[:12]  # a fresh account: quotas and held tasks are its own
    ecs_b, iam_b = client("ecs", account), client("iam", account)
    cluster, td, net = setup(ecs_b, client("ec2", account))
    infra, profile = mi_roles(iam_b, job)
    ecs_b.create_capacity_provider(name=f"jobrun-{job}-gpu", cluster=cluster,
                                   managedInstancesProvider=mi_config(infra, profile, net))
    gpu_td = gpu_task_definition(ecs_b)["taskDefinitionArn"]
    client("service-quotas", account).request_service_quota_increase(
        ServiceCode="fargate", QuotaCode="L-3032A538", DesiredValue=0.25)
    hold = {"fake": {"hold": True}}
    r = run(cluster, gpu_td, net, hold, provider=f"jobrun-{job}-gpu", ecs=ecs_b)
    check(len(r["tasks"]) == 1, "a 4 vCPU Managed Instances task under a 0.25 vCPU Fargate quota")
    r = run(cluster, td, net, hold, ecs=ecs_b)
    check(len(r["tasks"]) == 1, "a 0.25 vCPU Fargate task beside it: MI tasks not counted")
    r = run(cluster, td, net, hold, ecs=ecs_b)
    check(r["tasks"] == [] and "limit on the number of vCPUs" in r["failures"][0]["reason"],
          "the next Fargate task is over the quota")


def managed_instances(cluster, td, net):
    job = "check" + uuid.uuid4().hex[:6]
    infra, profile = check_mi_iam(job)
    other = ecs.create_cluster(clusterName=cluster + "-other")["cluster"]["clusterName"]
    spot, demand = check_mi_create(cluster, job, infra, profile, net)
    other_provider = f"jobrun-{job}-other"
    ecs.create_capacity_provider(name=other_provider, cluster=other,
                                 managedInstancesProvider=mi_config(infra, profile, net))
    check_mi_create_refusals(cluster, job, infra, profile, net)
    check_mi_describe_update(cluster, other, spot, demand, infra, profile, net)
    gpu_td = check_mi_task_definitions()
    check_mi_run(cluster, other, spot, gpu_td, td, net)
    check_mi_service(cluster, other_provider, spot, gpu_td, net)
    check_mi_delete(cluster, other, spot, other_provider, gpu_td, net)
    config = mi_config(infra, profile, net)
    cp = ecs.create_capacity_provider(name=spot, cluster=cluster,
                                      managedInstancesProvider=config)["capacityProvider"]
    check(cp["status"] == "ACTIVE", "a deleted (INACTIVE) provider's name can be used again")
    for name in (spot, demand):
        ecs.delete_capacity_provider(capacityProvider=name, cluster=cluster)
    check_mi_iam_teardown(job)
    check_mi_quota(job)


def main():
    cluster, td, net = setup()

    # plain task: exit 0, EssentialContainerExited, timestamps, provider FARGATE
    r = run(cluster, td, net, {"n": 1})
    check(len(r["tasks"]) == 1 and not r["failures"], "RunTask with capacity provider FARGATE launches one task")
    t = r["tasks"][0]
    check(t.get("capacityProviderName") == "FARGATE" and t.get("launchType") == "FARGATE",
          "capacityProviderName FARGATE, launchType FARGATE")
    check("startedAt" in t and "exitCode" not in t["containers"][0], "startedAt set, no exitCode while running")
    t = wait_stopped(cluster, t["taskArn"])
    c = t["containers"][0]
    check(t["lastStatus"] == "STOPPED", "task reaches STOPPED")
    check(c.get("exitCode") == 0 and t.get("stopCode") == "EssentialContainerExited", "exit 0 / EssentialContainerExited")
    check(t.get("stoppedReason") == "Essential container in task exited", "default stoppedReason")
    check("stoppedAt" in t and t["stoppedAt"] >= t["startedAt"], "stoppedAt >= startedAt")

    # scripted failure on FARGATE_SPOT via capacityProviderStrategy
    r = run(cluster, td, net, {"fake": {"exit": 3}}, spot=True)
    t = r["tasks"][0]
    check(t.get("capacityProviderName") == "FARGATE_SPOT" and t.get("launchType") == "FARGATE",
          "capacityProviderStrategy FARGATE_SPOT runs as FARGATE with capacityProviderName")
    t = wait_stopped(cluster, t["taskArn"])
    check(t["containers"][0].get("exitCode") == 3, "fake exit 3")

    # a launch type and a strategy together: refused, as AWS does (no plugin may add one)
    try:
        run(cluster, td, net, {}, launchType="FARGATE")
        check(False, "launchType with capacityProviderStrategy is refused")
    except ecs.exceptions.InvalidParameterException as e:
        check("not both" in str(e), "launchType with capacityProviderStrategy is refused")

    # a task-level size override: one of Fargate's sizes, else ClientException
    r = run(cluster, td, net, {}, overrides={"cpu": "256", "memory": "1024",
            "containerOverrides": [{"name": "job", "environment": []}]})
    check(len(r["tasks"]) == 1, "RunTask with a Fargate size override (256/1024) launches")
    try:
        run(cluster, td, net, {}, overrides={"memory": "3072",
            "containerOverrides": [{"name": "job", "environment": []}]})
        check(False, "a memory override not on Fargate's table for 256 CPU is refused")
    except ecs.exceptions.ClientException:
        check(True, "a memory override not on Fargate's table for 256 CPU is refused")

    # spot interruption, until_attempt
    fake = {"fake": {"stop_code": "SpotInterruption", "exit": 143, "until_attempt": 3}}
    t = wait_stopped(cluster, run(cluster, td, net, fake, attempt=2, spot=True)["tasks"][0]["taskArn"])
    check(t.get("stopCode") == "SpotInterruption" and t.get("stoppedReason") == "Your Spot Task was interrupted.",
          "SpotInterruption with default reason (attempt 2 < until_attempt 3)")
    t = wait_stopped(cluster, run(cluster, td, net, fake, attempt=3, spot=True)["tasks"][0]["taskArn"])
    check(t.get("stopCode") == "EssentialContainerExited" and t["containers"][0].get("exitCode") == 0,
          "attempt 3 >= until_attempt succeeds")

    # failed to start: no exit code
    fake = {"fake": {"stop_code": "TaskFailedToStart"}}
    t = wait_stopped(cluster, run(cluster, td, net, fake)["tasks"][0]["taskArn"])
    check(t.get("stopCode") == "TaskFailedToStart" and "exitCode" not in t["containers"][0]
          and t.get("stoppedReason") == "CannotPullContainerError: fake", "TaskFailedToStart without exitCode")

    # hold + StopTask
    arn = run(cluster, td, net, {"fake": {"hold": True}})["tasks"][0]["taskArn"]
    for _ in range(8):
        t = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
    check(t["lastStatus"] == "RUNNING" and "stopCode" not in t, "hold keeps the task RUNNING")
    s = ecs.stop_task(cluster=cluster, task=arn, reason="cancelled by jobrun")["task"]
    check(s["lastStatus"] == "STOPPED" and s.get("stopCode") == "UserInitiated", "StopTask -> STOPPED UserInitiated")
    t = ecs.describe_tasks(cluster=cluster, tasks=[arn])["tasks"][0]
    check(t.get("stoppedReason") == "cancelled by jobrun" and t["containers"][0].get("exitCode") == 143
          and "stoppedAt" in t, "stopped task: reason passed, exitCode 143, stoppedAt")

    # no spot capacity
    r = run(cluster, td, net, {"fake": {"spot_capacity": False}}, spot=True)
    check(r["tasks"] == [] and r["failures"] == [{"arn": td, "reason": "Capacity is unavailable at this time. "
          "Please try again later or in a different availability zone"}], "spot_capacity false -> failures entry")
    r = run(cluster, td, net, {"fake": {"spot_capacity": False}})
    check(len(r["tasks"]) == 1, "spot_capacity false still launches on FARGATE")

    # logs
    r = run(cluster, td, net, {"fake": {"logs": ["hello", "world"]}}, index=7)
    tid = r["tasks"][0]["taskArn"].split("/")[-1]
    ev = logs.get_log_events(logGroupName="/jobrun/x", logStreamName=f"jobrun/job/{tid}", startFromHead=True)
    check([e["message"] for e in ev["events"]] == ["hello", "world"], "fake logs in jobrun/job/<task id>")
    r = run(cluster, td, net, {"k": "v"}, index=4, attempt=2)
    tid = r["tasks"][0]["taskArn"].split("/")[-1]
    ev = logs.get_log_events(logGroupName="/jobrun/x", logStreamName=f"jobrun/job/{tid}", startFromHead=True)
    msgs = [e["message"] for e in ev["events"]]
    check(msgs == ["task 4 attempt 2", 'config {"k": "v"}'], f"default logs {msgs}")
    ts = [e["timestamp"] for e in ev["events"]]
    check(ts == sorted(ts) and len(set(ts)) == len(ts), "log timestamps increase")

    # a service tagged jobrun-fake-workers runs its desired count, which come up after the spans
    svc = ecs.create_service(cluster=cluster, serviceName="workers", taskDefinition=td,
                             desiredCount=0, launchType="FARGATE", networkConfiguration=net,
                             tags=[{"key": "jobrun-fake-workers",
                                    "value": json.dumps({"provisioning": 0.2, "pull": 0.2})}])
    ecs.update_service(cluster=cluster, service="workers", desiredCount=2)
    arns = ecs.list_tasks(cluster=cluster, serviceName="workers")["taskArns"]
    check(len(arns) == 2, "UpdateService desiredCount 2 runs two tasks, listed by serviceName")
    first = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
    check(all(t["lastStatus"] == "PENDING" and "pullStartedAt" not in t for t in first),
          "a new worker is PENDING, its pull not started yet")
    import time
    time.sleep(0.5)
    later = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
    check(all(t["lastStatus"] == "RUNNING" and t["startedAt"] >= t["pullStoppedAt"]
              >= t["pullStartedAt"] > t["createdAt"] for t in later),
          "after the spans it is RUNNING with createdAt < pullStartedAt <= pullStoppedAt <= startedAt")
    ecs.update_service(cluster=cluster, service="workers", desiredCount=0)
    check(ecs.list_tasks(cluster=cluster, serviceName="workers")["taskArns"] == [],
          "desiredCount 0 stops them")
    check(svc["service"]["serviceName"] == "workers", "service made")

    managed_instances(cluster, td, net)
    print("all plugin checks passed")


if __name__ == "__main__":
    main()
