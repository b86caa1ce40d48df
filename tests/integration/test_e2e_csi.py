#!/usr/bin/env python3
"""Issue 8: credbroker-csi against a real gRPC client no one here wrote
(@grpc/grpc-js + @grpc/proto-loader loading a CSI v1 subset proto), the way
kubelet calls it: every RPC, idempotent publish and unpublish, refusals,
UNIMPLEMENTED and a malformed message, on a real FUSE mount in a temporary
pods tree.  The service-account token passed in volume_context never
reaches the plugin's log.

End to end without Kubernetes: the test plays kubelet (NodePublishVolume),
the broker runs as uid 65534 with no capability and no_new_privs, receives
the descriptor and serves credentials from the real PostgreSQL into the
pod's mount; an app under a third uid reads and logs in; the broker killed
leaves readers ENOTCONN; NodeUnpublishVolume cleans up."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import NOBODY  # noqa: E402

NODE_DIR = os.path.join(cbtest.SOURCE_DIR, "tests", "node")
PLUGIN = os.path.join(cbtest.BUILD_DIR, "credbroker-csi")
POD = "7d8e9f00-1111-2222-3333-444455556666"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.sa-token-for-the-csi-test.c2ln"


def ensure_node_modules():
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
        subprocess.run(["npm", "ci", "--prefix", NODE_DIR, "--no-audit",
                        "--no-fund"], check=True, timeout=300,
                       stdout=subprocess.DEVNULL)


APP = 4242


class PluginMixin:
    """A pods tree and a running credbroker-csi, removed afterwards."""

    def start_plugin(self):
        ensure_node_modules()
        self.ptmp = tempfile.mkdtemp(prefix="cb-csi-e2e-")
        os.chmod(self.ptmp, 0o755)
        self.pods = os.path.join(self.ptmp, "pods")
        vol = os.path.join(self.pods, POD, "volumes")
        os.makedirs(os.path.join(vol, "kubernetes.io~csi", "secrets"))
        handoff = os.path.join(vol, "kubernetes.io~empty-dir", "handoff")
        os.makedirs(handoff)
        os.chmod(handoff, 0o777)
        self.handoff = handoff
        self.target = os.path.join(vol, "kubernetes.io~csi", "secrets",
                                   "mount")
        self.sock = os.path.join(self.ptmp, "csi.sock")
        self.log_path = os.path.join(self.ptmp, "plugin.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PLUGIN, "--endpoint", "unix://" + self.sock, "--node-id",
             "node-e2e", "--pods-dir", self.pods,
             "--handoff-timeout-seconds", "5"],
            stdout=self.log, stderr=self.log)
        self.addCleanup(self.stop_plugin)
        cbtest.wait_until(lambda: os.path.exists(self.sock), 10,
                          what="the plugin's socket")

    def kubelet(self, mode=None):
        argv = ["node", os.path.join(NODE_DIR, "csi_client.mjs"), self.sock,
                self.target, TOKEN] + ([mode] if mode else [])
        p = subprocess.run(argv, capture_output=True, text=True,
                           timeout=120)
        sys.stderr.write(p.stdout)
        return p

    def stop_plugin(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.log.close()
        if cbtest.mounted(self.target):
            cbtest.force_unmount(self.target)
        shutil.rmtree(self.ptmp, ignore_errors=True)


@unittest.skipUnless(os.geteuid() == 0 and os.access("/dev/fuse", os.W_OK),
                     "needs root and /dev/fuse")
class CsiTest(PluginMixin, unittest.TestCase):

    def setUp(self):
        self.start_plugin()

    def test_kubelet_calls(self):
        p = self.kubelet()
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn("FAIL", p.stdout)
        self.assertFalse(cbtest.mounted(self.target))
        # SIGTERM: a clean exit, the socket removed.
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=30), 0)
        self.assertFalse(os.path.exists(self.sock))
        with open(self.log_path, "rb") as f:
            log = f.read()
        self.assertNotIn(TOKEN.encode(), log)
        self.assertIn(b"event=published volume=csi-e2e-1", log)



def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f
                    if ":\t" in line)


@unittest.skipUnless(os.geteuid() == 0 and os.access("/dev/fuse", os.W_OK),
                     "needs root and /dev/fuse")
class CsiBrokerTest(PluginMixin, cbtest.BrokerTestCase):

    def test_unprivileged_broker_serves_the_csi_mount(self):
        self.start_plugin()
        p = self.kubelet("publish")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        # The broker sees its emptyDir at a short path of its own.
        short = tempfile.mkdtemp(prefix="cbh-")
        self.addCleanup(shutil.rmtree, short, True)
        link = os.path.join(short, "h")
        os.symlink(self.handoff, link)
        os.chmod(short, 0o755)
        home = os.path.join(self.tmp, "broker")
        os.mkdir(home, 0o700)
        os.chown(home, NOBODY, NOBODY)
        os.chown(self.tmp, NOBODY, NOBODY)
        dsn = os.path.join(home, "admin.dsn")
        shutil.copyfile(self.dsn_file, dsn)
        os.chown(dsn, NOBODY, NOBODY)
        os.chmod(dsn, 0o600)
        cfg = self.config(secrets=[self.secret("db", readers=[APP],
                                               uid=APP, gid=APP)])
        cfg["mount"] = {"path": self.target, "readers": [APP],
                        "fd_socket": os.path.join(link,
                                                  "credbroker-fuse.sock")}
        cfg["control"] = {"socket": os.path.join(home, "control.sock")}
        cfg["backends"]["pg"]["admin_dsn_file"] = dsn
        cfg["audit"] = {"file": os.path.join(home, "audit.log")}
        b = self.start_broker(cfg, user=NOBODY)
        b.wait_active("db")
        st = proc_status(b.pid)
        self.assertEqual(st["Uid"].split()[0], str(NOBODY))
        self.assertEqual(st["CapEff"], "0000000000000000")
        self.assertEqual(st["CapPrm"], "0000000000000000")
        self.assertEqual(st["NoNewPrivs"], "1")
        # Not dumpable: the kernel hands a non-dumpable process's /proc
        # files to root, though the process runs as nobody.
        self.assertEqual(os.stat("/proc/%d/status" % b.pid).st_uid, 0)
        self.assertIn("privileges_dropped", b.log_text())
        self.assertIn("event=handoff_received pod=team-a/ws-1 pod_uid=u-1",
                      b.log_text())
        # The app, a third uid, reads and logs in.
        rc, dsn_text = cbtest.as_uid(APP, "read",
                                     os.path.join(self.target, "db", "dsn"))
        self.assertEqual(rc, 0, dsn_text)
        cbtest.record_password(cbtest.parse_dsn(dsn_text)["password"])
        ok, res = cbtest.try_login(dsn_text.strip())
        self.assertTrue(ok, res)
        # Anyone else: EACCES.
        rc, _ = cbtest.as_uid(4343, "read",
                              os.path.join(self.target, "db", "dsn"))
        self.assertIn(rc, (errno_eacces(),))
        # The broker dies: the mount is dead, readers fail at once.
        b.kill()
        rc, _ = cbtest.as_uid(APP, "read",
                              os.path.join(self.target, "db", "dsn"))
        self.assertEqual(rc, 107, "reads after the broker died")
        p = self.kubelet("unpublish")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertFalse(cbtest.mounted(self.target))
        self.drop_cb_roles()


def errno_eacces():
    import errno
    return errno.EACCES


if __name__ == "__main__":
    unittest.main(verbosity=2)
