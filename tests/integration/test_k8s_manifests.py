#!/usr/bin/env python3
"""Issue 9: every manifest in deploy/ builds with `kubectl kustomize` and
validates against the Kubernetes schemas (kubernetes-models 4 from npm,
plus a check for unknown fields, which it does not reject); every pod that
`credbroker inject` produces (the golden outputs) and the example workloads
pass the Pod Security "restricted" checks (tests/tools/psa_restricted.py,
written from the published standard), while the privileged mode and the
CSI DaemonSet are refused, as documented."""

import glob
import json
import os
import shutil
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cbtest  # noqa: E402

SRC = cbtest.SOURCE_DIR
NODE_DIR = os.path.join(SRC, "tests", "node")
sys.path.insert(0, os.path.join(SRC, "tests", "tools"))
import psa_restricted  # noqa: E402


def ensure_node_modules():
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules")):
        subprocess.run(["npm", "ci", "--prefix", NODE_DIR, "--no-audit",
                        "--no-fund"], check=True, timeout=300,
                       stdout=subprocess.DEVNULL)


def run(argv, stdin=None):
    return subprocess.run(argv, input=stdin, capture_output=True, text=True,
                          timeout=300, cwd=SRC)


class ManifestTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        ensure_node_modules()
        cls.validator = os.path.join(NODE_DIR, "validate_manifests.mjs")

    @unittest.skipUnless(shutil.which("kubectl"), "kubectl not installed")
    def test_kustomize_builds_and_validates(self):
        for d in ("deploy", "deploy/csi", "deploy/webhook"):
            built = run(["kubectl", "kustomize", d])
            self.assertEqual(built.returncode, 0, d + ": " + built.stderr)
            p = run(["node", self.validator, "-"], stdin=built.stdout)
            self.assertEqual(p.returncode, 0, d + ": " + p.stdout + p.stderr)

    def test_every_manifest_validates(self):
        files = sorted(glob.glob(os.path.join(SRC, "deploy", "**", "*.yaml"),
                                 recursive=True))
        self.assertGreaterEqual(len(files), 10)
        p = run(["node", self.validator, "--allow-kind",
                 "kustomize.config.k8s.io/v1beta1/Kustomization"] + files)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def psa(self, objs):
        """Every violation of every pod template, prefixed with its
        object."""
        return ["%s: %s" % (label, v) for o in objs
                for label, found in psa_restricted.check_object(o)
                for v in found]

    def test_examples_are_restricted(self):
        files = [os.path.join(SRC, "deploy", "examples", f) for f in
                 ("workspace-pod.yaml", "workspace-deployment.yaml")]
        p = run(["node", self.validator, "--to-json"] + files)
        self.assertEqual(p.returncode, 0, p.stderr)
        objs = json.loads(p.stdout)["items"]
        self.assertEqual(len(objs), 2)
        self.assertEqual(self.psa(objs), [])

    def test_injected_pods_are_restricted(self):
        n = 0
        for path in sorted(glob.glob(os.path.join(SRC, "tests", "golden",
                                                  "inject", "*.out.json"))):
            with open(path) as f:
                obj = json.load(f)
            if "privileged-mode" in path:
                found = self.psa([obj])
                self.assertTrue(any("privileged" in v for v in found),
                                "privileged mode passed restricted")
                continue
            # What injection adds is restricted; what the app's own
            # containers lacked before, they still lack (no more, no less).
            with open(path.replace(".out.json", ".in.json")) as f:
                before = self.psa([json.load(f)])
            after = self.psa([obj])
            self.assertEqual([v for v in after if "credbroker" in v], [],
                             path)
            self.assertEqual(len(after), len(before), path)
            n += 1
        self.assertGreaterEqual(n, 5)

    def test_csi_daemonset_is_refused(self):
        p = run(["node", self.validator, "--to-json",
                 os.path.join(SRC, "deploy", "csi", "node-daemonset.yaml")])
        objs = [o for o in json.loads(p.stdout)["items"]
                if o["kind"] == "DaemonSet"]
        self.assertTrue(any("privileged" in v for v in self.psa(objs)))


if __name__ == "__main__":
    unittest.main(verbosity=2)
