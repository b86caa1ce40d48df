#!/usr/bin/env python3
"""The vault backend end to end with tests/sim/faultproxy.py between the
broker and the Vault simulator: the broker's vault address is the proxy
(TLS with the test PKI's server certificate, which names IP 127.0.0.1), the
proxy forwards to the simulator over verified TLS.

A redirect (plain http, and https straight to Vault) is not followed, so
the token goes nowhere but the proxy; a response trickled a byte a second
is cut at request_timeout; garbage and oversized bodies (a Content-Length
past max_response_bytes, and the same chunked) on KV reads and a lease
renewal are refused with an error naming the problem; dropped connections
(RST, FIN) are retryable.  In every case the last good value stays served
and still logs in, and the broker recovers once the fault is gone.  The
proxy's request log and stderr join the class's leak check."""

import errno
import json
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "sim"))
import cbtest  # noqa: E402
from cbtest import wait_until  # noqa: E402
from faultproxy import FaultProxy  # noqa: E402
from vaultcase import VaultCase  # noqa: E402

MAX_BODY = 256 * 1024
LOGFMT = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def logfmt(line):
    out = {}
    for k, v in LOGFMT.findall(line):
        out[k] = v[1:-1] if v.startswith('"') else v
    return out


class VaultFaultsTest(VaultCase):
    fp = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            err = os.path.join(cls.class_tmp, "faultproxy.stderr")
            reqlog = os.path.join(cls.class_tmp, "faultproxy.log")
            cls._class_logs += [err, reqlog]
            cls.fp = FaultProxy.start(cls.pki.server_cert, cls.pki.server_key,
                                      cls.sim.address,
                                      upstream_ca=cls.pki.ca_cert,
                                      log_file=reqlog, stderr_path=err)
        except BaseException:
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.fp is not None:
                cls.fp.stop()
        finally:
            super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.fp.reset(log=True)
        # Runs before the broker clean-up (LIFO): the exit revokes pass.
        self.addCleanup(self.fp.reset)

    # -- helpers --

    def proxied_config(self, secrets, role, **backend):
        cfg = self.config(secrets=secrets)
        be = self.vault_backend(role, address=self.fp.url)
        be.update(backend)
        cfg["backends"] = {"v": be}
        return cfg

    def start(self, secrets, role, **backend):
        b = self.start_broker(self.proxied_config(secrets, role, **backend))
        for s in secrets:
            b.wait_active(s["name"])
        return b

    @staticmethod
    def events(b, event, secret):
        return [logfmt(line) for line in b.log_text().splitlines()
                if "event=%s " % event in line and
                " secret=%s " % secret in line]

    def rotate_async(self, b, name):
        """`credbroker rotate NAME` in a thread (it waits for the outcome);
        the result dict gets rc, out, err, seconds."""
        res = {}

        def run():
            t0 = time.monotonic()
            res["rc"], res["out"], res["err"] = b.cli("rotate", name,
                                                      timeout=60)
            res["seconds"] = time.monotonic() - t0
        t = threading.Thread(target=run, daemon=True)
        t.start()
        res["thread"] = t
        return res

    def join_rotate(self, res, timeout=40):
        res["thread"].join(timeout)
        self.assertFalse(res["thread"].is_alive(), "rotate did not return")
        cbtest.log("rotate returned after %.1fs: rc=%s %s" % (
            res["seconds"], res["rc"], res["out"]))
        return res

    def assert_still_served(self, b, name, before):
        now = self.read(b, name)
        self.assertEqual(now["username"], before["username"])
        self.assertEqual(now["password"], before["password"])
        self.assert_logs_in(now)

    def wait_recovered(self, b, name, timeout=20, **at_least):
        def ok():
            st = b.secret_status(name)
            if st["failures"] or st["last_error"] or st["state"] != "active":
                return None
            if any(st[k] < v for k, v in at_least.items()):
                return None
            return st
        return wait_until(ok, timeout, interval=0.1,
                          what="%s recovered (%r)" % (name, at_least))

    def wait_events(self, b, event, secret, n, timeout):
        return wait_until(
            lambda: (lambda ev: ev if len(ev) >= n else None)(
                self.events(b, event, secret)), timeout, interval=0.1,
            what="%d %s event(s) for %s" % (n, event, secret))

    def sim_paths(self, path):
        return [r for r in self.sim.requests() if r["path"] == path]

    # -- tests --

    def test_redirects_not_followed(self):
        self.setup_roles("redir", default_ttl=120, max_ttl=600)
        b = self.start([self.db_secret("vdb", "redir", "120s")], "redir")
        before = self.read(b, "vdb")
        lease0 = json.loads(before[".lease.json"])["lease_id"]
        n_sim = len(self.sim_paths("database/creds/redir"))
        prefix = "/v1/database/creds/redir"
        self.fp.arm("redirect", count=1, path_prefix=prefix)
        # Then one to the real Vault over https: followed, the simulator
        # would see the request (and the token).
        self.fp.arm("redirect", count=1, path_prefix=prefix, status=302,
                    location=self.sim.address + prefix)
        rot = self.rotate_async(b, "vdb")
        st = wait_until(lambda: (lambda s: s if "307" in s["last_error"]
                                 else None)(b.secret_status("vdb")), 10,
                        interval=0.1, what="307 in last_error")
        self.assertGreaterEqual(st["failures"], 1)
        self.assertIn("database/creds/redir", st["last_error"])
        self.assert_still_served(b, "vdb", before)
        wait_until(lambda: "302" in b.secret_status("vdb")["last_error"], 15,
                   interval=0.1, what="302 in last_error")
        self.assert_still_served(b, "vdb", before)
        self.join_rotate(rot)
        st = self.wait_recovered(b, "vdb", rotations=2)
        self.assertNotEqual(st["lease_id"], lease0)
        after = self.read(b, "vdb")
        self.assertNotEqual(after["username"], before["username"])
        self.assert_logs_in(after)
        failed = self.events(b, "issue_failed", "vdb")
        self.assertEqual(len(failed), 2, failed)
        self.assertIn(": 307", failed[0]["error"])
        self.assertIn(": 302", failed[1]["error"])
        self.assertNotIn("/redirected", b.log_text())   # target unlogged
        log = self.fp.log()
        self.assertEqual([e for e in log if e["fault"] == "redirect-followed"],
                         [], "a redirect was followed")
        redirs = [e for e in log if e["fault"] == "redirect"]
        self.assertEqual([e["status"] for e in redirs], [307, 302])
        self.assertTrue(all(e["present"]["X-Vault-Token"] for e in redirs))
        # Vault saw the first issue and the one after the faults only.
        self.assertEqual(len(self.sim_paths("database/creds/redir")),
                         n_sim + 1)

    def test_trickle_cut_by_request_timeout(self):
        self.setup_roles("trickle", default_ttl=120, max_ttl=600)
        b = self.start([self.db_secret("vdb", "trickle", "120s")], "trickle")
        before = self.read(b, "vdb")
        self.fp.arm("trickle", path_prefix="/v1/database/creds/trickle",
                    seconds=1)
        rot = self.rotate_async(b, "vdb")
        time.sleep(1.5)
        self.assert_still_served(b, "vdb", before)   # mid-trickle
        ev = self.wait_events(b, "issue_failed", "vdb", 1, 10)[0]
        self.fp.reset()
        self.assertEqual(int(ev["errno"]), errno.ETIMEDOUT, ev)
        self.assertEqual(ev["retryable"], "yes", ev)
        self.assertIn("timed out", ev["error"].lower())
        started = [e for e in self.fp.log() if e["fault"] == "trickle"][0]
        took = cbtest.iso_to_epoch(ev["ts"]) - started["time"]
        cbtest.log("trickled request cut after %.2fs" % took)
        self.assertGreater(took, 2.5)     # request_timeout 3s
        self.assertLess(took, 4.5)
        self.assertTrue(b.alive())
        self.assert_still_served(b, "vdb", before)
        self.join_rotate(rot)
        self.wait_recovered(b, "vdb", rotations=2)
        after = self.read(b, "vdb")
        self.assertNotEqual(after["username"], before["username"])
        self.assert_logs_in(after)

    def test_malformed_and_huge_bodies(self):
        self.setup_roles("mal", default_ttl=15, max_ttl=600)
        self.sim.kv2_put("app/mal", {"api_key": "k-mal", "region": "eu"})
        cbtest.record_password("k-mal")
        kv_prefix = "/v1/secret/data/app/mal"
        # The first renewal of the database lease (~10 s in) gets garbage.
        self.fp.arm("malformed", count=1, path_prefix="/v1/sys/leases/renew",
                    mode="garbage")
        t0 = time.monotonic()
        b = self.start([self.db_secret("vdb", "mal", "15s"),
                        {"name": "conf", "backend": "v", "ttl": "1h",
                         "refresh": "1s", "uid": 0, "gid": 0,
                         "vault": {"kind": "kv2", "path": "app/mal"}}],
                       "mal", max_response_bytes=MAX_BODY)
        before = self.read(b, "vdb")
        kv = b.path("conf", "api_key")
        cases = [("garbage", {}, "not a JSON object", None),
                 ("huge", {}, "larger than %d bytes" % MAX_BODY,
                  errno.EMSGSIZE),
                 ("huge chunked", {"chunked": True},
                  "larger than %d bytes" % MAX_BODY, errno.EMSGSIZE)]
        for i, (what, opts, text, code) in enumerate(cases):
            self.fp.arm("malformed", count=1, path_prefix=kv_prefix,
                        mode=what.split()[0], **opts)
            ev = self.wait_events(b, "issue_failed", "conf", i + 1, 10)[i]
            self.assertIn(text, ev["error"], what)
            if code is not None:
                self.assertEqual(int(ev["errno"]), code, ev)
            self.assertEqual(ev["retryable"], "yes", ev)
            self.assertTrue(b.alive(), what)
            self.assertEqual(cbtest.read_file(kv), "k-mal", what)
            self.wait_recovered(b, "conf")
        log = self.fp.log()
        huge = [e for e in log if e["fault"] == "malformed" and
                e["path"] == kv_prefix][1:]
        self.assertEqual(len(huge), 2)
        # The broker gave up on each well before 10 MiB.
        self.assertTrue(all(e["response_bytes"] < 10 << 20 for e in huge),
                        huge)
        # The renewal: refused, retried, renewed before the lease expired.
        ev = self.wait_events(b, "renew_failed", "vdb", 1,
                              max(1, 20 - (time.monotonic() - t0)))[0]
        self.assertIn("not a JSON object", ev["error"])
        self.assertEqual(ev["retryable"], "yes", ev)
        self.assert_still_served(b, "vdb", before)
        st = self.wait_recovered(b, "vdb", timeout=10, renewals=1)
        self.assertEqual(st["rotations"], 1, st)
        self.assert_still_served(b, "vdb", before)
        self.assertEqual(cbtest.read_file(kv), "k-mal")
        self.assertTrue(b.alive())

    def test_dropped_connections_retryable(self):
        self.setup_roles("drop", default_ttl=120, max_ttl=600)
        b = self.start([self.db_secret("vdb", "drop", "120s")], "drop")
        before = self.read(b, "vdb")
        prefix = "/v1/database/creds/drop"
        self.fp.arm("drop", count=1, path_prefix=prefix, reset=True)
        self.fp.arm("drop", path_prefix=prefix)
        rot = self.rotate_async(b, "vdb")
        ev = self.wait_events(b, "issue_failed", "vdb", 2, 15)
        self.fp.reset()
        for e in ev[:2]:
            self.assertEqual(int(e["errno"]), errno.ECONNRESET, e)
            self.assertEqual(e["retryable"], "yes", e)
        self.assertGreaterEqual(int(ev[1]["retry_in_ms"]),
                                int(ev[0]["retry_in_ms"]), "no backoff")
        self.assertTrue(b.alive())
        self.assert_still_served(b, "vdb", before)
        dropped = [e for e in self.fp.log() if e["fault"] == "drop"]
        self.assertGreaterEqual(len(dropped), 2)
        self.assertTrue(all(e["status"] is None for e in dropped), dropped)
        self.join_rotate(rot)
        self.wait_recovered(b, "vdb", rotations=2)
        after = self.read(b, "vdb")
        self.assertNotEqual(after["username"], before["username"])
        self.assert_logs_in(after)


if __name__ == "__main__":
    cbtest.main()
