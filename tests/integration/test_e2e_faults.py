#!/usr/bin/env python3
"""Faults the other end-to-end suites leave out (issue "Faults"): a TLS
downgrade in place of Vault, a broken service-account token file, and
PostgreSQL killed in the middle of the transaction that creates a role.
(The trickle, 10 MiB bodies, invalid JSON and redirects are in
test_e2e_vault_faults.py, the wrong CA at start-up and the pin in
test_e2e_vault.py, the kubelet's token rotation in test_e2e_vault.py, the
scheduler's clock arithmetic in tests/unit/test_broker.c.)  Here also: a
Vault that turns to a certificate from another CA mid-run, and the real
broker's wall clock jumping by hours (libfaketime).

Every scenario checks the same three things: the last good credential stays
served, and still logs in to PostgreSQL, while the fault lasts; the broker
names what failed (and never a secret); it recovers once the fault clears,
without a restart."""

import errno
import glob
import os
import select
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import unittest
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import wait_until  # noqa: E402
from vaultcase import VaultCase, grant_statements  # noqa: E402

def logfmt_events(text, event, secret=None):
    """The log lines of one event (for one secret)."""
    return [ln for ln in text.splitlines()
            if "event=%s " % event in ln and
            (secret is None or " secret=%s " % secret in ln)]


# --- a TCP front for Vault that can turn into a downgrading server ---------

class TlsFront:
    """Listens on 127.0.0.1; per mode, each connection is
      "pass"     piped at the TCP level to the Vault simulator (TLS is
                 between the broker and Vault),
      "offer11"  answered by a TLS server that speaks TLS 1.0/1.1 only, with
                 the test PKI's server certificate (so only the protocol
                 version is wrong),
      "hello11"  answered, whatever the ClientHello says, with a TLS 1.1
                 ServerHello record built from bytes (what a downgrading
                 man in the middle sends),
      "otherca"  answered by a TLS 1.2+ server whose certificate, for the
                 same names, comes from an unrelated CA (other=(cert, key);
                 a man in the middle, or Vault re-keyed under the wrong CA).
    Records, per downgrade connection, the first bytes the client sent (all
    it sent, for hello11), whether a handshake completed, and the alert the
    client answered with.  Switching modes closes the piped connections."""

    def __init__(self, upstream_port, cert, key, other=None):
        self.upstream = ("127.0.0.1", upstream_port)
        self.mode = "pass"
        self.records = []
        self.lock = threading.Lock()
        self.pipes = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = "https://127.0.0.1:%d" % self.port
        self.ctx11 = self._tls11_context(cert, key)
        self.ctx_other = None
        if other is not None:
            self.ctx_other = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx_other.load_cert_chain(*other)
        self.stopping = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    @staticmethod
    def _tls11_context(cert, key):
        """A server context limited to TLS 1.0-1.1.  OpenSSL 3 at its
        default security level has no cipher it would use below 1.2, so
        the context asks for level 0; without that the server could not
        even offer the old versions (it fails with NO_CIPHERS_AVAILABLE)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.load_cert_chain(cert, key)
        return ctx

    def set_mode(self, mode):
        with self.lock:
            self.mode = mode
            pipes, self.pipes = self.pipes, []
        for a, b in pipes:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def downgrade_records(self):
        with self.lock:
            return list(self.records)

    def stop(self):
        self.stopping = True
        self.set_mode("pass")
        try:
            self.sock.close()
        except OSError:
            pass
        self.thread.join(5)

    def _accept_loop(self):
        while not self.stopping:
            try:
                r, _, _ = select.select([self.sock], [], [], 0.2)
                if not r:
                    continue
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                mode = self.mode
            handler = {"pass": self._pipe, "offer11": self._offer11,
                       "hello11": self._hello11,
                       "otherca": self._otherca}[mode]
            threading.Thread(target=handler, args=(conn,),
                             daemon=True).start()

    def _pipe(self, conn):
        try:
            up = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            conn.close()
            return
        with self.lock:
            self.pipes.append((conn, up))
        socks = [conn, up]
        try:
            while True:
                r, _, _ = select.select(socks, [], [], 30)
                if not r:
                    break
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (up if s is conn else conn).sendall(data)
        except OSError:
            pass
        finally:
            conn.close()
            up.close()

    def _record(self, rec):
        with self.lock:
            self.records.append(rec)

    def _offer11(self, conn):
        rec = {"mode": "offer11", "first": b"", "handshake": False,
               "version": None, "error": None, "after": b""}
        conn.settimeout(5)
        try:
            rec["first"] = conn.recv(16, socket.MSG_PEEK)
            tls = self.ctx11.wrap_socket(conn, server_side=True)
            # Accepted TLS 1.1: whatever comes now would be the request.
            rec["handshake"] = True
            rec["version"] = tls.version()
            rec["after"] = tls.recv(65536)
            tls.close()
        except (OSError, ssl.SSLError) as e:
            rec["error"] = "%s: %s" % (type(e).__name__, e)
        finally:
            conn.close()
            self._record(rec)

    def _otherca(self, conn):
        rec = {"mode": "otherca", "first": b"", "handshake": False,
               "version": None, "error": None, "after": b""}
        conn.settimeout(5)
        try:
            rec["first"] = conn.recv(16, socket.MSG_PEEK)
            tls = self.ctx_other.wrap_socket(conn, server_side=True)
            # TLS 1.3: the server's side completes before the client has
            # checked the certificate; what follows tells.
            rec["version"] = tls.version()
            rec["after"] = tls.recv(65536)
            rec["handshake"] = bool(rec["after"])
            tls.close()
        except (OSError, ssl.SSLError) as e:
            rec["error"] = "%s: %s" % (type(e).__name__, e)
        finally:
            conn.close()
            self._record(rec)

    @staticmethod
    def _server_hello_11():
        body = (b"\x03\x02" + os.urandom(32) + b"\x00"   # version, random,
                + b"\x00\x2f" + b"\x00")    # no session, RSA-AES128-SHA
        hs = b"\x02" + struct.pack(">I", len(body))[1:] + body
        return b"\x16\x03\x02" + struct.pack(">H", len(hs)) + hs

    def _hello11(self, conn):
        rec = {"mode": "hello11", "first": b"", "handshake": False,
               "version": "TLSv1.1", "error": None, "after": b""}
        conn.settimeout(5)
        try:
            rec["first"] = conn.recv(65536)
            conn.sendall(self._server_hello_11())
            # The client's answer: an alert, never an HTTP request.
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                rec["after"] += data
        except OSError as e:
            rec["error"] = "%s: %s" % (type(e).__name__, e)
        finally:
            conn.close()
            self._record(rec)


# Markers of a request in clear text.
PLAINTEXT_MARKERS = (b"HTTP/1", b"X-Vault", b"x-vault", b"POST ", b"GET ",
                     b"PUT ", b"\"jwt\"", b"/v1/")


class VaultFaultsTest(VaultCase):

    def setUp(self):
        super().setUp()
        self.sim.clear_faults()
        self.addCleanup(self.sim.clear_faults)

    # -- helpers --

    def assert_still_served(self, b, name, before, what=""):
        now = self.read(b, name)
        self.assertEqual(now["username"], before["username"], what)
        self.assertEqual(now["password"], before["password"], what)
        self.assert_logs_in(now)

    def creds_requests(self, role):
        return [r for r in self.sim.requests()
                if r["path"] == "database/creds/" + role]

    def logins(self):
        return [r for r in self.sim.requests()
                if r["path"] == "auth/kubernetes/login"]

    def rotate_until(self, b, name, pred, what, tries=4):
        """Runs `credbroker rotate NAME` (it waits for the outcome) until
        pred(status) holds; returns the status.  A background retry of an
        earlier failure may answer a rotate first, hence the loop."""
        st = None
        for _ in range(tries):
            rc, out, err = b.cli("rotate", name, timeout=60)
            st = b.secret_status(name)
            if pred(st):
                return st
            time.sleep(0.2)
        self.fail("%s: status %r\n--- log ---\n%s" % (what, st,
                                                     b.log_tail()))

    # -- 1. TLS downgrade --

    def test_tls_downgrade_refused(self):
        """In place of Vault: a server that offers TLS 1.0/1.1 only, then one
        that answers with a TLS 1.1 ServerHello.  The broker (TLS 1.2
        minimum) refuses both, says why, sends nothing in clear, and keeps
        the last credential until Vault is back."""
        self.setup_roles("tlsdown", token_ttl=3600, token_max_ttl=7200,
                         default_ttl=120, max_ttl=600)
        front = TlsFront(int(self.sim.address.rsplit(":", 1)[1]),
                         self.pki.server_cert, self.pki.server_key)
        self.addCleanup(front.stop)
        secrets = [self.db_secret("vdb", "tlsdown", "120s")]

        # At start: the login is refused, the broker exits naming TLS.
        front.set_mode("offer11")
        cfg = self.vault_config(secrets, "tlsdown")
        cfg["backends"]["v"]["address"] = front.url
        n_logins = len(self.logins())
        rc, text = self.run_broker_to_exit(cfg, name="tlsstart")
        self.assertEqual(rc, 2, text)
        self.assertIn("TLS handshake failed", text)
        self.assertIn("protocol version", text)
        self.assertIn("backends.v", text)
        self.assertEqual(len(self.logins()), n_logins,
                         "a login reached Vault through the downgrade")

        # Mid-run.
        front.set_mode("pass")
        b = self.start_broker(cfg)
        b.wait_active("vdb")
        before = self.read(b, "vdb")
        self.assert_logs_in(before)
        n_creds = len(self.creds_requests("tlsdown"))
        n_rec = len(front.downgrade_records())
        for mode, text in (("offer11", "alert protocol version"),
                           ("hello11", "unsupported protocol")):
            front.set_mode(mode)
            st = self.rotate_until(
                b, "vdb", lambda s: text in s["last_error"],
                "%s: last_error names the protocol version" % mode)
            cbtest.log("%s: last_error %r" % (mode, st["last_error"]))
            self.assertIn("TLS handshake failed", st["last_error"])
            self.assertIn("database/creds/tlsdown", st["last_error"])
            self.assertGreaterEqual(st["failures"], 1)
            self.assertEqual(st["state"], "active")
            self.assert_still_served(b, "vdb", before, mode)
            ev = [ln for ln in logfmt_events(b.log_text(), "issue_failed",
                                             "vdb") if text in ln]
            self.assertTrue(ev, "no issue_failed event naming %r" % text)
            self.assertIn("errno=%d" % errno.EPROTO, ev[-1])
            self.assertTrue(b.alive())

        recs = front.downgrade_records()[n_rec:]
        self.assertEqual(sorted(set(r["mode"] for r in recs)),
                         ["hello11", "offer11"], recs)
        for r in recs:
            self.assertFalse(r["handshake"], "a TLS 1.1 handshake completed:"
                             " %r" % r)
            # A TLS handshake record (0x16 0x03 ..), nothing in clear.
            self.assertEqual(r["first"][:2], b"\x16\x03", r)
            for m in PLAINTEXT_MARKERS:
                self.assertNotIn(m, r["first"] + r["after"], r)
        for r in recs:
            if r["mode"] == "hello11" and r["after"]:
                # The client's answer is a fatal protocol_version alert.
                self.assertEqual(r["after"][0], 0x15, r)
                self.assertIn(b"\x02\x46", r["after"], r)
        self.assertEqual(len(self.creds_requests("tlsdown")), n_creds,
                         "a request reached Vault during the downgrade")

        # Vault back: a new credential, the old one still good meanwhile.
        front.set_mode("pass")
        rc, out, err = b.cli("rotate", "vdb", timeout=60)
        self.assertEqual(rc, 0, "%s %s" % (out, err))
        st = b.secret_status("vdb")
        self.assertEqual((st["failures"], st["last_error"]), (0, ""), st)
        after = self.read(b, "vdb")
        self.assertNotEqual(after["username"], before["username"])
        self.assert_logs_in(after)
        self.assert_logs_in(before)   # retired at its expiry, not before
        self.assertEqual(b.stop(), 0)

    # -- 1b. a certificate from another CA, mid-run --

    @cbtest.realtime("a renewal before a short lease expires")
    def test_wrong_ca_mid_run(self):
        """Vault, once verified, turns to a certificate for the same names
        from an unrelated CA (a man in the middle, or a re-keying gone
        wrong), then back.  The renewal that meets it fails with a TLS
        verification error, nothing reaches Vault, the credential stays
        served and logs in until its expiry, and once the right
        certificate is back the broker renews the same lease by itself,
        before it expires, without a restart or a responder's rotate."""
        ttl = 12
        self.setup_roles("wrongca", token_ttl=3600, token_max_ttl=7200,
                         default_ttl=ttl, max_ttl=600)
        front = TlsFront(int(self.sim.address.rsplit(":", 1)[1]),
                         self.pki.server_cert, self.pki.server_key,
                         other=(self.pki.other_server_cert,
                                self.pki.other_server_key))
        self.addCleanup(front.stop)
        cfg = self.vault_config([self.db_secret("vdb", "wrongca",
                                                "%ds" % ttl)], "wrongca")
        cfg["backends"]["v"]["address"] = front.url
        b = self.start_broker(cfg)
        st0 = b.wait_active("vdb")
        before = self.read(b, "vdb")
        self.assert_logs_in(before)
        n_req = len(self.sim.requests())
        n_rec = len(front.downgrade_records())

        # The scheduled renewal (~2/3 of the TTL) meets the other CA.
        front.set_mode("otherca")
        st = wait_until(lambda: (lambda s: s if "TLS verification failed"
                                 in s["last_error"] else None)(
                                     b.secret_status("vdb")),
                        ttl, 0.1, "a renewal failing TLS verification")
        fault_seen = time.time()
        cbtest.log("wrong CA: last_error %r" % st["last_error"])
        self.assertIn("renew", st["last_error"])
        self.assertEqual((st["state"], st["renewals"]),
                         ("active", st0["renewals"]), st)
        self.assert_still_served(b, "vdb", before, "wrong CA")
        ev = [ln for ln in logfmt_events(b.log_text(), "renew_failed", "vdb")
              if "TLS verification failed" in ln]
        self.assertTrue(ev, "no renew_failed event naming the TLS "
                        "verification:\n" + b.log_tail())
        self.assertIn("errno=%d" % errno.EPERM, ev[-1])
        recs = front.downgrade_records()[n_rec:]
        self.assertTrue(recs, "no connection met the other CA")
        for r in recs:
            self.assertFalse(r["handshake"], "a request went through the "
                             "other CA's certificate: %r" % r)
            for m in PLAINTEXT_MARKERS:
                self.assertNotIn(m, r["first"] + r["after"], r)
        self.assertEqual(self.sim.requests()[n_req:], [],
                         "a request reached Vault during the fault")

        # The right certificate again: the broker renews the same lease
        # on its own before it expires.
        front.set_mode("pass")
        lease_exp = cbtest.iso_to_epoch(b.lease("vdb")["expires"])
        st = wait_until(lambda: (lambda s: s if s["renewals"] >
                                 st0["renewals"] else None)(
                                     b.secret_status("vdb")),
                        max(1.0, lease_exp - time.time()), 0.1,
                        "a renewal before the lease expires, %.1fs after "
                        "the fault cleared" % (time.time() - fault_seen))
        self.assertEqual((st["state"], st["failures"], st["last_error"]),
                         ("active", 0, ""), st)
        after = self.read(b, "vdb")
        self.assertEqual(after["username"], before["username"])
        self.assert_logs_in(after)
        text = b.log_text()
        self.assertEqual(logfmt_events(text, "expired", "vdb"), [])
        self.note_run_secrets()
        for pw in cbtest.passwords():
            self.assertNotIn(pw, text)
        self.assertEqual(b.stop(), 0)

    # -- 2. the service-account token file --

    def token_faults(self, path, dropped_caps):
        """(name, apply(), text expected in the cause) for each way the
        token file can be broken.  Mode 000 stops a broker that runs as
        root only once it has dropped its capabilities (it does, after
        mounting); else a directory stands in for "unreadable"."""
        garbage = "garbage!%d:not a JWT" % os.getpid()
        cbtest.record_password(garbage)      # must never reach a log
        jwt_shaped = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.%s" % (
            "c2lnbmF0dXJl" * 8)
        cbtest.record_password(jwt_shaped)

        def missing():
            os.unlink(path)

        def mode000():
            self.write_jwt(self.jwt())
            os.chmod(path, 0)

        def directory():
            os.unlink(path)
            os.mkdir(path, 0o700)

        def write(text):
            def f():
                if os.path.isdir(path):
                    os.rmdir(path)
                tmp = path + ".new"
                with open(tmp, "w") as fh:
                    fh.write(text)
                os.replace(tmp, path)
            return f

        faults = [("missing", missing,
                   "cannot open %s: No such file or directory" % path)]
        if dropped_caps:
            faults.append(("mode 000", mode000,
                           "cannot open %s: Permission denied" % path))
        faults += [
            ("a directory", directory, "%s: not a readable token" % path),
            ("garbage", write(garbage + "\n"), "%s does not hold a JWT"
             % path),
            ("larger than 64 KiB", write("a" * (65 * 1024)),
             "%s: not a readable token" % path),
            ("empty", write(""), "%s does not hold a JWT" % path),
            # Shaped like a JWT, but no signature Vault accepts: the login
            # itself is refused.
            ("a forged JWT", write(jwt_shaped + "\n"),
             "auth/kubernetes/login: 403"),
        ]
        return faults, (garbage, jwt_shaped)

    def test_service_account_token_faults(self):
        """The token file missing, unreadable, a directory, garbage, too
        large, empty, a forged JWT -- each while the broker has to log in
        again (Vault rejects its token once, 403) -- then a good JWT once
        more.  The Vault token TTL is long: the lease does not die with
        it, so the last good credential must stay served throughout."""
        self.setup_roles("satok", token_ttl=3600, token_max_ttl=7200,
                         default_ttl=300, max_ttl=600)
        b = self.start_broker(self.vault_config(
            [self.db_secret("vdb", "satok", "300s")], "satok"))
        b.wait_active("vdb")
        before = self.read(b, "vdb")
        self.assert_logs_in(before)
        path = os.path.join(self.tmp, "sa-token")
        dropped = "event=privileges_dropped" in b.log_text()
        cbtest.log("broker dropped its capabilities: %s" % dropped)
        faults, secrets = self.token_faults(path, dropped)
        # Every request for a credential: "permission denied", as for a
        # token Vault no longer honours; the broker logs in again first.
        self.sim.fault(r"^database/creds/satok$", status=403)
        n_logins = len(self.logins())
        for what, apply, text in faults:
            apply()
            st = self.rotate_until(b, "vdb", lambda s: text in s["last_error"],
                                   "token file %s" % what)
            cbtest.log("%s: %s" % (what, st["last_error"]))
            if "login" not in text:
                self.assertIn("auth.token_file", st["last_error"], what)
            self.assertEqual(st["state"], "active", what)
            self.assert_still_served(b, "vdb", before, what)
            self.assertTrue(b.alive(), what)
        # Only the forged JWT reached Vault.
        self.assertEqual(len(self.logins()), n_logins + sum(
            1 for ln in logfmt_events(b.log_text(), "issue_failed", "vdb")
            if "auth/kubernetes/login: 403" in ln))
        self.assertGreaterEqual(len(self.logins()), n_logins + 1)
        self.assertEqual([r["status"] for r in self.logins()[n_logins:]],
                         [403] * (len(self.logins()) - n_logins))
        text = b.log_text()
        for s in secrets:
            self.assertNotIn(s, text)
        self.assertIn("auth.token_file: cannot open %s" % path, text)

        # A good token again (as the kubelet writes it); Vault rejects the
        # current token once more, so the next credential needs a login.
        if os.path.isdir(path):
            os.rmdir(path)
        self.write_jwt(self.jwt(jti="good-again"))
        self.sim.clear_faults()
        self.sim.fault(r"^database/creds/satok$", status=403, times=1)
        rc, out, err = b.cli("rotate", "vdb", timeout=60)
        self.assertEqual(rc, 0, "%s %s\n%s" % (out, err, b.log_tail()))
        self.assertEqual(self.logins()[-1]["status"], 200)
        st = b.secret_status("vdb")
        self.assertEqual((st["state"], st["failures"], st["last_error"]),
                         ("active", 0, ""), st)
        after = self.read(b, "vdb")
        self.assertNotEqual(after["username"], before["username"])
        self.assert_logs_in(after)
        self.assert_logs_in(before)      # not retired before its expiry
        self.assertEqual(b.stop(), 0)

    def test_token_file_fifo_does_not_block(self):
        """A FIFO in place of the token file (nobody writing) is refused
        like any other non-regular file.  (Opened without O_NONBLOCK it
        once blocked the scheduler thread: no secret renewed, status still
        "active", rotate waiting its 30 s, SIGTERM hanging.)"""
        self.setup_roles("fifo", token_ttl=3600, token_max_ttl=7200,
                         default_ttl=300, max_ttl=600)
        self.sim.add_db_role("fifo_other",
                             creation_statements=grant_statements(),
                             default_ttl=6, max_ttl=600)
        b = self.start_broker(self.vault_config(
            [self.db_secret("vdb", "fifo", "300s"),
             self.db_secret("other", "fifo_other", "6s")], "fifo"))
        b.wait_active("vdb")
        b.wait_active("other")
        before = self.read(b, "vdb")
        path = os.path.join(self.tmp, "sa-token")
        os.unlink(path)
        os.mkfifo(path, 0o600)

        def unblock():
            # A writer lets a blocked open(2) return; then a real token.
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
            self.sim.clear_faults()
            if os.path.exists(path):
                os.unlink(path)
            self.write_jwt(self.jwt())
        self.addCleanup(unblock)
        self.sim.fault(r"^database/creds/fifo$", status=403)
        renewals0 = b.secret_status("other")["renewals"]
        t0 = time.monotonic()
        rc, out, err = b.cli("rotate", "vdb", timeout=45)
        took = time.monotonic() - t0
        cbtest.log("rotate answered after %.1fs: %s" % (took, out))
        self.assertLess(took, 10, "rotate blocked: %s" % out)
        st = b.secret_status("vdb")
        self.assertIn("auth.token_file", st["last_error"])
        self.assertIn("%s: not a readable token" % path, st["last_error"])
        self.assert_still_served(b, "vdb", before)
        # The other secret is still renewed (every ~4 s).
        wait_until(lambda: b.secret_status("other")["renewals"] >=
                   renewals0 + 2, 15, 0.2, "renewals of the other secret")
        self.assert_logs_in(self.read(b, "other"))

    def test_token_file_broken_past_token_max_ttl(self):
        """The token file turns to garbage while the broker must log in
        again because its Vault token reaches its max TTL (8 s).  Vault
        revokes the token's leases when the token dies, so the credential
        cannot outlive it.  The broker logs the cause (event=identity_failed
        ... auth.token_file: PATH does not hold a JWT), stops serving the
        credential when its token dies (maintain reports
        backend_identity.expires_wall), and, once a good token is back,
        logs in and issues a new one.  (It once served the dead credential
        as "active" until the lease check could look the lease up -- which
        needs a login -- and then froze the secret as "revoked upstream",
        for good: a fault must never freeze.)"""
        self.setup_roles("tokdie", token_ttl=4, token_max_ttl=8,
                         default_ttl=60, max_ttl=600)
        b = self.start_broker(self.vault_config(
            [self.db_secret("vdb", "tokdie", "60s")], "tokdie",
            lease_check_interval="2s"))
        b.wait_active("vdb")
        before = self.read(b, "vdb")
        path = os.path.join(self.tmp, "sa-token")
        with open(path, "w") as f:
            f.write("garbage!\n")
        tokens = [t for t in self.sim.tokens().values()
                  if t["role"] == "tokdie"]
        dies = max(t["max_expire_time"] for t in tokens)
        wait_until(lambda: [ln for ln in logfmt_events(
            b.log_text(), "identity_failed") if "auth.token_file" in ln and
            path in ln], 15, 0.2, "identity_failed naming the token file")
        time.sleep(max(0.0, dies + 2 - time.time()))
        ok, res = cbtest.try_login(before["dsn"].strip())
        self.assertFalse(ok, "the lease outlived its token in Vault?")
        st = b.secret_status("vdb")
        self.assertEqual(cbtest.errno_of(os.stat, b.path("vdb", "dsn")),
                         errno.ENOENT, "a credential Vault revoked with its "
                         "token is still served: %r" % st)
        self.assertNotEqual(st["state"], "active", st)
        self.assertIn("auth.token_file", st["last_error"], st)
        self.write_jwt(self.jwt(jti="fixed"))
        st = wait_until(lambda: (lambda s: s if s["state"] == "active" and
                                 s["rotations"] >= 2 else None)(
                                     b.secret_status("vdb")), 20, 0.2,
                        "a new credential once the token file is good")
        self.assertNotEqual(st["state"], "frozen")
        self.assert_logs_in(self.read(b, "vdb"))


# --- 3. PostgreSQL killed mid-transaction ----------------------------------

SLEEP_S = 2
CREATE = ("CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} "
          "VALID UNTIL {{expiration}}")


class PgFaultsTest(cbtest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        # Whatever happens in a test, PostgreSQL is up for the next one
        # (and for the class's leak check and clean-up).
        self.addCleanup(self._pg_up)

    def _pg_up(self):
        if self.pg.query("SELECT 1", check=False).strip() != "1":
            self.pg.start()

    def slow_secret(self, name="db", ttl="60s"):
        """Creation statements that spend SLEEP_S seconds inside the
        transaction, after the CREATE ROLE: the window to kill in."""
        return self.secret(name, ttl=ttl, postgres={
            "creation_statements": [CREATE,
                                    "SELECT pg_sleep(%d)" % SLEEP_S],
            "grants": ["GRANT SELECT ON granted_t TO {{name}}"],
            "dbname": cbtest.DBNAME})

    def rotate_async(self, b, name):
        res = {}

        def run():
            res["rc"], res["out"], res["err"] = b.cli("rotate", name,
                                                      timeout=60)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        res["thread"] = t
        return res

    def join(self, res, timeout=45):
        res["thread"].join(timeout)
        self.assertFalse(res["thread"].is_alive(), "rotate did not return")
        return res

    def broker_in_transaction(self):
        """The pid of the broker's admin session while it sleeps inside
        the creating transaction (a CREATE ROLE done, not committed)."""
        rows = self.admin_rows(
            "SELECT pid FROM pg_stat_activity WHERE application_name = "
            "'credbroker' AND state = 'active' AND query LIKE "
            "'%%pg_sleep(%d)%%' AND backend_xid IS NOT NULL" % SLEEP_S)
        return int(rows[0][0]) if rows else None

    def served_roles(self, b, name):
        st = b.secret_status(name)
        return st, {st["lease_id"]} if st["lease_id"] else set()

    def test_postgres_killed_mid_transaction(self):
        b = self.start_broker(self.config(secrets=[self.slow_secret()]))
        b.wait_active("db", timeout=30)
        before = b.read_secret("db")
        user0 = before["username"].strip()
        self.assert_login_ok(before)
        self.assertEqual(set(self.cb_roles()), {user0})

        # SIGKILL of the postmaster (and its children) while the rotation's
        # transaction has created its role and not committed.
        rot = self.rotate_async(b, "db")
        pid = wait_until(self.broker_in_transaction, 15, 0.05,
                         "the broker inside its creating transaction")
        self.pg.kill(signal.SIGKILL)
        t_kill = time.time()
        cbtest.log("PostgreSQL SIGKILLed during the broker's transaction "
                   "(backend %d)" % pid)
        self.join(rot)
        self.assertNotEqual(rot["rc"], 0, rot)
        ev = wait_until(lambda: logfmt_events(b.log_text(), "issue_failed",
                                              "db"), 10, 0.1,
                        "an issue_failed event")
        cbtest.log("cause: %s" % ev[0])
        st = b.secret_status("db")
        self.assertEqual(st["state"], "active", st)
        self.assertEqual(st["lease_id"], user0, st)
        self.assertGreaterEqual(st["failures"], 1, st)
        # A clear cause: the connection to PostgreSQL went away, in the
        # statement that was running; no secret in it.
        self.assertRegex(st["last_error"],
                         r"PostgreSQL|server closed the connection", st)
        self.assertRegex(ev[0], r"errno=(%d|%d) " % (errno.ECONNREFUSED,
                                                    errno.ECONNRESET))
        self.assertNotIn(before["password"].strip(), b.log_text())
        self.assertEqual(b.read_secret("db")["password"], before["password"])
        time.sleep(max(0.0, t_kill + 2 - time.time()))   # a retry or two

        # Back on the same data directory (crash recovery).
        self.pg.start()
        self.assertTrue(b.alive())
        # The last good credential logs in again at once...
        self.assert_login_ok(b.read_secret("db"), "after the restart")
        # ...and the killed transaction left no role behind.
        roles = set(self.cb_roles())
        _, served = self.served_roles(b, "db")
        self.assertEqual(roles - served - {user0}, set(),
                         "a half-created role survived the crash")
        # Recovery: the retry issues a new credential.
        st = wait_until(lambda: (lambda s: s if s["rotations"] >= 2 and
                                 s["failures"] == 0 and s["state"] ==
                                 "active" else None)(b.secret_status("db")),
                        40, 0.2, "a new credential after the restart")
        after = b.read_secret("db")
        user1 = after["username"].strip()
        self.assertNotEqual(user1, user0)
        self.assertEqual(st["lease_id"], user1)
        self.assert_login_ok(after)
        self.assert_login_ok(before, "the old credential before its expiry")
        self.assertEqual(set(self.cb_roles()), {user0, user1})

        # The admin session terminated (pg_terminate_backend) inside the
        # transaction: rolled back, and the broker reconnects and retries
        # at once -- still nothing half-made.
        rot = self.rotate_async(b, "db")
        pid = wait_until(self.broker_in_transaction, 15, 0.05,
                         "the broker inside its creating transaction")
        self.admin_rows("SELECT pg_terminate_backend(%d)" % pid)
        self.join(rot)
        self.assertEqual(rot["rc"], 0, rot)
        st = b.secret_status("db")
        user2 = st["lease_id"]
        self.assertEqual(set(self.cb_roles()), {user0, user1, user2},
                         "the terminated transaction left a role")
        self.assert_login_ok(b.read_secret("db"))
        self.assertEqual(b.stop(), 0)
        self.assertEqual(self.cb_roles(), {})

    def test_commit_outcome_unknown_leaves_no_role(self):
        """The admin session dies while its COMMIT waits (here for a
        synchronous standby that does not exist): the transaction has
        committed locally, so the role exists, but the broker saw only a
        lost connection.  pg_undo_create needs a live session, so it marks
        the role unsure; pg_run reconnects, drops the unsure role if it
        exists, and retries with a new role name: no role that nobody is
        served, and the lost session and the dropped role are logged.
        (The role once stayed until revoke_all at exit, and the retry was
        silent.)"""
        b = self.start_broker(self.config(secrets=[self.secret("db",
                                                               ttl="60s")]))
        b.wait_active("db")

        def sync_standby(on):
            self.pg.query("ALTER SYSTEM %s" % (
                "SET synchronous_standby_names = 'nosuchstandby'" if on
                else "RESET synchronous_standby_names"))
            self.pg.query("SELECT pg_reload_conf()")

        def waiting_pid(rot):
            """The broker's session waiting in COMMIT; -1 once the
            rotation finished without waiting."""
            rows = self.admin_rows(
                "SELECT pid FROM pg_stat_activity WHERE application_name "
                "= 'credbroker' AND wait_event = 'SyncRep'")
            if rows:
                return int(rows[0][0])
            return None if rot["thread"].is_alive() else -1
        self.addCleanup(sync_standby, False)
        sync_standby(True)
        # The checkpointer turns synchronous commit on a moment after the
        # reload; a rotation that committed before did not wait: again.
        for _ in range(5):
            before = set(self.cb_roles())
            rot = self.rotate_async(b, "db")
            pid = wait_until(lambda: waiting_pid(rot), 15, 0.05,
                             "the broker's COMMIT waiting for the standby")
            if pid > 0:
                break
            self.join(rot)
            time.sleep(0.5)
        else:
            self.fail("no COMMIT waited for the standby")
        self.admin_rows("SELECT pg_terminate_backend(%d)" % pid)
        sync_standby(False)
        self.join(rot)
        self.assertEqual(rot["rc"], 0, rot)
        user1 = b.secret_status("db")["lease_id"]
        wait_until(lambda: set(self.cb_roles()) == before | {user1}, 10, 0.2,
                   "only the served roles in pg_roles (have %s)" %
                   sorted(self.cb_roles()))
        self.assertRegex(b.log_text(), r"event=\w+ .*(lost|terminat|"
                         r"closed)", "the lost session is not logged")


# --- 4. the wall clock jumping (libfaketime) ---------------------------------

# Debian's multiarch path, whatever the architecture.
FAKETIME_LIB = next(iter(sorted(glob.glob(
    "/usr/lib/*/faketime/libfaketime.so.1"))), None)
JUMP_H = 3


class ClockJumpTest(cbtest.BrokerTestCase):
    """The real broker under Debian's libfaketime, its wall clock (only:
    DONT_FAKE_MONOTONIC=1) moved through a file it re-reads on every call
    (FAKETIME_TIMESTAMP_FILE, FAKETIME_NO_CACHE=1).  PostgreSQL keeps the
    true time, as a database on another host would.  (The scheduler's own
    arithmetic is in tests/unit/test_broker.c, with a fake clock.)"""

    TTL = 6

    def setUp(self):
        # scripts/install-deps installs it: missing is a failure, not a
        # skip that would pass unnoticed.
        self.assertIsNotNone(FAKETIME_LIB, "no libfaketime: run "
                             "scripts/install-deps")
        super().setUp()
        self.offset_file = os.path.join(self.tmp, "faketime")
        self.jump(0)

    def jump(self, hours):
        """Sets the broker's wall clock to the true time plus hours."""
        tmp = self.offset_file + ".new"
        with open(tmp, "w") as f:
            f.write("%+dh\n" % hours if hours else "+0\n")
        os.replace(tmp, self.offset_file)

    def start_faked(self, cfg):
        """A broker with libfaketime preloaded: the environment is the
        test's own plus the faketime variables, for this Popen only."""
        env = {"LD_PRELOAD": FAKETIME_LIB,
               "FAKETIME_TIMESTAMP_FILE": self.offset_file,
               "FAKETIME_NO_CACHE": "1", "DONT_FAKE_MONOTONIC": "1"}
        # In the sanitizer build ASan refuses to start when a preloaded
        # library comes before its runtime; libfaketime only wraps the
        # time calls, which ASan leaves alone.
        if os.environ.get("ASAN_OPTIONS") is not None:
            env["ASAN_OPTIONS"] = (os.environ["ASAN_OPTIONS"] +
                                   ":verify_asan_link_order=0")
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            return self.start_broker(cfg)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def watch_renewals(self, b, name, count, seen, timeout):
        """Polls status (and reads the password, which must never fail)
        until `count` more renewals; appends the monotonic instant of
        each to seen."""
        start = b.secret_status(name)["renewals"]
        target = start + count
        end = time.monotonic() + cbtest.scaled(timeout)
        # Only renewals seen happening count: the count found at the start
        # came at some unknown earlier instant.
        last = seen[-1][1] if seen else start
        while time.monotonic() < end:
            self.assertTrue(b.alive(), "broker exited:\n" + b.log_tail())
            st = b.secret_status(name)
            self.assertEqual(st["state"], "active", st)
            # Readable throughout: never ENOENT, never early expiry.
            cbtest.read_file(b.path(name, "password"))
            if st["renewals"] != last:
                seen.append((time.monotonic(), st["renewals"]))
                last = st["renewals"]
            if st["renewals"] >= target:
                return st
            time.sleep(0.1)
        self.fail("%d renewals of %s not seen within %ds\n%s" % (
            count, name, timeout, b.log_tail()))

    @cbtest.realtime("a 6 s credential renewed on schedule")
    def test_wall_clock_jumps(self):
        """Forward by JUMP_H hours, back to JUMP_H hours behind, then
        true again, while a 6 s PostgreSQL credential is served: the
        broker keeps renewing the same role on its monotonic schedule
        (every 62-72 % of the TTL), never expires or re-issues it early,
        the files stay readable, the role keeps logging in, and the role's
        VALID UNTIL in PostgreSQL stays about a TTL ahead of the
        database's own clock."""
        b = self.start_faked(self.config(secrets=[self.secret(
            "db", ttl="%ds" % self.TTL, max_ttl="1h")]))
        b.wait_active("db")
        with open("/proc/%d/maps" % b.pid) as f:
            self.assertIn("libfaketime", f.read(), "faketime not loaded")
        before = b.read_secret("db")
        self.assert_login_ok(before)
        user = before["username"].strip()
        seen = []
        for hours, renewals in ((JUMP_H, 2), (-JUMP_H, 2), (0, 1)):
            self.jump(hours)
            st = self.watch_renewals(b, "db", renewals, seen, 3 * self.TTL)
            now = b.read_secret("db")
            self.assertEqual(now["password"], before["password"], hours)
            self.assertEqual((st["rotations"], st["lease_id"]), (1, user),
                             "re-issued after a %+dh jump: %r" % (hours, st))
            self.assertEqual(st["failures"], 0, st)
            self.assert_login_ok(now, "after a %+dh jump" % hours)
            # The broker saw the jump: .lease.json's expiry is on its
            # (faked) wall clock.
            lease_exp = cbtest.iso_to_epoch(b.lease("db")["expires"])
            self.assertAlmostEqual(lease_exp - time.time(),
                                   hours * 3600 + self.TTL, delta=self.TTL,
                                   msg="the broker did not see the jump")
            # PostgreSQL's clock is the true one: the role must expire a
            # TTL from now there, not hours off.
            vu = self.role_valid_until(user)
            cbtest.log("%+dh: VALID UNTIL is now%+.1fs, .lease.json "
                       "expires now%+.1fs" % (hours, vu - time.time(),
                                              lease_exp - time.time()))
            self.assertGreater(vu - time.time(), 0,
                               "the role expired in PostgreSQL after a "
                               "%+dh jump" % hours)
            self.assertLess(vu - time.time(), self.TTL + 2,
                            "VALID UNTIL hours ahead after a %+dh jump"
                            % hours)
        # Renewals kept their monotonic schedule across every jump.
        gaps = [round(t1 - t0, 2) for (t0, _), (t1, _) in
                zip(seen, seen[1:])]
        cbtest.log("renewal gaps: %r" % gaps)
        for g in gaps:
            self.assertGreater(g, 0.55 * self.TTL, gaps)
            self.assertLess(g, 0.8 * self.TTL, gaps)
        text = b.log_text()
        for ev in ("expired", "renew_too_late", "revoked_upstream",
                   "renew_failed", "issue_failed"):
            self.assertEqual(logfmt_events(text, ev), [], ev)
        # The sandbox was on (libfaketime's file reads are allowed calls),
        # and each jump is named, as the skew PostgreSQL's clock shows.
        self.assertIn("seccomp=kill", text)
        skews = [int(ln.split("skew_s=")[1].split()[0]) for ln in
                 logfmt_events(text, "pg_clock_skew")]
        self.assertEqual(len(skews), 3, skews)
        for got, want in zip(skews, (-JUMP_H * 3600, JUMP_H * 3600, 0)):
            self.assertLessEqual(abs(got - want), 1, skews)
        self.assertEqual(self.cb_roles().keys(), {user})
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    cbtest.main()
