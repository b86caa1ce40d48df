#!/usr/bin/env python3
"""https_fixture.py -- CMD ARGS...

A small HTTPS server for the HTTP client's unit suite (standard library
only).  It makes a test PKI (testca.py) in a temporary directory, listens on
127.0.0.1 twice -- once plain TLS, once demanding a client certificate --
runs CMD with

    CB_TEST_HTTPS_PORT       the TLS port
    CB_TEST_HTTPS_MTLS_PORT  the port that requires a client certificate
    CB_TEST_HTTPS_CLOSED     a port nothing listens on
    CB_TEST_HTTPS_PROXY_PORT an HTTP CONNECT proxy that resolves vault.test
                             (unknown to the system resolver) to 127.0.0.1
    CB_TEST_PKI_DIR          the PKI (ca.pem, other-ca.pem, client.pem, ...)
    CB_TEST_HTTPS_PIN        sha256//BASE64 of the server's public key

then stops the servers, removes the directory and exits with CMD's status.

Paths: /echo (JSON of method, path, headers, body), /status/N, /size/N
(N bytes), /slow/SECONDS, /drop (closes without answering), /redirect
(307 to /echo), /record (stores the request, answers 204), /records (JSON
list of the stored requests, oldest first), /flaky/N (503 to the first N
requests to that path over the fixture's life, 204 after), /hits (JSON
object: requests seen so far per path).  Stored requests and counts are
shared by both TLS ports.
"""

import http.server
import select
import socketserver
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from testca import TestPki  # noqa: E402


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    lock = threading.Lock()
    records = []  # /record's requests
    hits = {}     # requests so far, per path

    def log_message(self, fmt, *args):
        pass

    def _send(self, status, body, ctype="application/json", extra=None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = self.path.split("/")
        with Handler.lock:
            n = Handler.hits[self.path] = Handler.hits.get(self.path, 0) + 1
        if self.path == "/echo":
            out = {"method": self.command, "path": self.path,
                   "headers": {k.lower(): v for k, v in self.headers.items()},
                   "body": body.decode(errors="replace")}
            self._send(200, json.dumps(out).encode())
        elif len(parts) == 3 and parts[1] == "status":
            self._send(int(parts[2]), b'{"errors":["status requested"]}')
        elif len(parts) == 3 and parts[1] == "size":
            self._send(200, b"a" * int(parts[2]), "text/plain")
        elif len(parts) == 3 and parts[1] == "slow":
            time.sleep(float(parts[2]))
            self._send(200, b"{}")
        elif self.path == "/drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif self.path == "/redirect":
            self._send(307, b"", extra={"Location": "/echo"})
        elif self.path == "/record":
            with Handler.lock:
                Handler.records.append(
                    {"method": self.command,
                     "headers": {k.lower(): v
                                 for k, v in self.headers.items()},
                     "body": body.decode(errors="replace")})
            self._send(204, b"")
        elif self.path == "/records":
            with Handler.lock:
                out = json.dumps(Handler.records).encode()
            self._send(200, out)
        elif self.path == "/hits":
            with Handler.lock:
                out = json.dumps(Handler.hits).encode()
            self._send(200, out)
        elif len(parts) == 3 and parts[1] == "flaky":
            if n <= int(parts[2]):
                self._send(503, b'{"errors":["flaky"]}')
            else:
                self._send(204, b"")
        else:
            self._send(404, b'{"errors":[]}')

    do_GET = do_POST = do_PUT = do_DELETE = do_LIST = _handle


def serve(pki, client_cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    if client_cert:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki.ca_cert)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class ConnectProxy(socketserver.StreamRequestHandler):
    """CONNECT vault.test:PORT only; then bytes both ways."""

    def handle(self):
        line = self.rfile.readline(1024).decode("latin-1").split()
        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
            pass
        if len(line) != 3 or line[0] != "CONNECT" or \
                not line[1].startswith("vault.test:"):
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            return
        up = socket.create_connection(("127.0.0.1",
                                       int(line[1].split(":")[1])), 5)
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        pair = {self.connection: up, up: self.connection}
        try:
            while True:
                ready, _, _ = select.select(list(pair), [], [], 10)
                if not ready:
                    return
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    pair[s].sendall(data)
        finally:
            up.close()


def proxy():
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), ConnectProxy)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main(argv):
    if len(argv) < 2 or argv[0] != "--":
        sys.stderr.write(__doc__)
        return 2
    signal.signal(signal.SIGTERM, lambda n, f: sys.exit(128 + n))
    tmp = tempfile.mkdtemp(prefix="cb-https-")
    servers = []
    try:
        pki = TestPki(tmp)
        servers = [serve(pki, False), serve(pki, True), proxy()]
        env = dict(os.environ,
                   CB_TEST_HTTPS_PORT=str(servers[0].server_address[1]),
                   CB_TEST_HTTPS_MTLS_PORT=str(servers[1].server_address[1]),
                   CB_TEST_HTTPS_CLOSED=str(closed_port()),
                   CB_TEST_HTTPS_PROXY_PORT=str(servers[2].server_address[1]),
                   CB_TEST_PKI_DIR=tmp,
                   CB_TEST_HTTPS_PIN=pki.server_pubkey_pin())
        for k in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                  "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
            env.pop(k, None)
        proc = subprocess.Popen(argv[1:], env=env)
        try:
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        return rc if rc >= 0 else 128 - rc
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
