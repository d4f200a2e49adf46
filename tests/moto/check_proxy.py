#!/usr/bin/env python3
"""Check aws_proxy.py in front of jobrun_moto.py.

Usage: tests/.venv/bin/python3 tests/moto/check_proxy.py [MOTO_URL]   (tests/setup makes the venv)
Without MOTO_URL it starts jobrun_moto.py itself; it always starts its own proxies.
Prints one line per check and the proxy counters; exits non-zero on a failed check.
Checks: scripted errors (POST /__proxy/faults) for AWS JSON (ECS, SQS), AWS query (EC2, IAM,
STS) and S3 REST calls; S3 (REST-XML) and EC2 requests checked against AWS's models: what AWS
refuses is refused with ValidationException, well-formed botocore calls pass; RunTask
clientToken idempotency under random faults; rate limits.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
CREDS = dict(region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
procs = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, ready):
    p = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(p)
    if ready is None:
        return p
    line = p.stdout.readline()
    assert line.strip() == ready, f"{args[0]} did not become ready: {line!r}"
    return p


def start_moto():
    port = free_port()
    start([os.path.join(HERE, "jobrun_moto.py"), "-H", "127.0.0.1", "-p", str(port)], None)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            return url
        except OSError:
            time.sleep(0.1)
    raise SystemExit("moto did not start")


def start_proxy(moto, *flags):
    port = free_port()
    start([os.path.join(HERE, "aws_proxy.py"), "--upstream", moto, "--port", str(port), *flags], "ready")
    return f"http://127.0.0.1:{port}"


def stats(proxy):
    return json.load(urllib.request.urlopen(proxy + "/__proxy/stats"))


def ecs_client(url, **retries):
    cfg = Config(retries=retries or {"mode": "standard", "max_attempts": 10},
                 max_pool_connections=32, connect_timeout=5, read_timeout=30)
    return boto3.client("ecs", endpoint_url=url, config=cfg, **CREDS)


def launch_many(ecs, cluster, td, net, n, threads, started_by, app_retries=5):
    """n RunTask calls with distinct clientTokens -> (arns, client errors seen)."""
    errors = []

    def one(i):
        token = str(uuid.uuid4())
        for _ in range(app_retries):  # like jobrun: retry the same call with the same token
            try:
                r = ecs.run_task(cluster=cluster, taskDefinition=td, networkConfiguration=net,
                                 launchType="FARGATE", startedBy=started_by, clientToken=token)
                return [t["taskArn"] for t in r["tasks"]]
            except (ClientError, BotoCoreError) as e:
                errors.append(type(e).__name__ + ":" + getattr(e, "response", {}).get("Error", {}).get("Code", ""))
        return []

    with ThreadPoolExecutor(threads) as pool:
        arns = [a for batch in pool.map(one, range(n)) for a in batch]
    return arns, errors


def moto_tasks(moto_ecs, cluster, started_by):
    arns = []
    for page in moto_ecs.get_paginator("list_tasks").paginate(cluster=cluster, startedBy=started_by):
        arns += page["taskArns"]
    return arns


def post(proxy, path, payload=None):
    """POST to the proxy's control API -> (status, JSON answer)."""
    data = json.dumps(payload).encode() if payload is not None else b""
    req = urllib.request.Request(proxy + path, data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def client(name, url, **cfg):
    """A boto3 client without retries, so every call is one request."""
    config = Config(retries={"total_max_attempts": 1}, **cfg)
    return boto3.client(name, endpoint_url=url, config=config, **CREDS)


def fails(call):
    """call() -> its ClientError's (HTTP status, code, message, content type); None if it worked."""
    try:
        call()
    except ClientError as e:
        meta = e.response["ResponseMetadata"]
        return (meta["HTTPStatusCode"], e.response["Error"].get("Code"),
                e.response["Error"].get("Message"), meta["HTTPHeaders"].get("content-type"))
    return None


def check_scripted(moto):
    """POST /__proxy/faults: AWS's own errors, K times, for one operation (and resource)."""
    proxy = start_proxy(moto)
    fault = lambda **f: check(post(proxy, "/__proxy/faults", f) == (200, {"queued": 1}), f"queued {f}")

    # AWS JSON 1.1: ECS
    ecs, moto_ecs = client("ecs", proxy), client("ecs", moto)
    cluster = "scripted-" + uuid.uuid4().hex[:6]
    moto_ecs.create_cluster(clusterName=cluster)
    msg = "The Cluster cannot be deleted while Tasks are active."
    fault(service="ecs", operation="DeleteCluster", times=2, status=400,
          code="ClusterContainsTasksException", message=msg)
    got = [fails(lambda: ecs.delete_cluster(cluster=cluster)) for _ in range(3)]
    check(got[:2] == [(400, "ClusterContainsTasksException", msg, "application/x-amz-json-1.1")] * 2
          and got[2] is None, f"ecs DeleteCluster: 2 x ClusterContainsTasksException, then moto's answer {got}")
    check(moto_ecs.describe_clusters(clusters=[cluster])["clusters"][0]["status"] == "INACTIVE",
          "the third DeleteCluster reached moto")
    # match: only the named cluster's calls fail; retries see a transient error go away
    fault(service="ecs", operation="DescribeClusters", times=2, status=400, code="ThrottlingException",
          message="Rate exceeded", match="other-" + cluster)
    check(fails(lambda: ecs.describe_clusters(clusters=[cluster])) is None,
          "a fault with match leaves calls about other resources alone")
    retrying = ecs_client(proxy)  # standard mode retries ThrottlingException
    check(retrying.describe_clusters(clusters=["other-" + cluster])["failures"] != [],
          "botocore's retries outlast 2 scripted throttles")
    s = stats(proxy)
    check(s["faults"].get("ecs:DeleteCluster") == 2 and s["faults"].get("ecs:DescribeClusters") == 2
          and s["requests"].get("DeleteCluster") == 3,
          f"stats count fires per service:operation, and every request {s['faults']}")

    # AWS JSON 1.0 with SQS's query-compatible code header
    sqs = client("sqs", proxy)
    queue = "scripted-" + uuid.uuid4().hex[:6]
    client("sqs", moto).create_queue(QueueName=queue)
    fault(service="sqs", operation="GetQueueUrl", code="com.amazonaws.sqs#QueueDoesNotExist",
          message="The specified queue does not exist.", match=queue,
          headers={"x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender"})
    got = fails(lambda: sqs.get_queue_url(QueueName=queue))
    check(got == (400, "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.",
                  "application/x-amz-json-1.0"), f"sqs GetQueueUrl (JSON 1.0) fault {got}")
    check(sqs.get_queue_url(QueueName=queue)["QueueUrl"].endswith("/" + queue), "then it is forwarded")

    # AWS query, EC2's error shape
    ec2, moto_ec2 = client("ec2", proxy), client("ec2", moto)
    vpc = moto_ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    sg1, sg2 = (moto_ec2.create_security_group(GroupName=f"scripted-{uuid.uuid4().hex[:6]}",
                                               Description="x", VpcId=vpc)["GroupId"] for _ in range(2))
    msg = f"resource {sg1} has a dependent object"
    fault(service="ec2", operation="DeleteSecurityGroup", code="DependencyViolation", message=msg, match=sg1)
    check(fails(lambda: ec2.delete_security_group(GroupId=sg2)) is None, "ec2: the other group is deleted")
    got = fails(lambda: ec2.delete_security_group(GroupId=sg1))
    check(got and got[:3] == (400, "DependencyViolation", msg) and got[3].startswith("text/xml"),
          f"ec2 DeleteSecurityGroup (query, EC2 errors) fault {got}")
    check(fails(lambda: ec2.delete_security_group(GroupId=sg1)) is None, "ec2: then it is deleted")

    # AWS query, IAM and STS (<ErrorResponse>)
    iam = client("iam", proxy)
    fault(service="iam", operation="GetRole", status=404, code="NoSuchEntity",
          message="The role with name jobrun-x cannot be found.")
    got = fails(lambda: iam.get_role(RoleName="jobrun-x"))
    check(got and got[:3] == (404, "NoSuchEntity", "The role with name jobrun-x cannot be found."),
          f"iam GetRole fault {got}")
    fault(service="sts", operation="GetCallerIdentity", status=403, code="ExpiredToken",
          message="The security token included in the request is expired")
    got = fails(lambda: client("sts", proxy).get_caller_identity())
    check(got and got[:2] == (403, "ExpiredToken"), f"sts GetCallerIdentity fault {got}")
    check(client("sts", proxy).get_caller_identity()["Account"], "then sts answers")
    # a scripted answer: a 200 with the body given (an operation moto lacks)
    answer = ("<SimulatePrincipalPolicyResponse><SimulatePrincipalPolicyResult><IsTruncated>false"
              "</IsTruncated><EvaluationResults><member><EvalActionName>ecs:CreateCluster"
              "</EvalActionName><EvalResourceName>*</EvalResourceName><EvalDecision>implicitDeny"
              "</EvalDecision></member></EvaluationResults></SimulatePrincipalPolicyResult>"
              "</SimulatePrincipalPolicyResponse>")
    fault(service="iam", operation="SimulatePrincipalPolicy", status=200, code="Answer", body=answer)
    got = iam.simulate_principal_policy(PolicySourceArn="arn:aws:iam::123456789012:user/u",
                                        ActionNames=["ecs:CreateCluster"])
    check([r["EvalDecision"] for r in got["EvaluationResults"]] == ["implicitDeny"],
          f"iam SimulatePrincipalPolicy answered as scripted {got['EvaluationResults']}")

    # S3 REST
    s3 = client("s3", proxy, s3={"addressing_style": "path"})
    bucket = "scripted-" + uuid.uuid4().hex[:6]
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="runs/a/out.json", Body=b"{}")
    fault(service="s3", operation="HeadObject", status=404, code="NotFound", message="Not Found")
    got = fails(lambda: s3.head_object(Bucket=bucket, Key="runs/a/out.json"))
    check(got and got[:2] == (404, "404"), f"s3 HeadObject fault (HEAD: no body) {got}")
    check(s3.head_object(Bucket=bucket, Key="runs/a/out.json")["ContentLength"] == 2, "then HEAD works")
    fault(service="s3", operation="GetObject", status=503, code="SlowDown", message="Please reduce your request rate.")
    got = fails(lambda: s3.get_object(Bucket=bucket, Key="runs/a/out.json"))
    check(got and got[:3] == (503, "SlowDown", "Please reduce your request rate."), f"s3 GetObject fault {got}")
    fault(service="s3", operation="ListObjectsV2", status=403, code="AccessDenied", message="Access Denied",
          match="prefix=runs%2Fb")
    check(fails(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="runs/a")) is None
          and fails(lambda: s3.list_objects(Bucket=bucket, Prefix="runs/b")) is None,
          "s3 ListObjectsV2 fault with match spares other prefixes and ListObjects (v1)")
    got = fails(lambda: s3.list_objects_v2(Bucket=bucket, Prefix="runs/b"))
    check(got and got[:3] == (403, "AccessDenied", "Access Denied") and got[3] == "application/xml",
          f"s3 ListObjectsV2 fault {got}")
    fault(service="s3", operation="GetBucketLocation", status=403, code="AccessDenied", message="Access Denied")
    fault(service="s3", operation="PutBucketNotificationConfiguration", status=400,
          code="InvalidArgument", message="Unable to validate the following destination configurations")
    got = (fails(lambda: s3.get_bucket_location(Bucket=bucket)),
           fails(lambda: s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})))
    check(got[0][:2] == (403, "AccessDenied") and got[1][:2] == (400, "InvalidArgument"),
          f"s3 GetBucketLocation and PutBucketNotificationConfiguration faults {got}")
    check(s3.get_object(Bucket=bucket, Key="runs/a/out.json")["Body"].read() == b"{}"
          and fails(lambda: s3.put_bucket_notification_configuration(Bucket=bucket,
                                                                      NotificationConfiguration={})) is None,
          "then S3 calls are forwarded")

    print(f"scripted faults fired: {json.dumps(stats(proxy)['faults'])}")

    # bad specs are refused; reset drops what is queued
    check(post(proxy, "/__proxy/faults", {"service": "ecs", "operation": "RunTask"})[0] == 400,
          "a fault without a code is refused with 400")
    fault(service="ecs", operation="ListClusters", times=5, code="AccessDeniedException", message="no")
    check(post(proxy, "/__proxy/reset")[0] == 200 and fails(lambda: ecs.list_clusters()) is None
          and stats(proxy)["faults"] == {} and stats(proxy)["scripted"] == [],
          "POST /__proxy/reset drops queued faults and their counts")


def set_header(c, operation, name, value):
    """Every `operation` request of client c goes with header `name: value` (replacing botocore's
    own), e.g. a value botocore itself refuses to send."""
    def put(request, **_):
        del request.headers[name]  # HTTPHeaders appends on assignment
        request.headers[name] = value
    c.meta.events.register(f"before-sign.{c.meta.service_model.endpoint_prefix}.{operation}", put)
    return c


def check_model_valid(proxy, moto):
    """Well-formed S3 and EC2 calls, as botocore sends them, of the operations jobrun makes (and
    a few more), all through the proxy."""
    s3 = client("s3", proxy, s3={"addressing_style": "path"})
    bucket = "model-" + uuid.uuid4().hex[:6]
    # jobrun's bucket (src/infra/resources/bucket.rs) and trigger (trigger.rs)
    s3.create_bucket(Bucket=bucket)
    s3.head_bucket(Bucket=bucket)
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "jobrun:managed", "Value": "jobrun"},
                                                             {"Key": "jobrun:job", "Value": "j"}]})
    s3.get_bucket_tagging(Bucket=bucket)
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True})
    s3.get_public_access_block(Bucket=bucket)
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.get_bucket_encryption(Bucket=bucket)
    s3.get_bucket_location(Bucket=bucket)
    sqs = client("sqs", moto)
    queue = sqs.create_queue(QueueName=bucket)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    rules = [{"Name": "prefix", "Value": "in/"}, {"Name": "suffix", "Value": ".csv"}]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"Id": "jobrun-j", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
                                 "Filter": {"Key": {"FilterRules": rules}}}]})
    s3.get_bucket_notification_configuration(Bucket=bucket)
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
        {"ID": "runs", "Status": "Enabled", "Filter": {"Prefix": "runs/"}, "Expiration": {"Days": 30},
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})
    s3.get_bucket_lifecycle_configuration(Bucket=bucket)
    # objects: jobrun's outputs (src/outputs/s3.rs) and records (src/aws.rs, dispatch/lease.rs)
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"runs/r 1/{i}.json", Body=b"{}", ContentType="application/json")
    s3.put_object(Bucket=bucket, Key="runs/sum.bin", Body=b"abc", ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket=bucket, Key="runs/lease.json", Body=b"{}", IfNoneMatch="*")
    keys, token = [], None
    while True:
        page = s3.list_objects_v2(Bucket=bucket, Prefix="runs/r 1/", MaxKeys=1,
                                  **({"ContinuationToken": token} if token else {}))
        keys += [o["Key"] for o in page.get("Contents", [])]
        token = page.get("NextContinuationToken")
        if not token:
            break
    check(keys == [f"runs/r 1/{i}.json" for i in range(3)], f"ListObjectsV2 pages by continuation token {keys}")
    s3.list_objects_v2(Bucket=bucket, Prefix="runs/", Delimiter="/")
    check(s3.head_object(Bucket=bucket, Key="runs/sum.bin")["ContentLength"] == 3, "HeadObject")
    got = s3.get_object(Bucket=bucket, Key="runs/sum.bin", Range="bytes=1-2")["Body"].read()
    check(got == b"bc", f"GetObject with Range {got}")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="runs/big.bin")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="runs/big.bin", UploadId=upload, PartNumber=1,
                          Body=b"x" * 1024)["ETag"]
    s3.list_parts(Bucket=bucket, Key="runs/big.bin", UploadId=upload)
    s3.complete_multipart_upload(Bucket=bucket, Key="runs/big.bin", UploadId=upload,
                                 MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]})
    aborted = s3.create_multipart_upload(Bucket=bucket, Key="runs/gone.bin")["UploadId"]
    s3.abort_multipart_upload(Bucket=bucket, Key="runs/gone.bin", UploadId=aborted)
    s3.copy_object(Bucket=bucket, Key="runs/copy.json", CopySource=f"{bucket}/runs/r 1/0.json",
                   MetadataDirective="REPLACE", Metadata={"run": "r1"}, ContentType="application/json")
    s3.delete_object(Bucket=bucket, Key="runs/lease.json")
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in listed], "Quiet": True})
    s3.delete_bucket(Bucket=bucket)

    # EC2: jobrun's network (src/infra/resources/network.rs), and the security group calls
    ec2 = client("ec2", proxy)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]},
                                            {"Name": "default-for-az", "Values": ["true", "false"]}])
    first = subnets["Subnets"][0]["SubnetId"]
    ec2.describe_subnets(SubnetIds=[first])
    ec2.describe_subnets(MaxResults=5)
    ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
    name = "model-" + uuid.uuid4().hex[:6]
    group = ec2.create_security_group(GroupName=name, Description=f"jobrun job {name}: egress only", VpcId=vpc,
                                      TagSpecifications=[{"ResourceType": "security-group", "Tags": [
                                          {"Key": "jobrun:managed", "Value": "jobrun"}]}])["GroupId"]
    ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]},
                                          {"Name": "vpc-id", "Values": [vpc]}])
    https = [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=https)
    ec2.authorize_security_group_egress(GroupId=group, IpPermissions=https)
    rules = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]
    ec2.revoke_security_group_ingress(GroupId=group, IpPermissions=rules["IpPermissions"])
    ec2.revoke_security_group_egress(GroupId=group, IpPermissions=rules["IpPermissionsEgress"])
    ec2.describe_network_interfaces(Filters=[{"Name": "group-id", "Values": [group]}])
    ec2.delete_security_group(GroupId=group)


def check_model(moto):
    """S3's REST-XML and EC2's query are decoded and checked against botocore's models."""
    proxy = start_proxy(moto)
    check_model_valid(proxy, moto)
    s = stats(proxy)
    model, requests = s["model"], s["requests"]
    strays = [k for k in model["unchecked"] if k.startswith(("s3:", "ec2:"))]
    check(model["violations"] == [] and not strays,
          f"well-formed S3 and EC2 calls pass the model check {model['violations']} {strays}")
    made = sum(n for k, n in requests.items() if k.startswith("s3:"))
    check(model["protocols"].get("rest-xml") == made and model["protocols"].get("ec2") == 14,
          f"every S3 request ({made}) and the EC2 ones are counted checked {model['protocols']}")
    for op in ("s3:PutObject", "s3:CopyObject", "s3:DeleteObjects", "s3:ListObjectsV2", "s3:HeadObject",
               "s3:CreateMultipartUpload", "s3:UploadPart", "s3:CompleteMultipartUpload",
               "s3:PutBucketLifecycleConfiguration", "s3:PutBucketNotificationConfiguration",
               "ec2:DescribeSubnets", "ec2:CreateSecurityGroup", "ec2:RevokeSecurityGroupEgress"):
        check(op in model["operations"], f"{op} model-checked")

    # What AWS refuses: 400 ValidationException, and a violation in the stats.
    loose = dict(parameter_validation=False)  # botocore's own check would stop these first
    s3 = client("s3", proxy, s3={"addressing_style": "path"}, **loose)
    bucket = "model-bad-" + uuid.uuid4().hex[:6]
    s3.create_bucket(Bucket=bucket)
    bad_algorithm = set_header(client("s3", proxy, s3={"addressing_style": "path"}),
                               "PutObject", "x-amz-sdk-checksum-algorithm", "CRC99")
    bad_upload = set_header(client("s3", proxy, s3={"addressing_style": "path"}),
                            "CreateMultipartUpload", "x-amz-checksum-algorithm", "ADLER32")
    s3.put_object(Bucket=bucket, Key="a", Body=b"{}")
    ec2 = client("ec2", proxy, **loose)
    refused = [
        ("s3:PutBucketLifecycleConfiguration", "Rules[0].Status: 'On'",
         lambda: s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": [
             {"ID": "r", "Status": "On", "Filter": {"Prefix": ""}, "Expiration": {"Days": 1}}]})),
        ("s3:DeleteObjects", "Delete.Objects: required",
         lambda: s3.delete_objects(Bucket=bucket, Delete={"Quiet": True})),
        ("s3:CopyObject", "MetadataDirective: 'KEEP'",
         lambda: s3.copy_object(Bucket=bucket, Key="b", CopySource=f"{bucket}/a", MetadataDirective="KEEP")),
        ("s3:PutObject", "ChecksumAlgorithm: 'CRC99'",
         lambda: bad_algorithm.put_object(Bucket=bucket, Key="c", Body=b"{}")),
        ("s3:CreateMultipartUpload", "ChecksumAlgorithm: 'ADLER32'",
         lambda: bad_upload.create_multipart_upload(Bucket=bucket, Key="d")),
        ("s3:ListObjectsV2", "MaxKeys: 'ten' is not a number",
         lambda: s3.list_objects_v2(Bucket=bucket, MaxKeys="ten")),
        ("ec2:DescribeSubnets", "MaxResults: value 1 below the minimum 5",
         lambda: ec2.describe_subnets(MaxResults=1)),
    ]
    for op, what, call in refused:
        got = fails(call)
        seen = [v for v in stats(proxy)["model"]["violations"] if v["operation"] == op]
        check(got and got[:2] == (400, "ValidationException") and what in (got[2] or "")
              and seen and any(what in e for e in seen[-1]["errors"]),
              f"{op} refused: {what} {got}")
    check(len(stats(proxy)["model"]["violations"]) == len(refused), "one violation per refused request")
    check([o["Key"] for o in client("s3", moto).list_objects_v2(Bucket=bucket)["Contents"]] == ["a"],
          "the refused S3 requests did not reach moto")


def check_sqs_characters(moto):
    """A message body with a character outside SQS's set is refused (moto takes it); the same
    character escaped in JSON is plain text and passes."""
    proxy = start_proxy(moto)
    sqs = client("sqs", proxy)
    url = sqs.create_queue(QueueName="proxy-chars")["QueueUrl"]
    for bad in ("a\u0000b", "x\uffff"):
        got = fails(lambda: sqs.send_message(QueueUrl=url, MessageBody=bad))
        check(got is not None and got[:2] == (400, "InvalidMessageContents"),
              f"SendMessage of {bad!r}: InvalidMessageContents ({got})")
    got = fails(lambda: sqs.send_message_batch(QueueUrl=url, Entries=[
        {"Id": "0", "MessageBody": "ok"}, {"Id": "1", "MessageBody": "\ufffe"}]))
    check(got is not None and got[1] == "InvalidMessageContents",
          f"SendMessageBatch with one such body: InvalidMessageContents ({got})")
    check(fails(lambda: sqs.send_message(QueueUrl=url, MessageBody='{"s": "\\u0000\\uffff"}'))
          is None, "the same characters escaped in JSON pass")
    sqs.delete_queue(QueueUrl=url)


def main():
    import check_plugin  # reuse its cluster / task definition / network setup

    moto = sys.argv[1] if len(sys.argv) > 1 else start_moto()
    for name in ("ecs", "ec2", "logs"):
        setattr(check_plugin, name, boto3.client(name, endpoint_url=moto, **CREDS))
    cluster, td, net = check_plugin.setup()
    moto_ecs = check_plugin.ecs

    check_scripted(moto)
    check_model(moto)
    check_sqs_characters(moto)

    # --- idempotency and faults -------------------------------------------------------------
    proxy = start_proxy(moto, "--fault-rate", "0.2", "--seed", "1")
    ecs = ecs_client(proxy)
    t0 = time.time()
    arns, errors = launch_many(ecs, cluster, td, net, 200, 8, "proxy-faults")
    s = stats(proxy)
    in_moto = moto_tasks(moto_ecs, cluster, "proxy-faults")
    print(f"fault run: {time.time() - t0:.1f}s, stats {json.dumps(s)}")
    print(f"           client errors after botocore retries: {len(errors)} {sorted(set(errors))}")
    check(len(set(arns)) == 200, f"200 distinct task ARNs returned to the client ({len(set(arns))})")
    check(len(set(in_moto)) == 200 and set(in_moto) == set(arns), f"exactly 200 tasks in moto ({len(in_moto)})")
    check(s["faults"].get("drop_response", 0) > 0 and s["token_replays"] > 0,
          "some responses were lost after launching and were answered by token replay")

    # same token twice, and concurrently, reaches moto once
    quiet = start_proxy(moto)
    ecs = ecs_client(quiet)
    kw = dict(cluster=cluster, taskDefinition=td, networkConfiguration=net, launchType="FARGATE",
              startedBy="proxy-dupe", clientToken="dupe-token")
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: ecs.run_task(**kw)["tasks"][0]["taskArn"], range(10)))
    s = stats(quiet)
    check(len(set(results)) == 1 and len(moto_tasks(moto_ecs, cluster, "proxy-dupe")) == 1
          and s["token_replays"] == 9 and s["run_task_launched"] == 1,
          "10 concurrent RunTask with one clientToken launch one task (9 replays)")

    # --- rate limits --------------------------------------------------------------------------
    proxy = start_proxy(moto, "--rates")
    ecs = ecs_client(proxy, total_max_attempts=1)
    t0 = time.time()
    arns, errors = launch_many(ecs, cluster, td, net, 200, 20, "proxy-rates", app_retries=1)
    s = stats(proxy)
    throttled = errors.count("ClientError:ThrottlingException")
    print(f"rates, no retries: {time.time() - t0:.1f}s, launched {len(arns)}, throttled {throttled}, stats {json.dumps(s)}")
    check(throttled > 0 and s["throttled"].get("RunTask") == throttled and len(arns) + throttled == 200,
          "20 threads x RunTask get throttled, and the proxy counts it")

    urllib.request.urlopen(urllib.request.Request(proxy + "/__proxy/reset", method="POST"))
    ecs = ecs_client(proxy)
    t0 = time.time()
    arns, errors = launch_many(ecs, cluster, td, net, 200, 20, "proxy-rates-retry")
    s = stats(proxy)
    print(f"rates, standard retries: {time.time() - t0:.1f}s, launched {len(arns)}, stats {json.dumps(s)}")
    check(len(arns) == 200 and s["throttled"].get("RunTask", 0) > 0, "with botocore retries all 200 launch despite throttling")

    ecs = ecs_client(proxy, total_max_attempts=1)
    some = arns[:1]

    def describe(_):
        try:
            ecs.describe_tasks(cluster=cluster, tasks=some)
            return "ok"
        except ClientError as e:
            return e.response["Error"]["Code"]

    with ThreadPoolExecutor(20) as pool:
        outcomes = list(pool.map(describe, range(200)))
    s = stats(proxy)
    print(f"describe burst: {outcomes.count('ok')} ok, {outcomes.count('ThrottlingException')} throttled")
    check(s["throttled"].get("DescribeTasks", 0) == outcomes.count("ThrottlingException") > 0,
          "DescribeTasks bursts are throttled too")
    print("all proxy checks passed")


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in procs:
            p.terminate()
