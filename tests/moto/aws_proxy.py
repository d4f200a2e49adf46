#!/usr/bin/env python3
"""An HTTP proxy in front of moto that behaves like AWS where moto does not.

Usage: python3 tests/moto/aws_proxy.py --upstream http://127.0.0.1:MOTO_PORT --port PORT
                                       [--fault-rate 0.2] [--seed 1] [--rates]
Prints "ready" on stdout once it listens on 127.0.0.1:PORT.

moto answers every request perfectly and at once, so it cannot test how jobrun copes with
the AWS it will really meet. This proxy adds, for AWS JSON calls (op = X-Amz-Target suffix):

* clientToken idempotency: moto ignores RunTask's clientToken, so a retried RunTask would
  launch the tasks twice. Here the first 2xx answer per token is cached and replayed to later
  RunTask calls with that token (a per-token lock keeps concurrent duplicates off moto).
* --fault-rate p: each ECS request has probability p of one of (uniformly): a 400
  ThrottlingException, a 500 ServerException, the connection closed before forwarding, or
  the request forwarded (and a RunTask answer cached) but the connection closed instead of
  answering -- "the tasks launched but the response was lost". Deterministic with --seed.
* --rates: AWS-like token buckets: RunTask 20 calls (+20/s) and 100 task launches (+20/s),
  DescribeTasks 50 calls (+20/s). Throttled calls get the ThrottlingException 400.
* --sqs-sink: SendMessageBatch is answered here, not forwarded (moto slows down as a queue
  grows, which would hide jobrun's own speed): each entry gets a message id and is tallied
  (messages per (run, index) body, entries per call, bytes per call).
* --sqs-entry-fault-rate p: each SendMessageBatch entry has probability p of coming back in
  the answer's Failed list (SenderFault false, as SQS reports a transient failure) instead of
  being sent, so only a client that resends exactly the failed entries ends with each once.
* --deleted-wait S: names AWS keeps for a while after a delete. A queue deleted through this proxy
  cannot be made again for S seconds: CreateQueue answers 400 QueueDeletedRecently (with
  x-amzn-query-error AWS.SimpleQueueService.QueueDeletedRecently;Sender), as SQS does for 60 s
  (CreateQueue API Reference). A schedule group deleted through it stays DELETING for S
  seconds: GetScheduleGroup answers it with State DELETING, CreateScheduleGroup 409
  ConflictException (ScheduleGroupSummary, State). Counted in the stats' faults as
  "sqs:deleted-recently" and "scheduler:group-deleting".
* --sqs-entries-fail-once: each entry of a DeleteMessageBatch or ChangeMessageVisibilityBatch
  comes back in the answer's Failed list (SenderFault false, Code InternalError) the first time
  its receipt handle is seen, and is forwarded the next time: SQS answers 200 with per-entry
  failures (DeleteMessageBatch API Reference), so only a client that reads Failed and resends
  those entries gets them all done. Counted in the stats' faults as "sqs:entry-failed".
* Scripted errors, for every request that passes through (not only ECS): POST /__proxy/faults
  with a JSON object (or a list of them) such as
    {"service": "ecs", "operation": "DeleteCluster", "times": 2, "status": 400,
     "code": "ClusterContainsTasksException",
     "message": "The Cluster cannot be deleted while Tasks are active."}
  queues a fault: the next `times` (default 1) requests for that operation get that error,
  written as the service's protocol writes it, instead of being forwarded; after that they are
  forwarded again. Faults are tried in the order queued, the first that fits fires; each
  fire is counted in the stats' "faults" under "service:operation" (e.g. "ecs:DeleteCluster").
    service    the SigV4 signing name from the Authorization credential scope
               (Credential=AKID/DATE/REGION/SERVICE/aws4_request): ecs, sqs, logs,
               application-autoscaling, ec2, iam, sts, s3, ecr, ...
    operation  the API operation name: X-Amz-Target's suffix (AWS JSON), the Action parameter
               (AWS query: EC2, IAM, STS), or for S3's REST API the operation the method, key
               and sub-resource spell (HeadObject, GetObject, PutObject, ListObjectsV2,
               GetBucketLocation, PutBucketNotificationConfiguration, ...); "*" is any
    status     HTTP status (default 400); code (required), message (default "")
    match      optional: a substring the request's body or path (raw or URL-decoded) must
               contain, to fault one resource only (a queue name, a group id, a key)
    headers    optional: extra response headers, e.g. for SQS's query-compatible codes
               {"x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender"}
    type       optional: Sender/Receiver in query-protocol errors (default by status)
    body       optional: answer with this body as given (content_type, default text/xml),
               e.g. a 200 answer of an operation moto lacks (IAM's SimulatePrincipalPolicy)
  Error bodies: AWS JSON {"__type": code, "message": ...} with the request's content type
  (application/x-amz-json-1.0 or 1.1) and x-amzn-ErrorType; EC2 <Response><Errors><Error>..
  </Errors><RequestID>..; other query services (IAM, STS) <ErrorResponse><Error><Type>..
  <Code>..<Message>..</Error><RequestId>..; S3 <Error><Code>..<Message>..<RequestId>.., and
  no body for HEAD. The stats' "scripted" lists the queued faults with "remaining"/"fired".
* --role-settle S: IAM is eventually consistent, and EventBridge Scheduler checks at
  CreateSchedule / UpdateSchedule that it can assume the target's role; a role made seconds
  earlier is refused with a 400 ValidationException ("The execution role you provide must
  allow AWS EventBridge Scheduler to assume the role."). Here every role made by a CreateRole
  through this proxy is refused that way by CreateSchedule/UpdateSchedule for S seconds;
  counted in the stats' faults as "scheduler:role-settling".
* --s3-missing-403: S3 answers GetObject or HeadObject of a missing key with 403 AccessDenied,
  not 404 NoSuchKey, to a caller without s3:ListBucket on the bucket (GetObject API
  Reference, "Permissions") -- and every role jobrun makes may list only under its prefix. Here
  every such 404 from moto becomes that 403; counted in the stats' faults as
  "s3:missing-key-403".
* --ecr-storage DIR --ecr-registry URL: ECR's images live in a docker-registry (URL, storage
  DIR), moto has none. BatchDeleteImage is forwarded (moto checks the repository) and its
  answer made from the registry's images as ECR does it: a tag comes off its image, the image
  goes with its last tag or by digest, an id matching nothing is a per-entry ImageNotFound
  (tests/moto/ecr_lifecycle.py `batch_delete`). Counted in the stats' faults as
  "ecr:batch-delete-played".
* Every request is checked against AWS's service model of its operation (tests/moto/aws_model.py:
  required members, types, enums, lengths, ranges, patterns, from botocore's models in the
  venv) before anything else; one that AWS would refuse is answered 400 ValidationException
  (IAM/STS: ValidationError, SNS: InvalidParameter) and printed on stderr. Decoded: AWS JSON,
  REST-JSON (Scheduler), AWS query (IAM, STS, SNS), EC2's query, S3's REST-XML (path-style).
  The stats' "model" says how many requests were checked ("checked"), of which operations
  ("operations", "service:Operation") and protocols ("protocols": json, rest-json, query, ec2,
  rest-xml), which were not decodable ("unchecked", by "service:operation") and every
  violation. --no-model-check turns it off; --stats-file F writes the stats to F when the
  proxy is stopped (SIGTERM).
* GET /__proxy/stats returns counters as JSON (requests by operation: AWS JSON ones by name,
  S3's as "s3:<Operation>", other query/REST calls as "other"); POST /__proxy/reset zeroes them, the token
  cache and the buckets, and drops the scripted faults. None of /__proxy/ is forwarded.
"""

import argparse
import http.client
import json
import random
import re
import signal
import sys
import threading
import time
import uuid
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit
from xml.sax.saxutils import escape

ECS_PREFIX = "AmazonEC2ContainerServiceV20141113."
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
              "trailer", "upgrade", "content-length", "expect"}
JSON_TYPE = "application/x-amz-json-1.1"
THROTTLE = (400, "ThrottlingException", "Rate exceeded")
SERVER_ERROR = (500, "ServerException", "injected")
FAULTS = ["throttle", "server_error", "drop_request", "drop_response"]
# Signing names by X-Amz-Target prefix, for a request that carries no SigV4 Authorization.
TARGET_SERVICES = {"AmazonEC2ContainerServiceV20141113": "ecs", "AmazonSQS": "sqs",
                   "Logs_20140328": "logs", "AnyScaleFrontendService": "application-autoscaling",
                   "AmazonEC2ContainerRegistry_V20150921": "ecr"}
# S3 sub-resources (query keys) -> the operation's name after its Get/Put/Delete verb.
S3_BUCKET_SUBRESOURCES = {
    "location": "BucketLocation", "notification": "BucketNotificationConfiguration",
    "policy": "BucketPolicy", "tagging": "BucketTagging", "versioning": "BucketVersioning",
    "lifecycle": "BucketLifecycleConfiguration", "encryption": "BucketEncryption",
    "acl": "BucketAcl", "cors": "BucketCors", "website": "BucketWebsite",
    "logging": "BucketLogging", "replication": "BucketReplication",
    "accelerate": "BucketAccelerateConfiguration", "requestPayment": "BucketRequestPayment",
    "ownershipControls": "BucketOwnershipControls", "publicAccessBlock": "PublicAccessBlock",
    "object-lock": "ObjectLockConfiguration", "policyStatus": "BucketPolicyStatus",
}
S3_DELETE_NAMES = {"lifecycle": "BucketLifecycle"}  # DeleteBucketLifecycle, not ...Configuration


def s3_operation(method, path, query, headers):
    """The S3 operation a path-style REST request is (None when not recognised)."""
    parts = unquote(path).lstrip("/").split("/", 1)
    bucket, key = parts[0], (parts[1] if len(parts) > 1 else "")
    if not bucket:
        return "ListBuckets" if method == "GET" else None
    if not key:
        if method == "HEAD":
            return "HeadBucket"
        if method == "POST":
            return "DeleteObjects" if "delete" in query else None
        for sub, name in S3_BUCKET_SUBRESOURCES.items():
            if sub in query:
                verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method)
                if verb == "Delete":
                    name = S3_DELETE_NAMES.get(sub, name)
                return verb and verb + name
        if method == "GET":
            if "uploads" in query:
                return "ListMultipartUploads"
            if "versions" in query:
                return "ListObjectVersions"
            return "ListObjectsV2" if query.get("list-type") == ["2"] else "ListObjects"
        return {"PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(method)
    copy = "x-amz-copy-source" in {k.lower() for k in headers.keys()}
    if method == "HEAD":
        return "HeadObject"
    if method == "GET":
        for sub, name in (("tagging", "GetObjectTagging"), ("acl", "GetObjectAcl"),
                          ("attributes", "GetObjectAttributes"), ("uploadId", "ListParts")):
            if sub in query:
                return name
        return "GetObject"
    if method == "PUT":
        if "tagging" in query:
            return "PutObjectTagging"
        if "acl" in query:
            return "PutObjectAcl"
        if "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if method == "DELETE":
        if "tagging" in query:
            return "DeleteObjectTagging"
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        if "restore" in query:
            return "RestoreObject"
    return None


def parse_fault(spec):
    """A POST /__proxy/faults entry -> the queued fault (ValueError when malformed)."""
    if not isinstance(spec, dict):
        raise ValueError("a fault is a JSON object")
    unknown = set(spec) - {"service", "operation", "times", "status", "code", "message",
                           "match", "headers", "type", "body", "content_type"}
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    for field in ("service", "operation", "code"):
        if not isinstance(spec.get(field), str) or not spec[field]:
            raise ValueError(f'"{field}" must be a non-empty string')
    times, status = spec.get("times", 1), spec.get("status", 400)
    if not isinstance(times, int) or times < 1:
        raise ValueError('"times" must be a positive integer')
    if not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError('"status" must be an HTTP status')
    headers = spec.get("headers") or {}
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ValueError('"headers" must be an object of strings')
    return {"service": spec["service"].lower(), "operation": spec["operation"],
            "times": times, "status": status, "code": spec["code"],
            "message": str(spec.get("message", "")), "match": spec.get("match") or None,
            "headers": headers, "type": spec.get("type") or ("Sender" if status < 500 else "Receiver"),
            "body": spec.get("body"), "content_type": spec.get("content_type") or "text/xml",
            "remaining": times, "fired": 0}


MODELS = None  # aws_model.Models, unless --no-model-check


class Bucket:
    def __init__(self, capacity, rate):
        self.capacity, self.rate = capacity, rate
        self.reset()

    def reset(self):
        self.tokens, self.stamp = float(self.capacity), time.monotonic()

    def refill(self):
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now


class State:
    """Everything shared between handler threads; one lock guards it."""

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.rng = random.Random(args.seed)
        self.buckets = {"RunTask": Bucket(20, 20), "launches": Bucket(100, 20),
                        "DescribeTasks": Bucket(50, 20)}
        self.reset()

    def reset(self):
        with self.lock:
            self.requests = defaultdict(int)
            self.throttled = defaultdict(int)
            self.faults = defaultdict(int)
            self.launched = 0
            self.sqs_messages = defaultdict(int)  # "run/index" -> times accepted
            self.sqs_batches = []  # (entries, bytes) per accepted call
            self.sqs_entry_faults = 0
            self.replays = 0
            self.cache = {}  # clientToken -> (status, headers, body)
            self.token_locks = defaultdict(threading.Lock)
            self.scripted = []  # parse_fault() dicts, in the order queued
            self.roles_made = {}  # role name -> time.monotonic() of its CreateRole
            self.checked = defaultdict(int)  # "service:Operation" -> requests checked
            self.checked_protocols = defaultdict(int)  # "rest-xml", "ec2", ... -> requests checked
            self.unchecked = defaultdict(int)  # not decoded (a service aws_model.py does not read)
            self.violations = []  # {"operation", "errors"} per refused request
            self.deleted = {}  # ("sqs"|"scheduler", name) -> time.monotonic() of its delete
            self.handles_seen = set()  # receipt handles --sqs-entries-fail-once failed once
            for b in self.buckets.values():
                b.reset()

    def stats(self):
        with self.lock:
            return {"requests": dict(self.requests), "throttled": dict(self.throttled),
                    "faults": dict(self.faults), "run_task_launched": self.launched,
                    "token_replays": self.replays,
                    "model": {"checked": sum(self.checked.values()),
                              "operations": sorted(self.checked),
                              "protocols": dict(self.checked_protocols),
                              "unchecked": dict(self.unchecked),
                              "violations": list(self.violations)},
                    "sqs": {"calls": len(self.sqs_batches),
                            "max_entries": max((e for e, _ in self.sqs_batches), default=0),
                            "max_bytes": max((b for _, b in self.sqs_batches), default=0),
                            "messages": sum(self.sqs_messages.values()),
                            "distinct": len(self.sqs_messages),
                            "duplicates": sum(n - 1 for n in self.sqs_messages.values() if n > 1),
                            "entry_faults": self.sqs_entry_faults},
                    "scripted": [{k: f[k] for k in ("service", "operation", "code", "status",
                                                    "match", "times", "remaining", "fired")}
                                 for f in self.scripted]}

    def queue_faults(self, faults):
        with self.lock:
            self.scripted.extend(faults)

    def take_scripted(self, service, op, haystacks):
        """The first queued fault for this request with fires left (counting the fire)."""
        if not service or not op:
            return None
        with self.lock:
            for f in self.scripted:
                if (f["remaining"] > 0 and f["service"] == service
                        and f["operation"] in (op, "*")
                        and (f["match"] is None or any(f["match"] in h for h in haystacks))):
                    f["remaining"] -= 1
                    f["fired"] += 1
                    self.faults[f'{f["service"]}:{f["operation"]}'] += 1
                    return f
        return None

    def count(self, table, key, n=1):
        with self.lock:
            getattr(self, table)[key] += n

    def pick_fault(self):
        with self.lock:
            if self.args.fault_rate > 0 and self.rng.random() < self.args.fault_rate:
                kind = self.rng.choice(FAULTS)
                self.faults[kind] += 1
                return kind
        return None

    def take(self, op, launches):
        """Consume rate tokens for op; False if throttled. Returns reserved launch tokens."""
        if not self.args.rates or op not in self.buckets:
            return True
        with self.lock:
            needed = [(self.buckets[op], 1)]
            if op == "RunTask":
                needed.append((self.buckets["launches"], launches))
            for b, n in needed:
                b.refill()
            if any(b.tokens < n for b, n in needed):
                self.throttled[op] += 1
                return False
            for b, n in needed:
                b.tokens -= n
            return True

    def count_launched(self, n):
        with self.lock:
            self.launched += n

    def refund_launches(self, n):
        if self.args.rates and n > 0:
            with self.lock:
                b = self.buckets["launches"]
                b.tokens = min(b.capacity, b.tokens + n)


# The characters an SQS message body may hold (the W3C XML character set).
SQS_BODY_CHARS = re.compile("[\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State = None
    upstream = None  # (host, port)
    second = None  # (host, port) of --s3-sqs-upstream
    local = threading.local()

    def log_message(self, fmt, *args):
        if self.state.args.verbose:
            super().log_message(fmt, *args)

    # ----- plumbing ---------------------------------------------------------------------------

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def forward(self, body):
        """Send the request upstream on this thread's pooled connection -> (status, headers, body)."""
        upstream = self.upstream_for(body)
        pool = self.local.__dict__.setdefault("conns", {})
        for attempt in (1, 2):
            conn = pool.get(upstream)
            fresh = conn is None
            if fresh:
                conn = pool[upstream] = http.client.HTTPConnection(*upstream, timeout=120)
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for k, v in self.headers.items():
                    if k.lower() not in HOP_BY_HOP:
                        conn.putheader(k, v)
                conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                resp = conn.getresponse()
                data = resp.read()
                keep = {"content-length"} if self.command == "HEAD" else set()
                headers = [(k, v) for k, v in resp.getheaders()
                           if k.lower() not in HOP_BY_HOP or k.lower() in keep]
                if resp.will_close:
                    conn.close()
                    pool.pop(upstream, None)
                return resp.status, headers, data
            except (http.client.RemoteDisconnected, ConnectionError, BrokenPipeError):
                conn.close()
                pool.pop(upstream, None)
                if fresh or attempt == 2:  # only retry a stale kept-alive connection
                    raise

    def upstream_for(self, body):
        """moto, or with --s3-sqs-upstream the second emulator for requests signed for S3 or
        SQS (a request's signing name is its service: the credential scope of SigV4)."""
        if self.second is not None and self.identify(body)[0] in ("s3", "sqs"):
            return self.second
        return self.upstream

    def reply(self, status, headers, body):
        self.send_response_only(status)
        for k, v in headers:
            self.send_header(k, v)
        if not any(k.lower() == "content-length" for k, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, err):
        status, kind, message = err
        body = json.dumps({"__type": kind, "message": message}).encode()
        self.reply(status, [("x-amzn-ErrorType", kind), ("Content-Type", JSON_TYPE)], body)

    # ----- scripted faults ----------------------------------------------------------------------

    def identify(self, body):
        """(signing name, operation, protocol) of this request; None where unknown."""
        service = None
        auth = self.headers.get("Authorization", "")
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        credential = auth.partition("Credential=")[2].partition(",")[0].strip()
        if not credential and "X-Amz-Credential" in query:  # a presigned URL
            credential = query["X-Amz-Credential"][0]
        scope = credential.split("/")
        if len(scope) >= 5:
            service = scope[-2].lower()
        target = self.headers.get("X-Amz-Target", "")
        if target:
            prefix, _, op = target.rpartition(".")
            return service or TARGET_SERVICES.get(prefix), op, "json"
        action = query.get("Action")
        if not action and "x-www-form-urlencoded" in self.headers.get("Content-Type", ""):
            action = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).get("Action")
        if action:
            return service, action[0], "query"
        if service == "s3":
            return service, s3_operation(self.command, url.path, query, self.headers), "rest-xml"
        return service, None, None

    def scripted_fault(self, body):
        """Answer with the first queued fault that fits this request; False if none does."""
        with self.state.lock:
            if not self.state.scripted:
                return False
        service, op, protocol = self.identify(body)
        text = body.decode("utf-8", "replace")
        haystacks = (text, unquote_plus(text), self.path, unquote(self.path))
        fault = self.state.take_scripted(service, op, haystacks)
        if fault is None:
            return False
        if fault["body"] is not None:  # a scripted answer, written as given
            headers = [("Content-Type", fault["content_type"]),
                       ("x-amzn-RequestId", str(uuid.uuid4()))] + list(fault["headers"].items())
            self.reply(fault["status"], headers,
                       b"" if self.command == "HEAD" else fault["body"].encode())
            return True
        self.write_error(service, protocol, fault["status"], fault["code"], fault["message"],
                         fault["type"], list(fault["headers"].items()))
        return True

    def write_error(self, service, protocol, status, code_text, message_text, kind, extra=()):
        """An error answer as the service's protocol writes one."""
        request_id = str(uuid.uuid4())
        code, message = escape(code_text), escape(message_text)
        if protocol == "json":
            ctype = self.headers.get("Content-Type", "")
            ctype = ctype if ctype.startswith("application/x-amz-json") else JSON_TYPE
            headers = [("x-amzn-ErrorType", code_text), ("Content-Type", ctype),
                       ("x-amzn-RequestId", request_id)]
            out = json.dumps({"__type": code_text, "message": message_text})
        elif protocol == "rest-json":
            headers = [("x-amzn-ErrorType", code_text), ("Content-Type", "application/json"),
                       ("x-amzn-RequestId", request_id)]
            out = json.dumps({"Message": message_text})
        elif protocol == "query" and service == "ec2":
            headers = [("Content-Type", "text/xml;charset=UTF-8")]
            out = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error>'
                   f"<Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                   f"<RequestID>{request_id}</RequestID></Response>")
        elif protocol == "query":
            headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
            out = (f"<ErrorResponse><Error><Type>{escape(kind)}</Type><Code>{code}</Code>"
                   f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId>"
                   f"</ErrorResponse>")
        else:  # S3's REST XML
            headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id[:16]),
                       ("x-amz-id-2", request_id)]
            out = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                   f"<Message>{message}</Message><RequestId>{request_id[:16]}</RequestId>"
                   f"<HostId>{request_id}</HostId></Error>")
        headers += list(extra)
        self.reply(status, headers, b"" if self.command == "HEAD" else out.encode())

    def model_violation(self, body):
        """Checks the request against AWS's model of its operation; answers a violation."""
        service, named, protocol = self.identify(body)
        op, errors, decoded = MODELS.check(self.command, self.path, self.headers, body, service)
        with self.state.lock:
            if op is None:
                self.state.unchecked[f"{service}:{named}"] += 1
            else:
                self.state.checked[f"{service}:{op}"] += 1
                self.state.checked_protocols[decoded] += 1
            if errors:
                self.state.violations.append({"operation": f"{service}:{op}",
                                              "errors": errors[:10]})
        if not errors:
            return False
        code = {"iam": "ValidationError", "sts": "ValidationError",
                "sns": "InvalidParameter"}.get(service, "ValidationException")
        message = f"request does not match the AWS model of {op}: " + "; ".join(errors[:5])
        print(f"aws_proxy: {message}", file=sys.stderr, flush=True)
        protocol = "rest-json" if service == "scheduler" else protocol
        self.write_error(service, protocol, 400, code, message, "Sender")
        return True

    def invalid_message_contents(self, body):
        """SQS refuses a body with a character outside #x9 | #xA | #xD | #x20-#xD7FF |
        #xE000-#xFFFD | #x10000-#x10FFFF (InvalidMessageContents: API_SendMessage's MessageBody);
        moto takes any."""
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return False
        bodies = [e.get("MessageBody", "") for e in req.get("Entries", [])] \
            + [req.get("MessageBody", "")]
        if all(SQS_BODY_CHARS.fullmatch(b or "") for b in bodies):
            return False
        with self.state.lock:
            self.state.faults["sqs:invalid-message-contents"] += 1
        self.write_error("sqs", "json", 400, "InvalidMessageContents",
                         "Invalid characters found.", "Sender",
                         [("x-amzn-query-error",
                           "InvalidMessageContents;Sender")])
        return True

    def role_settling(self, body):
        """--role-settle: note CreateRole; refuse schedules naming a role younger than S."""
        service, op, protocol = self.identify(body)
        if service == "iam" and op == "CreateRole":
            name = parse_qs(body.decode("utf-8", "replace")).get("RoleName", [""])[0]
            with self.state.lock:
                self.state.roles_made[name] = time.monotonic()
            return False
        path = urlsplit(self.path).path
        if service != "scheduler" or self.command not in ("POST", "PUT") \
                or not path.startswith("/schedules/"):
            return False
        try:
            role = json.loads(body or b"{}").get("Target", {}).get("RoleArn", "")
        except ValueError:
            return False
        name = role.rpartition("/")[2]
        with self.state.lock:
            made = self.state.roles_made.get(name)
            young = made is not None and time.monotonic() - made < self.state.args.role_settle
            if young:
                self.state.faults["scheduler:role-settling"] += 1
        if not young:
            return False
        message = ("The execution role you provide must allow AWS EventBridge Scheduler to "
                   "assume the role.")
        self.reply(400, [("x-amzn-ErrorType", "ValidationException"),
                         ("Content-Type", "application/json"),
                         ("x-amzn-RequestId", str(uuid.uuid4()))],
                   json.dumps({"Message": message}).encode())
        return True

    def recently_deleted(self, op, body):
        """--deleted-wait: note deletes; answer for a name deleted less than S seconds ago."""
        service, named, _ = self.identify(body)
        path = urlsplit(self.path).path
        key = None
        if service == "sqs" and op in ("DeleteQueue", "CreateQueue"):
            req = json.loads(body or b"{}")
            name = req.get("QueueName") or req.get("QueueUrl", "").rstrip("/").rpartition("/")[2]
            key = ("sqs", name)
        elif service == "scheduler" and path.startswith("/schedule-groups/"):
            key = ("scheduler", unquote(path.rpartition("/")[2]))
            op = {"DELETE": "DeleteScheduleGroup", "POST": "CreateScheduleGroup",
                  "GET": "GetScheduleGroup"}.get(self.command)
        if key is None:
            return False
        with self.state.lock:
            if op in ("DeleteQueue", "DeleteScheduleGroup"):
                self.state.deleted[key] = time.monotonic()
                return False
            at = self.state.deleted.get(key)
            recent = at is not None and time.monotonic() - at < self.state.args.deleted_wait
        if not recent:
            return False
        if op == "CreateQueue":
            with self.state.lock:
                self.state.faults["sqs:deleted-recently"] += 1
            self.write_error("sqs", "json", 400, "QueueDeletedRecently",
                             "You must wait 60 seconds after deleting a queue before you can "
                             "create another queue with the same name.", "Sender",
                             [("x-amzn-query-error",
                               "AWS.SimpleQueueService.QueueDeletedRecently;Sender")])
            return True
        if op == "CreateScheduleGroup":
            with self.state.lock:
                self.state.faults["scheduler:group-deleting"] += 1
            self.write_error("scheduler", "rest-json", 409, "ConflictException",
                             f"Schedule group {key[1]} is being deleted.", "Sender")
            return True
        if op == "GetScheduleGroup":
            with self.state.lock:
                self.state.faults["scheduler:group-deleting"] += 1
            out = {"Arn": f"arn:aws:scheduler:us-east-1:123456789012:schedule-group/{key[1]}",
                   "Name": key[1], "State": "DELETING"}
            self.reply(200, [("Content-Type", "application/json")], json.dumps(out).encode())
            return True
        return False

    def drop(self):
        self.close_connection = True  # the server closes the socket without an answer

    # ----- the proxy --------------------------------------------------------------------------

    def handle_any(self):
        body = self.read_body()
        if self.path.startswith("/__proxy/"):
            return self.control(body)
        target = self.headers.get("X-Amz-Target", "")
        op = target.rsplit(".", 1)[-1] if target else "other"
        if not target:
            service, named, _ = self.identify(body)
            op = f"{service}:{named}" if service == "s3" and named else op
        self.state.count("requests", op)
        if MODELS is not None and self.model_violation(body):
            return None
        if op in ("SendMessage", "SendMessageBatch") and self.invalid_message_contents(body):
            return None
        if self.state.args.deleted_wait > 0 and self.recently_deleted(op, body):
            return None
        if self.scripted_fault(body):
            return None
        if self.state.args.role_settle > 0 and self.role_settling(body):
            return None

        fault = self.state.pick_fault() if target.startswith(ECS_PREFIX) else None
        if fault == "throttle":
            return self.error(THROTTLE)
        if fault == "server_error":
            return self.error(SERVER_ERROR)
        if fault == "drop_request":
            return self.drop()

        if op == "BatchDeleteImage" and self.state.args.ecr_storage:
            return self.batch_delete_image(body)
        if op in ("DeleteMessageBatch", "ChangeMessageVisibilityBatch") \
                and self.state.args.sqs_entries_fail_once:
            return self.handle_batch_failing_once(body)
        if op == "SendMessageBatch" and (self.state.args.sqs_sink
                                         or self.state.args.sqs_entry_fault_rate > 0):
            return self.send_message_batch(body)

        token, count = None, 1
        if op == "RunTask":
            try:
                req = json.loads(body or b"{}")
                token, count = req.get("clientToken"), int(req.get("count", 1))
            except (ValueError, AttributeError, TypeError):
                pass
        try:
            if token:
                with self.state.lock:
                    token_lock = self.state.token_locks[token]
                with token_lock:
                    answer = self.answer_run_task(token, op, body, count)
            else:
                answer = self.answer(op, body, count)
        except OSError as e:
            return self.error((502, "ProxyUpstreamError", f"upstream: {e!r}"))
        if answer is None:
            return self.error(THROTTLE)
        if fault == "drop_response":
            return self.drop()
        if self.state.args.s3_missing_403 and op in ("s3:GetObject", "s3:HeadObject") \
                and answer[0] == 404:
            return self.missing_key_403()
        return self.reply(*answer)

    def batch_delete_image(self, body):
        status, headers, answer = self.forward(body)
        if not 200 <= status < 300:
            return self.reply(status, headers, answer)
        req = json.loads(body or b"{}")
        from ecr_lifecycle import batch_delete
        with self.state.lock:
            deleted, failures = batch_delete(self.state.args.ecr_storage,
                                             self.state.args.ecr_registry,
                                             req["repositoryName"], req.get("imageIds", []))
            self.state.faults["ecr:batch-delete-played"] += 1
        out = {"imageIds": deleted, "failures": failures}
        return self.reply(200, [("Content-Type", "application/x-amz-json-1.1")],
                          json.dumps(out).encode())

    def missing_key_403(self):
        with self.state.lock:
            self.state.faults["s3:missing-key-403"] += 1
        request_id = str(uuid.uuid4())
        out = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
               f"<Message>Access Denied</Message><RequestId>{request_id[:16]}</RequestId>"
               f"<HostId>{request_id}</HostId></Error>")
        headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id[:16])]
        return self.reply(403, headers, b"" if self.command == "HEAD" else out.encode())

    def send_message_batch(self, body):
        req = json.loads(body or b"{}")
        entries = req.get("Entries", [])
        ok, failed = [], []
        with self.state.lock:
            for e in entries:
                if self.state.rng.random() < self.state.args.sqs_entry_fault_rate:
                    failed.append(e)
                    self.state.sqs_entry_faults += 1
                else:
                    ok.append(e)
        if self.state.args.sqs_sink:
            with self.state.lock:
                self.state.sqs_batches.append(
                    (len(ok), sum(len(e.get("MessageBody", "").encode()) for e in ok)))
                for e in ok:
                    try:
                        m = json.loads(e.get("MessageBody", ""))
                        key = f'{m.get("run_id")}/{m.get("index")}'
                    except ValueError:
                        key = e.get("MessageBody", "")
                    self.state.sqs_messages[key] += 1
            successful = [{"Id": e["Id"], "MessageId": f"sink-{random.getrandbits(64):016x}",
                           "MD5OfMessageBody": ""} for e in ok]
            return self.batch_answer(req, [], failed, successful)
        return self.batch_answer(req, ok, failed)

    def handle_batch_failing_once(self, body):
        req = json.loads(body or b"{}")
        ok, failed = [], []
        with self.state.lock:
            for e in req.get("Entries", []):
                handle = e.get("ReceiptHandle", "")
                if handle in self.state.handles_seen:
                    ok.append(e)
                else:
                    self.state.handles_seen.add(handle)
                    failed.append(e)
                    self.state.faults["sqs:entry-failed"] += 1
        return self.batch_answer(req, ok, failed)

    def batch_answer(self, req, ok, failed, successful=()):
        """An SQS batch answer: `ok` entries forwarded (their Successful list, or moto's error
        as it is), `failed` ones in Failed as SQS reports a transient failure of an entry."""
        successful = list(successful)
        if ok:
            status, headers, answer = self.forward(json.dumps(dict(req, Entries=ok)).encode())
            if not 200 <= status < 300:
                return self.reply(status, headers, answer)
            successful = json.loads(answer).get("Successful", [])
        out = {"Successful": successful,
               "Failed": [{"Id": e["Id"], "SenderFault": False, "Code": "InternalError",
                           "Message": "injected"} for e in failed]}
        return self.reply(200, [("Content-Type", "application/x-amz-json-1.0")],
                          json.dumps(out).encode())

    def answer_run_task(self, token, op, body, count):
        with self.state.lock:
            cached = self.state.cache.get(token)
            if cached:
                self.state.replays += 1
        if cached:
            return cached
        answer = self.answer(op, body, count)
        if answer and 200 <= answer[0] < 300:
            with self.state.lock:
                self.state.cache[token] = answer
        return answer

    def answer(self, op, body, count):
        """Forward after the rate check; None when throttled."""
        if not self.state.take(op, count):
            return None
        answer = self.forward(body)
        if op == "RunTask":
            launched = 0
            if 200 <= answer[0] < 300:
                try:
                    launched = len(json.loads(answer[2]).get("tasks", []))
                except (ValueError, AttributeError):
                    pass
                self.state.count_launched(launched)
            self.state.refund_launches(count - launched)
        return answer

    def control(self, request):
        if self.command == "GET" and self.path.startswith("/__proxy/stats"):
            body = json.dumps(self.state.stats()).encode()
        elif self.command == "POST" and self.path.startswith("/__proxy/reset"):
            self.state.reset()
            body = b'{"reset": true}'
        elif self.command == "POST" and self.path.startswith("/__proxy/faults"):
            try:
                specs = json.loads(request or b"null")
                faults = [parse_fault(f) for f in (specs if isinstance(specs, list) else [specs])]
            except ValueError as e:  # json.JSONDecodeError is one
                return self.reply(400, [("Content-Type", "application/json")],
                                  json.dumps({"error": str(e)}).encode())
            self.state.queue_faults(faults)
            body = json.dumps({"queued": len(faults)}).encode()
        else:
            return self.reply(404, [("Content-Type", "application/json")], b'{"error": "unknown"}')
        self.reply(200, [("Content-Type", "application/json")], body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_any


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--upstream", required=True, help="moto's URL, e.g. http://127.0.0.1:5000")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--fault-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--rates", action="store_true", help="AWS-like rate limits")
    p.add_argument("--sqs-sink", action="store_true", help="answer SendMessageBatch here")
    p.add_argument("--sqs-entry-fault-rate", type=float, default=0.0)
    p.add_argument("--deleted-wait", type=float, default=0.0,
                   help="seconds a deleted queue name / schedule group stays unusable")
    p.add_argument("--sqs-entries-fail-once", action="store_true",
                   help="each DeleteMessageBatch/ChangeMessageVisibilityBatch entry fails once")
    p.add_argument("--s3-missing-403", action="store_true",
                   help="GetObject/HeadObject of a missing key: 403 AccessDenied, as S3 answers "
                        "a caller without s3:ListBucket")
    p.add_argument("--role-settle", type=float, default=0.0,
                   help="seconds Scheduler refuses a role made through this proxy")
    p.add_argument("--ecr-storage", help="the storage directory of the registry ECR's images are in")
    p.add_argument("--ecr-registry", help="that registry's URL")
    p.add_argument("--s3-sqs-upstream",
                   help="a second emulator's URL (LocalStack) for requests signed for s3 or sqs")
    p.add_argument("--no-model-check", action="store_true",
                   help="forward requests without checking them against AWS's models")
    p.add_argument("--stats-file", help="where to write the stats when stopped (SIGTERM)")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args()
    up = urlsplit(args.upstream)
    global MODELS
    if not args.no_model_check:
        from aws_model import Models
        MODELS = Models()
    Handler.state = State(args)
    Handler.upstream = (up.hostname, up.port or 80)
    if args.s3_sqs_upstream:
        second = urlsplit(args.s3_sqs_upstream)
        Handler.second = (second.hostname, second.port or 80)
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)

    def stop(*_):
        if args.stats_file:
            with open(args.stats_file, "w") as f:
                json.dump(Handler.state.stats(), f)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
