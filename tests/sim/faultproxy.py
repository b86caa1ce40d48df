#!/usr/bin/env python3
"""faultproxy.py -- a fault-injecting HTTPS reverse proxy for the AWS and
Vault tests (standard library only).

    faultproxy.py --cert C --key K --upstream http://127.0.0.1:P
                  [--upstream-ca F] [--log-file F]

Terminates TLS (1.2 minimum) with C/K on 127.0.0.1, a free port, and
forwards each request to the upstream (http://HOST:PORT, or https://HOST:PORT
verified against --upstream-ca), then returns the upstream's answer -- unless
an armed fault says otherwise.  The request line, the Host header and every
other header go upstream as received, in order (values byte for byte, the
blank after the colon normalised to one space); hop-by-hop headers
(Connection, Keep-Alive, Proxy-*, TE, Trailer, Upgrade) are dropped and a
chunked request body is sent with a Content-Length.  Responses go back
with a Content-Length (the upstream's chunking undone), keep-alive kept.

When ready it prints {"port": N, "control_port": M} as one JSON line on
stdout; it exits 0 on SIGTERM or SIGINT.

Control API (plain HTTP, 127.0.0.1:M, JSON):
  POST /faults   {"kind": K, "match": {...}, "count": N, "after": A, opts}
                 -> {"id": I}.  count: how many matching requests get the
                 fault (absent/null: every one until reset); after: let the
                 first A matching requests through untouched first.
  GET  /faults   the armed faults with their counters (seen, applied)
  DELETE /faults/I   disarms one
  POST /reset    disarms all; POST /reset?log=1 also empties the log
  GET  /log      the request log, one JSON object per line (?since=SEQ)
  any  /redirected/...   where redirect faults point by default: answered
                 200 {} and logged with fault "redirect-followed", so a test
                 can prove nobody followed a redirect.

match (all given keys must hold): method; path_prefix; header {name:
value} (exact value, name case-insensitive); target (X-Amz-Target value);
action (the Action field of a query or form body); body_contains
(substring of the raw body).  The first armed fault that matches and has
count left is applied; one fault per request.

Faults (kind: options):
  delay      seconds              wait, then forward
  trickle    seconds [body_only]  forward, send the response one byte per
                                  seconds (status line and headers too
                                  unless body_only)
  status     status [headers {} body "" reason]   answer without forwarding
  throttle_json | throttle_xml | expired_token_json | http_500 | http_503 |
  http_429   presets of status (AWS JSON ThrottlingException 400, STS XML
             Throttling 400, JSON ExpiredTokenException 400, 500, 503, 429)
  malformed  mode: garbage (default; same length, not JSON/XML) | truncate
             (first half, matching Content-Length) | short (Content-Length
             of the whole, half sent, connection closed) | empty | huge
             (the real body padded with spaces to size bytes, default
             10 MiB; still a valid JSON/XML document) [size, chunked: send
             huge with Transfer-Encoding: chunked and no Content-Length]
  tamper     [append " "]         the request body gets append added before
                                  forwarding (Content-Length fixed), so a
                                  SigV4 signature over it no longer holds
  skew       seconds              the response's Date header moved by
                                  seconds (+ or -); the request untouched
  drop       [forward false, reset false]   close the connection without
             answering (after forwarding when forward; RST when reset)
  redirect   [status 307, location]   answer status with a plain-http
             Location (default http://127.0.0.1:M/redirected<path>)

Log entries: seq, time, method, path (no query), query_keys, headers
(X-Amz-Target, Content-Type, Host, X-Amz-Date values), present (true/false
for Authorization, X-Amz-Security-Token, X-Vault-Token), action (a query or
form Action), form_fields / json_keys (names only), body_bytes, fault,
fault_id, upstream_status, status (null when dropped), response_bytes
(body bytes sent so far, chunk framing not counted), error (an exception's
type name), done.  No header value of a credential
and no body is ever logged or printed.

A client for tests (same file):
    fp = FaultProxy.start(cert, key, upstream, upstream_ca=None,
                          log_file=None, stderr_path=None)
    fp.port, fp.control_port, fp.url, fp.pid
    fp.arm(kind, count=None, after=0, method=..., path_prefix=...,
           header={...}, target=..., action=..., body_contains=..., **opts)
        -> fault id
    fp.disarm(id), fp.faults(), fp.reset(log=False), fp.log(since=0) -> [dict]
    fp.stop()
"""

import argparse
import email.utils
import http.client
import json
import os
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection",
              "proxy-authenticate", "proxy-authorization", "te", "trailer",
              "upgrade"}
LOGGED_HEADERS = ("X-Amz-Target", "Content-Type", "Host", "X-Amz-Date")
PRESENCE_HEADERS = ("Authorization", "X-Amz-Security-Token", "X-Vault-Token")
REQUEST_BODY_CAP = 16 << 20
UPSTREAM_BODY_CAP = 64 << 20
UPSTREAM_TIMEOUT = 60
HUGE_DEFAULT = 10 << 20

STS_THROTTLE = ('<ErrorResponse xmlns="https://sts.amazonaws.com/doc/'
                '2011-06-15/">\n  <Error>\n    <Type>Sender</Type>\n'
                '    <Code>Throttling</Code>\n    <Message>Rate exceeded'
                '</Message>\n  </Error>\n  <RequestId>{request_id}'
                '</RequestId>\n</ErrorResponse>\n')
AMZ_JSON = "application/x-amz-json-1.1"
PRESETS = {
    "throttle_json": {"status": 400, "headers": {"Content-Type": AMZ_JSON},
                      "body": '{"__type":"ThrottlingException",'
                              '"message":"Rate exceeded"}'},
    "throttle_xml": {"status": 400, "headers": {"Content-Type": "text/xml"},
                     "body": STS_THROTTLE},
    "expired_token_json": {
        "status": 400, "headers": {"Content-Type": AMZ_JSON},
        "body": '{"__type":"ExpiredTokenException","message":"The security '
                'token included in the request is expired"}'},
    "http_500": {"status": 500,
                 "headers": {"Content-Type": "application/json"},
                 "body": '{"errors":["internal error (injected)"]}'},
    "http_503": {"status": 503,
                 "headers": {"Content-Type": "application/json"},
                 "body": '{"errors":["service unavailable (injected)"]}'},
    "http_429": {"status": 429,
                 "headers": {"Content-Type": "application/json",
                             "Retry-After": "1"},
                 "body": '{"errors":["too many requests (injected)"]}'},
}
KINDS = {"delay", "trickle", "status", "malformed", "tamper", "skew", "drop",
         "redirect"} | set(PRESETS)
MATCH_KEYS = ("method", "path_prefix", "header", "target", "action",
              "body_contains")
MALFORMED_MODES = ("garbage", "truncate", "short", "empty", "huge")
GARBAGE = b"\x8b\x00<!-- not the document {[\"you expected\xff]} -->\r\n"


def warn(msg):
    sys.stderr.write("faultproxy: %s\n" % msg)
    sys.stderr.flush()


# --- the request as received ------------------------------------------------

class Request:
    """One request: method, target, raw headers in order, body."""

    def __init__(self, method, target, headers, body):
        self.method, self.target = method, target
        self.headers = headers          # [(name str, value bytes)]
        self.body = body
        self.path = target.split("?", 1)[0]
        self.query = target.split("?", 1)[1] if "?" in target else ""

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v.decode("latin-1")
        return None

    def form(self):
        ctype = (self.header("Content-Type") or "").lower()
        if not ctype.startswith("application/x-www-form-urlencoded"):
            return None
        return urllib.parse.parse_qsl(self.body.decode("utf-8", "replace"),
                                      keep_blank_values=True)

    def action(self):
        pairs = urllib.parse.parse_qsl(self.query, keep_blank_values=True)
        pairs += self.form() or []
        for k, v in pairs:
            if k == "Action":
                return v
        return None


def parse_raw_headers(lines):
    """[(name, value bytes)] from raw header lines (obs-fold joined)."""
    out = []
    for line in lines:
        line = line.rstrip(b"\r\n")
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and out:
            out[-1] = (out[-1][0], out[-1][1] + b" " + line.strip(b" \t"))
            continue
        name, _, value = line.partition(b":")
        out.append((name.decode("latin-1").strip(),
                    value.strip(b" \t")))
    return out


# --- faults -----------------------------------------------------------------

class Fault:
    def __init__(self, fid, spec):
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError("unknown fault kind %r" % (kind,))
        match = spec.get("match") or {}
        bad = set(match) - set(MATCH_KEYS)
        if bad:
            raise ValueError("unknown match keys %s" % sorted(bad))
        count = spec.get("count")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ValueError("count must be a positive integer or null")
        self.id, self.kind, self.match = fid, kind, match
        self.count, self.after = count, int(spec.get("after") or 0)
        self.opts = {k: v for k, v in spec.items()
                     if k not in ("kind", "match", "count", "after")}
        if kind == "malformed" and self.opts.get("mode", "garbage") \
                not in MALFORMED_MODES:
            raise ValueError("malformed mode must be one of %s" %
                             ", ".join(MALFORMED_MODES))
        for key, conv in (("seconds", float), ("status", int),
                          ("size", int)):
            if key in self.opts:
                conv(self.opts[key])
        if kind == "redirect" and not 300 <= int(
                self.opts.get("status", 307)) < 400:
            raise ValueError("redirect status must be 3xx")
        self.seen = self.applied = 0

    def matches(self, req):
        m = self.match
        if "method" in m and req.method.upper() != m["method"].upper():
            return False
        if "path_prefix" in m and not req.path.startswith(m["path_prefix"]):
            return False
        if "target" in m and req.header("X-Amz-Target") != m["target"]:
            return False
        for name, value in (m.get("header") or {}).items():
            if req.header(name) != value:
                return False
        if "action" in m and req.action() != m["action"]:
            return False
        if "body_contains" in m and \
                m["body_contains"].encode() not in req.body:
            return False
        return True

    def describe(self):
        d = {"id": self.id, "kind": self.kind, "match": self.match,
             "count": self.count, "after": self.after, "seen": self.seen,
             "applied": self.applied}
        d.update(self.opts)
        return d


class State:
    """Armed faults and the request log, shared by all threads."""

    def __init__(self, log_file=None):
        self.lock = threading.Lock()
        self.faults = []
        self.next_id = 1
        self.entries = []
        self.log_file = open(log_file, "a") if log_file else None
        self.control_port = None

    def arm(self, spec):
        with self.lock:
            f = Fault(self.next_id, spec)
            self.next_id += 1
            self.faults.append(f)
            return f.id

    def disarm(self, fid):
        with self.lock:
            n = len(self.faults)
            self.faults = [f for f in self.faults if f.id != fid]
            return len(self.faults) != n

    def reset(self, clear_log):
        with self.lock:
            self.faults = []
            if clear_log:
                self.entries = []

    def pick(self, req):
        """The fault to apply to req, or None."""
        with self.lock:
            for f in self.faults:
                if not f.matches(req):
                    continue
                f.seen += 1
                if f.seen <= f.after:
                    continue
                if f.count is not None and f.applied >= f.count:
                    continue
                f.applied += 1
                return f
        return None

    def new_entry(self, req, fault):
        e = {"time": round(time.time(), 3), "method": req.method,
             "path": req.path,
             "query_keys": [k for k, _ in urllib.parse.parse_qsl(
                 req.query, keep_blank_values=True)],
             "headers": {h: req.header(h) for h in LOGGED_HEADERS
                         if req.header(h) is not None},
             "present": {h: req.header(h) is not None
                         for h in PRESENCE_HEADERS},
             "action": None, "body_bytes": len(req.body),
             "fault": fault.kind if fault else None,
             "fault_id": fault.id if fault else None,
             "upstream_status": None, "status": None, "response_bytes": 0,
             "error": None, "done": False}
        action = req.action()
        if action and action.isalnum():
            e["action"] = action
        form = req.form()
        if form is not None:
            e["form_fields"] = [k for k, _ in form]
        elif req.body[:1] == b"{":
            try:
                doc = json.loads(req.body)
                if isinstance(doc, dict):
                    e["json_keys"] = sorted(doc)
            except ValueError:
                pass
        with self.lock:
            e["seq"] = len(self.entries) + 1
            self.entries.append(e)
        return e

    def finish(self, e):
        with self.lock:
            e["done"] = True
            if self.log_file:
                self.log_file.write(json.dumps(e, sort_keys=True) + "\n")
                self.log_file.flush()

    def log_lines(self, since):
        with self.lock:
            return "".join(json.dumps(e, sort_keys=True) + "\n"
                           for e in self.entries if e["seq"] > since)


# --- the proxy --------------------------------------------------------------

class _Tee:
    """Records the lines read through it (to see raw header lines)."""

    def __init__(self, f):
        self.f, self.lines = f, []

    def readline(self, *args):
        line = self.f.readline(*args)
        self.lines.append(line)
        return line

    def __getattr__(self, name):
        return getattr(self.f, name)


class ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, state, tls_ctx, upstream, upstream_ctx):
        self.state, self.tls_ctx = state, tls_ctx
        u = urllib.parse.urlsplit(upstream)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise SystemExit("faultproxy: --upstream must be "
                             "http(s)://HOST:PORT")
        self.up_scheme, self.up_host = u.scheme, u.hostname
        self.up_port = u.port or (443 if u.scheme == "https" else 80)
        self.upstream_ctx = upstream_ctx
        super().__init__(("127.0.0.1", 0), ProxyHandler)

    def get_request(self):
        sock, addr = self.socket.accept()
        # Handshake in the connection's thread, so a stuck client never
        # blocks accept().
        return self.tls_ctx.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        warn("connection error: %s" % sys.exc_info()[0].__name__)


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120

    def setup(self):
        self.request.settimeout(self.timeout)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError):
            self.close_connection = True
            raise
        super().setup()

    def log_message(self, fmt, *args):
        pass

    def parse_request(self):
        tee = _Tee(self.rfile)
        self.rfile = tee
        try:
            ok = super().parse_request()
        finally:
            self.rfile = tee.f
        self.raw_headers = parse_raw_headers(tee.lines)
        return ok

    def _read_body(self):
        if (self.headers.get("Transfer-Encoding") or "").lower() \
                == "chunked":
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline(100).split(b";")[0].strip(),
                           16)
                if size == 0:
                    while self.rfile.readline(8192).strip():
                        pass
                    return b"".join(chunks)
                total += size
                if total > REQUEST_BODY_CAP:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(10)
        n = int(self.headers.get("Content-Length") or 0)
        if n > REQUEST_BODY_CAP:
            raise ValueError("request body too large")
        return self.rfile.read(n) if n > 0 else b""

    def _handle(self):
        st = self.server.state
        try:
            body = self._read_body()
        except ValueError:
            self._emit(413, "Payload Too Large", [], b"")
            self.close_connection = True
            return
        req = Request(self.command, self.path, self.raw_headers, body)
        fault = st.pick(req)
        entry = st.new_entry(req, fault)
        try:
            self._serve(req, fault, entry)
        except (BrokenPipeError, ConnectionResetError, socket.timeout,
                ssl.SSLError) as e:
            entry["error"] = type(e).__name__
            self.close_connection = True
        finally:
            st.finish(entry)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = \
        do_OPTIONS = do_LIST = _handle

    # -- faults, each either answers itself or shapes the forwarded answer --

    def _serve(self, req, fault, entry):
        kind = fault.kind if fault else None
        opts = fault.opts if fault else {}
        if kind in PRESETS or kind == "status":
            return self._answer_status(dict(PRESETS.get(kind, {}), **opts),
                                       entry)
        if kind == "redirect":
            return self._answer_redirect(req, opts, entry)
        if kind == "drop" and not opts.get("forward"):
            return self._drop(opts, entry)
        if kind == "delay":
            time.sleep(float(opts.get("seconds", 1)))
        if kind == "tamper":
            req.body += opts.get("append", " ").encode()
        up = self._forward(req, entry)
        if up is None:
            return None
        status, reason, headers, body = up
        entry["upstream_status"] = status
        if kind == "drop":
            return self._drop(opts, entry)
        if kind == "skew":
            headers = self._skew(headers, float(opts.get("seconds", 0)))
        if kind == "malformed":
            return self._malformed(status, reason, headers, body, opts,
                                   entry)
        trickle = float(opts.get("seconds", 1)) if kind == "trickle" else None
        return self._emit(status, reason, headers, body, entry,
                          trickle=trickle,
                          trickle_body_only=bool(opts.get("body_only")))

    def _answer_status(self, spec, entry):
        rid = str(uuid.uuid4())
        body = spec.get("body", "").replace("{request_id}", rid).encode()
        headers = list((spec.get("headers") or {}).items())
        headers += [("x-amzn-RequestId", rid),
                    ("Date", email.utils.formatdate(usegmt=True))]
        status = int(spec.get("status", 500))
        reason = spec.get("reason") or http.client.responses.get(status, "")
        return self._emit(status, reason, headers, body, entry)

    def _answer_redirect(self, req, opts, entry):
        status = int(opts.get("status", 307))
        loc = opts.get("location") or "http://127.0.0.1:%d/redirected%s" % (
            self.server.state.control_port, req.target)
        return self._emit(status, http.client.responses.get(status, ""),
                          [("Location", loc)], b"", entry)

    def _drop(self, opts, entry):
        self.close_connection = True
        try:
            if opts.get("reset"):
                # Linger 0 and close without shutdown: the kernel sends RST.
                self.connection.setsockopt(socket.SOL_SOCKET,
                                           socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    @staticmethod
    def _skew(headers, seconds):
        date = None
        for k, v in headers:
            if k.lower() == "date":
                date = email.utils.parsedate_to_datetime(v).timestamp()
        if date is None:
            date = time.time()
        return [(k, v) for k, v in headers if k.lower() != "date"] + [
            ("Date", email.utils.formatdate(date + seconds, usegmt=True))]

    def _malformed(self, status, reason, headers, body, opts, entry):
        mode = opts.get("mode", "garbage")
        if mode == "garbage":
            n = max(len(body), len(GARBAGE))
            body = (GARBAGE * (n // len(GARBAGE) + 1))[:n]
        elif mode == "truncate":
            body = body[:len(body) // 2]
        elif mode == "empty":
            body = b""
        elif mode == "short":
            return self._emit(status, reason, headers, body[:len(body) // 2],
                              entry, declared=len(body))
        elif mode == "huge":
            size = int(opts.get("size", HUGE_DEFAULT))
            body = body + b" " * max(0, size - len(body))
            return self._emit(status, reason, headers, body, entry,
                              chunked=bool(opts.get("chunked")))
        return self._emit(status, reason, headers, body, entry)

    # -- upstream and downstream --

    def _forward(self, req, entry):
        """(status, reason, headers, body) from the upstream, or None after
        answering 502 itself."""
        srv = self.server
        if srv.up_scheme == "https":
            conn = http.client.HTTPSConnection(
                srv.up_host, srv.up_port, timeout=UPSTREAM_TIMEOUT,
                context=srv.upstream_ctx)
        else:
            conn = http.client.HTTPConnection(srv.up_host, srv.up_port,
                                              timeout=UPSTREAM_TIMEOUT)
        try:
            conn.putrequest(req.method, req.target, skip_host=True,
                            skip_accept_encoding=True)
            have_length = False
            for name, value in req.headers:
                low = name.lower()
                if low in HOP_BY_HOP:
                    continue
                if low in ("content-length", "transfer-encoding"):
                    # One Content-Length, where the client had its length
                    # (tamper may have changed it; chunks are undone).
                    if not have_length:
                        conn.putheader(name if low == "content-length"
                                       else "Content-Length",
                                       str(len(req.body)))
                        have_length = True
                    continue
                conn.putheader(name, value)
            if req.body and not have_length:
                conn.putheader("Content-Length", str(len(req.body)))
            conn.endheaders(req.body or None)
            resp = conn.getresponse()
            body = resp.read(UPSTREAM_BODY_CAP + 1)
            if len(body) > UPSTREAM_BODY_CAP:
                raise ValueError("upstream body too large")
            return resp.status, resp.reason, resp.getheaders(), body
        except (OSError, http.client.HTTPException, ValueError) as e:
            entry["error"] = "upstream: " + type(e).__name__
            warn("upstream %s for %s %s" % (type(e).__name__, req.method,
                                            req.path))
            self._emit(502, "Bad Gateway",
                       [("Content-Type", "application/json")],
                       b'{"errors":["faultproxy: upstream unreachable"]}',
                       entry)
            return None
        finally:
            conn.close()

    def _emit(self, status, reason, headers, body, entry=None, trickle=None,
              trickle_body_only=False, declared=None, chunked=False):
        """Writes one response: status line, headers (hop-by-hop, length
        and chunking replaced), body; then records it in entry."""
        head = ["HTTP/1.1 %d %s" % (status, reason or "")]
        for k, v in headers:
            if k.lower() in HOP_BY_HOP or k.lower() in (
                    "content-length", "transfer-encoding"):
                continue
            head.append("%s: %s" % (k, v))
        no_body = self.command == "HEAD" or status in (204, 304) or \
            100 <= status < 200
        if chunked:
            head.append("Transfer-Encoding: chunked")
        elif not no_body or declared is not None:
            head.append("Content-Length: %d" % (
                declared if declared is not None else len(body)))
        if self.close_connection:
            head.append("Connection: close")
        head = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if entry is not None:
            entry["status"] = status
        if no_body:
            body = b""
        payload = len(body)
        if chunked and body:
            step = 1 << 16
            body = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + step]),
                                               body[i:i + step])
                            for i in range(0, len(body), step)) + b"0\r\n\r\n"
        elif chunked:
            body = b"0\r\n\r\n"
        out = self.wfile
        if trickle is not None:
            if trickle_body_only:
                out.write(head)
                data, skip = body, 0
            else:
                data, skip = head + body, len(head)
            for i in range(len(data)):
                out.write(data[i:i + 1])
                if entry is not None:
                    entry["response_bytes"] = max(0, i + 1 - skip)
                time.sleep(trickle)
        else:
            out.write(head)
            for i in range(0, len(body), 1 << 16):
                out.write(body[i:i + (1 << 16)])
            if entry is not None:
                entry["response_bytes"] = payload
        if declared is not None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# --- the control API --------------------------------------------------------

class ControlHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30

    def log_message(self, fmt, *args):
        pass

    def _reply(self, status, obj=None, text=None):
        body = text.encode() if text is not None else \
            json.dumps(obj).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/x-ndjson"
                         if text is not None else "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if 0 < n < (1 << 20) else b""

    def _handle(self):
        st = self.server.state
        u = urllib.parse.urlsplit(self.path)
        q = urllib.parse.parse_qs(u.query)
        m, p = self.command, u.path
        try:
            if p.startswith("/redirected"):
                self._body()
                req = Request(m, self.path, [], b"")
                e = st.new_entry(req, None)
                e["fault"], e["status"] = "redirect-followed", 200
                st.finish(e)
                return self._reply(200, {})
            if p == "/faults" and m == "POST":
                spec = json.loads(self._body() or b"{}")
                return self._reply(201, {"id": st.arm(spec)})
            if p == "/faults" and m == "GET":
                with st.lock:
                    out = [f.describe() for f in st.faults]
                return self._reply(200, out)
            if p.startswith("/faults/") and m == "DELETE":
                ok = st.disarm(int(p.split("/")[2]))
                return self._reply(200 if ok else 404, {"disarmed": ok})
            if p == "/reset" and m == "POST":
                self._body()
                st.reset(q.get("log", ["0"])[0] not in ("0", ""))
                return self._reply(200, {"status": "ok"})
            if p == "/log" and m == "GET":
                since = int(q.get("since", ["0"])[0])
                return self._reply(200, text=st.log_lines(since))
            return self._reply(404, {"error": "no such control endpoint"})
        except (ValueError, TypeError, AttributeError) as e:
            return self._reply(400, {"error": str(e)[:200]})

    do_GET = do_POST = do_DELETE = do_PUT = _handle


class ControlServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state):
        self.state = state
        super().__init__(("127.0.0.1", 0), ControlHandler)


def main(argv=None):
    ap = argparse.ArgumentParser(description="fault-injecting HTTPS proxy")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--upstream-ca")
    ap.add_argument("--log-file", help="also append each log entry here")
    args = ap.parse_args(argv)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(args.cert, args.key)
    up_ctx = None
    if args.upstream.startswith("https"):
        up_ctx = ssl.create_default_context(cafile=args.upstream_ca)
        up_ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    state = State(args.log_file)
    proxy = ProxyServer(state, ctx, args.upstream, up_ctx)
    control = ControlServer(state)
    state.control_port = control.server_address[1]
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    for srv in (proxy, control):
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    sys.stdout.write(json.dumps({"port": proxy.server_address[1],
                                 "control_port": state.control_port}) + "\n")
    sys.stdout.flush()
    while not done.wait(0.5):
        pass
    for srv in (proxy, control):
        srv.shutdown()
        srv.server_close()
    return 0


# --- the client for tests ---------------------------------------------------

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def launch(argv, stderr_path=None, timeout=60):
    """Starts argv (a server that prints one JSON line when ready); returns
    (Popen, the parsed line).  Stops it if it does not get ready."""
    err = open(stderr_path, "ab") if stderr_path else None
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=err)
    if err:
        err.close()
    end = time.monotonic() + timeout
    line = b""
    try:
        while not line.endswith(b"\n"):
            left = end - time.monotonic()
            if left <= 0:
                raise RuntimeError("%s not ready within %ds" % (
                    os.path.basename(argv[1]), timeout))
            r, _, _ = select.select([proc.stdout], [], [], left)
            if r:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError("%s exited (%s) before it was ready"
                                       % (os.path.basename(argv[1]),
                                          proc.wait(5)))
                line += chunk
        return proc, json.loads(line)
    except BaseException:
        stop_process(proc)
        raise


def stop_process(proc, timeout=10):
    """SIGTERM by PID, SIGKILL after timeout; reaps it; its exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout:
        proc.stdout.close()
    return proc.returncode


class FaultProxy:
    def __init__(self, proc, port, control_port):
        self.proc, self.pid = proc, proc.pid
        self.port, self.control_port = port, control_port
        self.url = "https://127.0.0.1:%d" % port
        self.control_url = "http://127.0.0.1:%d" % control_port

    @classmethod
    def start(cls, cert, key, upstream, upstream_ca=None, log_file=None,
              stderr_path=None, python=None):
        argv = [python or sys.executable, os.path.abspath(__file__),
                "--cert", cert, "--key", key, "--upstream", upstream]
        if upstream_ca:
            argv += ["--upstream-ca", upstream_ca]
        if log_file:
            argv += ["--log-file", log_file]
        proc, ready = launch(argv, stderr_path)
        return cls(proc, ready["port"], ready["control_port"])

    def _req(self, method, path, obj=None):
        data = json.dumps(obj).encode() if obj is not None else None
        req = urllib.request.Request(
            self.control_url + path, data=data, method=method,
            headers={"Content-Type": "application/json"})
        try:
            with _NO_PROXY.open(req, timeout=30) as r:
                return r.read()
        except urllib.error.HTTPError as e:
            raise RuntimeError("faultproxy control %s %s: %s %s" % (
                method, path, e.code, e.read()[:200].decode(
                    errors="replace"))) from None

    def arm(self, kind, count=None, after=0, **opts):
        """Arms a fault (kinds and options: see the module docstring);
        match keys (method, path_prefix, header, target, action,
        body_contains) may be given directly.  Returns its id."""
        match = {k: opts.pop(k) for k in MATCH_KEYS if k in opts}
        spec = dict(opts, kind=kind, match=match, count=count, after=after)
        return json.loads(self._req("POST", "/faults", spec))["id"]

    def disarm(self, fault_id):
        self._req("DELETE", "/faults/%d" % fault_id)

    def faults(self):
        return json.loads(self._req("GET", "/faults"))

    def reset(self, log=False):
        self._req("POST", "/reset?log=1" if log else "/reset", {})

    def log(self, since=0):
        text = self._req("GET", "/log?since=%d" % since).decode()
        return [json.loads(line) for line in text.splitlines() if line]

    def stop(self):
        return stop_process(self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


if __name__ == "__main__":
    sys.exit(main())
