#!/usr/bin/env python3
"""Issue 2, tests item 2: the credential appears in the mount and logs in;
its grants work, a non-granted table is denied; the files agree with each
other; the CLI never shows the password; check-config accepts the config."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import BROKER, PgConn, PgError  # noqa: E402


class IssueTest(cbtest.BrokerTestCase):

    def test_issue_login_grants_files(self):
        cfg = self.config(secrets=[self.secret("db", ttl="30s",
                                               max_ttl="1h")])
        b = self.start_broker(cfg)
        st = b.wait_active("db")
        files = b.read_secret("db")
        user = files["username"].strip()
        pw = files["password"].strip()

        # username / lease id / role name
        self.assertTrue(user.startswith("cb_"), "role name %r" % user)
        self.assertLess(len(user.encode()), 63)
        self.assertEqual(st["lease_id"], user)
        self.assertGreaterEqual(len(pw), 32,
                                "password shorter than 24 random bytes "
                                "url-safe encoded (len %d)" % len(pw))
        self.assertRegex(pw, r"^[A-Za-z0-9_\-]+$",
                         "password is not URL-safe base64")
        self.assertTrue(self.role_exists(user), "role %s not in pg_roles"
                        % user)

        # dsn: a libpq URI that logs in as the role
        d = cbtest.parse_dsn(files["dsn"])
        self.assertEqual(d["user"], user)
        self.assertEqual(d["password"], pw)
        self.assertEqual(d["dbname"], cbtest.DBNAME)
        self.assertEqual(d["host"], self.pg.socket_dir)
        self.assertEqual(str(d["port"]), str(self.pg.port))

        # env: PG* lines that agree with the other files
        env = cbtest.parse_env(files["env"])
        self.assertEqual(env.get("PGUSER"), user)
        self.assertEqual(env.get("PGPASSWORD"), pw)
        self.assertEqual(env.get("PGHOST"), self.pg.socket_dir)
        self.assertEqual(env.get("PGPORT"), str(self.pg.port))
        self.assertEqual(env.get("PGDATABASE"), cbtest.DBNAME)

        # Real logins: through the dsn file, and through the env values.
        with PgConn(files["dsn"].strip()) as c:
            self.assertEqual(c.execute("SELECT current_user")[0][0], user)
            self.assertEqual(c.execute("SELECT v FROM granted_t WHERE id=1"),
                             [["visible"]])
            with self.assertRaises(PgError) as cm:
                c.execute("SELECT v FROM secret_t")
            self.assertIn("permission denied", str(cm.exception))
        ok, res = cbtest.try_login(
            "host=%s port=%s user=%s password=%s dbname=%s" % (
                env["PGHOST"], env["PGPORT"], env["PGUSER"],
                env["PGPASSWORD"], env["PGDATABASE"]))
        self.assertTrue(ok, "login with env values failed: %s" % res)
        # A wrong password is refused (the login check is real).
        ok, res = cbtest.try_login(cbtest.conninfo_for(
            self.pg, user, pw[:-1] + ("A" if pw[-1] != "A" else "B")))
        self.assertFalse(ok, "login with a wrong password succeeded")

        # .lease.json
        lease = json.loads(files[".lease.json"])
        for k in ("secret", "version", "lease_id", "backend", "issued",
                  "expires", "max_expires", "renewable"):
            self.assertIn(k, lease, ".lease.json lacks %s: %r" % (k, lease))
        self.assertEqual(lease["secret"], "db")
        self.assertEqual(lease["lease_id"], user)
        self.assertEqual(lease["backend"], "postgres")
        self.assertIsInstance(lease["renewable"], bool)
        self.assertGreaterEqual(lease["version"], 1)
        self.assertNotIn(pw, files[".lease.json"])
        issued = cbtest.iso_to_epoch(lease["issued"])
        expires = cbtest.iso_to_epoch(lease["expires"])
        max_exp = cbtest.iso_to_epoch(lease["max_expires"])
        now = time.time()
        self.assertLessEqual(issued, now + 2)
        self.assertGreater(issued, now - 60)
        self.assertTrue(20 <= expires - issued <= 31,
                        "ttl 30s but issued %s expires %s" % (
                            lease["issued"], lease["expires"]))
        self.assertTrue(3590 <= max_exp - issued <= 3601,
                        "max_ttl 1h but max_expires %s" % lease["max_expires"])
        vu = self.role_valid_until(user)
        self.assertIsNotNone(vu, "role has no VALID UNTIL")
        self.assertLessEqual(abs(vu - expires), 1.5,
                             "rolvaliduntil %s vs lease expires %s" % (
                                 vu, lease["expires"]))

        # Files are read-only and owned as configured.
        stt = os.stat(b.path("db", "password"))
        self.assertEqual(stt.st_mode & 0o7777, 0o400)
        self.assertEqual((stt.st_uid, stt.st_gid), (0, 0))
        self.assertEqual(stt.st_size, len(files["password"].encode()))

        # ..data -> ..vN holds the same bytes
        target = os.readlink(b.path("db", "..data"))
        self.assertRegex(target, r"^\.\.v[1-9][0-9]*$")
        self.assertEqual(int(target[3:]), lease["version"])
        vfiles = b.read_secret("db", base=b.path("db", target))
        self.assertEqual(vfiles, files)

        # CLI: status / ls never show the password
        for json_out in (True, False):
            for verb in ("status", "ls"):
                rc, out, err = b.cli(verb, json_out=json_out)
                self.assertEqual(rc, 0, "%s failed: %s %s" % (verb, out, err))
                text = out if isinstance(out, str) else json.dumps(out)
                self.assertNotIn(pw, text + err,
                                 "%s output shows the password" % verb)
                self.assertIn("db", text)
        rc, out, err = b.cli("status")
        self.assertTrue(out["ok"])
        s = [x for x in out["secrets"] if x["name"] == "db"][0]
        self.assertEqual(s["state"], "active")
        self.assertEqual(s["lease_id"], user)
        rc, out, err = b.cli("ls")
        names = {f["name"] for s in out["secrets"] for f in s["files"]}
        self.assertTrue({"username", "password", "dsn", "env",
                         ".lease.json"} <= names, names)
        rc, out, err = b.cli("ready")
        self.assertEqual(rc, 0, "ready: %s %s" % (out, err))

        # Directory listing
        self.assertEqual(sorted(os.listdir(b.mount)), ["db"])
        listing = set(os.listdir(b.path("db")))
        self.assertTrue({"username", "password", "dsn", "env", ".lease.json",
                         "..data", target} <= listing, listing)

        # check-config accepts the very config the broker runs
        p = subprocess.run([BROKER, "check-config", b.cfg_path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, "check-config: %s%s" % (p.stdout,
                                                                 p.stderr))

        rc = b.stop()
        self.assertEqual(rc, 0, "broker exit status on SIGTERM\n%s"
                         % b.log_tail())

    def test_files_subset(self):
        """Only the configured files are rendered."""
        cfg = self.config(secrets=[self.secret("only", files=["dsn"])])
        b = self.start_broker(cfg)
        b.wait_active("only")
        names = set(os.listdir(b.path("only")))
        self.assertIn("dsn", names)
        self.assertNotIn("password", names)
        self.assertNotIn("env", names)
        files = b.read_secret("only", files=["dsn"])
        self.assertTrue(cbtest.try_login(files["dsn"].strip())[0])
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    cbtest.main()
