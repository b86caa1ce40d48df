#!/usr/bin/env python3
"""Issue 6: the broker's process hardening, read back from /proc.

Exec hooks are started by cb-spawner, forked before any secret existed,
with no capability and no_new_privs.  A broker that mounts its filesystem
itself as root keeps no capability
once the mount is up: the unmount at exit belongs to a helper forked before
any secret existed (cb-unmount), which holds CAP_SYS_ADMIN and nothing
else, one socket and no other descriptor, and detaches the mount when the
broker exits or is killed.  The broker runs under its seccomp allowlist on every thread (a call off the
list kills it: test_seccomp shows that), has no_new_privs, core size 0, umask
077, every descriptor close-on-exec, its secret pages excluded from core
dumps and locked, and no secret (issued, or the admin DSN's password) in its
environment or command line, or those of its children."""

import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import wait_until  # noqa: E402

CAP_SYS_ADMIN = 21
O_CLOEXEC = 0o2000000


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def children_named(ppid, name):
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            st = proc_status(int(d))
        except OSError:
            continue
        if st.get("Name") == name and st.get("PPid") == str(ppid):
            pids.append(int(d))
    return pids


class HardeningTest(cbtest.BrokerTestCase):

    @classmethod
    def setUpClass(cls):
        """The admin DSN carries a password, so that the checks below look
        for it too.  The superuser's socket login is "trust": PostgreSQL
        never asks for it, but the broker reads, parses and hands it to
        libpq like any admin password."""
        super().setUpClass()
        cls.admin_password = "adm-" + os.urandom(12).hex()
        cbtest.record_password(cls.admin_password)
        cbtest.write_secret_file(cls.dsn_file, "%s password=%s\n" % (
            cls.pg.dsn(dbname=cbtest.DBNAME), cls.admin_password))
        cbtest.note_secret_input(cls.dsn_file, cls.admin_password)

    def start(self, **extra):
        b = self.start_broker(self.config(**extra))
        b.wait_active("db")
        b.read_secret("db")
        return b

    def assert_seccomp(self, b, on):
        """Seccomp 2 (filter) on every thread of b when on, else 0 and the
        loud warning in its log."""
        want = "2" if on else "0"
        self.assertEqual(proc_status(b.pid)["Seccomp"], want)
        for tid in os.listdir("/proc/%d/task" % b.pid):
            with open("/proc/%d/task/%s/status" % (b.pid, tid)) as f:
                self.assertIn("Seccomp:\t%s\n" % want, f.read(),
                              "thread " + tid)
        self.assertEqual("event=seccomp_disabled" in b.log_text(), not on)
        self.assertIn("seccomp=%s" % ("kill" if on else "off"),
                      b.log_text())

    def unmounter_of(self, b):
        pids = children_named(b.pid, "cb-unmount")
        self.assertEqual(len(pids), 1, "one cb-unmount child of the broker")
        return pids[0]

    def test_no_capability_after_the_mount(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: the broker mounts itself")
        b = self.start()
        st = proc_status(b.pid)
        for k in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"):
            self.assertEqual(st[k], "0000000000000000", k)
        self.assertEqual(st["NoNewPrivs"], "1")
        self.assertIn("event=privileges_dropped capabilities=none",
                      b.log_text())
        # The seccomp allowlist, on every thread (off under valgrind,
        # which cannot pass seccomp(2) through: cbtest sets the key).
        self.assert_seccomp(b, b.cfg.get("seccomp", True))
        # The unmounter: CAP_SYS_ADMIN only, no_new_privs, one socket.
        u = self.unmounter_of(b)
        ust = proc_status(u)
        self.assertEqual(int(ust["CapEff"], 16), 1 << CAP_SYS_ADMIN)
        self.assertEqual(int(ust["CapPrm"], 16), 1 << CAP_SYS_ADMIN)
        self.assertEqual(int(ust["CapBnd"], 16), 1 << CAP_SYS_ADMIN)
        self.assertEqual(ust["NoNewPrivs"], "1")
        fds = sorted(int(f) for f in os.listdir("/proc/%d/fd" % u)
                     if not cbtest.wrapper_fd(u, f))
        self.assertEqual(fds, [0, 1, 2, 3])
        self.assertTrue(os.readlink("/proc/%d/fd/3" % u).startswith(
            "socket:"))
        # The hook spawner: no capability at all, no_new_privs, stdio and
        # its socket only.
        sp = children_named(b.pid, "cb-spawner")
        self.assertEqual(len(sp), 1, "one cb-spawner child of the broker")
        sst = proc_status(sp[0])
        for k in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
            self.assertEqual(sst[k], "0000000000000000", "spawner " + k)
        self.assertEqual(sst["NoNewPrivs"], "1")
        kinds = {}
        for f in os.listdir("/proc/%d/fd" % sp[0]):
            if int(f) >= 3 and not cbtest.wrapper_fd(sp[0], f):
                kinds[int(f)] = os.readlink("/proc/%d/fd/%s" % (sp[0], f))
        self.assertEqual([t for t in kinds.values() if not t.startswith(
            ("socket:", "anon_inode:", "pipe:"))], [], kinds)
        self.assertEqual(sum(t.startswith("socket:")
                             for t in kinds.values()), 1, kinds)
        # A clean stop: the mount is gone by the time the broker exits,
        # and so is the unmounter.
        self.assertTrue(cbtest.mounted(self.mountpoint))
        self.assertEqual(b.stop(), 0)
        self.assertFalse(cbtest.mounted(self.mountpoint))
        self.assertFalse(os.path.exists("/proc/%d" % u))

    def test_seccomp_false_keeps_the_rest(self):
        """"seccomp": false (for valgrind runs) switches the allowlist off,
        says so loudly, and nothing else: no capability, no_new_privs,
        core size 0."""
        if os.geteuid() != 0:
            self.skipTest("needs root: the broker mounts itself")
        b = self.start(seccomp=False)
        self.assert_seccomp(b, False)
        st = proc_status(b.pid)
        for k in ("CapEff", "CapPrm", "CapInh", "CapAmb", "CapBnd"):
            self.assertEqual(st[k], "0000000000000000", k)
        self.assertEqual(st["NoNewPrivs"], "1")
        with open("/proc/%d/limits" % b.pid) as f:
            core = [ln.split() for ln in f if ln.startswith("Max core")]
        self.assertEqual(core[0][4:6], ["0", "0"], core)
        self.assertIn("level=warn prog=credbroker event=seccomp_disabled",
                      b.log_text())
        self.assertEqual(b.stop(), 0)

    def test_killed_broker_leaves_no_mount(self):
        if os.geteuid() != 0:
            self.skipTest("needs root: the broker mounts itself")
        b = self.start()
        u = self.unmounter_of(b)
        os.kill(b.pid, signal.SIGKILL)
        b.proc.wait(10)
        wait_until(lambda: not cbtest.mounted(self.mountpoint), 10,
                   what="the mount detached after SIGKILL")
        wait_until(lambda: not os.path.exists("/proc/%d/status" % u)
                   or proc_status(u).get("State", "").startswith("Z"), 10,
                   what="the unmounter to exit")

    def test_process_limits_and_descriptors(self):
        b = self.start()
        st = proc_status(b.pid)
        self.assertEqual(st["Umask"], "0077")
        with open("/proc/%d/limits" % b.pid) as f:
            core = [ln for ln in f if ln.startswith("Max core file size")]
        self.assertEqual(core[0].split()[4:6], ["0", "0"], core)
        # Every descriptor but stdio is close-on-exec.
        leaky = []
        for fd in os.listdir("/proc/%d/fd" % b.pid):
            if int(fd) < 3 or cbtest.wrapper_fd(b.pid, fd):
                continue
            try:
                with open("/proc/%d/fdinfo/%s" % (b.pid, fd)) as f:
                    flags = [ln for ln in f if ln.startswith("flags:")]
                target = os.readlink("/proc/%d/fd/%s" % (b.pid, fd))
            except OSError:
                continue   # closed meanwhile
            if not int(flags[0].split()[1], 8) & O_CLOEXEC:
                leaky.append((fd, target))
        self.assertEqual(leaky, [], "descriptors without O_CLOEXEC")

    def test_secret_memory_not_dumped_and_locked(self):
        """The issued password is found in the broker's memory only in
        mappings marked do-not-dump (and locked): no stray copy in the heap
        or a stack, which a core dump or swap could carry away."""
        if sanitizer_build():
            self.skipTest("ASan keeps its own stacks and quarantine outside "
                          "our mappings; the plain build is the proof")
        if cbtest.WRAPPER:
            self.skipTest("the wrapper (valgrind) copies the client's "
                          "bytes into mappings of its own; the plain build "
                          "is the proof")
        b = self.start()
        pw = b.read_secret("db")["password"].strip().encode()
        self.assertTrue(pw)
        hits, unprotected = 0, []
        for start, end, perms, flags, name, rss in smaps(b.pid):
            # Unpopulated reservations (ASan's shadow, thread stack guard
            # areas) hold no bytes at all.
            # Past 1 GiB: a sanitizer's shadow or allocator reservation,
            # terabytes of address space with a few pages in it.  The
            # plain build, where the heap is small, is the proof.
            if "r" not in perms or rss == 0 or end - start > (1 << 30) or \
                    name in ("[vvar]", "[vsyscall]"):
                continue
            if not mem_contains(b.pid, start, end, pw):
                continue
            hits += 1
            if "dd" not in flags or "lo" not in flags:
                unprotected.append((hex(start), name, flags))
        self.assertGreater(hits, 0, "the password is nowhere: bad test")
        self.assertEqual(unprotected, [],
                         "the password in memory that may be dumped or "
                         "swapped")
        self.assertNotEqual(proc_status(b.pid)["VmLck"], "0 kB")

    def test_no_secret_in_environ_or_cmdline(self):
        """Neither the issued password nor the admin DSN's password is in
        /proc/PID/environ or /proc/PID/cmdline of the broker, its hook
        spawner or its unmounter (in every build: nothing here depends on
        the allocator)."""
        b = self.start()
        pw = b.read_secret("db")["password"].strip()
        n = self.assert_no_secret_in_proc(b, [pw, self.admin_password])
        self.assertGreaterEqual(n, 2)

    def test_valgrind_log_scan_can_fail(self):
        """cbtest's valgrind check (make memcheck) fails on a log with an
        error or a definite leak, passes a clean one and one cut short by
        SIGKILL, and reads only the logs of the class it is given."""
        d = os.path.join(self.tmp, "vg")
        os.mkdir(d)
        head = "==7== Memcheck, a memory error detector\n"
        logs = {
            "Planted.t.broker.1.log": head + "==1== Invalid read of size 8"
            "\n==1== ERROR SUMMARY: 1 errors from 1 contexts\n",
            "Planted.t.broker.2.log": head + "==2==    definitely lost: "
            "16 bytes in 1 blocks\n==2== ERROR SUMMARY: 1 errors from 1 "
            "contexts (suppressed: 3 from 1)\n",
            "Planted.t.broker.3.log": head + "==3==    definitely lost: 0 "
            "bytes in 0 blocks\n==3== ERROR SUMMARY: 0 errors from 0 "
            "contexts (suppressed: 1 from 1)\n",
            "Planted.t.broker.4.log": head,   # SIGKILLed: no summary
            "Other.t.broker.5.log": head + "==5== ERROR SUMMARY: 9 errors "
            "from 9 contexts\n",
        }
        for name, text in logs.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        bad = cbtest.scan_valgrind_logs("Planted.", d)
        self.assertEqual([(os.path.basename(p), r) for p, r, _ in bad],
                         [("Planted.t.broker.1.log", "1 errors"),
                          ("Planted.t.broker.2.log", "1 errors, 16 bytes "
                           "definitely lost")])
        self.assertIn("Invalid read", bad[0][2])

    def test_leak_checks_can_fail(self):
        """The checks above and in cbtest's clean-up find what they look
        for: a secret in a file deep in a tree, in a child's environment
        and command line; a listed file that is missing is a hit, not a
        skip; a FIFO, a socket, a symlink and a pruned directory (where a
        mount would be) are not read."""
        import socket
        import subprocess
        planted = "planted-" + os.urandom(8).hex()   # never recorded
        root = os.path.join(self.tmp, "scan")
        os.makedirs(os.path.join(root, "a", "b"))
        os.makedirs(os.path.join(root, "mnt"))
        with open(os.path.join(root, "a", "b", "audit.log"), "w") as f:
            f.write("line\n{\"x\": \"%s\"}\n" % planted)
        with open(os.path.join(root, "mnt", "password"), "w") as f:
            f.write(planted)
        os.mkfifo(os.path.join(root, "fifo"))
        sock = socket.socket(socket.AF_UNIX)
        self.addCleanup(sock.close)
        sock.bind(os.path.join(root, "control.sock"))
        os.symlink(os.path.join(root, "a", "b", "audit.log"),
                   os.path.join(root, "link"))
        hits, files = cbtest.scan_tree(root, [planted],
                                       prune=[os.path.join(root, "mnt")])
        self.assertEqual(hits, [(os.path.join(root, "a", "b", "audit.log"),
                                 "plan...")])
        self.assertEqual(files, 1)
        missing = os.path.join(root, "gone.log")
        self.assertEqual(cbtest.find_leaks([missing], [planted]),
                         [(missing, "(cannot read: ENOENT)")])
        # An input file may hold its own secret, not another.
        token = os.path.join(root, "sa-token")
        with open(token, "w") as f:
            f.write(planted + "\n")
        cbtest.note_secret_input(token)
        self.assertEqual(cbtest.find_leaks([token], [planted]), [])
        self.assertEqual(len(cbtest.find_leaks([token], [planted[:12]])), 1)
        # A child's environment and command line.
        child = subprocess.Popen(["sh", "-c", "sleep 30; :", planted],
                                 env={"PATH": "/usr/bin:/bin",
                                      "X": planted})
        self.addCleanup(child.wait)
        self.addCleanup(child.kill)
        wait_until(lambda: cbtest.proc_secret_hits(child.pid,
                                                   ["sleep 30; :"]),
                   10, what="the child's exec")
        hits = cbtest.proc_secret_hits(os.getpid(), [planted])
        self.assertIn(("/proc/%d/environ" % child.pid, "plan..."), hits)
        self.assertIn(("/proc/%d/cmdline" % child.pid, "plan..."), hits)
        shutil.rmtree(root)


def sanitizer_build():
    with open(cbtest.BROKER, "rb") as f:
        return b"__asan_init" in f.read()


def smaps(pid):
    """(start, end, perms, VmFlags, name, Rss kB) of every mapping."""
    out, cur = [], None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                lo, hi = head[0].split("-")
                cur = [int(lo, 16), int(hi, 16), head[1], [],
                       head[5] if len(head) > 5 else "", 0]
                out.append(cur)
            elif head[0] == "Rss:" and cur is not None:
                cur[5] = int(head[1])
            elif head[0] == "VmFlags:" and cur is not None:
                cur[3] = head[1:]
    return [tuple(m) for m in out]


def mem_contains(pid, start, end, needle, chunk=16 << 20):
    """True when needle is in pid's memory [start, end), read in chunks
    that overlap by len(needle)."""
    try:
        with open("/proc/%d/mem" % pid, "rb", buffering=0) as f:
            pos = start
            while pos < end:
                f.seek(pos)
                data = f.read(min(chunk + len(needle), end - pos))
                if needle in data:
                    return True
                pos += chunk
    except (OSError, OverflowError, ValueError):
        pass
    return False


if __name__ == "__main__":
    cbtest.main()
