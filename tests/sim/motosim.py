#!/usr/bin/env python3
"""motosim.py -- moto_server (moto 5.2.1, in-process) made to behave like AWS
where moto does not, for credbroker's AWS end-to-end tests.

    motosim.py [--token-file F] [--max-session-seconds S] [--initial-no-auth N]

Plain HTTP on 127.0.0.1, a free port; prints {"port": N} as one JSON line on
stdout when ready; exits 0 on SIGTERM or SIGINT.  faultproxy.py puts TLS in
front.  moto's own control API (/moto-api/reset, /moto-api/reset-auth, ...)
keeps working on the same port.

What is added to moto (a WSGI middleware and two small patches):

  * AssumeRoleWithWebIdentity is unsigned, as AWS documents ("does not
    require AWS security credentials"): moto's signature/IAM check is skipped
    for that one action (moto 5.2.1 otherwise fails with a 500, KeyError on
    Authorization, once auth is on).  It does not use up one of moto's
    initial no-auth actions.
  * Its WebIdentityToken must equal --token-file's current contents (re-read
    each call, trailing newline stripped), else HTTP 400 InvalidIdentityToken.
    Without --token-file any token is accepted.
  * Once moto's auth is on, the role must exist in moto's IAM (else 403
    AccessDenied "Not authorized to perform sts:AssumeRoleWithWebIdentity"),
    and DurationSeconds may not exceed the role's MaxSessionDuration (400
    ValidationError), as on AWS.
  * DurationSeconds outside 900..43200 on AssumeRole* is a 400
    ValidationError; a missing RoleArn / RoleSessionName / WebIdentityToken
    too.
  * --max-session-seconds S caps the Expiration of every assumed-role
    session at now+S (AWS would grant the requested DurationSeconds), so
    tests can watch expiry and refresh within seconds.
  * A signed request (Authorization header or X-Amz-Credential query) whose
    access key belongs to an assumed-role session that has expired is
    answered as AWS does: JSON-protocol services (X-Amz-Target present) 400
    {"__type":"ExpiredTokenException",...}; query protocol (STS) 400 XML
    ErrorResponse Code ExpiredToken.
  * Once auth is on, an unsigned request (other than AssumeRoleWith*) gets
    AWS's MissingAuthenticationToken (query: 403 XML; JSON: 400
    MissingAuthenticationTokenException) instead of moto's 500.
  * moto answers IAM/signature failures of every service in one XML shape
    (<ErrorResponse><Errors><Error>, text/html, 403).  For JSON-protocol
    requests they become AWS's JSON, HTTP 400: AccessDenied ->
    AccessDeniedException, SignatureDoesNotMatch ->
    InvalidSignatureException, InvalidClientTokenId ->
    UnrecognizedClientException.  Query-protocol (STS) errors get AWS's
    <ErrorResponse xmlns=...><Error>..</Error><RequestId> shape, text/xml,
    status kept.  Secrets Manager and KMS 4xx errors are 400, as on AWS
    (moto: 404 for ResourceNotFoundException).

moto limits worth knowing: IAM policies are matched against resource "*"
for Secrets Manager and KMS, so a statement naming a specific Resource ARN
never allows anything -- use "Resource": "*" and separate roles/actions.

Endpoints of its own:
  GET    /motosim/calls   JSON list, one object per AssumeRoleWithWebIdentity:
                          time, token_sha256 (never the token), role_arn,
                          role_session_name, duration_seconds, status, error
  DELETE /motosim/calls   forgets them (POST /moto-api/reset does too)
  GET    /motosim/config  {"max_session_seconds": S|null, "token_file": F|null}
  POST   /motosim/config  the same JSON (either key) changes them at run time

Nothing here logs a header value or a body; werkzeug's per-request log is off.

A client for tests (same file):
    sim = MotoSim.start(token_file=F, max_session_seconds=S,
                        initial_no_auth=None, stderr_path=None)
    sim.port, sim.url, sim.pid
    sim.reset_auth(0)         # POST /moto-api/reset-auth: auth on after N
    sim.reset()               # POST /moto-api/reset
    sim.calls(), sim.clear_calls(), sim.config(**changes) -> current config
    sim.stop()
"""

import argparse
import datetime
import hashlib
import hmac
import http.client
import io
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid

MOTO_REQUIRED = ("moto_server 5.2.1 from the image's Python (pyenv 3.11, "
                 "/root/.pyenv/versions/3.11.7) is required")
MIN_DURATION, MAX_DURATION = 900, 43200
BODY_CAP = 8 << 20          # bodies larger than this are not inspected
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
EXPIRED_MSG = "The security token included in the request is expired"
IDP_MSG = ("Couldn't retrieve verification key from your identity provider,"
           "  please reference AssumeRoleWithWebIdentity documentation for "
           "requirements")
WEB_IDENTITY = "AssumeRoleWithWebIdentity"
UNSIGNED_ACTIONS = (WEB_IDENTITY, "AssumeRoleWithSAML")


# --- AWS-shaped error responses ---------------------------------------------

def _xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;").replace('"', "&quot;"))


def sts_error(status, code, message, kind="Sender"):
    """(status, headers, body) of an STS query-protocol error."""
    rid = str(uuid.uuid4())
    body = ('<ErrorResponse xmlns="%s">\n  <Error>\n    <Type>%s</Type>\n'
            '    <Code>%s</Code>\n    <Message>%s</Message>\n  </Error>\n'
            '  <RequestId>%s</RequestId>\n</ErrorResponse>\n' % (
                STS_NS, kind, code, _xml_escape(message), rid)).encode()
    return status, [("Content-Type", "text/xml"),
                    ("x-amzn-RequestId", rid)], body


def json_error(status, type_, message):
    """(status, headers, body) of a JSON-protocol (awsJson1.1) error."""
    rid = str(uuid.uuid4())
    body = json.dumps({"__type": type_, "message": message}).encode()
    return status, [("Content-Type", "application/x-amz-json-1.1"),
                    ("x-amzn-RequestId", rid)], body


def validation(message):
    return sts_error(400, "ValidationError", message)


# moto's auth layer answers every service with one XML shape
# (<ErrorResponse><Errors><Error>, text/html, 403).  AWS's JSON-protocol
# services answer these in JSON with HTTP 400.
JSON_AUTH_ERRORS = {
    "AccessDenied": ("AccessDeniedException", "Message"),
    "SignatureDoesNotMatch": ("InvalidSignatureException", "message"),
    "InvalidClientTokenId": ("UnrecognizedClientException", "message"),
}
# Services whose client errors are all HTTP 400 on AWS (moto sends 404 for
# ResourceNotFoundException, for instance).
JSON_400_TARGETS = ("secretsmanager.", "TrentService.")
_XML_FIELD = re.compile(rb"<(Type|Code|Message)>(.*?)</\1>", re.S)


def _xml_unescape(s):
    return (s.replace("&lt;", "<").replace("&gt;", ">")
            .replace("&quot;", '"').replace("&apos;", "'")
            .replace("&amp;", "&"))


def fix_response(environ, status, headers, body):
    """moto's (status, headers, body) reshaped where AWS answers otherwise:
    auth errors of JSON-protocol services in JSON, their 4xx as 400, and
    query-protocol errors in AWS's ErrorResponse/Error shape."""
    if status < 400 or b"<ErrorResponse><Errors><Error>" not in body[:200]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if 400 < status < 500 and target.startswith(JSON_400_TARGETS):
            status = 400
        return status, headers, body
    fields = {k.decode(): _xml_unescape(v.decode("utf-8", "replace"))
              for k, v in _XML_FIELD.findall(body)}
    code, msg = fields.get("Code", ""), fields.get("Message", "")
    if environ.get("HTTP_X_AMZ_TARGET"):
        type_, key = JSON_AUTH_ERRORS.get(code, (code, "message"))
        out = json.dumps({"__type": type_, key: msg}).encode()
        return 400, _replace_ctype(headers,
                                   "application/x-amz-json-1.1"), out
    _, _, out = sts_error(status, code, msg, fields.get("Type", "Sender"))
    return status, _replace_ctype(headers, "text/xml"), out


def _replace_ctype(headers, ctype):
    return [(k, v) for k, v in headers
            if k.lower() != "content-type"] + [("Content-Type", ctype)]


# --- the middleware ---------------------------------------------------------

class State:
    """Run-time settings and the call record, shared by request threads."""

    def __init__(self, token_file=None, max_session_seconds=None):
        self.lock = threading.Lock()
        self.token_file = token_file
        self.max_session_seconds = max_session_seconds
        self.calls = []

    def config(self):
        with self.lock:
            return {"max_session_seconds": self.max_session_seconds,
                    "token_file": self.token_file}

    def expected_token(self):
        with self.lock:
            path = self.token_file
        if not path:
            return None
        with open(path, "rb") as f:
            return f.read().rstrip(b"\r\n")


def _read_body(environ):
    """The request body (also put back for moto), or None when too big."""
    try:
        n = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        n = 0
    if n > BODY_CAP:
        return None
    if n > 0:
        body = environ["wsgi.input"].read(n)
    elif environ.get("wsgi.input_terminated"):
        body = environ["wsgi.input"].read(BODY_CAP + 1)
        if len(body) > BODY_CAP:
            environ["wsgi.input"] = io.BytesIO(body)
            return None
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def _params(environ, body):
    """Query-protocol parameters: the URL's query plus a form body."""
    out = {}
    pairs = urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""),
                                   keep_blank_values=True)
    ctype = environ.get("CONTENT_TYPE", "")
    if body and ctype.startswith("application/x-www-form-urlencoded"):
        pairs += urllib.parse.parse_qsl(body.decode("utf-8", "replace"),
                                        keep_blank_values=True)
    for k, v in pairs:
        out.setdefault(k, v)
    return out


def _access_key_id(environ):
    auth = environ.get("HTTP_AUTHORIZATION", "")
    if "Credential=" in auth:
        return auth.partition("Credential=")[2].partition("/")[0].strip()
    q = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    cred = q.get("X-Amz-Credential", [""])[0]
    return cred.partition("/")[0] or None


class MotoSimApp:
    """WSGI middleware in front of moto's DomainDispatcherApplication."""

    def __init__(self, moto_app, state, moto):
        self.app = moto_app
        self.state = state
        self.m = moto

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/motosim/"):
            return self._own(environ, start_response, path)
        if path == "/moto-api/reset" and environ["REQUEST_METHOD"] == "POST":
            with self.state.lock:
                self.state.calls = []
        reply = self._check(environ)
        if reply is None:
            reply = fix_response(environ, *self._call_moto(environ))
        return self._send(start_response, *reply)

    def _call_moto(self, environ):
        """(status, headers, body) of moto's answer, buffered."""
        got = {}

        def start(status, headers, exc_info=None):
            got["status"], got["headers"] = status, headers
            return lambda data: got.setdefault("early", []).append(data)

        it = self.app(environ, start)
        try:
            body = b"".join(got.get("early", []) + list(it))
        finally:
            if hasattr(it, "close"):
                it.close()
        headers = [(k, v) for k, v in got["headers"]
                   if k.lower() not in ("content-length", "status")]
        return int(got["status"].split()[0]), headers, body

    @staticmethod
    def _send(start_response, status, headers, body):
        reason = http.client.responses.get(status, "Unknown")
        headers = list(headers) + [("Content-Length", str(len(body)))]
        start_response("%d %s" % (status, reason), headers)
        return [body]

    def _own(self, environ, start_response, path):
        method = environ["REQUEST_METHOD"]
        js = [("Content-Type", "application/json")]
        if path == "/motosim/calls" and method == "GET":
            with self.state.lock:
                out = json.dumps(self.state.calls).encode()
            return self._send(start_response, 200, js, out)
        if path == "/motosim/calls" and method == "DELETE":
            with self.state.lock:
                self.state.calls = []
            return self._send(start_response, 204, [], b"")
        if path == "/motosim/config" and method in ("GET", "POST"):
            if method == "POST":
                try:
                    req = json.loads(_read_body(environ) or b"{}")
                    with self.state.lock:
                        if "max_session_seconds" in req:
                            v = req["max_session_seconds"]
                            self.state.max_session_seconds = (
                                None if v is None else float(v))
                        if "token_file" in req:
                            self.state.token_file = req["token_file"]
                except (ValueError, TypeError):
                    return self._send(start_response, 400, js,
                                      b'{"error":"bad config JSON"}')
            out = json.dumps(self.state.config()).encode()
            return self._send(start_response, 200, js, out)
        return self._send(start_response, 404, js, b'{"error":"not found"}')

    def _check(self, environ):
        """A reply that replaces moto's, or None to let moto answer."""
        if environ.get("PATH_INFO", "").startswith(("/moto-api",
                                                     "/latest/")):
            return None             # moto's control API, instance metadata
        body = _read_body(environ)
        params = _params(environ, body or b"")
        action = params.get("Action", "")
        json_api = bool(environ.get("HTTP_X_AMZ_TARGET"))
        akid = _access_key_id(environ)
        if akid:
            role = self._assumed_role(akid)
            if role is not None and role.expiration <= self.m.utcnow():
                if json_api:
                    return json_error(400, "ExpiredTokenException",
                                      EXPIRED_MSG)
                return sts_error(400, "ExpiredToken", EXPIRED_MSG)
        elif self.m.auth_enabled() and action not in UNSIGNED_ACTIONS:
            # moto fails with a 500 (KeyError) on an unsigned request.
            if json_api:
                return json_error(400, "MissingAuthenticationTokenException",
                                  "Missing Authentication Token")
            return sts_error(403, "MissingAuthenticationToken",
                             "Request is missing Authentication Token")
        if body is None:
            return None
        if action.startswith("AssumeRole"):
            r = self._check_duration(params.get("DurationSeconds"))
            if r is not None:
                return r
        if action == WEB_IDENTITY:
            return self._web_identity(params)
        return None

    @staticmethod
    def _check_duration(value):
        if value is None:
            return None
        try:
            d = int(value)
        except ValueError:
            return validation("1 validation error detected: Value '%s' at "
                              "'durationSeconds' failed to satisfy "
                              "constraint: Member must be an integer" %
                              value[:32])
        if d < MIN_DURATION:
            return validation(
                "1 validation error detected: Value '%d' at "
                "'durationSeconds' failed to satisfy constraint: Member "
                "must have value greater than or equal to %d" %
                (d, MIN_DURATION))
        if d > MAX_DURATION:
            return validation(
                "1 validation error detected: Value '%d' at "
                "'durationSeconds' failed to satisfy constraint: Member "
                "must have value less than or equal to %d" %
                (d, MAX_DURATION))
        return None

    def _web_identity(self, params):
        token = params.get("WebIdentityToken")
        call = {"time": round(time.time(), 3),
                "token_sha256": hashlib.sha256(token.encode()).hexdigest()
                if token is not None else None,
                "role_arn": params.get("RoleArn"),
                "role_session_name": params.get("RoleSessionName"),
                "duration_seconds": int(params["DurationSeconds"])
                if params.get("DurationSeconds") else None,
                "status": 200, "error": None}
        code, reply = self._web_identity_reply(params, token)
        if reply is not None:
            call["status"], call["error"] = reply[0], code
        with self.state.lock:
            self.state.calls.append(call)
        return reply

    def _web_identity_reply(self, params, token):
        """(error code, reply) of a refused call, or (None, None)."""
        for name in ("RoleArn", "RoleSessionName", "WebIdentityToken"):
            if not params.get(name):
                return "ValidationError", validation(
                    "1 validation error detected: Value null at '%s' failed "
                    "to satisfy constraint: Member must not be null" %
                    (name[0].lower() + name[1:]))
        try:
            want = self.state.expected_token()
        except OSError:
            want = b"\x00unreadable token file"
        if want is not None and not hmac.compare_digest(token.encode(),
                                                        want):
            return "InvalidIdentityToken", sts_error(
                400, "InvalidIdentityToken", IDP_MSG)
        if not self.m.auth_enabled():
            return None, None
        role = self.m.find_role(params["RoleArn"])
        if role is None:
            return "AccessDenied", sts_error(
                403, "AccessDenied",
                "Not authorized to perform sts:AssumeRoleWithWebIdentity")
        d = int(params.get("DurationSeconds") or 3600)
        if d > int(role.max_session_duration or 3600):
            return "ValidationError", validation(
                "The requested DurationSeconds exceeds the "
                "MaxSessionDuration set for this role.")
        return None, None

    def _assumed_role(self, akid):
        return self.m.find_assumed_role(akid)


# --- moto, imported and patched ---------------------------------------------

class Moto:
    """moto's pieces this launcher uses, and its patches."""

    def __init__(self, state):
        try:
            import moto  # noqa: F401
            from moto import settings
            from moto.core import authorization
            from moto.core.utils import utcnow
            from moto.iam.models import iam_backends
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication, create_backend_app)
            from moto.sts import models as sts_models
            from moto.utilities.utils import get_partition
        except ImportError as e:
            raise SystemExit("motosim: %s (import failed: %s)" % (
                MOTO_REQUIRED, e))
        self.settings = settings
        self.auth = authorization.ActionAuthenticatorMixin
        self.utcnow = utcnow
        self.iam_backends = iam_backends
        self.sts_backends = sts_models.sts_backends
        self.get_partition = get_partition
        self._patch(sts_models.AssumedRole, state)
        app = DomainDispatcherApplication(create_backend_app)
        app.debug = True
        self.app = app

    def _patch(self, assumed_role_cls, state):
        mixin = self.auth
        orig_auth = mixin._authenticate_and_authorize_action
        orig_init = assumed_role_cls.__init__
        utcnow = self.utcnow

        def authenticate(resp, iam_request_cls, resource="*"):
            # AWS: AssumeRoleWithWebIdentity needs no credentials.
            if getattr(resp, "service_name", None) == "sts":
                try:
                    if resp._get_action() == WEB_IDENTITY:
                        return None
                except Exception:  # noqa: BLE001 -- let moto decide
                    pass
            return orig_auth(resp, iam_request_cls, resource)

        def init(role, *args, **kwargs):
            orig_init(role, *args, **kwargs)
            with state.lock:
                cap = state.max_session_seconds
            if cap is not None:
                limit = utcnow() + datetime.timedelta(seconds=cap)
                role.expiration = min(role.expiration, limit)

        mixin._authenticate_and_authorize_action = authenticate
        assumed_role_cls.__init__ = init

    def auth_enabled(self):
        return (self.auth.request_count >=
                self.settings.INITIAL_NO_AUTH_ACTION_COUNT)

    def find_role(self, arn):
        parts = arn.split(":")
        if len(parts) < 6 or parts[2] != "iam":
            return None
        try:
            backend = self.iam_backends[parts[4]][parts[1]]
            return backend.get_role_by_arn(arn)
        except Exception:  # noqa: BLE001 -- NotFound, bad account, ...
            return None

    def find_assumed_role(self, akid):
        for account in list(self.sts_backends.keys()):
            for partition in list(self.sts_backends[account].keys()):
                backend = self.sts_backends[account][partition]
                for role in list(backend.assumed_roles):
                    if role.access_key_id == akid:
                        return role
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--token-file")
    ap.add_argument("--max-session-seconds", type=float)
    ap.add_argument("--initial-no-auth", type=float,
                    help="moto's INITIAL_NO_AUTH_ACTION_COUNT "
                    "(default: never check)")
    args = ap.parse_args(argv)
    state = State(args.token_file, args.max_session_seconds)
    m = Moto(state)
    if args.initial_no_auth is not None:
        m.settings.INITIAL_NO_AUTH_ACTION_COUNT = args.initial_no_auth
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    from werkzeug.serving import make_server
    srv = make_server("127.0.0.1", 0, MotoSimApp(m.app, state, m),
                      threaded=True)
    srv.daemon_threads = True
    os.environ["MOTO_PORT"] = str(srv.server_port)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    sys.stdout.write(json.dumps({"port": srv.server_port}) + "\n")
    sys.stdout.flush()
    while not done.wait(0.5):
        pass
    srv.shutdown()
    srv.server_close()
    return 0


# --- the client for tests ---------------------------------------------------

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultproxy import launch, stop_process  # noqa: E402

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class MotoSim:
    def __init__(self, proc, port):
        self.proc, self.pid, self.port = proc, proc.pid, port
        self.url = "http://127.0.0.1:%d" % port

    @classmethod
    def start(cls, token_file=None, max_session_seconds=None,
              initial_no_auth=None, stderr_path=None, python=None):
        argv = [python or sys.executable, os.path.abspath(__file__)]
        if token_file:
            argv += ["--token-file", token_file]
        if max_session_seconds is not None:
            argv += ["--max-session-seconds", str(max_session_seconds)]
        if initial_no_auth is not None:
            argv += ["--initial-no-auth", str(initial_no_auth)]
        proc, ready = launch(argv, stderr_path)
        return cls(proc, ready["port"])

    def _req(self, method, path, data=None, ctype="application/json"):
        # text/plain for reset-auth: moto reads request.data, which Flask
        # leaves empty for a form-encoded body.
        req = urllib.request.Request(self.url + path, data=data,
                                     method=method,
                                     headers={"Content-Type": ctype})
        with _NO_PROXY.open(req, timeout=30) as r:
            body = r.read()
        return json.loads(body) if body else None

    def reset_auth(self, n=0):
        """Signature and IAM checks on after n more actions."""
        return self._req("POST", "/moto-api/reset-auth", str(n).encode(),
                         "text/plain")

    def reset(self):
        return self._req("POST", "/moto-api/reset", b"")

    def calls(self):
        return self._req("GET", "/motosim/calls")

    def clear_calls(self):
        self._req("DELETE", "/motosim/calls")

    def config(self, **changes):
        if changes:
            return self._req("POST", "/motosim/config",
                             json.dumps(changes).encode())
        return self._req("GET", "/motosim/config")

    def stop(self):
        return stop_process(self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


if __name__ == "__main__":
    sys.exit(main())
