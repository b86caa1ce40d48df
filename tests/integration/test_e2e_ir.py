#!/usr/bin/env python3
"""Issue 4: incident response and audit, end to end.  One broker holds a
PostgreSQL role it minted, a Vault database lease and a Vault KV value;
`revoke --all --reason --verify` hides everything, revokes upstream
(PostgreSQL and the Vault simulator confirm), revokes the Vault token,
prints an incident record with the blast radius, and exits 0; with Vault
hanging it finishes within its bound and exits 3 naming the lease; the
freeze survives a restart; the audit chain verifies and any edit, removal
or swap is caught; denials are recorded with uid and pid; repeated opens
are coalesced.  No secret value in the audit log or the incident record
(the class's leak check searches both)."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import BROKER, NOBODY, PgConn, PgError, wait_until  # noqa: E402
from vaultcase import VaultCase  # noqa: E402


class urllib_open:
    """GET /records of the fixture's HTTPS server, as a context manager
    yielding the parsed list."""

    def __init__(self, port, ca_file):
        import ssl
        import urllib.request
        ctx = ssl.create_default_context(cafile=ca_file)
        self.resp = urllib.request.urlopen(
            "https://localhost:%d/records" % port, context=ctx, timeout=10)

    def __enter__(self):
        return json.loads(self.resp.read())

    def __exit__(self, *exc):
        self.resp.close()
        return False


def audit_records(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class IncidentTest(VaultCase):

    def ir_config(self, role, token_ttl=60, **extra):
        self.setup_roles(role, token_ttl=token_ttl)
        self.sim.kv2_put("ir/" + role, {"api_key": "kv-" + role})
        cbtest.record_password("kv-" + role)
        secrets = [
            self.secret("db", ttl="60s", readers=[0, NOBODY]),
            self.db_secret("vdb", role, "60s", readers=[0, NOBODY]),
            {"name": "conf", "backend": "v", "ttl": "1h", "refresh": "1h",
             "uid": 0, "gid": 0, "readers": [0],
             "vault": {"kind": "kv2", "path": "ir/" + role}},
        ]
        cfg = self.config(secrets=secrets, **extra)
        cfg["backends"]["v"] = self.vault_backend(role)
        self.audit_log = os.path.join(self.tmp, "audit.log")
        cfg["audit"] = {"file": self.audit_log}
        self._class_logs.append(self.audit_log)
        return cfg

    def start_all(self, cfg):
        b = self.start_broker(cfg)
        for name in ("db", "vdb", "conf"):
            b.wait_active(name)
        return b

    def cli_logged(self, b, *args, **kw):
        """b.cli, with the output kept for the class's leak check."""
        rc, out, err = b.cli(*args, **kw)
        self._class_logs.append(b.cli_log)
        return rc, out, err

    def test_revoke_all_with_postgres_and_vault(self):
        b = self.start_all(self.ir_config("irall", token_ttl=3))
        db = b.read_secret("db")
        vdb = self.read(b, "vdb")
        self.assertEqual(cbtest.read_file(b.path("conf", "api_key")),
                         "kv-irall")
        vlease = json.loads(vdb[".lease.json"])["lease_id"]
        # A second reader: nobody reads the Vault credential.
        rc, text = cbtest.as_uid(NOBODY, "read", b.path("vdb", "password"))
        self.assertEqual(rc, 0, text)
        fd = os.open(b.path("db", "password"), os.O_RDONLY)
        self.addCleanup(cbtest.errno_of, os.close, fd)
        sess = PgConn(db["dsn"].strip())
        self.addCleanup(sess.close)

        t0 = time.monotonic()
        rc, out, err = self.cli_logged(b, "revoke", "--all", "--reason",
                                       "INC-42 drill", "--verify")
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, "revoke --all: %s %s\n%s" % (
            out, err, b.log_tail()))
        self.assertLess(took, 20)
        self.assertTrue(out["confirmed"], out)
        self.assertEqual(out["reason"], "INC-42 drill")
        self.assertEqual(out["scope"], "all")
        self.assertEqual(out["actor"]["uid"], 0)
        self.assertGreater(out["actor"]["pid"], 0)
        by_name = {s["name"]: s for s in out["revoked"]}
        self.assertEqual(sorted(by_name), ["conf", "db", "vdb"])
        for s in out["revoked"]:
            for lease in s["leases"]:
                self.assertTrue(lease["confirmed"], lease)
                self.assertTrue(lease["verified"]["ok"], lease)
        self.assertIn("login refused",
                      by_name["db"]["leases"][0]["verified"]["detail"])
        self.assertIn("unknown to Vault",
                      by_name["vdb"]["leases"][0]["verified"]["detail"])
        # The blast radius names both readers of the Vault credential.
        readers = {(r["uid"], r["comm"]) for r in
                   by_name["vdb"]["blast_radius"]}
        self.assertIn(0, {u for u, _ in readers}, readers)
        self.assertIn(NOBODY, {u for u, _ in readers}, readers)
        for r in by_name["vdb"]["blast_radius"]:
            self.assertEqual(r["versions"], [1], r)
        self.assertEqual([i["confirmed"] for i in out["identities"]],
                         [True, True])

        # Gone from the mount; the open file fails.
        for name in ("db", "vdb", "conf"):
            self.assertEqual(os.listdir(b.path(name)), [])
        self.assertEqual(cbtest.errno_of(os.pread, fd, 100, 0), errno.EIO)
        # PostgreSQL: both roles dropped; our own role's session ended.
        self.assertFalse(self.role_exists(db["username"].strip()))
        self.assertFalse(self.role_exists(vdb["username"].strip()))
        with self.assertRaises(PgError):
            sess.execute("SELECT 1")
        # Vault: the lease and every token of the role revoked.
        self.assertTrue(self.sim.leases()[vlease]["revoked"])
        tokens = [t for t in self.sim.tokens().values()
                  if t["role"] == "irall"]
        self.assertTrue(tokens and all(t["revoked"] for t in tokens))
        for name in ("db", "vdb", "conf"):
            self.assertEqual(b.secret_status(name)["state"], "frozen")
        # Past the old token's renewal time, the broker holds no new one.
        time.sleep(4)
        live = [t for t in self.sim.tokens().values()
                if t["role"] == "irall" and not t["revoked"]]
        self.assertEqual(live, [], "logged in again after revoke --all")

        # The incident is in the audit log, and the chain verifies.
        b.stop()
        recs = audit_records(self.audit_log)
        incident = [r for r in recs if r["event"] == "incident"]
        self.assertEqual(len(incident), 1)
        self.assertEqual(incident[0]["record"]["reason"], "INC-42 drill")
        parts = [r for r in recs if r["event"] == "incident_secret"]
        self.assertEqual(sorted(r["object"]["secret"] for r in parts),
                         ["conf", "db", "vdb"])
        self.assertEqual(incident[0]["actor"]["type"], "responder")
        events = {r["event"] for r in recs}
        for e in ("config_load", "login", "issue", "open", "control",
                  "revoke", "freeze", "incident", "stop"):
            self.assertIn(e, events)
        p = subprocess.run([BROKER, "audit", "verify", self.audit_log],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("from the start of the chain", p.stdout)

    def test_hung_vault_revoke_is_bounded_and_unconfirmed(self):
        b = self.start_all(self.ir_config("irhang"))
        vlease = json.loads(self.read(b, "vdb")[".lease.json"])["lease_id"]
        b.read_secret("db")
        self.sim.fault(r"^sys/leases/revoke$", delay=30)
        self.sim.fault(r"^auth/token/revoke-self$", delay=30)
        try:
            t0 = time.monotonic()
            rc, out, err = self.cli_logged(b, "revoke", "--all")
            took = time.monotonic() - t0
        finally:
            self.sim.clear_faults()
        self.assertEqual(rc, 3, "%s %s" % (out, err))
        # request_timeout is 3 s; the 403-free path makes one attempt per
        # call, and the lease and the token go in sequence.
        self.assertLess(took, 15, "revoke took %.1fs" % took)
        self.assertFalse(out["confirmed"])
        vdb = [s for s in out["revoked"] if s["name"] == "vdb"][0]
        self.assertEqual(vdb["leases"][0]["lease_id"], vlease)
        self.assertFalse(vdb["leases"][0]["confirmed"])
        self.assertRegex(vdb["leases"][0]["error"], "(?i)timed? ?out")
        db = [s for s in out["revoked"] if s["name"] == "db"][0]
        self.assertTrue(db["confirmed"], db)
        # Hidden regardless.
        self.assertEqual(os.listdir(b.path("vdb")), [])
        # Once Vault answers, revoking again confirms the retained lease
        # (the human output says so).
        rc, text, err = self.cli_logged(b, "revoke", "--all",
                                        json_out=False)
        self.assertEqual(rc, 0, text + err)
        self.assertIn("lease %s: revoked upstream" % vlease, text)
        self.assertTrue(self.sim.leases()[vlease]["revoked"])

    def test_failed_vault_revocation_is_not_confirmed(self):
        """Vault answers 400 "failed to revoke entry" when its revocation
        statements fail: exit 3, and the lease is listed."""
        self.sim.add_k8s_role("irfail", bound_service_account_names=["app"],
                              bound_service_account_namespaces=["default"],
                              audience="vault", token_ttl=60)
        self.sim.add_db_role("irfail", creation_statements=[
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
            "VALID UNTIL '{{expiration}}';"],
            revocation_statements=["SELECT 1/0;"], default_ttl=60,
            max_ttl=600)
        cfg = self.config(secrets=[self.db_secret("vdb", "irfail", "60s")])
        cfg["backends"]["v"] = self.vault_backend("irfail")
        b = self.start_broker(cfg)
        b.wait_active("vdb")
        files = self.read(b, "vdb")
        lease = json.loads(files[".lease.json"])["lease_id"]
        rc, out, err = self.cli_logged(b, "revoke", "vdb")
        self.assertEqual(rc, 3, "%s %s" % (out, err))
        got = out["revoked"][0]["leases"][0]
        self.assertEqual(got["lease_id"], lease)
        self.assertFalse(got["confirmed"])
        self.assertIn("failed to revoke", got["error"])
        self.assertFalse(self.sim.leases()[lease]["revoked"])
        # Hidden and frozen all the same.
        self.assertEqual(os.listdir(b.path("vdb")), [])

    def test_freeze_survives_restart(self):
        cfg = self.ir_config("irfreeze")
        b = self.start_all(cfg)
        user = b.read_secret("db")["username"].strip()
        rc, out, err = self.cli_logged(b, "revoke", "db", "--reason", "x")
        self.assertEqual(rc, 0, "%s %s" % (out, err))
        self.assertFalse(self.role_exists(user))
        self.assertEqual(b.stop(), 0)
        state = os.path.join(self.tmp, "state.json")
        with open(state) as f:
            saved = json.load(f)
        self.assertEqual(sorted(saved["frozen"]), ["db"])
        self.assertEqual(saved["frozen"]["db"]["reason"], "x")
        self.assertEqual(os.stat(state).st_mode & 0o777, 0o600)
        b2 = self.start_broker(cfg, name="broker2")
        b2.wait_active("vdb")
        time.sleep(3)
        st = b2.secret_status("db")
        self.assertEqual(st["state"], "frozen", st)
        self.assertEqual(st["version"], 0)
        self.assertEqual(self.cb_roles(), {}, "a role was issued")
        self.assertIn("frozen_at_start", b2.log_text())
        rc, out, err = self.cli_logged(b2, "unfreeze", "db")
        self.assertEqual(rc, 0, "%s %s" % (out, err))
        b2.wait_active("db")
        with open(state) as f:
            self.assertEqual(json.load(f)["frozen"], {})

    def test_audit_records_denials_coalesces_and_catches_tampering(self):
        b = self.start_all(self.ir_config("iraudit"))
        b.read_secret("db")
        # A hot loop of opens by one process: one record and one count.
        n = 60
        for _ in range(n):
            with open(b.path("db", "username")) as f:
                f.read()
        # Denied: nobody may not read conf, nor use the control socket.
        rc, text = cbtest.as_uid(NOBODY, "read", b.path("conf", "api_key"))
        self.assertNotEqual(rc, 0)
        # The socket's mode keeps nobody out at connect(); with the mode
        # opened (a mistake), SO_PEERCRED refuses, and that is audited.
        os.chmod(b.socket, 0o666)
        rc, out, err = b.cli("status", uid=NOBODY)
        self.assertNotEqual(rc, 0)
        self.assertEqual(b.stop(), 0)
        recs = audit_records(self.audit_log)
        mine = [r for r in recs if r["event"] == "open" and
                r["object"]["secret"] == "db" and
                r["object"]["file"] == "username" and
                r["actor"]["pid"] == os.getpid()]
        counts = [r.get("count", 1) for r in mine]
        self.assertEqual(sum(counts), n + 1, mine)
        self.assertLessEqual(len(mine), 3, "opens were not coalesced")
        self.assertTrue(any(r.get("coalesced") for r in mine))
        denied = [r for r in recs if r["result"] == "denied"]
        opens = [r for r in denied if r["event"] == "open"]
        self.assertEqual(len(opens), 1, denied)
        self.assertEqual(opens[0]["actor"]["uid"], NOBODY)
        self.assertGreater(opens[0]["actor"]["pid"], 0)
        self.assertEqual(opens[0]["object"]["secret"], "conf")
        ctl = [r for r in denied if r["event"] == "control"]
        self.assertEqual(len(ctl), 1, denied)
        self.assertEqual(ctl[0]["actor"]["uid"], NOBODY)
        seqs = [r["seq"] for r in recs]
        self.assertEqual(seqs, list(range(1, len(recs) + 1)))

        def verify(path):
            p = subprocess.run([BROKER, "audit", "verify", path],
                               capture_output=True, text=True, timeout=30)
            return p.returncode, p.stdout + p.stderr
        self.assertEqual(verify(self.audit_log)[0], 0)
        with open(self.audit_log) as f:
            lines = f.readlines()
        cases = {
            "edit": lines[:3] + [lines[3].replace('"ok"', '"failed"', 1)]
            + lines[4:],
            "delete": lines[:3] + lines[4:],
            "swap": lines[:3] + [lines[4], lines[3]] + lines[5:],
        }
        for what, content in cases.items():
            path = os.path.join(self.tmp, "tampered-%s.log" % what)
            with open(path, "w") as f:
                f.writelines(content)
            rc, text = verify(path)
            self.assertEqual(rc, 1, "%s not caught: %s" % (what, text))
            self.assertRegex(text, r"tampered-%s\.log:(4|5):" % what, text)

    def hook_script(self):
        """An exec hook that writes its environment to a file per event."""
        self.hook_dir = os.path.join(self.tmp, "hook-out")
        os.mkdir(self.hook_dir)
        path = os.path.join(self.tmp, "hook.sh")
        with open(path, "w") as f:
            f.write("#!/bin/sh\nenv > \"%s/$CREDBROKER_EVENT-"
                    "$CREDBROKER_SECRET.env\"\necho hook says hello\n"
                    % self.hook_dir)
        os.chmod(path, 0o700)
        return {"type": "exec", "argv": [path], "timeout": "5s"}

    def hook_env(self, name):
        path = os.path.join(self.hook_dir, name)
        self._class_logs.append(path)
        with open(path) as f:
            return dict(line.rstrip("\n").split("=", 1) for line in f
                        if "=" in line)

    def test_hooks_receive_events(self):
        sys.path.insert(0, os.path.join(os.path.dirname(
            os.path.dirname(os.path.abspath(__file__))), "sim"))
        import https_fixture
        srv = https_fixture.serve(self.pki, False)
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        url = "https://localhost:%d/record" % srv.server_address[1]
        cfg = self.ir_config("irhook")
        exec_hook = self.hook_script()
        cfg["hooks"] = {"on_revoke": [{"type": "http", "url": url,
                                       "ca_file": self.pki.ca_cert,
                                       "timeout": "5s"}],
                        "on_rotate": [exec_hook]}
        cfg["secrets"][0]["hooks"] = {"on_revoke": [exec_hook]}
        os.environ["CB_TEST_NOT_FOR_HOOKS"] = "leak"
        self.addCleanup(os.environ.pop, "CB_TEST_NOT_FOR_HOOKS", None)
        b = self.start_all(cfg)
        b.read_secret("db")
        rc, out, err = self.cli_logged(b, "rotate", "db")
        self.assertEqual(rc, 0, "%s %s" % (out, err))
        path = os.path.join(self.hook_dir, "rotate-db.env")
        wait_until(lambda: os.path.exists(path) and os.path.getsize(path),
                   10, what="the rotation hook")
        env = self.hook_env("rotate-db.env")
        self.assertEqual(env["CREDBROKER_EVENT"], "rotate")
        self.assertEqual(env["CREDBROKER_SECRET"], "db")
        self.assertEqual(int(env["CREDBROKER_VERSION"]), out["version"])
        self.assertEqual(env["CREDBROKER_LEASE_ID"], out["lease_id"])
        b.read_secret("db")

        rc, out, err = self.cli_logged(b, "revoke", "--all", "--reason",
                                       "hook drill")
        self.assertEqual(rc, 0, "%s %s" % (out, err))
        self.assertEqual([(h["for"], h["ok"]) for h in out["hooks"]],
                         [("db", True), ("*", True)], out["hooks"])
        env = self.hook_env("revoke-db.env")
        self.assertEqual(env["CREDBROKER_REASON"], "hook drill")
        self.assertEqual(env["CREDBROKER_CONFIRMED"], "true")
        # A minimal environment: PATH and the event, nothing of ours.
        self.assertEqual({k for k in env if not k.startswith("CREDBROKER_")}
                         - {"PWD", "SHLVL", "_"}, {"PATH"}, env)
        self.assertNotIn("CB_TEST_NOT_FOR_HOOKS", env)
        with urllib_open(srv.server_address[1], self.pki.ca_cert) as recs:
            posts = [r for r in recs if r["method"] == "POST"]
        self.assertEqual(len(posts), 1, posts)
        self.assertEqual(posts[0]["headers"]["content-type"],
                         "application/json")
        event = json.loads(posts[0]["body"])
        self.assertEqual(event["event"], "revoke")
        self.assertEqual(event["secrets"], "db,vdb,conf")
        self.assertEqual(event["reason"], "hook drill")
        self.assertIn("hook says hello", b.log_text())
        b.stop()
        hooks = [r for r in audit_records(self.audit_log)
                 if r["event"] == "hook"]
        self.assertEqual(len(hooks), 3, hooks)
        self.assertTrue(all(r["result"] == "ok" for r in hooks))


if __name__ == "__main__":
    cbtest.main()
