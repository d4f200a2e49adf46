#!/usr/bin/env python3
"""The two endpoints an ECS task's containers talk to, faked for `jobrun agent` tests.

Usage: python3 tests/moto/fake_ecs_agent.py --port PORT
Prints "ready" once it listens on 127.0.0.1:PORT.

* Task metadata (ECS_CONTAINER_METADATA_URI_V4 = http://127.0.0.1:PORT/meta):
  GET /meta/task answers {"TaskARN": "arn:aws:ecs:us-east-1:123456789012:task/jobrun-test/f00d"}.
* ECS agent (ECS_AGENT_URI = http://127.0.0.1:PORT/agent):
  PUT /agent/task-protection/v1/state prints "protection: <its JSON body>" on stdout and
  answers 200.
"""

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/jobrun-test/f00d"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()

    class Handler(BaseHTTPRequestHandler):
        def reply(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path in ("/meta/task", "/__ready"):
                return self.reply(200, {"TaskARN": TASK_ARN, "Cluster": "jobrun-test"})
            self.reply(404, {})

        def do_PUT(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/agent/task-protection/v1/state":
                print("protection: " + body.decode(), flush=True)
                return self.reply(200, {"protection": json.loads(body)})
            self.reply(404, {})

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
