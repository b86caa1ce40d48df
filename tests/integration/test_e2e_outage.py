#!/usr/bin/env python3
"""Issue 2, tests item 6: PostgreSQL stopped mid-life.  The current
credential stays readable until it expires, then disappears (ENOENT); when
PostgreSQL is back a new credential appears without restarting the broker."""

import errno
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import wait_until  # noqa: E402

TTL = 5


class OutageTest(cbtest.BrokerTestCase):

    def test_outage_expiry_and_recovery(self):
        cfg = self.config(secrets=[self.secret("db", ttl="%ds" % TTL,
                                               max_ttl="1h")])
        b = self.start_broker(cfg)
        st = b.wait_active("db")
        v0 = st["version"]
        # Take PostgreSQL away right after a fresh publish, so the lease has
        # most of its TTL left.
        wait_until(lambda: b.secret_status("db")["version"] > v0, TTL + 2,
                   0.05, "a renewal before the outage")
        before = b.read_secret("db")
        lease = json.loads(before[".lease.json"])
        user = before["username"].strip()
        expires = cbtest.iso_to_epoch(lease["expires"])
        self.pg.halt()
        t_halt = time.time()
        cbtest.log("PostgreSQL halted; lease %s expires in %.1fs" % (
            user, expires - t_halt))
        self.assertGreater(expires - t_halt, 1.0,
                           "lease too close to expiry to test")

        # Readable, unchanged, until its expiry; gone after.
        gone_at = None
        deadline = expires + 5
        reads = 0
        while time.time() < deadline:
            now = time.time()
            try:
                cur = b.read_secret("db")
            except OSError as e:
                # EIO: opened just before the expiry, read just after.
                self.assertIn(e.errno, (errno.ENOENT, errno.EIO),
                              "read during outage: %r" % e)
                if e.errno == errno.EIO:
                    self.assertGreaterEqual(time.time(), expires - 0.5,
                                            "EIO before the expiry")
                gone_at = now
                break
            reads += 1
            self.assertEqual(cur["password"], before["password"],
                             "credential changed while PostgreSQL is down")
            self.assertLess(now, expires + 1.0,
                            "credential still served %.1fs past its expiry"
                            % (now - expires))
            time.sleep(0.05)
        self.assertIsNotNone(gone_at, "credential never disappeared")
        self.assertGreaterEqual(gone_at, expires - 1.0,
                                "credential vanished %.1fs before its "
                                "expiry" % (expires - gone_at))
        self.assertGreater(reads, 5)
        # Names and attributes may stay cached up to 1 s at the top level
        # (README, "The mount"): gone for stat within that bound.
        for f in ("password", "dsn", "env", ".lease.json"):
            cbtest.wait_until(
                lambda: cbtest.errno_of(os.stat, b.path("db", f)) ==
                errno.ENOENT, 1.5, what="stat of %s to say ENOENT" % f)
        self.assertEqual(cbtest.errno_of(os.readlink,
                                         b.path("db", "..data")),
                         errno.ENOENT)
        st = b.secret_status("db")
        self.assertNotEqual(st["state"], "active", st)
        self.assertGreater(st["failures"], 0, st)
        self.assertTrue(st["last_error"], st)
        self.assertTrue(b.alive())
        rc, out, err = b.cli("ready")
        self.assertEqual(rc, 1)

        # Back: a new credential, same broker.
        time.sleep(max(0.0, t_halt + 8 - time.time()))
        self.pg.start()
        t_back = time.time()
        st = b.wait_active("db", timeout=45)
        cbtest.log("new credential %.1fs after PostgreSQL came back" % (
            time.time() - t_back))
        new = b.read_secret("db")
        self.assertNotEqual(new["username"].strip(), user)
        self.assertTrue(cbtest.try_login(new["dsn"].strip())[0])
        self.assertEqual(b.secret_status("db")["failures"], 0)
        ok, res = cbtest.try_login(before["dsn"].strip())
        self.assertFalse(ok, "the expired credential still logs in")
        # The expired role is cleaned up once PostgreSQL is reachable.
        wait_until(lambda: not self.role_exists(user), 40, 0.2,
                   "expired role %s dropped after the outage" % user)
        self.assertEqual(b.stop(), 0)
        self.assertEqual(self.cb_roles(), {})


if __name__ == "__main__":
    cbtest.main()
