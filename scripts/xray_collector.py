#!/usr/bin/python3
"""A small stand-in for the AWS X-Ray daemon: catches the daemons' segment datagrams on UDP,
checks each against X-Ray's segment document rules, and prints every trace as a tree.

    scripts/xray_collector.py [--listen 127.0.0.1:2000] [--out segments.jsonl] [--quiet-ms 500]
                              [--hide /health ...]

Point the daemons at it with XRAY_TRACING=1 AWS_XRAY_DAEMON_ADDRESS=127.0.0.1:2000 (compose:
compose.tracing.yaml runs it as the service xray-collector). Ctrl-C (or SIGTERM) prints the
service map: each edge (caller -> responder) with its calls, faults and errors. Only the Python
standard library. The tests use the same rules (tests/blackbox/test_tracing.py).

The rules are the ones AWS publishes for segment documents and the X-Ray daemon's protocol:
https://docs.aws.amazon.com/xray/latest/devguide/xray-api-segmentdocuments.html
https://docs.aws.amazon.com/xray/latest/devguide/xray-api-sendingdata.html
- a datagram is the daemon header {"format": "json", "version": 1}, a newline, one document;
- a document is at most 64 kB;
- a segment has name (at most 200 characters: letters, digits, white space, _ . : / % & # = + \\ - @),
  id (16 hex digits), trace_id (1-<8 hex>-<24 hex>), start_time, and end_time or in_progress;
- a subsegment sent on its own also has type "subsegment", trace_id and parent_id;
- error, throttle and fault are booleans; annotations have alphanumeric/underscore keys and
  string, number or boolean values; a subsegment's namespace is "aws" or "remote";
- http.request and http.response hold the documented fields with their types.
"""

import argparse
import json
import re
import signal
import socket
import sys
import threading
import time

HEADER = {"format": "json", "version": 1}
DOCUMENT_MAX = 64 * 1024
ID_RE = re.compile(r"^[0-9a-f]{16}$")
TRACE_ID_RE = re.compile(r"^1-[0-9a-f]{8}-[0-9a-f]{24}$")
NAME_RE = re.compile(r"^[\w\s.:/%&#=+\\\-@]{1,200}$")
ANNOTATION_KEY_RE = re.compile(r"^[A-Za-z0-9_]+$")
SEGMENT_FIELDS = {"name", "id", "trace_id", "start_time", "end_time", "in_progress", "parent_id",
                  "service", "user", "origin", "http", "aws", "error", "throttle", "fault",
                  "cause", "annotations", "metadata", "subsegments"}
SUBSEGMENT_FIELDS = {"name", "id", "start_time", "end_time", "in_progress", "trace_id",
                     "parent_id", "type", "namespace", "http", "aws", "error", "throttle",
                     "fault", "cause", "annotations", "metadata", "subsegments",
                     "precursor_ids", "sql"}
REQUEST_FIELDS = {"method": str, "url": str, "user_agent": str, "client_ip": str,
                  "x_forwarded_for": bool, "traced": bool}
RESPONSE_FIELDS = {"status": int, "content_length": int}
# Clocks of two processes and the float rounding of epoch seconds: 2 ms of slack on nesting.
SLACK_S = 0.002


class RuleError(AssertionError):
    pass


def _check(cond, what, doc):
    if not cond:
        raise RuleError(f"{what}: {json.dumps(doc)[:2000]}")


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_times(d, root):
    _check(_number(d.get("start_time")), "start_time must be a number", root)
    _check(d["start_time"] > 1e9, "start_time must be epoch seconds", root)
    if d.get("in_progress") is True:
        _check("end_time" not in d, "in_progress and end_time both set", root)
    else:
        _check(_number(d.get("end_time")), "end_time (or in_progress) required", root)
        _check(d["end_time"] >= d["start_time"], "end_time before start_time", root)


def _check_common(d, root):
    for flag in ("error", "throttle", "fault", "in_progress"):
        if flag in d:
            _check(isinstance(d[flag], bool), f"{flag} must be a boolean", root)
    if "parent_id" in d:
        _check(isinstance(d["parent_id"], str) and ID_RE.match(d["parent_id"]),
               "parent_id must be 16 hex digits", root)
    if "annotations" in d:
        _check(isinstance(d["annotations"], dict), "annotations must be an object", root)
        for k, v in d["annotations"].items():
            _check(ANNOTATION_KEY_RE.match(k), f"annotation key {k!r} not alphanumeric", root)
            _check(isinstance(v, (str, bool)) or _number(v),
                   f"annotation {k} must be a string, number or boolean", root)
    if "http" in d:
        http = d["http"]
        _check(isinstance(http, dict) and set(http) <= {"request", "response"},
               "http holds request and response only", root)
        for part, fields in (("request", REQUEST_FIELDS), ("response", RESPONSE_FIELDS)):
            if part in http:
                _check(isinstance(http[part], dict), f"http.{part} must be an object", root)
                for k, v in http[part].items():
                    _check(k in fields, f"unknown field http.{part}.{k}", root)
                    _check(isinstance(v, fields[k]) and (fields[k] is bool or
                                                         not isinstance(v, bool)),
                           f"http.{part}.{k} has the wrong type", root)
    if "cause" in d:
        cause = d["cause"]
        _check(isinstance(cause, (dict, str)), "cause must be an object or an id", root)
        if isinstance(cause, dict):
            for ex in cause.get("exceptions", []):
                _check(isinstance(ex.get("id"), str) and ID_RE.match(ex["id"]),
                       "an exception's id must be 16 hex digits", root)
                _check(isinstance(ex.get("message", ""), str), "exception message", root)


def _check_subsegment(sub, root, parent, standalone):
    _check(isinstance(sub, dict), "a subsegment must be an object", root)
    _check(set(sub) <= SUBSEGMENT_FIELDS, f"unknown subsegment fields {set(sub) - SUBSEGMENT_FIELDS}",
           root)
    _check(isinstance(sub.get("name"), str) and NAME_RE.match(sub["name"]),
           "subsegment name", root)
    _check(isinstance(sub.get("id"), str) and ID_RE.match(sub["id"]), "subsegment id", root)
    _check_times(sub, root)
    _check_common(sub, root)
    if "namespace" in sub:
        _check(sub["namespace"] in ("aws", "remote"), "namespace must be aws or remote", root)
    if standalone:
        _check(sub.get("type") == "subsegment", "a standalone subsegment needs type", root)
        _check(isinstance(sub.get("trace_id"), str) and TRACE_ID_RE.match(sub["trace_id"]),
               "a standalone subsegment needs trace_id", root)
        _check("parent_id" in sub, "a standalone subsegment needs parent_id", root)
    else:
        _check("type" not in sub, "an embedded subsegment has no type", root)
    if parent is not None and "end_time" in parent and "end_time" in sub:
        _check(sub["start_time"] >= parent["start_time"] - SLACK_S and
               sub["end_time"] <= parent["end_time"] + SLACK_S,
               "a subsegment must lie within its parent", root)
    for child in sub.get("subsegments", []):
        _check_subsegment(child, root, sub, False)


def check_document(doc):
    """Raises RuleError unless doc (parsed JSON) is a valid segment or standalone subsegment."""
    _check(isinstance(doc, dict), "a document must be an object", doc)
    if doc.get("type") == "subsegment":
        _check_subsegment(doc, doc, None, True)
        return
    _check(set(doc) <= SEGMENT_FIELDS, f"unknown segment fields {set(doc) - SEGMENT_FIELDS}", doc)
    _check(isinstance(doc.get("name"), str) and NAME_RE.match(doc["name"]), "segment name", doc)
    _check(isinstance(doc.get("id"), str) and ID_RE.match(doc["id"]), "segment id", doc)
    _check(isinstance(doc.get("trace_id"), str) and TRACE_ID_RE.match(doc["trace_id"]),
           "trace_id must be 1-<8 hex>-<24 hex>", doc)
    _check_times(doc, doc)
    _check_common(doc, doc)
    subs = doc.get("subsegments", [])
    _check(isinstance(subs, list), "subsegments must be a list", doc)
    for sub in subs:
        _check_subsegment(sub, doc, doc, False)


def parse_datagram(data):
    """The document of one datagram, after checking its framing and size; raises RuleError."""
    nl = data.find(b"\n")
    if nl < 0:
        raise RuleError(f"no newline after the daemon header: {data[:200]!r}")
    try:
        header = json.loads(data[:nl])
    except ValueError:
        raise RuleError(f"the daemon header is not JSON: {data[:nl]!r}")
    if header != HEADER:
        raise RuleError(f"wrong daemon header {header!r}")
    body = data[nl + 1:]
    if len(body) > DOCUMENT_MAX:
        raise RuleError(f"document of {len(body)} bytes exceeds 64 kB")
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise RuleError(f"document is not UTF-8 JSON ({e}): {body[:300]!r}")
    check_document(doc)
    return doc


class Collector:
    """A stand-in X-Ray daemon: a UDP socket on 127.0.0.1 whose every datagram is checked.

    datagrams: raw bytes as received; documents: the parsed ones; errors: rule violations.
    """

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.datagrams, self.documents, self.errors = [], [], []
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(70000)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.datagrams.append(data)
                try:
                    self.documents.append(parse_datagram(data))
                except RuleError as e:
                    self.errors.append(str(e))
                self._lock.notify_all()

    def wait_for(self, n, timeout=5.0):
        """Waits until n datagrams have arrived; returns how many did."""
        with self._lock:
            self._lock.wait_for(lambda: len(self.datagrams) >= n, timeout)
            return len(self.datagrams)

    def settle(self, quiet_s=0.3, timeout=5.0):
        """Waits until no datagram has arrived for quiet_s; returns the documents."""
        deadline = time.monotonic() + timeout
        seen = -1
        while time.monotonic() < deadline:
            with self._lock:
                n = len(self.datagrams)
            if n == seen:
                break
            seen = n
            time.sleep(quiet_s)
        return list(self.documents)

    def reset(self):
        """Forgets what arrived so far (the readiness checks' segments, say), once it settles."""
        self.settle(quiet_s=0.1)
        with self._lock:
            self.datagrams.clear()
            self.documents.clear()

    def segments(self, name=None):
        with self._lock:
            return [d for d in self.documents
                    if d.get("type") != "subsegment" and (name is None or d["name"] == name)]

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def check_link(caller_seg, responder_segs):
    """The caller's remote subsegment and the responder segments it caused: same trace, the
    responder's parent_id the subsegment's id, the responder's time within the subsegment's."""
    subs = [s for s in caller_seg.get("subsegments", []) if s.get("namespace") == "remote"]
    assert len(subs) == 1, caller_seg
    sub = subs[0]
    linked = [r for r in responder_segs if r.get("parent_id") == sub["id"]]
    for r in linked:
        assert r["trace_id"] == caller_seg["trace_id"], (r, caller_seg)
        assert r["start_time"] >= sub["start_time"] - SLACK_S, (r, sub)
        assert r["end_time"] <= sub["end_time"] + SLACK_S, (r, sub)
    return sub, linked


# --------------------------------------------------------------------------------------------
# the command: print traces as trees, keep the documents, sum up the service map
# --------------------------------------------------------------------------------------------

def _ms(d):
    return (d["end_time"] - d["start_time"]) * 1000 if "end_time" in d else float("nan")


def _line(d, indent):
    http = d.get("http", {})
    req, resp = http.get("request", {}), http.get("response", {})
    flags = "".join(f" {f.upper()}" for f in ("error", "throttle", "fault") if d.get(f))
    notes = " ".join(f"{k}={v}" for k, v in d.get("annotations", {}).items()
                     if k != "request_id")
    ns = f" ({d['namespace']})" if "namespace" in d else ""
    status = resp.get("status", "-")
    text = (f"{' ' * indent}{d['name']}{ns}  {req.get('method', '')} {req.get('url', '')} "
            f"{status}  {_ms(d):.2f} ms{flags}")
    if notes:
        text += f"  [{notes}]"
    cause = d.get("cause", {})
    if isinstance(cause, dict):
        for ex in cause.get("exceptions", []):
            text += f"\n{' ' * (indent + 2)}cause: {ex.get('message', '')}"
    return text


def render_trace(docs):
    """A trace's documents as an indented tree: each segment under the subsegment that called
    it (its parent_id), standalone subsegments under their segment."""
    by_parent = {}
    nodes = {}
    for d in docs:
        if d.get("type") == "subsegment":
            by_parent.setdefault(d["parent_id"], []).append(("sub", d))
        else:
            by_parent.setdefault(d.get("parent_id"), []).append(("seg", d))
            for sub in d.get("subsegments", []):
                by_parent.setdefault(d["id"], []).append(("sub", sub))
        nodes[d["id"]] = d
    lines = []

    def walk(parent, indent, seen):
        for _, d in sorted(by_parent.get(parent, []), key=lambda x: x[1]["start_time"]):
            if d["id"] in seen:
                continue
            seen.add(d["id"])
            lines.append(_line(d, indent))
            walk(d["id"], indent + 2, seen)

    seen = set()
    roots = [d for d in docs if d.get("type") != "subsegment" and
             (d.get("parent_id") is None or not any(
                 d["parent_id"] == s["id"] for x in docs for s in [x] + x.get("subsegments", [])))]
    for r in sorted(roots, key=lambda d: d["start_time"]):
        if r["id"] not in seen:
            seen.add(r["id"])
            lines.append(_line(r, 2))
            walk(r["id"], 4, seen)
    return "\n".join(lines)


class ServiceMap:
    """Edges from a segment to the service each of its remote subsegments called, named as the
    called service's own segment names itself (its parent_id the subsegment's id), else as the
    subsegment does: calls, faults, errors."""

    def __init__(self):
        self.calls = {}    # subsegment id -> [caller, called, fault, error]
        self.named = {}    # subsegment id -> name of the segment that continued it

    def add(self, doc):
        if doc.get("type") == "subsegment":
            subs, src = [doc], "?"
        else:
            subs, src = doc.get("subsegments", []), doc["name"]
            if "parent_id" in doc:
                self.named[doc["parent_id"]] = doc["name"]
        for sub in subs:
            if sub.get("namespace") == "remote":
                self.calls[sub["id"]] = [src, sub["name"], bool(sub.get("fault")),
                                         bool(sub.get("error"))]

    def render(self):
        edges = {}
        for sid, (src, name, fault, error) in self.calls.items():
            e = edges.setdefault((src, self.named.get(sid, name)), [0, 0, 0])
            e[0] += 1
            e[1] += fault
            e[2] += error
        if not edges:
            return "service map: no calls between services yet"
        rows = [f"  {a} -> {b}: {n} calls, {f} faults, {e} errors"
                for (a, b), (n, f, e) in sorted(edges.items())]
        return "service map:\n" + "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:2000", help="host:port to bind (UDP)")
    ap.add_argument("--out", help="append every valid document to this JSON-lines file")
    ap.add_argument("--quiet-ms", type=int, default=500,
                    help="print a trace once no document of it arrived for this long")
    ap.add_argument("--hide", action="append", default=[], metavar="PATH",
                    help="do not print traces whose first request is for PATH (e.g. /health, "
                         "the health checks'); they are still kept and counted")
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host.strip("[]"), int(port)))
    sock.settimeout(0.1)
    out = open(args.out, "a", encoding="utf-8") if args.out else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    pending = {}
    smap = ServiceMap()
    counts = {"valid": 0, "invalid": 0, "hidden": 0}
    print(f"xray-collector: listening on udp {args.listen}", flush=True)

    def hidden(docs):
        first = min((d for d in docs if d.get("type") != "subsegment"),
                    key=lambda d: d["start_time"], default=None)
        url = ((first or {}).get("http", {}).get("request", {}).get("url", ""))
        return any(url.split("://", 1)[-1].partition("/")[2].split("?")[0] == p.lstrip("/")
                   for p in args.hide)

    def flush(now, force=False):
        for tid in [t for t, (last, _) in pending.items()
                    if force or now - last >= args.quiet_ms / 1000]:
            _, docs = pending.pop(tid)
            if hidden(docs):
                counts["hidden"] += 1
                continue
            print(f"trace {tid} ({len(docs)} documents)\n{render_trace(docs)}", flush=True)

    try:
        while not stop.is_set():
            try:
                data = sock.recv(70000)
            except socket.timeout:
                flush(time.monotonic())
                continue
            try:
                doc = parse_datagram(data)
            except RuleError as e:
                counts["invalid"] += 1
                print(f"INVALID datagram: {e}", flush=True)
                continue
            counts["valid"] += 1
            smap.add(doc)
            if out is not None:
                out.write(json.dumps(doc, separators=(",", ":")) + "\n")
                out.flush()
            entry = pending.setdefault(doc["trace_id"], [0, []])
            entry[0] = time.monotonic()
            entry[1].append(doc)
            flush(time.monotonic())
    except KeyboardInterrupt:
        pass
    flush(time.monotonic(), force=True)
    print(f"{counts['valid']} valid documents, {counts['invalid']} invalid, "
          f"{counts['hidden']} traces hidden (--hide)\n{smap.render()}", flush=True)
    return 1 if counts["invalid"] else 0


if __name__ == "__main__":
    sys.exit(main())
