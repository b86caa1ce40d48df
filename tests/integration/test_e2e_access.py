#!/usr/bin/env python3
"""Issue 2, tests item 5 (and the read-only mount): a uid not in the
readers list gets EACCES, a listed uid reads; every write-like operation
fails with EROFS or EPERM; the mount is gone after SIGTERM."""

import errno
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import NOBODY, as_uid, errno_of  # noqa: E402

WRITE_ERRNOS = (errno.EROFS, errno.EPERM, errno.EACCES)


class AccessTest(cbtest.BrokerTestCase):

    def setUp(self):
        super().setUp()
        # "db": root only.  "mine": owned by nobody with mode 0400, so the
        # kernel's mode bits would let nobody in: only the broker's readers
        # check stands in the way.  "shared": nobody is a reader.
        cfg = self.config(secrets=[
            self.secret("db", readers=[0]),
            self.secret("mine", readers=[0], uid=NOBODY, gid=NOBODY),
            self.secret("shared", readers=[0, NOBODY], uid=NOBODY,
                        gid=NOBODY),
        ])
        self.b = self.start_broker(cfg)
        for n in ("db", "mine", "shared"):
            self.b.wait_active(n)

    def test_readers_list(self):
        b = self.b
        for name in ("db", "mine"):
            for f in ("password", "dsn", "env", "username", ".lease.json"):
                e, data = as_uid(NOBODY, "open", b.path(name, f))
                self.assertEqual(e, errno.EACCES,
                                 "uid %d open %s/%s: %s" % (
                                     NOBODY, name, f, cbtest.ename(e)))
                self.assertIsNone(data)
            # Through the version directory as well.
            target = os.readlink(b.path(name, "..data"))
            e, _ = as_uid(NOBODY, "open", b.path(name, target, "password"))
            self.assertEqual(e, errno.EACCES, "%s/%s/password: %s" % (
                name, target, cbtest.ename(e)))
        self.assertIn("open_denied", b.log_text(),
                      "denied open not logged")
        self.assertIn("uid=%d" % NOBODY, b.log_text())

        # A listed uid reads, and gets what root gets.
        root_view = b.read_secret("shared")
        e, data = as_uid(NOBODY, "read", b.path("shared", "password"))
        self.assertEqual(e, 0, "reader uid %d: %s" % (NOBODY,
                                                      cbtest.ename(e)))
        cbtest.record_password(data.strip())
        self.assertEqual(data, root_view["password"])
        e, data = as_uid(NOBODY, "read", b.path("shared", "dsn"))
        self.assertEqual(e, 0)
        self.assertTrue(cbtest.try_login(data.strip())[0])
        st = os.stat(b.path("shared", "password"))
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o7777),
                         (NOBODY, NOBODY, 0o400))
        # Root is a reader of all three.
        b.read_secret("db")
        b.read_secret("mine")

    def test_mount_level_readers(self):
        """Without per-secret readers, mount.readers applies."""
        self.b.cleanup()
        cfg = self.config(secrets=[self.secret("dflt", uid=NOBODY,
                                               gid=NOBODY)])
        cfg["mount"]["readers"] = [0, NOBODY]
        b = self.start_broker(cfg, "second")
        b.wait_active("dflt")
        root_view = b.read_secret("dflt")
        e, data = as_uid(NOBODY, "read", b.path("dflt", "password"))
        self.assertEqual(e, 0, cbtest.ename(e))
        self.assertEqual(data, root_view["password"])
        e, _ = as_uid(NOBODY + 1 if NOBODY < 65535 else 1000, "open",
                      b.path("dflt", "password"))
        self.assertEqual(e, errno.EACCES, cbtest.ename(e))
        self.assertEqual(b.stop(), 0)

    def test_read_only(self):
        b = self.b
        pw = b.path("db", "password")
        newf = b.path("db", "newfile")
        checks = [
            ("open O_WRONLY", lambda: os.close(os.open(pw, os.O_WRONLY))),
            ("open O_RDWR", lambda: os.close(os.open(pw, os.O_RDWR))),
            ("open O_TRUNC", lambda: os.close(os.open(
                pw, os.O_RDONLY | os.O_TRUNC))),
            ("open O_APPEND", lambda: os.close(os.open(
                pw, os.O_WRONLY | os.O_APPEND))),
            ("creat", lambda: os.close(os.open(newf, os.O_WRONLY |
                                               os.O_CREAT, 0o600))),
            ("creat top", lambda: os.close(os.open(
                b.path("x"), os.O_WRONLY | os.O_CREAT, 0o600))),
            ("mkdir", lambda: os.mkdir(b.path("db", "d"))),
            ("mkdir top", lambda: os.mkdir(b.path("newsecret"))),
            ("unlink", lambda: os.unlink(pw)),
            ("rmdir", lambda: os.rmdir(b.path("db"))),
            ("rename", lambda: os.rename(pw, b.path("db", "pw2"))),
            ("rename dir", lambda: os.rename(b.path("db"), b.path("db2"))),
            ("chmod", lambda: os.chmod(pw, 0o444)),
            ("chown", lambda: os.chown(pw, NOBODY, NOBODY)),
            ("truncate", lambda: os.truncate(pw, 0)),
            ("utime", lambda: os.utime(pw, (0, 0))),
            ("symlink", lambda: os.symlink("password", newf)),
            ("link", lambda: os.link(pw, newf)),
            ("setxattr", lambda: os.setxattr(pw, "user.x", b"1")),
            ("removexattr", lambda: os.removexattr(pw, "user.x")),
            ("replace ..data", lambda: os.symlink("..v1",
                                                  b.path("db", "..data"))),
            ("unlink ..data", lambda: os.unlink(b.path("db", "..data"))),
        ]
        for what, fn in checks:
            e = errno_of(fn)
            self.assertIn(e, WRITE_ERRNOS + (errno.EEXIST,)
                          if "..data" in what or what == "link" else
                          WRITE_ERRNOS,
                          "%s on the mount: %s" % (what, cbtest.ename(e)))
            self.assertNotEqual(e, 0, "%s succeeded on the mount" % what)
        self.assertFalse(os.path.exists(newf))
        # Unchanged after all that.
        files = b.read_secret("db")
        self.assertTrue(cbtest.try_login(files["dsn"].strip())[0])
        st = os.stat(pw)
        self.assertEqual(st.st_mode & 0o7777, 0o400)
        # statvfs says read-only
        self.assertTrue(os.statvfs(b.mount).f_flag & os.ST_RDONLY)

    def test_sigterm_unmounts(self):
        b = self.b
        self.assertTrue(cbtest.mounted(b.mount))
        fd = os.open(b.path("db", "password"), os.O_RDONLY)
        try:
            rc = b.stop()
        finally:
            errno_of(os.close, fd)
        self.assertEqual(rc, 0, "exit status %r\n%s" % (rc, b.log_tail()))
        self.assertFalse(cbtest.mounted(b.mount), "mount left after SIGTERM")
        self.assertEqual(os.listdir(b.mount), [])


if __name__ == "__main__":
    cbtest.main()
