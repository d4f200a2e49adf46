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
* GET /__proxy/stats returns counters as JSON; POST /__proxy/reset zeroes them, the token
  cache and the buckets. Neither is forwarded.
"""

import argparse
import http.client
import json
import random
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ECS_PREFIX = "AmazonEC2ContainerServiceV20141113."
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
              "trailer", "upgrade", "content-length", "expect"}
JSON_TYPE = "application/x-amz-json-1.1"
THROTTLE = (400, "ThrottlingException", "Rate exceeded")
SERVER_ERROR = (500, "ServerException", "injected")
FAULTS = ["throttle", "server_error", "drop_request", "drop_response"]


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
            for b in self.buckets.values():
                b.reset()

    def stats(self):
        with self.lock:
            return {"requests": dict(self.requests), "throttled": dict(self.throttled),
                    "faults": dict(self.faults), "run_task_launched": self.launched,
                    "token_replays": self.replays,
                    "sqs": {"calls": len(self.sqs_batches),
                            "max_entries": max((e for e, _ in self.sqs_batches), default=0),
                            "max_bytes": max((b for _, b in self.sqs_batches), default=0),
                            "messages": sum(self.sqs_messages.values()),
                            "distinct": len(self.sqs_messages),
                            "duplicates": sum(n - 1 for n in self.sqs_messages.values() if n > 1),
                            "entry_faults": self.sqs_entry_faults}}

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


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State = None
    upstream = None  # (host, port)
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
        for attempt in (1, 2):
            conn = getattr(self.local, "conn", None)
            fresh = conn is None
            if fresh:
                conn = self.local.conn = http.client.HTTPConnection(*self.upstream, timeout=120)
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
                    self.local.conn = None
                return resp.status, headers, data
            except (http.client.RemoteDisconnected, ConnectionError, BrokenPipeError):
                conn.close()
                self.local.conn = None
                if fresh or attempt == 2:  # only retry a stale kept-alive connection
                    raise

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

    def drop(self):
        self.close_connection = True  # the server closes the socket without an answer

    # ----- the proxy --------------------------------------------------------------------------

    def handle_any(self):
        body = self.read_body()
        if self.path.startswith("/__proxy/"):
            return self.control()
        target = self.headers.get("X-Amz-Target", "")
        op = target.rsplit(".", 1)[-1] if target else "other"
        self.state.count("requests", op)

        fault = self.state.pick_fault() if target.startswith(ECS_PREFIX) else None
        if fault == "throttle":
            return self.error(THROTTLE)
        if fault == "server_error":
            return self.error(SERVER_ERROR)
        if fault == "drop_request":
            return self.drop()

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
        return self.reply(*answer)

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
        successful = []
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
        elif ok:
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

    def control(self):
        if self.command == "GET" and self.path.startswith("/__proxy/stats"):
            body = json.dumps(self.state.stats()).encode()
        elif self.command == "POST" and self.path.startswith("/__proxy/reset"):
            self.state.reset()
            body = b'{"reset": true}'
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
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = p.parse_args()
    up = urlsplit(args.upstream)
    Handler.state = State(args)
    Handler.upstream = (up.hostname, up.port or 80)
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("ready", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
