#!/usr/bin/env python3
"""Issue 8: credbroker-csi against a real gRPC client no one here wrote
(@grpc/grpc-js + @grpc/proto-loader loading a CSI v1 subset proto), the way
kubelet calls it: every RPC, idempotent publish and unpublish, refusals,
UNIMPLEMENTED and a malformed message, on a real FUSE mount in a temporary
pods tree.  The service-account token passed in volume_context never
reaches the plugin's log."""

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

NODE_DIR = os.path.join(cbtest.SOURCE_DIR, "tests", "node")
PLUGIN = os.path.join(cbtest.BUILD_DIR, "credbroker-csi")
POD = "7d8e9f00-1111-2222-3333-444455556666"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.sa-token-for-the-csi-test.c2ln"


def ensure_node_modules():
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
        subprocess.run(["npm", "ci", "--prefix", NODE_DIR, "--no-audit",
                        "--no-fund"], check=True, timeout=300,
                       stdout=subprocess.DEVNULL)


@unittest.skipUnless(os.geteuid() == 0 and os.access("/dev/fuse", os.W_OK),
                     "needs root and /dev/fuse")
class CsiTest(unittest.TestCase):

    def setUp(self):
        ensure_node_modules()
        self.tmp = tempfile.mkdtemp(prefix="cb-csi-e2e-")
        os.chmod(self.tmp, 0o755)
        self.pods = os.path.join(self.tmp, "pods")
        vol = os.path.join(self.pods, POD, "volumes")
        os.makedirs(os.path.join(vol, "kubernetes.io~csi", "secrets"))
        handoff = os.path.join(vol, "kubernetes.io~empty-dir", "handoff")
        os.makedirs(handoff)
        os.chmod(handoff, 0o777)
        self.target = os.path.join(vol, "kubernetes.io~csi", "secrets",
                                   "mount")
        self.sock = os.path.join(self.tmp, "csi.sock")
        self.log_path = os.path.join(self.tmp, "plugin.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PLUGIN, "--endpoint", "unix://" + self.sock, "--node-id",
             "node-e2e", "--pods-dir", self.pods,
             "--handoff-timeout-seconds", "5"],
            stdout=self.log, stderr=self.log)
        self.addCleanup(self.cleanup)
        cbtest.wait_until(lambda: os.path.exists(self.sock), 10,
                          what="the plugin's socket")

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.log.close()
        if cbtest.mounted(self.target):
            cbtest.force_unmount(self.target)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_kubelet_calls(self):
        p = subprocess.run(["node", os.path.join(NODE_DIR, "csi_client.mjs"),
                            self.sock, self.target, TOKEN],
                           capture_output=True, text=True, timeout=120)
        sys.stderr.write(p.stdout)
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


if __name__ == "__main__":
    unittest.main(verbosity=2)
