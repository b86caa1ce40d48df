"""HTTPS for the simulator: threaded, HTTP/1.1 keep-alive with exact
Content-Length, the TLS handshake in each connection's thread, and the
injected faults (delay, status, verbatim or oversized body, reset)."""

import json
import socket
import struct
import sys
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .common import CANNED_ERRORS, Reply, logical, multierr


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, sim, ctx):
        self.sim, self.ctx = sim, ctx
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        # The TLS handshake runs in the connection's thread (setup()), so a
        # slow or failing client never blocks accept().
        return self.ctx.wrap_socket(sock, server_side=True,
                                    do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        self.sim.log("connection error: %s" % sys.exc_info()[1])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60

    def setup(self):
        self.sim = self.server.sim
        self.request.settimeout(self.timeout)
        self.sim._conns.add(self.request)
        try:
            self.request.do_handshake()
        except BaseException:
            self.sim._conns.discard(self.request)
            raise
        super().setup()

    def finish(self):
        try:
            super().finish()
        finally:
            self.sim._conns.discard(self.request)

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_LIST = do_PATCH = do_HEAD = do_GET

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _dispatch(self):
        sim = self.sim
        url = urllib.parse.urlsplit(self.path)
        path, qs = url.path, url.query
        body = self._read_body()
        logical = path[4:] if path.startswith("/v1/") else path
        fault = sim.take_fault(self.command, logical)
        reply = None
        if fault is not None:
            reply = self._apply_fault(fault)
        if reply is None:
            try:
                reply = sim.handle(self.command, path,
                                   urllib.parse.parse_qs(qs), self.headers,
                                   body)
            except Exception as e:  # noqa: BLE001 -- a simulator bug
                sys.stderr.write("vaultsim: internal error on %s: %s (set "
                                 "VAULTSIM_DEBUG=1 for details)\n" % (
                                     sim.redact(logical), type(e).__name__))
                sim.log(traceback.format_exc())
                reply = Reply(500, {"errors": [multierr("internal error")]})
        sim.record_request(self.command, logical, qs,
                           None if reply.drop else reply.status,
                           dict(self.headers.items()))
        sim.log("%s %s -> %s" % (self.command, logical,
                                 "dropped" if reply.drop else reply.status))
        if reply.drop:
            self._reset()
            return
        self._send(reply)

    def _apply_fault(self, f):
        if f.delay:
            time.sleep(f.delay)
        if f.drop:
            return Reply(0, drop=True)
        if f.body is not None:
            raw = oversized_body() if f.body == "oversized" else (
                f.body.encode() if isinstance(f.body, str) else f.body)
            return Reply(f.status or 200, raw=raw)
        if f.status is not None:
            errs = CANNED_ERRORS.get(f.status)
            if f.status == 429:
                # vault/quotas: ErrRateLimitQuotaExceeded
                errs = ['request path "%s": rate limit quota exceeded' %
                        urllib.parse.urlsplit(self.path).path[4:]]
            if errs is None:
                errs = [self.responses.get(f.status, ("error",))[0]]
            return Reply(f.status, {"errors": errs})
        return None     # a delay only: handled normally afterwards

    def _reset(self):
        """Closes the connection with a TCP reset (SO_LINGER 0), no
        response: the client sees ECONNRESET."""
        self.close_connection = True
        try:
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            socket.socket.close(self.request)
        except OSError:
            pass

    def _send(self, reply):
        if reply.raw is not None:
            payload = reply.raw
        elif reply.obj is not None:
            payload = (json.dumps(reply.obj) + "\n").encode()
        else:
            payload = b""
        try:
            self.send_response(reply.status)
            self.send_header("Cache-Control", "no-store")
            if payload or reply.status not in (204, 304) and \
                    self.command != "HEAD":
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            self.close_connection = True


def oversized_body(size=3 * 1024 * 1024):
    """A valid-looking logical response of about 3 MiB."""
    head = json.dumps(logical(data={"padding": ""}))
    pad = "A" * size
    return head.replace('"padding": ""', '"padding": "%s"' % pad).encode()
