#!/usr/bin/env python3
"""Issue 2, tests item 9: SIGTERM revokes every lease upstream (current and
rotated-out roles), terminates their sessions, unmounts, exits 0: no cb_
role left in pg_roles, no session of one in pg_stat_activity, nothing in
/proc/mounts.  SIGINT does the same."""

import errno
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import PgConn, PgError  # noqa: E402


class ShutdownTest(cbtest.BrokerTestCase):

    def run_and_stop(self, sig):
        cfg = self.config(secrets=[self.secret("a"), self.secret("b")])
        b = self.start_broker(cfg)
        b.wait_active("a")
        b.wait_active("b")
        fa = b.read_secret("a")
        b.read_secret("b")
        # A rotated-out role still within its TTL must go too.
        rc, out, err = b.cli("rotate", "a")
        self.assertEqual(rc, 0, "rotate: %s %s" % (out, err))
        b.read_secret("a")
        roles = set(self.cb_roles())
        self.assertEqual(len(roles), 3, roles)
        self.assertIn(fa["username"].strip(), roles)
        # Open sessions of two of the roles and an open file.
        sessions = [PgConn(fa["dsn"].strip()),
                    PgConn(b.read_secret("b")["dsn"].strip())]
        for s in sessions:
            self.addCleanup(s.close)
        self.assertEqual(len(self.sessions_of()), 2)
        fd = os.open(b.path("a", "password"), os.O_RDONLY)
        self.addCleanup(cbtest.errno_of, os.close, fd)

        t0 = time.monotonic()
        rc = b.stop(sig, timeout=30)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, "exit status after %s: %r\n%s" % (
            signal.Signals(sig).name, rc, b.log_tail()))
        self.assertLess(took, 15, "shutdown took %.1fs" % took)
        self.assertEqual(self.cb_roles(), {}, "roles left after %s"
                         % signal.Signals(sig).name)
        self.assertEqual(self.sessions_of(), [],
                         "sessions of cb_ roles left")
        for s in sessions:
            with self.assertRaises(PgError):
                s.execute("SELECT 1")
        self.assertFalse(cbtest.mounted(b.mount), "still in /proc/mounts")
        self.assertEqual(os.listdir(b.mount), [])
        self.assertFalse(os.path.exists(b.socket),
                         "control socket file left behind")
        e = cbtest.errno_of(os.pread, fd, 100, 0)
        self.assertNotEqual(e, 0, "read on an open fd after shutdown")
        ok, res = cbtest.try_login(fa["dsn"].strip())
        self.assertFalse(ok)
        log = b.log_text()
        self.assertIn("event=stopped", log)
        for r in roles:
            self.assertIn(r, log, "revocation of %s not logged" % r)
        rc, out, err = b.cli("status")
        self.assertEqual(rc, 4, "CLI after shutdown: %d %s" % (rc, err))

    def test_revoke_on_exit_false_leaves_the_role(self):
        """revoke_on_exit false: the mount goes and memory is wiped, but
        the role lives on upstream until its own expiry (for a broker that
        restarts and should not cut its app's sessions)."""
        cfg = self.config(secrets=[self.secret("a")], revoke_on_exit=False)
        b = self.start_broker(cfg)
        b.wait_active("a")
        files = b.read_secret("a")
        self.assertEqual(b.stop(signal.SIGTERM, timeout=30), 0)
        self.assertFalse(cbtest.mounted(b.mount))
        self.assertIn(files["username"].strip(), self.cb_roles())
        self.assertTrue(cbtest.try_login(files["dsn"].strip())[0],
                        "the role no longer logs in")
        self.drop_cb_roles()

    def test_sigterm(self):
        self.run_and_stop(signal.SIGTERM)

    def test_sigint(self):
        self.run_and_stop(signal.SIGINT)

    def test_sigterm_while_pending(self):
        """SIGTERM while PostgreSQL is down: the broker still exits in
        bounded time, and unmounts."""
        cfg = self.config(secrets=[self.secret("db", ttl="30s")])
        b = self.start_broker(cfg)
        b.wait_active("db")
        b.read_secret("db")
        self.pg.halt()
        try:
            t0 = time.monotonic()
            rc = b.stop(signal.SIGTERM, timeout=60)
            took = time.monotonic() - t0
        finally:
            self.pg.start()
        self.assertIsNotNone(rc, "broker hung on SIGTERM with PostgreSQL "
                             "down\n%s" % b.log_tail())
        self.assertLess(took, 30, "shutdown took %.1fs" % took)
        self.assertFalse(cbtest.mounted(b.mount))
        # It could not revoke: it says so.
        log = b.log_text()
        self.assertRegex(log, r"revoke\w*_failed|not confirmed|"
                         r"confirmed=no", log[-2000:])
        self.drop_cb_roles()
        self.assertEqual(cbtest.errno_of(os.stat, b.path("db")),
                         errno.ENOENT)


if __name__ == "__main__":
    cbtest.main()
