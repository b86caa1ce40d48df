#!/usr/bin/env python3
"""Issue 2, tests item 3: renewal moves VALID UNTIL without changing the
role; at max_ttl a new role appears and the old one is dropped at its
expiry; readers running during at least 20 rotations always see whole
versions (env and dsn reads, and username/password through ..data)."""

import errno
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import wait_until  # noqa: E402

MIN_ROTATIONS = 20
STRESS_SECONDS = 55          # hard cap on the reader phase
READERS = 3


class RotationTest(cbtest.BrokerTestCase):

    def test_renew_then_rotate(self):
        # ttl 4s, max 11s: renew at ~2.7s (to ~6.7s), maybe again at ~5.3s
        # (to ~9.3s), then past the point where a whole ttl fits: rotate.
        cfg = self.config(secrets=[self.secret("db", ttl="4s",
                                               max_ttl="11s")])
        b = self.start_broker(cfg)
        b.wait_active("db")
        first = b.read_secret("db")
        user1 = first["username"].strip()
        lease1 = json.loads(first[".lease.json"])
        vu1 = self.role_valid_until(user1)
        self.assertIsNotNone(vu1)
        self.assertTrue(lease1["renewable"])

        # Renewal: same role, later VALID UNTIL, later lease expiry.
        def renewed():
            vu = self.role_valid_until(user1)
            return vu if vu is not None and vu > vu1 + 0.5 else None
        vu2 = wait_until(renewed, 8, 0.1, "rolvaliduntil of %s to move"
                         % user1)
        cur = b.read_secret("db")
        self.assertEqual(cur["username"].strip(), user1,
                         "renewal changed the username")
        self.assertEqual(cur["password"], first["password"],
                         "renewal changed the password")
        lease2 = json.loads(cur[".lease.json"])
        self.assertGreater(lease2["version"], lease1["version"],
                           "renewal did not publish a new version")
        self.assertGreater(cbtest.iso_to_epoch(lease2["expires"]),
                           cbtest.iso_to_epoch(lease1["expires"]))
        self.assertLessEqual(abs(cbtest.iso_to_epoch(lease2["expires"])
                                 - vu2), 1.5)
        self.assertEqual(lease2["max_expires"], lease1["max_expires"])
        st = b.secret_status("db")
        self.assertGreaterEqual(st["renewals"], 1)
        self.assertTrue(cbtest.try_login(cur["dsn"].strip())[0])

        # Rotation: a new role appears before max_ttl; the old one stays
        # usable, then is dropped once it expires.
        def rotated():
            f = b.read_secret("db")
            return f if f["username"].strip() != user1 else None
        new = wait_until(rotated, 15, 0.05, "a new role (rotation)")
        t_rot = time.time()
        user2 = new["username"].strip()
        self.assertNotEqual(new["password"], first["password"])
        self.assertTrue(self.role_exists(user2))
        self.assertTrue(cbtest.try_login(new["dsn"].strip())[0])
        max1 = cbtest.iso_to_epoch(lease1["max_expires"])
        self.assertLessEqual(t_rot, max1 + 0.5,
                             "rotated only after max_ttl")
        old_exp = self.role_valid_until(user1)
        if old_exp is not None and old_exp - time.time() > 0.7:
            ok, res = cbtest.try_login(first["dsn"].strip())
            self.assertTrue(ok, "old role refused %.1fs before its expiry: "
                            "%s" % (old_exp - time.time(), res))
        # Dropped at its expiry: not (much) before, and soon after.
        def old_gone():
            return not self.role_exists(user1)
        wait_until(old_gone, 15, 0.1, "old role %s dropped" % user1)
        t_gone = time.time()
        if old_exp is not None:
            self.assertGreaterEqual(t_gone, old_exp - 1.0,
                                    "old role dropped %.1fs before its "
                                    "expiry" % (old_exp - t_gone))
            self.assertLessEqual(t_gone, old_exp + 5.0,
                                 "old role dropped %.1fs after its expiry"
                                 % (t_gone - old_exp))
        self.assertEqual(b.stop(), 0)

    @cbtest.realtime("ttl 1s")
    def test_short_ttl_lives_its_ttl(self):
        """ttl 1s is allowed: each credential must then live about 1s, be
        replaced at ~2/3 of it, and the files must never go missing."""
        cfg = self.config(secrets=[self.secret("db", ttl="1s",
                                               max_ttl="1s")])
        b = self.start_broker(cfg)
        b.wait_active("db")
        rot0 = b.secret_status("db")["rotations"]
        seen = {}
        enoent = 0
        end = time.monotonic() + 4
        while time.monotonic() < end:
            try:
                lease = b.lease("db")
                seen[lease["lease_id"]] = (
                    cbtest.iso_to_epoch(lease["expires"]) -
                    cbtest.iso_to_epoch(lease["issued"]))
            except OSError as e:
                self.assertEqual(e.errno, errno.ENOENT)
                enoent += 1
            time.sleep(0.02)
        rotations = b.secret_status("db")["rotations"] - rot0
        short = {k: round(v, 3) for k, v in seen.items() if v < 0.9}
        cbtest.log("ttl 1s: %d rotations in 4s, %d leases seen, %d ENOENT "
                   "reads, lifetimes < 0.9s: %r" % (rotations, len(seen),
                                                    enoent, short))
        self.assertEqual(short, {}, "leases shorter than their 1s ttl "
                         "(expires - issued)")
        self.assertLessEqual(rotations, 10, "rotation storm: %d rotations "
                             "in 4s with ttl 1s" % rotations)
        self.assertEqual(enoent, 0, "the credential went missing between "
                         "rotations")
        self.assertEqual(b.stop(), 0)

    @cbtest.realtime("ttl 2s, readers racing rotations")
    def test_readers_across_rotations(self):
        # ttl == max_ttl: every refresh is a rotation, every ~1.3 s.
        cfg = self.config(secrets=[self.secret("db", ttl="2s",
                                               max_ttl="2s")])
        b = self.start_broker(cfg)
        b.wait_active("db")
        rot0 = b.secret_status("db")["rotations"]
        base = b.path("db")
        lock = threading.Lock()
        pw_of = {}            # username -> password (every source)
        torn = []             # descriptions of inconsistent reads
        counts = {"env": 0, "dsn": 0, "data": 0, "enoent": 0,
                  "login_ok": 0, "login_expired": 0}
        logged_in = set()
        stop = threading.Event()
        errors = []

        def note(user, pw, source):
            cbtest.record_password(pw)
            with lock:
                old = pw_of.setdefault(user, pw)
                if old != pw:
                    torn.append("%s: user %s has two passwords" % (source,
                                                                   user))
                first = user not in logged_in
                logged_in.add(user)
            return first

        def check_login(conninfo, user):
            ok, res = cbtest.try_login(conninfo)
            if ok:
                if res[0][0] != user:
                    with lock:
                        torn.append("logged in as %s, expected %s" % (
                            res[0][0], user))
                with lock:
                    counts["login_ok"] += 1
                return
            # Refused: only fine when the role is gone or expired by now.
            vu = self.role_valid_until(user)
            exists = self.role_exists(user)
            if exists and vu is not None and vu > time.time() + 1.0:
                with lock:
                    torn.append("login as %s refused while the role is "
                                "valid for %.1fs more: %s" % (
                                    user, vu - time.time(), res))
            else:
                with lock:
                    counts["login_expired"] += 1

        def env_reader(idx):
            i = 0
            while not stop.is_set():
                i += 1
                which = "env" if (i + idx) % 2 else "dsn"
                try:
                    text = cbtest.read_file(os.path.join(base, which))
                except OSError as e:
                    if e.errno == errno.ENOENT:
                        with lock:
                            counts["enoent"] += 1
                        continue
                    errors.append("%s read: %r" % (which, e))
                    return
                try:
                    if which == "env":
                        env = cbtest.parse_env(text)
                        user, pw = env["PGUSER"], env["PGPASSWORD"]
                        conninfo = cbtest.conninfo_for(self.pg, user, pw)
                    else:
                        d = cbtest.parse_dsn(text)
                        user, pw = d["user"], d["password"]
                        conninfo = text.strip()
                except (ValueError, KeyError) as e:
                    with lock:
                        torn.append("%s does not parse: %r" % (which, e))
                    continue
                with lock:
                    counts[which] += 1
                first = note(user, pw, which)
                # Log in with the first sighting of each role and every
                # 25th read, so logins are real but do not swamp the
                # server.
                if first or i % 25 == 0:
                    check_login(conninfo, user)

        def data_reader():
            while not stop.is_set():
                try:
                    target = os.readlink(os.path.join(base, "..data"))
                    d = os.path.join(base, target)
                    user = cbtest.read_file(os.path.join(d, "username"))
                    pw = cbtest.read_file(os.path.join(d, "password"))
                    lease = json.loads(cbtest.read_file(
                        os.path.join(d, ".lease.json")))
                except OSError as e:
                    if e.errno == errno.ENOENT:      # the version expired meanwhile
                        with lock:
                            counts["enoent"] += 1
                        continue
                    errors.append("..data read: %r" % e)
                    return
                user, pw = user.strip(), pw.strip()
                if lease["lease_id"] != user or \
                        "..v%d" % lease["version"] != target:
                    with lock:
                        torn.append("%s: lease %s v%s vs username %s" % (
                            target, lease["lease_id"], lease["version"],
                            user))
                with lock:
                    counts["data"] += 1
                note(user, pw, "..data")

        threads = [threading.Thread(target=env_reader, args=(i,),
                                    daemon=True) for i in range(READERS)]
        threads.append(threading.Thread(target=data_reader, daemon=True))
        t0 = time.monotonic()
        for t in threads:
            t.start()
        try:
            end = t0 + STRESS_SECONDS
            while time.monotonic() < end:
                if not b.alive():
                    break
                if errors:
                    break
                if b.secret_status("db")["rotations"] - rot0 >= \
                        MIN_ROTATIONS + 1:
                    break
                time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=30)
        elapsed = time.monotonic() - t0
        self.assertTrue(b.alive(), "broker died:\n%s" % b.log_tail())
        st = b.secret_status("db")
        rotations = st["rotations"] - rot0
        cbtest.log("readers: %.1fs, %d rotations, %d users seen, counts %r"
                   % (elapsed, rotations, len(pw_of), counts))
        self.assertEqual(errors, [], "reader errors")
        self.assertEqual(torn, [], "torn or inconsistent reads (%d)"
                         % len(torn))
        self.assertGreaterEqual(rotations, MIN_ROTATIONS,
                                "only %d rotations in %.0fs" % (rotations,
                                                                elapsed))
        self.assertGreaterEqual(len(pw_of), MIN_ROTATIONS,
                                "readers saw only %d roles" % len(pw_of))
        self.assertGreater(counts["env"], 100)
        self.assertGreater(counts["dsn"], 100)
        self.assertGreater(counts["data"], 50)
        self.assertGreaterEqual(counts["login_ok"], MIN_ROTATIONS)
        self.assertEqual(st["failures"], 0, st)

        # Retired roles are dropped: at most the current one and those
        # not yet expired remain.
        def few_roles():
            return len(self.cb_roles()) <= 3
        try:
            wait_until(few_roles, 10, 0.2, "retired roles dropped")
        except AssertionError as e:
            raise AssertionError("%s; left: %r" % (e, sorted(self.cb_roles())))
        self.assertEqual(b.stop(), 0)
        self.assertEqual(self.cb_roles(), {}, "roles left after SIGTERM")


if __name__ == "__main__":
    cbtest.main()
