#!/usr/bin/env python3
"""Issue 2, tests item 7: bad config, missing DSN file, unreachable
database, mountpoint that is not a directory: exit 2 with a message naming
the cause.  And a stale mount left by a crashed broker is recovered with a
clear message."""

import errno
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import BROKER, wait_until  # noqa: E402

EXIT_CONFIG = 2


def unmounters_of(ppid):
    """The cb-unmount children of ppid (none when not run as root)."""
    pids = []
    for d in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/status" % d) as f:
                st = dict(line.rstrip("\n").split(":\t", 1) for line in f
                          if ":\t" in line)
        except OSError:
            continue
        if st.get("Name") == "cb-unmount" and st.get("PPid") == str(ppid):
            pids.append(int(d))
    return pids


class StartupErrorsTest(cbtest.BrokerTestCase):

    def check_config(self, cfg):
        path = self.write_config(cfg, "check.json")
        p = subprocess.run([BROKER, "check-config", path],
                           capture_output=True, text=True, timeout=30)
        return p.returncode, p.stdout + p.stderr

    def assert_exit2(self, cfg, needles, what, timeout=30):
        self._n = getattr(self, "_n", 0) + 1
        rc, text = self.run_broker_to_exit(cfg, timeout=timeout,
                                           name="broker%d" % self._n)
        self.assertEqual(rc, EXIT_CONFIG, "%s: exit %d, want 2:\n%s" % (
            what, rc, text))
        for n in needles:
            self.assertIn(n, text, "%s: message does not name %r:\n%s" % (
                what, n, text))
        self.assertFalse(cbtest.mounted(self.mountpoint),
                         "%s: mount left behind" % what)
        self.assertEqual(self.cb_roles(), {}, "%s: roles created" % what)
        return text

    def test_bad_config(self):
        cases = []
        cfg = self.config()
        cfg["secrets"][0]["colour"] = "red"
        cases.append(("unknown key in a secret", cfg, ["secrets[0].colour"]))
        cfg = self.config(secrets=[self.secret("a"), self.secret("b")])
        cfg["secrets"][1]["ttl"] = "soon"
        cases.append(("bad duration", cfg, ["secrets[1].ttl"]))
        cfg = self.config()
        cfg["secrets"][0]["ttl"] = "500ms"
        cases.append(("ttl below 1s", cfg, ["secrets[0].ttl"]))
        cfg = self.config()
        cfg["secrets"][0]["ttl"] = 30
        cases.append(("ttl of the wrong type", cfg, ["secrets[0].ttl"]))
        cfg = self.config()
        cfg["secrets"][0]["ttl"] = "2h"
        cases.append(("ttl above max_ttl", cfg, ["secrets[0]"]))
        cfg = self.config()
        cfg["bogus"] = True
        cases.append(("unknown top-level key", cfg, ["bogus"]))
        cfg = self.config()
        cfg["mount"]["readers"] = ["root"]
        cases.append(("readers not uids", cfg, ["mount.readers"]))
        cfg = self.config()
        cfg["secrets"][0]["backend"] = "nosuch"
        cases.append(("unknown backend", cfg, ["secrets[0].backend"]))
        cfg = self.config()
        cfg["secrets"][0]["mode"] = "0999"
        cases.append(("bad mode", cfg, ["secrets[0].mode"]))
        cfg = self.config()
        cfg["backends"]["pg"]["statement_timeout"] = "forever"
        cases.append(("bad backend duration", cfg,
                      ["backends.pg.statement_timeout"]))
        cfg = self.config()
        cfg["secrets"][0]["postgres"]["colour"] = 1
        cases.append(("unknown key in the backend section", cfg,
                      ["secrets[0].postgres.colour"]))
        for what, cfg, needles in cases:
            with self.subTest(what):
                rc, text = self.check_config(cfg)
                self.assertEqual(rc, EXIT_CONFIG, "check-config %s: %d %s"
                                 % (what, rc, text))
                for n in needles:
                    self.assertIn(n, text, "check-config %s" % what)
                self.assert_exit2(cfg, needles, what)
        # Not JSON at all.
        path = os.path.join(self.tmp, "broken.json")
        with open(path, "w") as f:
            f.write('{"mount": ')
        p = subprocess.run([BROKER, "check-config", path],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, EXIT_CONFIG, p.stderr)
        self.assertIn("broken.json", p.stderr)
        # Missing config file.
        p = subprocess.run(cbtest.daemon_argv(
            [BROKER, "run", "--config", os.path.join(self.tmp, "nope.json")],
            "StartupErrorsTest.missing_config"),
                           capture_output=True, text=True,
                           timeout=cbtest.scaled(30))
        self.assertEqual(p.returncode, EXIT_CONFIG, p.stderr)
        self.assertIn("nope.json", p.stderr)

    def test_missing_dsn_file(self):
        cfg = self.config()
        missing = os.path.join(self.tmp, "no-such.dsn")
        cfg["backends"]["pg"]["admin_dsn_file"] = missing
        self.assert_exit2(cfg, [missing], "missing DSN file")

    def test_unreachable_database(self):
        dsn = os.path.join(self.tmp, "unreachable.dsn")
        nowhere = os.path.join(self.tmp, "no-socket-dir")
        cbtest.write_secret_file(dsn, "host=%s port=%d user=cbadmin "
                                 "dbname=cbtest\n" % (nowhere, self.pg.port))
        cfg = self.config()
        cfg["backends"]["pg"]["admin_dsn_file"] = dsn
        t0 = time.monotonic()
        text = self.assert_exit2(cfg, ["backends.pg"], "unreachable db")
        self.assertLess(time.monotonic() - t0, 20, "took too long")
        self.assertTrue(nowhere in text or "connect" in text.lower(),
                        "message does not say why:\n%s" % text)

    def test_mountpoint_not_a_directory(self):
        f = os.path.join(self.tmp, "a-file")
        with open(f, "w") as fh:
            fh.write("x")
        cfg = self.config()
        cfg["mount"]["path"] = f
        self.assert_exit2(cfg, [f, "not a directory"], "file mountpoint")
        cfg = self.config()
        cfg["mount"]["path"] = os.path.join(self.tmp, "absent")
        self.assert_exit2(cfg, ["absent"], "missing mountpoint")

    def test_stale_mount_recovered(self):
        cfg = self.config(secrets=[self.secret("db")])
        self.addCleanup(self.drop_cb_roles)
        b1 = self.start_broker(cfg, "first")
        b1.wait_active("db")
        user1 = b1.read_secret("db")["username"].strip()
        # A crash that also takes the unmounter (it would detach the
        # mount of a broker killed alone): SIGKILL to both.
        for pid in unmounters_of(b1.pid):
            os.kill(pid, signal.SIGKILL)
        b1.kill()
        self.assertTrue(cbtest.mounted(self.mountpoint),
                        "no stale mount to test with")
        self.assertEqual(cbtest.errno_of(os.stat, self.mountpoint),
                         errno.ENOTCONN)
        b2 = self.start_broker(cfg, "second")
        b2.wait_active("db")
        files = b2.read_secret("db")
        self.assertNotEqual(files["username"].strip(), user1)
        self.assertTrue(cbtest.try_login(files["dsn"].strip())[0])
        text = b2.log_text()
        self.assertIn("stale", text, "no message about the stale mount:\n%s"
                      % text)
        self.assertIn(self.mountpoint, [l for l in text.splitlines()
                                        if "stale" in l][0])
        # Exactly one mount at the mountpoint.
        with open("/proc/mounts") as fh:
            n = sum(1 for line in fh
                    if line.split()[1] == os.path.realpath(self.mountpoint))
        self.assertEqual(n, 1, "mounts stacked at the mountpoint")
        self.assertEqual(b2.stop(), 0)
        self.assertFalse(cbtest.mounted(self.mountpoint))
        # The crashed broker's role is not this broker's to revoke; the
        # test drops it.
        left = self.cb_roles()
        self.assertNotIn(files["username"].strip(), left)
        self.drop_cb_roles()

    def test_sigkill_leaves_nothing_blocking_socket(self):
        """A stale control socket file from a crash does not stop the next
        broker either."""
        cfg = self.config(secrets=[self.secret("db")])
        self.addCleanup(self.drop_cb_roles)
        b1 = self.start_broker(cfg, "first")
        b1.wait_active("db")
        b1.read_secret("db")
        os.kill(b1.pid, signal.SIGKILL)
        b1.proc.wait(timeout=30)
        self.assertTrue(os.path.exists(b1.socket))
        b2 = self.start_broker(cfg, "second")
        b2.wait_active("db")
        b2.read_secret("db")
        rc, out, err = b2.cli("status")
        self.assertEqual(rc, 0)
        self.assertEqual(b2.stop(), 0)
        self.drop_cb_roles()
        wait_until(lambda: not cbtest.mounted(self.mountpoint), 5, 0.1,
                   "mount gone")


if __name__ == "__main__":
    cbtest.main()
