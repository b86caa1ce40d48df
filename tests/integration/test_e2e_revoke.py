#!/usr/bin/env python3
"""Issue 2, tests item 4: revoke hides the files (ENOENT), fails reads on
open files (EIO), refuses logins, terminates the role's sessions, drops the
role, and nothing is re-issued until unfreeze.  Also revoke --all, rotate,
and a non-responder uid that must not be able to revoke."""

import errno
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import NOBODY, PgConn, PgError, wait_until  # noqa: E402


class RevokeTest(cbtest.BrokerTestCase):

    def test_revoke_unfreeze(self):
        cfg = self.config(secrets=[self.secret("db", ttl="30s")])
        b = self.start_broker(cfg)
        b.wait_active("db")
        files = b.read_secret("db")
        user = files["username"].strip()
        v_before = b.secret_status("db")["version"]

        # An open file and an open session of the role.
        fd = os.open(b.path("db", "password"), os.O_RDONLY)
        self.addCleanup(lambda: cbtest.errno_of(os.close, fd))
        self.assertEqual(os.pread(fd, 4096, 0).decode(), files["password"])
        sess = PgConn(files["dsn"].strip())
        self.addCleanup(sess.close)
        self.assertEqual(sess.execute("SELECT v FROM granted_t"),
                         [["visible"]])
        self.assertEqual(len(self.sessions_of()), 1)

        t0 = time.monotonic()
        rc, out, err = b.cli("revoke", "db")
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, "revoke exit %d: %s %s\n%s" % (
            rc, out, err, b.log_tail()))
        self.assertTrue(out["ok"] and out["confirmed"], out)
        self.assertEqual([r["name"] for r in out["revoked"]], ["db"])
        leases = out["revoked"][0]["leases"]
        self.assertIn(user, [x["lease_id"] for x in leases], out)
        self.assertTrue(all(x["confirmed"] for x in leases), out)
        self.assertLess(took, 15)

        # Files gone, open fd fails with EIO.
        for f in ("password", "username", "dsn", "env", ".lease.json"):
            self.assertEqual(cbtest.errno_of(os.stat, b.path("db", f)),
                             errno.ENOENT, "stat %s after revoke" % f)
            self.assertEqual(
                cbtest.errno_of(lambda p: os.close(os.open(p, os.O_RDONLY)),
                                b.path("db", f)),
                errno.ENOENT, "open %s after revoke" % f)
        self.assertEqual(cbtest.errno_of(os.pread, fd, 4096, 0), errno.EIO,
                         "read on a file opened before revoke")
        os.close(fd)
        # Nothing is left in the secret's directory (no ..data, no ..vN).
        try:
            left = os.listdir(b.path("db"))
        except FileNotFoundError:
            left = []
        self.assertEqual(left, [], "entries left in db/ after revoke")

        # Upstream: session terminated, login refused, role dropped.
        with self.assertRaises(PgError, msg="session survived revoke"):
            sess.execute("SELECT 1")
        sess.close()
        ok, res = cbtest.try_login(files["dsn"].strip())
        self.assertFalse(ok, "login still works after revoke")
        self.assertFalse(self.role_exists(user), "role not dropped")
        self.assertEqual(self.sessions_of(), [])

        # Frozen, and nothing re-issued meanwhile.
        st = b.secret_status("db")
        self.assertEqual(st["state"], "frozen")
        rc, out, err = b.cli("rotate", "db")
        self.assertEqual(rc, 1, "rotate of a frozen secret: %s" % out)
        time.sleep(4)
        st = b.secret_status("db")
        self.assertEqual(st["state"], "frozen")
        self.assertEqual(self.cb_roles(), {}, "a role was issued while "
                         "frozen")
        self.assertEqual(cbtest.errno_of(os.stat, b.path("db", "password")),
                         errno.ENOENT)
        rc, out, err = b.cli("ready")
        self.assertEqual(rc, 1)

        # unfreeze: a new role appears.
        rc, out, err = b.cli("unfreeze", "db")
        self.assertEqual(rc, 0, "unfreeze: %s %s" % (out, err))
        st = b.wait_active("db", timeout=20, min_version=v_before + 1)
        new = b.read_secret("db")
        user2 = new["username"].strip()
        self.assertNotEqual(user2, user)
        self.assertEqual(st["lease_id"], user2)
        self.assertTrue(cbtest.try_login(new["dsn"].strip())[0])
        rc, out, err = b.cli("unfreeze", "db")
        self.assertEqual(rc, 1, "unfreeze of an active secret succeeded")
        rc, out, err = b.cli("revoke", "nosuch")
        self.assertEqual(rc, 1)
        # Usage errors: exit 2, nothing sent.
        for argv in (("revoke",), ("rotate",), ("unfreeze",),
                     ("revoke", "a", "b"), ("status", "x"), ("frobnicate",)):
            rc, out, err = b.cli(*argv, json_out=False)
            self.assertEqual(rc, 2, "%r: rc %d %s" % (argv, rc, err))
        self.assertEqual(b.secret_status("db")["state"], "active")
        self.assertEqual(b.stop(), 0)

    def test_revoke_all_and_rotate(self):
        cfg = self.config(secrets=[self.secret("a"), self.secret("b")])
        b = self.start_broker(cfg)
        b.wait_active("a")
        b.wait_active("b")
        fa = b.read_secret("a")
        b.read_secret("b")
        ua = fa["username"].strip()

        # rotate returns the new version; the old role stays until expiry
        va = b.secret_status("a")["version"]
        rc, out, err = b.cli("rotate", "a")
        self.assertEqual(rc, 0, "rotate: %s %s" % (out, err))
        self.assertTrue(out["ok"])
        self.assertEqual(out["name"], "a")
        self.assertGreater(out["version"], va)
        self.assertNotEqual(out["lease_id"], ua)
        na = b.read_secret("a")
        self.assertEqual(na["username"].strip(), out["lease_id"])
        self.assertEqual(b.lease("a")["version"], out["version"])
        self.assertTrue(cbtest.try_login(na["dsn"].strip())[0])
        self.assertTrue(self.role_exists(ua),
                        "rotated-out role dropped before its expiry")
        self.assertNotIn(na["password"], json.dumps(out))

        roles = set(self.cb_roles())
        self.assertGreaterEqual(len(roles), 3)
        rc, out, err = b.cli("revoke", "--all")
        self.assertEqual(rc, 0, "revoke --all: %s %s" % (out, err))
        self.assertTrue(out["confirmed"])
        self.assertEqual(sorted(r["name"] for r in out["revoked"]),
                         ["a", "b"])
        revoked = {x["lease_id"] for r in out["revoked"]
                   for x in r["leases"]}
        self.assertEqual(revoked, roles,
                         "revoke --all must revoke the retired role too")
        self.assertEqual(self.cb_roles(), {})
        for name in ("a", "b"):
            self.assertEqual(b.secret_status(name)["state"], "frozen")
            self.assertEqual(cbtest.errno_of(os.stat,
                                             b.path(name, "password")),
                             errno.ENOENT)
        # Human output names the secret, never a password.
        rc, text, err = b.cli("status", json_out=False)
        self.assertEqual(rc, 0)
        self.assertIn("frozen", text)
        self.assertEqual(b.stop(), 0)

    def test_revoke_reaches_long_open_files(self):
        """A file opened five rotations ago (its version long out of the
        ..vN listing) still fails with EIO after revoke."""
        b = self.start_broker(self.config(secrets=[self.secret("db",
                                                                ttl="1h")]))
        b.wait_active("db")
        files = b.read_secret("db")
        fd = os.open(b.path("db", "password"), os.O_RDONLY)
        self.addCleanup(cbtest.errno_of, os.close, fd)
        for _ in range(5):
            rc, out, err = b.cli("rotate", "db")
            self.assertEqual(rc, 0, "rotate: %s %s" % (out, err))
            b.read_secret("db")
        self.assertEqual(os.pread(fd, 4096, 0).decode(), files["password"])
        rc, out, err = b.cli("revoke", "db")
        self.assertEqual(rc, 0, "revoke: %s %s" % (out, err))
        self.assertEqual(cbtest.errno_of(os.pread, fd, 4096, 0), errno.EIO,
                         "a pushed-out version survived revoke")
        self.assertEqual(self.cb_roles(), {})
        self.assertEqual(b.stop(), 0)

    def test_revoke_unconfirmed_while_postgres_down(self):
        """PostgreSQL down: revoke still hides the files at once, says the
        revocation is not confirmed (exit 3), and the role is dropped once
        PostgreSQL is back."""
        cfg = self.config(secrets=[self.secret("db", ttl="30s")])
        b = self.start_broker(cfg)
        b.wait_active("db")
        files = b.read_secret("db")
        user = files["username"].strip()
        fd = os.open(b.path("db", "password"), os.O_RDONLY)
        self.addCleanup(cbtest.errno_of, os.close, fd)
        self.pg.halt()
        try:
            t0 = time.monotonic()
            rc, out, err = b.cli("revoke", "db", timeout=60)
            took = time.monotonic() - t0
            self.assertEqual(rc, 3, "revoke with PostgreSQL down: rc %d %s "
                             "%s" % (rc, out, err))
            self.assertFalse(out["confirmed"], out)
            lease = out["revoked"][0]["leases"][0]
            self.assertEqual(lease["lease_id"], user)
            self.assertFalse(lease["confirmed"])
            self.assertTrue(lease["error"], "no error for the lease")
            self.assertLess(took, 20, "revoke took %.1fs" % took)
            self.assertEqual(cbtest.errno_of(os.stat,
                                             b.path("db", "password")),
                             errno.ENOENT)
            self.assertEqual(cbtest.errno_of(os.pread, fd, 100, 0),
                             errno.EIO)
            self.assertEqual(b.secret_status("db")["state"], "frozen")
        finally:
            self.pg.start()
        wait_until(lambda: not self.role_exists(user), 40, 0.2,
                   "role %s dropped after PostgreSQL came back" % user)
        self.assertEqual(b.secret_status("db")["state"], "frozen")
        self.assertEqual(self.cb_roles(), {})
        self.assertEqual(b.stop(), 0)

    def test_role_dropped_outside_is_taken_out_and_frozen(self):
        """A DBA drops the role during an incident: within the lease check
        interval the files are gone and the secret is frozen, instead of
        serving a dead credential until the next renewal fails."""
        cfg = self.config(secrets=[self.secret("db", ttl="1h")],
                          lease_check_interval="1s")
        b = self.start_broker(cfg)
        b.wait_active("db")
        user = b.read_secret("db")["username"].strip()
        with self.admin() as c:
            c.execute('DROP OWNED BY "%s"' % user)
            c.execute('DROP ROLE "%s"' % user)
        wait_until(lambda: b.secret_status("db")["state"] == "frozen", 10,
                   0.1, "secret frozen after its role was dropped")
        self.assertEqual(cbtest.errno_of(os.stat, b.path("db", "password")),
                         errno.ENOENT)
        self.assertIn("event=revoked_upstream secret=db lease=%s" % user,
                      b.log_text())
        time.sleep(2)
        self.assertEqual(b.secret_status("db")["state"], "frozen")
        self.assertEqual(self.cb_roles(), {})
        self.assertEqual(b.stop(), 0)

    def test_non_responder_cannot_revoke(self):
        cfg = self.config(secrets=[self.secret("db")])
        b = self.start_broker(cfg)
        b.wait_active("db")
        user = b.read_secret("db")["username"].strip()
        for verb in (("revoke", "db"), ("revoke", "--all"), ("status",),
                     ("rotate", "db")):
            rc, out, err = b.cli(*verb, uid=NOBODY)
            # The socket is 0600 root: connect() fails, exit 4.
            self.assertEqual(rc, 4, "%s as uid %d: rc %d %s %s" % (
                verb, NOBODY, rc, out, err))
            self.assertIn("cannot reach", err)
            self.assertIn("ermission denied", err)
        # Still there, untouched.
        st = b.secret_status("db")
        self.assertEqual(st["state"], "active")
        self.assertEqual(st["lease_id"], user)
        self.assertTrue(self.role_exists(user))
        self.assertEqual(b.stop(), 0)

    def test_non_responder_with_open_socket_is_refused(self):
        """Even when the socket file is reachable (chmod 0666, e.g. a
        mistake), SO_PEERCRED keeps a uid not in responders out."""
        cfg = self.config(secrets=[self.secret("db")])
        b = self.start_broker(cfg)
        b.wait_active("db")
        user = b.read_secret("db")["username"].strip()
        os.chmod(b.socket, 0o666)
        rc, out, err = b.cli("revoke", "db", uid=NOBODY)
        self.assertEqual(rc, 1, "uid %d through an open socket: rc %d %s %s"
                         % (NOBODY, rc, out, err))
        self.assertFalse(out["ok"])
        self.assertIn("permission denied", out["error"])
        self.assertIn("event=control_denied uid=%d" % NOBODY, b.log_text())
        self.assertEqual(b.secret_status("db")["state"], "active")
        self.assertTrue(self.role_exists(user))
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    cbtest.main()
