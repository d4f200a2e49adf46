"""Requests checked against AWS's own service models (botocore's JSON models in the venv).

moto accepts requests AWS refuses: a missing required member, a string too long, a value not
in an enum, a name off its pattern. aws_proxy.py runs every request it forwards through
`Models.check` and refuses a violation with 400 ValidationException (AWS's code for it), so
the jobrun command that sent it fails the test that ran it.

What is checked, per the model of the operation's input: required members, types (string,
integer/long, float/double, boolean, timestamp, blob, structure, list, map), enums, lengths
(min/max of strings, lists and maps), ranges (min/max of numbers) and patterns (Smithy
patterns are not anchored: a match anywhere, as AWS applies them). Members the model does not
know are not errors (the SDK may be newer than the model here).

Protocols decoded back into input: AWS JSON (X-Amz-Target: ECS, SQS, CloudWatch Logs, ECR,
Application Auto Scaling, Secrets Manager, EventBridge, Service Quotas), REST-JSON (EventBridge Scheduler:
URI labels, query string and body) and AWS query (IAM, STS, SNS: Member.member.N lists,
Member.entry.N.key/value maps, Member.Sub structures). Others (EC2's own query dialect, S3's
REST-XML) are counted as unchecked.
"""

import json
import re
from urllib.parse import parse_qs, unquote, urlsplit

import botocore.session

NUMBER_TYPES = {"integer", "long", "float", "double"}


class Models:
    def __init__(self):
        session = botocore.session.get_session()
        self.session = session
        self.loaded = {}  # signing name -> ServiceModel
        self.by_target = {}  # X-Amz-Target prefix -> ServiceModel
        for name in ("ecs", "sqs", "logs", "ecr", "application-autoscaling", "secretsmanager",
                     "events", "service-quotas"):
            m = self.service(name)
            if m and m.metadata.get("targetPrefix"):
                self.by_target[m.metadata["targetPrefix"]] = m
        self.patterns = {}

    def service(self, name):
        if name not in self.loaded:
            try:
                self.loaded[name] = self.session.get_service_model(name)
            except Exception:  # an unknown name
                self.loaded[name] = None
        return self.loaded[name]

    # ----- decoding ---------------------------------------------------------------------------

    def decode(self, method, path, headers, body, service):
        """(operation model, input params) of a request, or None when it is not decoded."""
        target = headers.get("X-Amz-Target", "")
        if target:
            prefix, _, op = target.rpartition(".")
            model = self.by_target.get(prefix)
            if not model or op not in model.operation_names:
                return None
            return model.operation_model(op), json.loads(body or b"{}")
        if service in ("iam", "sts", "sns"):
            form = body.decode("utf-8", "replace")
            if "x-www-form-urlencoded" not in headers.get("Content-Type", ""):
                form = urlsplit(path).query
            params = parse_qs(form, keep_blank_values=True)
            action = params.pop("Action", [None])[0]
            params.pop("Version", None)
            model = self.service(service)
            if not model or action not in model.operation_names:
                return None
            op = model.operation_model(action)
            flat = {k: v[0] for k, v in params.items()}
            return op, query_value(op.input_shape, "", flat) if op.input_shape else {}
        if service == "scheduler":
            return self.decode_rest_json(self.service("scheduler"), method, path, body)
        return None

    def decode_rest_json(self, model, method, path, body):
        url = urlsplit(path)
        for name in model.operation_names:
            op = model.operation_model(name)
            if op.http.get("method") != method:
                continue
            labels = match_uri(op.http.get("requestUri", "/"), url.path)
            if labels is None:
                continue
            params = json.loads(body) if body else {}
            shape = op.input_shape
            query = parse_qs(url.query, keep_blank_values=True)
            for member, s in (shape.members.items() if shape else []):
                loc, where = s.serialization.get("location"), s.serialization.get("name", member)
                if loc == "uri" and where in labels:
                    params[member] = unquote(labels[where])
                elif loc == "querystring" and where in query:
                    value = query[where]
                    params[member] = value if s.type_name == "list" else scalar(s, value[0])
            return op, params
        return None

    # ----- checking ---------------------------------------------------------------------------

    def check(self, method, path, headers, body, service):
        """(operation name or None when not decoded, [violations])."""
        try:
            decoded = self.decode(method, path, headers, body, service)
        except (ValueError, UnicodeDecodeError) as e:
            return None, [f"request not decodable: {e}"]
        if decoded is None:
            return None, []
        op, params = decoded
        errors = []
        if op.input_shape is not None:
            self.value(op.input_shape, params, op.name, errors)
        return op.name, errors

    def value(self, shape, v, where, errors):
        t = shape.type_name
        if t == "structure":
            if not isinstance(v, dict):
                return errors.append(f"{where}: a structure, not {type(v).__name__}")
            for req in shape.required_members:
                if req not in v or v[req] is None:
                    errors.append(f"{where}.{req}: required")
            for k, member in shape.members.items():
                if k in v and v[k] is not None:
                    self.value(member, v[k], f"{where}.{k}", errors)
        elif t == "list":
            if not isinstance(v, list):
                return errors.append(f"{where}: a list, not {type(v).__name__}")
            self.bounds(shape, len(v), where, "length", errors)
            for i, item in enumerate(v):
                self.value(shape.member, item, f"{where}[{i}]", errors)
        elif t == "map":
            if not isinstance(v, dict):
                return errors.append(f"{where}: a map, not {type(v).__name__}")
            self.bounds(shape, len(v), where, "length", errors)
            for k, item in v.items():
                self.value(shape.key, k, f"{where} key", errors)
                self.value(shape.value, item, f"{where}[{k}]", errors)
        elif t == "string":
            if not isinstance(v, str):
                return errors.append(f"{where}: a string, not {type(v).__name__}")
            self.bounds(shape, len(v), where, "length", errors)
            if shape.enum and v not in shape.enum:
                errors.append(f"{where}: {v!r} is not one of {shape.enum}")
            pattern = shape.metadata.get("pattern")
            if pattern and not self.matches(pattern, v):
                errors.append(f"{where}: {v!r} does not match {pattern}")
        elif t in NUMBER_TYPES:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return errors.append(f"{where}: a number, not {type(v).__name__}")
            if t in ("integer", "long") and not float(v).is_integer():
                errors.append(f"{where}: an integer, not {v}")
            self.bounds(shape, v, where, "value", errors)
        elif t == "boolean":
            if not isinstance(v, bool):
                errors.append(f"{where}: a boolean, not {type(v).__name__}")
        elif t == "timestamp":
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                errors.append(f"{where}: a timestamp, not {type(v).__name__}")
        elif t == "blob":
            if not isinstance(v, str):
                errors.append(f"{where}: a blob (base64 text), not {type(v).__name__}")

    @staticmethod
    def bounds(shape, n, where, what, errors):
        lo, hi = shape.metadata.get("min"), shape.metadata.get("max")
        if lo is not None and n < lo:
            errors.append(f"{where}: {what} {n} below the minimum {lo}")
        if hi is not None and n > hi:
            errors.append(f"{where}: {what} {n} above the maximum {hi}")

    def matches(self, pattern, v):
        if pattern not in self.patterns:
            try:
                self.patterns[pattern] = re.compile(pattern, re.DOTALL)
            except re.error:
                self.patterns[pattern] = None  # a Java-only construct: not checked
        rx = self.patterns[pattern]
        return rx is None or rx.search(v) is not None


def match_uri(template, path):
    """The labels of a REST URI template (`/schedules/{Name}`) a path matches, or None."""
    template = template.split("?", 1)[0]
    rx, at = "^", 0
    for m in re.finditer(r"\{([A-Za-z0-9_]+)(\+?)\}", template):
        rx += re.escape(template[at:m.start()])
        rx += f"(?P<{m.group(1)}>{'.+' if m.group(2) else '[^/]+'})"
        at = m.end()
    rx += re.escape(template[at:]) + "$"
    m = re.match(rx, path.rstrip("/") or "/") or re.match(rx, path)
    return m.groupdict() if m else None


def scalar(shape, text):
    t = shape.type_name
    if t in ("integer", "long"):
        try:
            return int(text)
        except ValueError:
            return text
    if t in ("float", "double"):
        try:
            return float(text)
        except ValueError:
            return text
    if t == "boolean":
        return {"true": True, "false": False}.get(text, text)
    return text


def query_value(shape, prefix, flat):
    """The value AWS query parameters under `prefix` spell for `shape` (None when absent)."""
    t = shape.type_name
    dot = f"{prefix}." if prefix else ""
    if t == "structure":
        out = {}
        for name, member in shape.members.items():
            key = member.serialization.get("name", name)
            v = query_value(member, f"{dot}{key}", flat)
            if v is not None:
                out[name] = v
        return out if (out or not prefix) else (
            {} if any(k.startswith(dot) for k in flat) else None)
    if t == "list":
        if prefix in flat and flat[prefix] == "":
            return []
        item = "" if shape.serialization.get("flattened") else "member."
        items, i = [], 1
        while True:
            v = query_value(shape.member, f"{prefix}.{item}{i}", flat)
            if v is None:
                break
            items.append(v)
            i += 1
        return items if items else None
    if t == "map":
        out, i = {}, 1
        entry = "" if shape.serialization.get("flattened") else "entry."
        kname = shape.key.serialization.get("name", "key")
        vname = shape.value.serialization.get("name", "value")
        while f"{prefix}.{entry}{i}.{kname}" in flat:
            k = flat[f"{prefix}.{entry}{i}.{kname}"]
            out[k] = query_value(shape.value, f"{prefix}.{entry}{i}.{vname}", flat)
            i += 1
        return out if out else None
    if prefix not in flat:
        return None
    return scalar(shape, flat[prefix])
