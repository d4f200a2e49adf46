"""Requests checked against AWS's own service models (botocore's JSON models in the venv).

moto accepts requests AWS refuses: a missing required member, a string too long, a value not
in an enum, a name off its pattern. aws_proxy.py runs every request it forwards through
`Models.check` and refuses a violation with 400 ValidationException (AWS's code for it), so
the jobrun command that sent it fails the test that ran it.

What is checked, per the model of the operation's input: required members, types (string,
integer/long, float/double, boolean, timestamp, blob, structure, list, map), enums, lengths
(min/max of strings, lists and maps), ranges (min/max of numbers) and patterns (Smithy
patterns are not anchored: a match anywhere, as AWS applies them). Members the model does not
know are not errors (the SDK may be newer than the model here). Values that travel as text
(query strings, headers, XML) are read as their member's type first: a number, `true`/`false`,
a timestamp in RFC 1123 or ISO 8601 (or epoch seconds); text that is not one of its type is a
violation (`max-keys=ten`).

Protocols decoded back into input (the protocol names are the models' and the proxy's stats'):
* json: AWS JSON (X-Amz-Target: ECS, SQS, CloudWatch Logs, ECR, Application Auto Scaling,
  Secrets Manager, EventBridge, Service Quotas).
* rest-json: EventBridge Scheduler (URI labels, query string, headers and body).
* query: AWS query (IAM, STS, SNS: Member.member.N lists, Member.entry.N.key/value maps,
  Member.Sub structures).
* ec2: EC2's query dialect (`Filter.1.Name=..&Filter.1.Value.1=..`: lists numbered without
  `.member.`, a member's wire name its queryName, else its locationName capitalised).
* rest-xml: S3, path-style (`/{Bucket}/{Key+}`). The operation is the one the Rust SDK names in
  `?x-id=`, else the one S3 routes to by method, path, the literal query items of its
  requestUri (`?uploads`, `?list-type=2`) and its required query/header members (`?uploadId`,
  `x-amz-copy-source`); deprecated operations (PutBucketLifecycle, ...) are never routed to.
  Members come from URI labels, query string, headers (`x-amz-meta-*` into Metadata) and an
  XML payload (flattened or wrapped lists, maps, attributes; namespaces ignored); a blob
  payload (PutObject's Body) is not read. Virtual-hosted-style requests are not told apart.
Other services' requests are counted as unchecked.
"""

import email.utils
import json
import re
from collections import defaultdict
from datetime import datetime
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree

import botocore.session

NUMBER_TYPES = {"integer", "long", "float", "double"}
# S3 operations served at other endpoints than S3's own, never routed to by path:
# ListDirectoryBuckets is `GET /` at S3 Express's control endpoint (here it would shadow
# ListBuckets), WriteGetObjectResponse is Object Lambda's (`{RequestRoute}.` host prefix).
S3_NOT_ROUTED = {"ListDirectoryBuckets", "WriteGetObjectResponse"}


class Malformed:
    """Wire text that is not a value of its member's type (`x-amz-max-parts: ten`)."""

    def __init__(self, text, kind):
        self.text, self.kind = text, kind


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
        self.s3_routes = None  # S3Routes, made at the first S3 request

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
        target = header(headers, "X-Amz-Target")
        if target:
            prefix, _, op = target.rpartition(".")
            model = self.by_target.get(prefix)
            if not model or op not in model.operation_names:
                return None
            return model.operation_model(op), json.loads(body or b"{}")
        if service in ("iam", "sts", "sns", "ec2"):
            return self.decode_query(self.service(service), path, headers, body)
        if service == "scheduler":
            return self.decode_rest_json(self.service("scheduler"), method, path, headers, body)
        if service == "s3":
            return self.decode_s3(method, path, headers, body)
        return None

    def decode_query(self, model, path, headers, body):
        """AWS query and EC2's dialect of it: a form body (or the URL's query) with Action."""
        form = body.decode("utf-8", "replace")
        if "x-www-form-urlencoded" not in (header(headers, "Content-Type") or ""):
            form = urlsplit(path).query
        params = parse_qs(form, keep_blank_values=True)
        action = params.pop("Action", [None])[0]
        params.pop("Version", None)
        if not model or action not in model.operation_names:
            return None
        op = model.operation_model(action)
        flat = {k: v[0] for k, v in params.items()}
        ec2 = model.metadata.get("protocol") == "ec2"
        return op, query_value(op.input_shape, "", flat, ec2) if op.input_shape else {}

    def decode_rest_json(self, model, method, path, headers, body):
        url = urlsplit(path)
        for name in model.operation_names:
            op = model.operation_model(name)
            if op.http.get("method") != method:
                continue
            labels = match_uri(op.http.get("requestUri", "/"), url.path)
            if labels is None:
                continue
            params = json.loads(body) if body else {}
            query = parse_qs(url.query, keep_blank_values=True)
            params.update(rest_members(op.input_shape, labels, query, headers))
            return op, params
        return None

    def decode_s3(self, method, path, headers, body):
        """S3's REST-XML, path-style: the operation, then its members from where they travel."""
        if self.s3_routes is None:
            self.s3_routes = S3Routes(self.service("s3"))
        url = urlsplit(path)
        query = parse_qs(url.query, keep_blank_values=True)
        found = self.s3_routes.find(method, url.path, query, headers)
        if found is None:
            return None
        op, labels = found
        params = rest_members(op.input_shape, labels, query, headers)
        params.update(xml_body(op.input_shape, body))
        return op, params

    # ----- checking ---------------------------------------------------------------------------

    def check(self, method, path, headers, body, service):
        """(operation name, [violations], protocol); name and protocol None when not decoded."""
        try:
            decoded = self.decode(method, path, headers, body, service)
        except (ValueError, UnicodeDecodeError) as e:
            return None, [f"request not decodable: {e}"], None
        if decoded is None:
            return None, [], None
        op, params = decoded
        errors = []
        if op.input_shape is not None:
            self.value(op.input_shape, params, op.name, errors)
        return op.name, errors, op.metadata.get("protocol")

    def value(self, shape, v, where, errors):
        t = shape.type_name
        if isinstance(v, Malformed):
            return errors.append(f"{where}: {v.text!r} is not {v.kind}")
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


# ----- S3: which operation a request is ------------------------------------------------------

class S3Routes:
    """S3's operations, found from a path-style request the way S3 routes it.

    An operation's `http.requestUri` is a path template (`/`, `/{Bucket}`, `/{Bucket}/{Key+}`)
    and literal query items (`?uploads`, `?list-type=2`, `?select&select-type=2`); several
    share one (`PUT /{Bucket}/{Key+}`: PutObject, CopyObject, UploadPart, UploadPartCopy) and
    are told apart by their required query and header members (`?partNumber&uploadId`,
    `x-amz-copy-source`). The route matching the most of these wins; on a tie, the one missing
    the fewest (PutObject over a CopyObject without its x-amz-copy-source)."""

    def __init__(self, model):
        self.model = model
        self.routes = [r for r in map(self.route, model.operation_names) if r]

    def route(self, name):
        op = self.model.operation_model(name)
        if op.deprecated or name in S3_NOT_ROUTED:
            return None
        path, _, literal = op.http.get("requestUri", "/").partition("?")
        shape = op.input_shape
        needs = [(m.serialization["location"], m.serialization.get("name", n))
                 for n, m in (shape.members.items() if shape else [])
                 if n in shape.required_members
                 and m.serialization.get("location") in ("querystring", "header")]
        return {"op": op, "method": op.http.get("method"), "path": uri_regex(path),
                "literals": parse_qs(literal, keep_blank_values=True), "needs": needs}

    def find(self, method, path, query, headers):
        """(operation model, URI labels) or None."""
        named = self.named(method, path, query)
        if named:
            return named
        best, rank = None, None
        for r in self.routes:
            m = r["path"].match(path) if r["method"] == method else None
            if not m or not all(literal_in(query, k, v[0]) for k, v in r["literals"].items()):
                continue
            have = sum(1 for where, wire in r["needs"] if sent(where, wire, query, headers))
            score = (len(r["literals"]) + have, have - len(r["needs"]))
            if rank is None or score > rank:
                best, rank = (r["op"], m.groupdict()), score
        return best

    def named(self, method, path, query):
        """The operation the Smithy SDKs name in `?x-id=GetObject`, when it takes this method."""
        name = query.get("x-id", [""])[0]
        if name not in self.model.operation_names:
            return None
        op = self.model.operation_model(name)
        if op.http.get("method") != method:
            return None
        m = uri_regex(op.http.get("requestUri", "/").partition("?")[0]).match(path)
        return op, (m.groupdict() if m else {})


def literal_in(query, key, value):
    """Whether a requestUri's literal query item is in the query: `uploads` (any value, or
    none) or `list-type=2` (that value)."""
    return key in query and (value == "" or value in query[key])


def sent(where, wire, query, headers):
    return wire in query if where == "querystring" else header(headers, wire) is not None


# ----- REST: members from the URI, query string and headers ----------------------------------

def rest_members(shape, labels, query, headers):
    """The members a REST request carries outside its body, by each member's `location`
    (botocore's RestXMLSerializer / RestJSONSerializer): uri, querystring, header, headers."""
    params = {}
    for name, member in (shape.members.items() if shape else []):
        where = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        value = None
        if where == "uri" and wire in labels:
            value = unquote(labels[wire])  # percent-decoded; a greedy {Key+} keeps its slashes
        elif where == "querystring" and wire in query:
            texts = query[wire]
            value = [scalar(member.member, t) for t in texts] if member.type_name == "list" \
                else scalar(member, texts[0])
        elif where == "header":
            text = header(headers, wire)
            value = None if text is None else header_value(member, text)
        elif where == "headers":  # a map of every header with this prefix: x-amz-meta-*
            value = prefixed_headers(headers, wire) or None
        if value is not None:
            params[name] = value
    return params


def header(headers, name):
    """A header's value, its name in any case; None when absent."""
    lower = name.lower()
    for k, v in headers.items():
        if k.lower() == lower:
            return v
    return None


def header_value(shape, text):
    # A list in a header is its items joined by commas (x-amz-object-attributes: ETag,Checksum).
    if shape.type_name == "list":
        return [scalar(shape.member, t.strip()) for t in text.split(",")]
    return scalar(shape, text)


def prefixed_headers(headers, prefix):
    lower = prefix.lower()
    return {k[len(prefix):]: v for k, v in headers.items() if k.lower().startswith(lower)}


# ----- REST-XML bodies ---------------------------------------------------------------------------

def xml_body(shape, body):
    """The members a REST-XML body holds: the input's payload member (a structure read from
    XML, a string as it is; a blob, PutObject's Body, only noted as there) or, without a payload,
    the input's body members in one element (SelectObjectContent)."""
    if not shape or not body:
        return {}
    payload = shape.serialization.get("payload")
    member = shape.members[payload] if payload else None
    if member is not None and member.type_name == "blob":
        return {payload: ""}  # there; a blob's bytes are not checked
    if member is not None and member.type_name == "string":
        return {payload: body.decode("utf-8", "replace")}
    if not body.strip():
        return {}
    if member is not None:
        root = parse_xml(body)
        want = member.serialization.get("name", payload)
        if local(root.tag) != want:
            return {payload: Malformed(f"<{local(root.tag)}>", f"<{want}>, its element")}
        return {payload: xml_value(member, root)}
    members = {n: m for n, m in shape.members.items() if not m.serialization.get("location")}
    return xml_structure(members, parse_xml(body)) if members else {}


def parse_xml(body):
    try:
        return ElementTree.fromstring(body)
    except ElementTree.ParseError as e:  # a SyntaxError, not a ValueError
        raise ValueError(f"XML body: {e}") from None


def local(tag):
    """A tag or attribute name without its namespace: `{http://s3...}Rule` is `Rule`."""
    return tag.rpartition("}")[2]


def xml_value(shape, node):
    t = shape.type_name
    if t == "structure":
        return xml_structure(shape.members, node)
    if t == "list":  # wrapped: <TagSet><Tag>..</Tag><Tag>..</Tag></TagSet>
        return [xml_value(shape.member, child) for child in node]
    if t == "map":  # wrapped: <M><entry><key>..</key><value>..</value></entry>..</M>
        return xml_map(shape, list(node))
    return scalar(shape, node.text or "")


def xml_structure(members, node):
    """A structure's members from its element's children, by each member's locationName."""
    children = defaultdict(list)
    for child in node:
        children[local(child.tag)].append(child)
    attributes = {local(k): v for k, v in node.attrib.items()}
    out = {}
    for name, member in members.items():
        wire = member.serialization.get("name", name)
        if member.serialization.get("xmlAttribute"):
            # An attribute, as Grantee's `xsi:type` (its prefix stands for a namespace).
            if wire.rpartition(":")[2] in attributes:
                out[name] = scalar(member, attributes[wire.rpartition(":")[2]])
        elif member.serialization.get("flattened") and member.type_name in ("list", "map"):
            nodes = flattened_nodes(member, wire, children)
            if nodes:
                out[name] = xml_map(member, nodes) if member.type_name == "map" \
                    else [xml_value(member.member, n) for n in nodes]
        elif children.get(wire):
            out[name] = xml_value(member, children[wire][0])
    return out


def flattened_nodes(member, wire, children):
    """A flattened list's items are repeated elements in the structure itself, named by the
    list member's locationName or else the structure member's (Delete's <Object>, a lifecycle
    configuration's <Rule>): botocore's BaseXMLResponseParser._member_key_name."""
    item = member.member.serialization.get("name") if member.type_name == "list" else None
    return (item and children.get(item)) or children.get(wire)


def xml_map(shape, entries):
    kname = shape.key.serialization.get("name", "key")
    vname = shape.value.serialization.get("name", "value")
    out = {}
    for entry in entries:
        parts = {local(c.tag): c for c in entry}
        if kname in parts:
            value = parts.get(vname)
            out[parts[kname].text or ""] = None if value is None else xml_value(shape.value, value)
    return out


# ----- text on the wire --------------------------------------------------------------------------

def uri_regex(template):
    """A regex of a REST path template: `{Name}` one segment, a greedy `{Key+}` the rest."""
    rx, at = "^", 0
    for m in re.finditer(r"\{([A-Za-z0-9_]+)(\+?)\}", template):
        rx += re.escape(template[at:m.start()])
        rx += f"(?P<{m.group(1)}>{'.+' if m.group(2) else '[^/]+'})"
        at = m.end()
    rx += re.escape(template[at:])
    return re.compile(rx + ("" if template.endswith("+}") else "/?") + "$")


def match_uri(template, path):
    """The labels of a REST URI template (`/schedules/{Name}`) a path matches, or None."""
    m = uri_regex(template.split("?", 1)[0]).match(path)
    return m.groupdict() if m else None


def scalar(shape, text):
    """Wire text as a value of `shape`'s type; Malformed when it is not one."""
    t = shape.type_name
    try:
        if t in ("integer", "long"):
            return int(text)
        if t in ("float", "double"):
            return float(text)
    except ValueError:
        return Malformed(text, f"a number ({t})")
    if t == "boolean":
        return {"true": True, "false": False}.get(text, Malformed(text, "true or false"))
    if t == "timestamp":
        return timestamp(text)
    return text


def timestamp(text):
    """Epoch seconds of a timestamp as AWS writes them in text: RFC 1123 (S3's headers:
    `Wed, 21 Oct 2015 07:28:00 GMT`), ISO 8601 (query strings, XML), or epoch seconds."""
    parsers = (lambda t: email.utils.parsedate_to_datetime(t).timestamp(),
               lambda t: datetime.fromisoformat(t).timestamp(), float)
    for parse in parsers:
        try:
            return parse(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return Malformed(text, "a timestamp (RFC 1123, ISO 8601 or epoch seconds)")


def ec2_name(member, name):
    """A member's wire name in EC2's query: its queryName, else its locationName with the
    first letter capitalised, else its name (botocore's EC2Serializer._get_serialized_name)."""
    if "queryName" in member.serialization:
        return member.serialization["queryName"]
    wire = member.serialization.get("name")
    return wire[0].upper() + wire[1:] if wire else name


def query_value(shape, prefix, flat, ec2=False):
    """The value AWS query parameters under `prefix` spell for `shape` (None when absent);
    with `ec2`, as EC2's dialect spells it."""
    t = shape.type_name
    dot = f"{prefix}." if prefix else ""
    if t == "structure":
        out = {}
        for name, member in shape.members.items():
            key = ec2_name(member, name) if ec2 else member.serialization.get("name", name)
            v = query_value(member, f"{dot}{key}", flat, ec2)
            if v is not None:
                out[name] = v
        return out if (out or not prefix) else (
            {} if any(k.startswith(dot) for k in flat) else None)
    if t == "list":
        if prefix in flat and flat[prefix] == "":
            return []
        # EC2 numbers a list's items right after its name: SubnetId.1, Filter.1.Value.1.
        item = "" if ec2 or shape.serialization.get("flattened") else "member."
        items, i = [], 1
        while True:
            v = query_value(shape.member, f"{prefix}.{item}{i}", flat, ec2)
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
            out[k] = query_value(shape.value, f"{prefix}.{entry}{i}.{vname}", flat, ec2)
            i += 1
        return out if out else None
    if prefix not in flat:
        return None
    return scalar(shape, flat[prefix])
