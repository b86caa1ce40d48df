#!/usr/bin/env python3
"""Issue 3: the vault backend end to end, against the Vault simulator
(tests/sim/vaultsim/) over real TLS, whose database engine creates real
roles in the real test PostgreSQL.

Login and a database credential that logs in; renewal moves the role's
expiry; max TTL forces a timely re-issue with no gap for readers; token max
TTL and re-login keep every secret valid; the service-account token file
replaced between logins; KV v2 and v1 changes reach the mount and unchanged
versions rewrite nothing; 503/429/timeouts back off and keep serving the
last good value; malformed and oversized bodies are refused cleanly; wrong
CA and pin mismatch refuse to connect; revoke and revoke --all revoke in
Vault; a lease revoked in Vault directly leaves the mount.  Every log is
searched for every password, token and JWT the tests saw."""

import errno
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import wait_until  # noqa: E402
from vaultcase import VAULT_FILES, VaultCase  # noqa: E402


class VaultTest(VaultCase):

    # -- tests --

    def test_login_and_database_credential(self):
        self.setup_roles("basic")
        b = self.start_broker(self.vault_config(
            [self.db_secret("vdb", "basic", "30s")], "basic"))
        b.wait_active("vdb")
        files = self.read(b, "vdb")
        user = files["username"].strip()
        self.assertTrue(user.startswith("v-"), user)
        self.assert_logs_in(files)
        ok, res = cbtest.try_login(files["dsn"].strip(),
                                   "SELECT v FROM secret_t")
        self.assertFalse(ok, "a table never granted is readable")
        self.assertIn("permission denied", res)
        env = cbtest.parse_env(files["env"])
        self.assertEqual(env["PGUSER"], user)
        self.assertEqual(env["PGPASSWORD"], files["password"].strip())
        data = json.loads(files["json"])
        self.assertEqual(data["username"], user)
        lease = json.loads(files[".lease.json"])
        self.assertTrue(lease["lease_id"].startswith("database/creds/basic/"))
        self.assertIn(lease["lease_id"], self.leases_of("basic"))
        # Every request says it is a Vault request; the JWT went only to
        # the login path, the token to every other.
        reqs = [r for r in self.sim.requests()
                if r["path"].startswith(("auth/", "database/", "sys/"))]
        self.assertTrue(reqs)
        for r in reqs:
            self.assertEqual(r["headers"].get("x-vault-request"), "true", r)
            if r["path"] == "auth/kubernetes/login":
                self.assertNotIn("x-vault-token", r["headers"], r)
            else:
                self.assertIn("x-vault-token", r["headers"], r)
        # Neither the Vault token, the service-account JWT nor the password
        # in the broker's environment or command line, or its children's
        # (issue 6).
        tokens = [t["client_token"] for t in self.sim.tokens().values()]
        self.assertTrue(tokens, "the simulator issued no token")
        jwt = cbtest.read_file(os.path.join(self.tmp, "sa-token")).strip()
        self.assert_no_secret_in_proc(
            b, [jwt, files["password"].strip()] + tokens)

    def test_renewal_moves_expiry(self):
        self.setup_roles("renew", default_ttl=6, max_ttl=120)
        b = self.start_broker(self.vault_config(
            [self.db_secret("vdb", "renew", "6s")], "renew"))
        b.wait_active("vdb")
        files = self.read(b, "vdb")
        user = files["username"].strip()
        until0 = self.role_valid_until(user)
        wait_until(lambda: b.secret_status("vdb")["renewals"] >= 2, 20,
                   what="two renewals")
        st = b.secret_status("vdb")
        self.assertEqual(st["rotations"], 1, "renewal re-issued: %r" % st)
        self.assertGreater(self.role_valid_until(user), until0 + 3)
        again = self.read(b, "vdb")
        self.assertEqual(again["username"].strip(), user)
        self.assert_logs_in(again)
        self.assertEqual(len(self.leases_of("renew")), 1)

    def test_max_ttl_reissue_without_gap(self):
        """Lease max TTL 9 s, TTL 3 s: renewals until Vault grants less,
        then a new credential while the old one still works; readers
        logging in all along never hold a dead one."""
        self.setup_roles("maxttl", default_ttl=3, max_ttl=9)
        b = self.start_broker(self.vault_config(
            [self.db_secret("vdb", "maxttl", "3s")], "maxttl"))
        b.wait_active("vdb")
        failures, users = [], set()
        stop = threading.Event()

        def reader():
            while not stop.is_set():
                try:
                    dsn = cbtest.read_file(b.path("vdb", "dsn")).strip()
                except OSError as e:
                    failures.append("read: %r" % e)
                    continue
                try:
                    cbtest.record_password(cbtest.parse_dsn(dsn)["password"])
                except (ValueError, KeyError):
                    pass
                ok, res = cbtest.try_login(dsn)
                if ok:
                    users.add(res[0][0])
                else:
                    failures.append(res)
                time.sleep(0.05)
        t = threading.Thread(target=reader)
        t.start()
        try:
            wait_until(lambda: len(users) >= 3, 40, interval=0.2,
                       what="three credentials in turn")
        finally:
            stop.set()
            t.join(timeout=30)
        events = [ln for ln in b.log_text().splitlines()
                  if any("event=%s " % e in ln for e in (
                      "issued", "renewed", "issue_failed", "renew_failed",
                      "expired"))]
        self.assertEqual(failures[:5], [], "readers held a dead credential "
                         "(%d failures); the broker's events:\n%s" % (
                             len(failures), "\n".join(events[-30:])))
        st = b.secret_status("vdb")
        self.assertGreaterEqual(st["renewals"], 1, st)
        # Superseded leases are revoked (at expiry at the latest) and
        # their roles dropped.
        wait_until(lambda: sum(1 for v in self.leases_of("maxttl").values()
                               if not v["revoked"]) <= 2, 15,
                   what="old leases revoked")

    def test_token_max_ttl_relogin_keeps_leases(self):
        """Token TTL 6 s, max 9 s: the broker logs in again before the
        token dies and re-issues the leases it created, so no served
        credential dies with an old token.  (It logs in at 2/3 of the
        capped token's last stretch, 1.7 s before its death here: room for
        a loaded sanitizer run; 3 s/7 s left 1 s, and failed under load.)"""
        self.setup_roles("tok", token_ttl=6, token_max_ttl=9, default_ttl=60,
                         max_ttl=600)
        b = self.start_broker(self.vault_config(
            [self.db_secret("vdb", "tok", "60s")], "tok"))
        b.wait_active("vdb")
        end = time.monotonic() + 20
        seen = set()
        while time.monotonic() < end:
            files = self.read(b, "vdb")
            self.assert_logs_in(files)
            lease_id = json.loads(files[".lease.json"])["lease_id"]
            info = self.sim.leases().get(lease_id)
            self.assertIsNotNone(info, "served lease unknown to Vault")
            self.assertFalse(info["revoked"], "served lease %s revoked" %
                             lease_id)
            seen.add(lease_id)
            time.sleep(0.25)
        logins = [e for e in self.sim.events() if e[0] == "login"]
        self.assertGreaterEqual(len(logins), 3, "no re-login")
        self.assertGreaterEqual(len(seen), 2, "leases not re-issued under "
                                "the new token")

    @cbtest.realtime("Vault tokens of 2-3 s, a JWT of 8 s")
    def test_service_account_token_rotated(self):
        """The first JWT expires 8 s after start; the kubelet writes a new
        one.  Logins after that only succeed with the file re-read."""
        self.setup_roles("sarot", token_ttl=2, token_max_ttl=3,
                         default_ttl=60, max_ttl=600)
        self.write_jwt(self.jwt(ttl=8))
        b = self.start_broker(self.vault_config(
            [self.db_secret("vdb", "sarot", "60s")], "sarot"))
        b.wait_active("vdb")
        time.sleep(2)
        self.write_jwt(self.jwt(ttl=3600, jti="second"))
        n0 = len([e for e in self.sim.events() if e[0] == "login"])
        time.sleep(12)
        logins = [r for r in self.sim.requests()
                  if r["path"] == "auth/kubernetes/login"]
        late = [r["status"] for r in logins[n0:]]
        self.assertTrue(late, "no login after the token file changed")
        self.assertTrue(all(s == 200 for s in late[-3:]), late)
        self.assert_logs_in(self.read(b, "vdb"))
        self.assertEqual(b.secret_status("vdb")["state"], "active")

    def test_kv2_versions(self):
        self.setup_roles("kv")
        self.sim.kv2_put("app/config", {"api_key": "k-one", "region": "eu"})
        cfg = self.vault_config([{
            "name": "conf", "backend": "v", "ttl": "1h", "refresh": "1s",
            "uid": 0, "gid": 0,
            "vault": {"kind": "kv2", "path": "app/config"}}], "kv")
        b = self.start_broker(cfg)
        st = b.wait_active("conf")
        cbtest.record_password("k-one")
        self.assertEqual(cbtest.read_file(b.path("conf", "api_key")), "k-one")
        self.assertEqual(json.loads(cbtest.read_file(b.path("conf", "json"))),
                         {"api_key": "k-one", "region": "eu"})
        mtime = os.stat(b.path("conf", "api_key")).st_mtime
        time.sleep(3.5)
        # Polled three times, unchanged: nothing republished.
        st2 = b.secret_status("conf")
        self.assertEqual(st2["version"], st["version"])
        self.assertEqual(os.stat(b.path("conf", "api_key")).st_mtime, mtime)
        self.sim.kv2_put("app/config", {"api_key": "k-two", "region": "eu"})
        cbtest.record_password("k-two")
        wait_until(lambda: cbtest.read_file(b.path("conf", "api_key")) ==
                   "k-two", 10, what="new KV version in the mount")
        self.assertEqual(b.secret_status("conf")["version"],
                         st["version"] + 1)
        self.assertIn("@v2", b.secret_status("conf")["lease_id"])

    def test_kv1_values(self):
        self.setup_roles("kv1")
        self.sim.kv1_put("team/creds", {"token": "t-one"})
        cfg = self.vault_config([{
            "name": "k1", "backend": "v", "ttl": "1h", "refresh": "1s",
            "uid": 0, "gid": 0,
            "vault": {"kind": "kv1", "path": "kv/team/creds"}}], "kv1")
        b = self.start_broker(cfg)
        st = b.wait_active("k1")
        cbtest.record_password("t-one")
        self.assertEqual(cbtest.read_file(b.path("k1", "token")), "t-one")
        time.sleep(2.5)
        self.assertEqual(b.secret_status("k1")["version"], st["version"])
        self.sim.kv1_put("team/creds", {"token": "t-two"})
        cbtest.record_password("t-two")
        wait_until(lambda: cbtest.read_file(b.path("k1", "token")) ==
                   "t-two", 10, what="new KV v1 value in the mount")
        self.assertNotIn("t-two", b.secret_status("k1")["lease_id"])

    def test_throttled_and_hung_vault_backs_off(self):
        self.setup_roles("slow")
        self.sim.fault(r"^database/creds/slow$", status=429, times=2)
        self.sim.fault(r"^database/creds/slow$", delay=10, times=1)
        t0 = time.monotonic()
        b = self.start_broker(self.vault_config(
            [self.db_secret("vdb", "slow", "30s")], "slow"))
        # `credbroker ready` (the injected sidecar's startup probe): not
        # while Vault throttles the first issue, yes once it is in.
        b.wait_socket()
        rc, out, err = b.cli("ready")
        self.assertEqual(rc, 1, "%s %s" % (out, err))
        self.assertEqual(out["missing"], ["vdb"])
        b.wait_active("vdb", timeout=60)
        took = time.monotonic() - t0
        rc, out, err = b.cli("ready")
        self.assertEqual(rc, 0, "%s %s" % (out, err))
        self.assert_logs_in(self.read(b, "vdb"))
        text = b.log_text()
        self.assertIn("429", text)
        self.assertRegex(text, r"event=issue_failed .*errno=%d"
                         % errno.ETIMEDOUT)
        # Three failures backed off 1-2, 2-4 and 4-8 s; the hung request
        # was cut at request_timeout (3 s).
        self.assertGreater(took, 1 + 2 + 3)
        # The simulator records a request when it has answered it, so the
        # hung one may still be pending here.
        statuses = [r["status"] for r in self.sim.requests()
                    if r["path"] == "database/creds/slow"]
        self.assertEqual(statuses.count(429), 2, statuses)
        self.assertIn(200, statuses)

    def test_sealed_vault_keeps_last_good_value(self):
        """Sealed (503): renewals back off, the current credential stays
        readable until it expires, then it disappears; once Vault is
        unsealed a new one appears."""
        self.setup_roles("outage", default_ttl=8, max_ttl=600)
        b = self.start_broker(self.vault_config(
            [self.db_secret("vdb", "outage", "8s")], "outage"))
        b.wait_active("vdb")
        files = self.read(b, "vdb")
        lease = json.loads(files[".lease.json"])
        self.sim.seal()
        try:
            wait_until(lambda: "503" in b.secret_status("vdb")["last_error"],
                       15, what="a 503 reported in status")
            st = b.secret_status("vdb")
            self.assertIn("sealed", st["last_error"])
            self.assertGreaterEqual(st["failures"], 1)
            # Still served (and still working) until its expiry.
            self.assert_logs_in(self.read(b, "vdb"))
            expires = cbtest.iso_to_epoch(lease["expires"])
            wait_until(lambda: cbtest.errno_of(os.stat, b.path("vdb", "dsn"))
                       == errno.ENOENT, expires - time.time() + 10,
                       what="expired credential removed")
            self.assertGreaterEqual(time.time(), expires - 1)
        finally:
            self.sim.unseal()
        b.wait_active("vdb", timeout=60,
                      min_version=b.secret_status("vdb")["version"] + 1)
        self.assert_logs_in(self.read(b, "vdb"))

    def test_malformed_and_oversized_bodies(self):
        self.setup_roles("bad")
        self.sim.fault(r"^database/creds/bad$", body="{\"data\": [1, 2",
                       times=1)
        self.sim.fault(r"^database/creds/bad$", body="oversized", times=1)
        self.sim.fault(r"^database/creds/bad$", drop=True, times=1)
        b = self.start_broker(self.vault_config(
            [self.db_secret("vdb", "bad", "30s")], "bad"))
        b.wait_active("vdb", timeout=60)
        self.assert_logs_in(self.read(b, "vdb"))
        text = b.log_text()
        self.assertIn("not a JSON object", text)
        self.assertIn("larger than", text)
        self.assertRegex(text, r"errno=%d" % errno.ECONNRESET)
        self.assertTrue(b.alive())

    def test_wrong_ca_and_pin_refuse(self):
        self.setup_roles("tls")
        cases = [("wrong CA", {"ca_file": self.pki.other_ca_cert}),
                 ("pin mismatch", {"ca_file": self.pki.ca_cert,
                                   "pinned_public_key": "sha256//" + "A" * 43
                                   + "="}),
                 ("server name", {"ca_file": self.pki.ca_cert,
                                  "server_name": "other.test"})]
        n0 = len(self.sim.requests())
        for i, (what, tls) in enumerate(cases):
            cfg = self.vault_config([self.db_secret("vdb", "tls", "30s")],
                                    "tls")
            cfg["backends"]["v"]["tls"] = tls
            rc, text = self.run_broker_to_exit(cfg, name="tls%d" % i)
            self.assertEqual(rc, 2, "%s: exit %d\n%s" % (what, rc, text))
            self.assertIn("TLS verification failed", text, what)
            self.assertIn("backends.v", text, what)
        self.assertEqual(self.sim.requests()[n0:], [], "a request reached "
                         "Vault without a verified server")
        # The right pin and a name the certificate holds work.
        cfg = self.vault_config([self.db_secret("vdb", "tls", "30s")], "tls")
        cfg["backends"]["v"]["tls"] = {"ca_file": self.pki.ca_cert,
                                       "pinned_public_key":
                                       self.pki.server_pubkey_pin(),
                                       "server_name": "vault.test"}
        b = self.start_broker(cfg)
        b.wait_active("vdb")
        self.assert_logs_in(self.read(b, "vdb"))

    def test_revoke_and_revoke_all(self):
        self.setup_roles("rev")
        b = self.start_broker(self.vault_config(
            [self.db_secret("a", "rev", "30s"),
             self.db_secret("b", "rev", "30s")], "rev"))
        b.wait_active("a")
        b.wait_active("b")
        fa, fb = self.read(b, "a"), self.read(b, "b")
        la = json.loads(fa[".lease.json"])["lease_id"]
        lb = json.loads(fb[".lease.json"])["lease_id"]
        rc, out, err = b.cli("revoke", "a")
        self.assertEqual(rc, 0, "%s %s" % (out, err))
        self.assertTrue(out["confirmed"], out)
        self.assertTrue(self.sim.leases()[la]["revoked"])
        self.assertFalse(self.role_exists(fa["username"].strip()))
        self.assertEqual(cbtest.errno_of(os.stat, b.path("a", "dsn")),
                         errno.ENOENT)
        self.assertFalse(self.sim.leases()[lb]["revoked"])
        self.assert_logs_in(self.read(b, "b"))
        rc, out, err = b.cli("revoke", "--all")
        self.assertEqual(rc, 0, "%s %s" % (out, err))
        self.assertTrue(self.sim.leases()[lb]["revoked"])
        self.assertFalse(self.role_exists(fb["username"].strip()))
        tokens = [t for t in self.sim.tokens().values() if t["role"] == "rev"]
        self.assertTrue(tokens and all(t["revoked"] for t in tokens),
                        "revoke --all left a live token: %r" % tokens)
        self.assertIn(("token-revoke-self"), [e[0] for e in
                                               self.sim.events()])

    def test_revoked_in_vault_leaves_the_mount(self):
        self.setup_roles("ext")
        cfg = self.vault_config([self.db_secret("vdb", "ext", "60s")], "ext",
                                lease_check_interval="2s")
        b = self.start_broker(cfg)
        b.wait_active("vdb")
        files = self.read(b, "vdb")
        self.sim.revoke_prefix("database/creds/ext")
        t0 = time.monotonic()
        wait_until(lambda: cbtest.errno_of(os.stat, b.path("vdb", "dsn")) ==
                   errno.ENOENT, 10, what="externally revoked lease removed")
        self.assertLess(time.monotonic() - t0, 6)
        self.assertEqual(b.secret_status("vdb")["state"], "frozen")
        self.assertFalse(self.role_exists(files["username"].strip()))


if __name__ == "__main__":
    cbtest.main()
