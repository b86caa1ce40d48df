#!/usr/bin/env python3
"""Issue 9: golden tests of `credbroker inject` on real-world manifests
(tests/golden/inject/*.in.json -> *.out.json): a Deployment on Vault, a
CronJob on PostgreSQL, a pod with existing init containers and volumes, an
already injected Deployment, an unannotated StatefulSet, a List, the
privileged mode; a second run changes nothing; every generated broker
config passes `credbroker check-config`; bad annotations exit 2 naming the
annotation (tests/golden/inject/errors/).  `--update` rewrites the golden
outputs (review the diff before committing)."""

import glob
import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cbtest  # noqa: E402

GOLDEN = os.path.join(cbtest.SOURCE_DIR, "tests", "golden", "inject")
ANNOTATION = "credbroker.io/generated-config"


def inject(path=None, text=None):
    argv = [cbtest.BROKER, "inject"] + (["-f", path] if path else [])
    return subprocess.run(argv, input=text, capture_output=True, text=True,
                          timeout=30)


def templates(obj):
    """The pod templates' metadata of a Pod, workload or List."""
    if obj.get("kind") == "List":
        for item in obj.get("items", []):
            yield from templates(item)
        return
    kind, spec = obj.get("kind"), obj.get("spec", {})
    if kind == "Pod":
        yield obj.get("metadata", {})
    elif kind == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"].get("metadata", {})
    elif "template" in spec:
        yield spec["template"].get("metadata", {})


class InjectGoldenTest(unittest.TestCase):

    def cases(self):
        found = sorted(glob.glob(os.path.join(GOLDEN, "*.in.json")))
        self.assertGreaterEqual(len(found), 6)
        return found

    def test_golden_outputs_and_idempotence(self):
        for src in self.cases():
            with self.subTest(case=os.path.basename(src)):
                p = inject(src)
                self.assertEqual(p.returncode, 0, p.stderr)
                with open(src[:-len(".in.json")] + ".out.json") as f:
                    want = f.read()
                self.assertEqual(p.stdout, want, "differs from golden")
                again = inject(text=p.stdout)
                self.assertEqual(again.returncode, 0, again.stderr)
                self.assertEqual(again.stdout, p.stdout, "not idempotent")

    def test_unannotated_objects_pass_through(self):
        for name in ("unannotated", "already-injected"):
            src = os.path.join(GOLDEN, name + ".in.json")
            with open(src) as f:
                before = json.load(f)
            self.assertEqual(json.loads(inject(src).stdout), before, name)

    def test_generated_configs_are_valid(self):
        n = 0
        for src in self.cases():
            out = json.loads(inject(src).stdout)
            for meta in templates(out):
                text = meta.get("annotations", {}).get(ANNOTATION)
                if text is None:
                    continue
                with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
                    f.write(text)
                    f.flush()
                    p = subprocess.run([cbtest.BROKER, "check-config",
                                        f.name], capture_output=True,
                                       text=True, timeout=30)
                self.assertEqual(p.returncode, 0, "%s: %s" % (
                    src, p.stdout + p.stderr))
                n += 1
        self.assertGreaterEqual(n, 5)

    def test_bad_annotations_are_named(self):
        for src in sorted(glob.glob(os.path.join(GOLDEN, "errors",
                                                 "*.json"))):
            with self.subTest(case=os.path.basename(src)):
                with open(src[:-len(".json")] + ".err") as f:
                    want = f.read().strip()
                p = inject(src)
                self.assertEqual(p.returncode, 2, p.stdout)
                self.assertIn(want, p.stderr)
                self.assertEqual(p.stdout, "")

    def test_malformed_input(self):
        p = inject(text="{not json")
        self.assertEqual(p.returncode, 2)
        self.assertIn("line 1", p.stderr)
        p = inject(text="[1, 2]")
        self.assertEqual(p.returncode, 2)
        self.assertIn("not a Kubernetes object", p.stderr)
        # A stream that never ends is cut at the cap, not read into memory.
        p = inject(text=" " * (16 * 1024 * 1024 + 1))
        self.assertEqual(p.returncode, 2)
        self.assertIn("larger than 16777216 bytes", p.stderr)


def update():
    for src in sorted(glob.glob(os.path.join(GOLDEN, "*.in.json"))):
        p = inject(src)
        if p.returncode != 0:
            sys.exit("%s: %s" % (src, p.stderr))
        with open(src[:-len(".in.json")] + ".out.json", "w") as f:
            f.write(p.stdout)


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        update()
    else:
        unittest.main(verbosity=2)
