#!/usr/bin/env python3
"""Issue 9: `credbroker webhook`, the mutating admission webhook, over real
TLS (a test PKI made with the openssl command line, tests/sim/testca.py),
driven by curl the way the API server would call it: AdmissionReview v1
objects posted to /mutate.

The patch it answers is applied with a JSON Patch implementation no one here
wrote (fast-json-patch from npm, tests/node/apply_patch.mjs, every operation
validated) and the result must equal what `credbroker inject -f` makes of the
same object (parsed JSON).  Also: unannotated, already injected and
non-Pod objects are allowed without a patch; bad annotations are refused
(allowed false, status 400, the annotation named); malformed JSON, bodies
that are not AdmissionReviews, a body over 4 MiB and a missing
Content-Length get 400 (413) and the server goes on serving; unknown paths
404; the certificate presented is the PKI's, TLS 1.2 and 1.3 work and 1.1
does not; the certificate and key are re-read when their files change
(a new pair from another CA, no restart); SIGTERM exits 0.

Run by ctest (label k8s) with CB_BUILD_DIR / CB_SOURCE_DIR, or directly:
    CB_BUILD_DIR=build python3 tests/integration/test_webhook.py
When the binary has no `webhook` command yet the whole file is skipped with
a message and exit status 77 (ctest: SKIP_RETURN_CODE 77)."""

import base64
import difflib
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cbtest  # noqa: E402

sys.path.insert(0, os.path.join(cbtest.SOURCE_DIR, "tests", "sim"))
from testca import TestPki  # noqa: E402

GOLDEN = os.path.join(cbtest.SOURCE_DIR, "tests", "golden", "inject")
NODE_DIR = os.path.join(cbtest.SOURCE_DIR, "tests", "node")
APPLY_PATCH = os.path.join(NODE_DIR, "apply_patch.mjs")
INJECTED_PODS = ("pod-existing-init.in.json", "pod-privileged-mode.in.json")
MIB = 1024 * 1024
SKIP_STATUS = 77
# Scaled under CB_BROKER_WRAPPER (cbtest.TIMEOUT_SCALE: valgrind).
START_TIMEOUT = cbtest.scaled(30)      # s, until /healthz answers
RELOAD_TIMEOUT = cbtest.scaled(10)     # s, "within a few seconds"
STOP_TIMEOUT = cbtest.scaled(10)       # s, SIGTERM to exit


# --- is there a webhook command at all? --------------------------------------

def probe_webhook():
    """None when the binary has a `webhook` command (or cannot be run: the
    tests then fail saying so), else the reason it has none.

    `credbroker webhook --help` of a binary without the command prints the
    general usage (which names no webhook) on stderr and exits 2.  A binary
    with it is expected to print its own usage line ("credbroker webhook
    --cert FILE ...") -- on stdout or stderr, with whatever exit status, as
    `inject --help` does (exit 2, its usage on stderr)."""
    try:
        p = subprocess.run([cbtest.BROKER, "webhook", "--help"],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = p.stdout + p.stderr
    if "webhook" in text or "--cert" in text:
        return None
    if p.returncode != 0 and "usage" in p.stderr.lower():
        return ("%s has no `webhook` command yet (`credbroker webhook "
                "--help` exited %d printing only the general usage). "
                "Expected until the webhook server (issue 9) lands; these "
                "tests then run." % (cbtest.BROKER, p.returncode))
    return None


MISSING = probe_webhook()


# --- helpers -----------------------------------------------------------------

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(path):
    with open(path) as f:
        return json.load(f)


def dump(obj, path):
    with open(path, "w") as f:
        json.dump(obj, f)
    return path


def pretty(obj):
    return json.dumps(obj, indent=2, sort_keys=True)


def json_diff(want, got, what_want, what_got, limit=120):
    lines = list(difflib.unified_diff(
        pretty(want).splitlines(), pretty(got).splitlines(), what_want,
        what_got, lineterm="", n=2))
    more = len(lines) - limit
    return "\n".join(lines[:limit]) + (
        "\n... %d more diff lines" % more if more > 0 else "")


def short(resp):
    """resp for a message, its patch cut short."""
    if isinstance(resp, dict) and isinstance(resp.get("patch"), str) and \
            len(resp["patch"]) > 80:
        resp = dict(resp, patch=resp["patch"][:80] + "...")
    return repr(resp)


def cert_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def presented_der(port):
    """The leaf certificate the server presents (no verification)."""
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=10)
    return ssl.PEM_cert_to_DER_cert(pem)


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True,
                   timeout=60)


def make_server_pair(ca_cert, ca_key, cert, key):
    """A new key and certificate for localhost / 127.0.0.1 signed by the
    given CA, as testca.py makes them."""
    csr, ext = cert + ".csr", cert + ".ext"
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "extendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
            csr, "-subj", "/CN=localhost")
    openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
            "-set_serial", "0x" + secrets.token_hex(8), "-out", cert,
            "-days", "2", "-sha256", "-extfile", ext)
    os.unlink(csr)
    os.unlink(ext)
    os.chmod(key, 0o600)


def replace_file(src, dst):
    """dst atomically replaced by a copy of src (write to temp, rename)."""
    tmp = dst + ".tmp-" + secrets.token_hex(4)
    shutil.copyfile(src, tmp)
    os.chmod(tmp, os.stat(dst).st_mode & 0o777)
    os.rename(tmp, dst)


def bump_mtimes(*paths):
    """Every path gets one new mtime, at least 2 s past any it had, so a
    server comparing whole seconds sees the change too."""
    t = max([time.time()] + [os.stat(p).st_mtime for p in paths]) + 2
    for p in paths:
        os.utime(p, (t, t))


def ensure_tools():
    for tool in ("curl", "openssl", "node"):
        if shutil.which(tool) is None:
            raise AssertionError("%s is not installed (needed by %s)" % (
                tool, os.path.basename(__file__)))
    if not os.access(cbtest.BROKER, os.X_OK):
        raise AssertionError("no credbroker binary at %s: build it first, or "
                             "set CB_BUILD_DIR" % cbtest.BROKER)
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules",
                                      "fast-json-patch")):
        subprocess.run(["npm", "ci", "--prefix", NODE_DIR, "--no-audit",
                        "--no-fund"], check=True, timeout=300,
                       stdout=subprocess.DEVNULL)


def inject(obj, tmpdir, image=None):
    """`credbroker inject -f` of obj, parsed."""
    path = dump(obj, os.path.join(tmpdir, "inject-%s.json" %
                                  secrets.token_hex(4)))
    argv = [cbtest.BROKER, "inject", "-f", path]
    if image:
        argv += ["--image", image]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    os.unlink(path)
    if p.returncode != 0:
        raise AssertionError("credbroker inject exited %d: %s" % (
            p.returncode, p.stderr))
    return json.loads(p.stdout)


def apply_patch(obj, patch_bytes, tmpdir):
    """(exit status, patched object or None, stderr) from apply_patch.mjs."""
    tag = secrets.token_hex(4)
    doc = dump(obj, os.path.join(tmpdir, "doc-%s.json" % tag))
    patch = os.path.join(tmpdir, "patch-%s.json" % tag)
    with open(patch, "wb") as f:
        f.write(patch_bytes)
    p = subprocess.run(["node", APPLY_PATCH, doc, patch], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    os.unlink(doc)
    os.unlink(patch)
    return p.returncode, (json.loads(p.stdout) if p.returncode == 0
                          else None), p.stderr


def review(obj, kind=None, uid=None):
    """An AdmissionReview v1 request for creating obj, as the API server
    sends it."""
    kind = kind or {"group": "", "version": "v1",
                    "kind": obj.get("kind", "Pod")}
    resource = {"group": kind["group"], "version": kind["version"],
                "resource": kind["kind"].lower() + "s"}
    meta = obj.get("metadata", {}) if isinstance(obj, dict) else {}
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": kind,
            "resource": resource,
            "requestKind": kind,
            "requestResource": resource,
            "name": meta.get("name", ""),
            "namespace": meta.get("namespace", "default"),
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:"
                            "replicaset-controller",
                "uid": "5d7a6c1e-0f1b-4c2a-9e3d-2b8f4a6c0d11",
                "groups": ["system:serviceaccounts",
                           "system:serviceaccounts:kube-system",
                           "system:authenticated"]},
            "object": obj,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1",
                        "kind": "CreateOptions"},
        },
    }


def pod_of_template(path):
    """The pod template of a workload file made a Pod."""
    obj = load(path)
    tmpl = obj["spec"]["template"]
    meta = dict(tmpl.get("metadata", {}))
    meta.setdefault("name", obj["metadata"]["name"] + "-7c9d8f6b5-x2k4q")
    meta.setdefault("namespace", obj["metadata"].get("namespace", "default"))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": tmpl["spec"]}


class CurlResult:
    def __init__(self, rc, status, ctype, body, err):
        self.rc, self.status, self.ctype = rc, status, ctype
        self.body, self.err = body, err

    def __repr__(self):
        return "curl exit %d, HTTP %d, Content-Type %r, body %r%s" % (
            self.rc, self.status, self.ctype, self.body[:300],
            ", stderr %r" % self.err.strip() if self.err.strip() else "")


class Webhook:
    """One `credbroker webhook` on 127.0.0.1 and a free port, serving its own
    copy of the PKI's server certificate and key (tls.crt, tls.key, as a
    mounted cert-manager Secret has them)."""

    def __init__(self, workdir, pki, args=()):
        self.dir, self.pki, self.args = workdir, pki, list(args)
        os.makedirs(workdir, exist_ok=True)
        self.cert = os.path.join(workdir, "tls.crt")
        self.key = os.path.join(workdir, "tls.key")
        shutil.copyfile(pki.server_cert, self.cert)
        shutil.copyfile(pki.server_key, self.key)
        os.chmod(self.key, 0o600)
        self.log_path = os.path.join(workdir, "webhook.log")
        self.proc = None
        self.port = None
        self._logf = None
        self._n = 0

    # process

    def start(self):
        for attempt in range(3):
            self.port = free_port()
            argv = [cbtest.BROKER, "webhook", "--cert", self.cert, "--key",
                    self.key, "--listen", "127.0.0.1:%d" % self.port]
            argv += self.args
            if self._logf:
                self._logf.close()
            self._logf = open(self.log_path, "ab")
            self._logf.write(("--- %s\n" % " ".join(argv)).encode())
            self._logf.flush()
            self.proc = subprocess.Popen(cbtest.daemon_argv(
                argv, "webhook.%s" % os.path.basename(self.dir)),
                                         stdin=subprocess.DEVNULL,
                                         stdout=self._logf,
                                         stderr=subprocess.STDOUT)
            try:
                self.wait_healthy()
                return self
            except AssertionError:
                # the free port taken by someone else in between: again
                if (attempt < 2 and self.proc.poll() is not None
                        and re.search(r"in use", self.log_text(), re.I)):
                    continue
                raise
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_healthy(self, timeout=START_TIMEOUT):
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(
                    "credbroker webhook exited with status %d before "
                    "/healthz answered; its output:\n%s" % (
                        self.proc.returncode, self.log_tail()))
            last = self.curl("/healthz", timeout=3)
            if last.status == 200:
                return
            time.sleep(0.1)
        raise AssertionError(
            "GET https://localhost:%d/healthz did not answer 200 within %ds "
            "(last: %r); webhook output:\n%s" % (self.port, timeout, last,
                                                self.log_tail()))

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Sends sig, waits; the exit status, or None if it did not exit
        (it is then killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def cleanup(self):
        # SIGTERM first: a webhook under valgrind reports its leaks only
        # when it exits by itself.
        self.stop()
        if self._logf:
            self._logf.close()
            self._logf = None

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=3000):
        return self.log_text()[-n:]

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    # requests

    def url(self, path):
        return "https://localhost:%d%s" % (self.port, path)

    def curl(self, path, body_file=None, ca=None, extra=(), timeout=20):
        """curl --cacert CA -sS [-X POST -H 'Content-Type: application/json'
        --data-binary @body_file] EXTRA https://localhost:PORT/PATH"""
        self._n += 1
        out = os.path.join(self.dir, "curl-%d.out" % self._n)
        timeout = cbtest.scaled(timeout)
        argv = ["curl", "--cacert", ca or self.pki.ca_cert, "-sS",
                "--max-time", str(timeout),
                "--resolve", "localhost:%d:127.0.0.1" % self.port,
                "-o", out, "-w", "%{http_code} %{content_type}"]
        if body_file is not None:
            argv += ["-X", "POST", "-H", "Content-Type: application/json",
                     "--data-binary", "@" + body_file]
        argv += list(extra) + [self.url(path)]
        p = subprocess.run(argv, capture_output=True, timeout=timeout + 30,
                           stdin=subprocess.DEVNULL)
        w = p.stdout.decode(errors="replace").split(" ", 1)
        status = int(w[0]) if w[0].isdigit() else 0
        ctype = w[1].strip() if len(w) > 1 else ""
        body = b""
        if os.path.exists(out):
            with open(out, "rb") as f:
                body = f.read()
            os.unlink(out)
        return CurlResult(p.returncode, status, ctype, body,
                          p.stderr.decode(errors="replace"))

    def post(self, body, path="/mutate", ca=None, extra=(), timeout=20):
        """POSTs body (bytes, or an object sent as JSON) as
        application/json."""
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self._n += 1
        f = os.path.join(self.dir, "body-%d.json" % self._n)
        with open(f, "wb") as fh:
            fh.write(body)
        try:
            return self.curl(path, body_file=f, ca=ca, extra=extra,
                             timeout=timeout)
        finally:
            os.unlink(f)


# --- the checks every test shares -----------------------------------------

class WebhookCase(unittest.TestCase):
    maxDiff = None

    @classmethod
    def prepare_class(cls):
        ensure_tools()
        cls.tmp = tempfile.mkdtemp(prefix="cb-webhook-")
        # Class clean-ups run last first: this one after every webhook
        # of the class has been stopped.
        cls.addClassCleanup(cbtest.assert_valgrind_clean, "webhook.")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        cls.pki = TestPki(os.path.join(cls.tmp, "pki"))

    def new_webhook(self, name, args=()):
        wh = Webhook(os.path.join(self.tmp, name), self.pki, args)
        self.addCleanup(wh.cleanup)
        return wh.start()

    def admission(self, wh, rev, ca=None):
        """Posts the AdmissionReview rev; the response's "response"
        object, after checking the envelope and the uid."""
        r = wh.post(rev, ca=ca)
        self.assertEqual(r.status, 200, "POST /mutate: %r" % r)
        if r.ctype:
            self.assertEqual(r.ctype.split(";")[0].strip().lower(),
                             "application/json", "Content-Type: %r" % r)
        try:
            out = json.loads(r.body)
        except ValueError as e:
            self.fail("response is not JSON (%s): %r" % (e, r))
        self.assertIsInstance(out, dict, r)
        self.assertEqual(out.get("apiVersion"), "admission.k8s.io/v1", r)
        self.assertEqual(out.get("kind"), "AdmissionReview", r)
        resp = out.get("response")
        self.assertIsInstance(resp, dict, "no response object: %r" % r)
        self.assertEqual(resp.get("uid"), rev["request"]["uid"],
                         "uid not echoed: %r" % r)
        self.assertIsInstance(resp.get("allowed"), bool, r)
        return resp

    def assert_unpatched(self, resp, what):
        self.assertIs(resp["allowed"], True, "%s: %s" % (what, short(resp)))
        for key in ("patch", "patchType"):
            self.assertIsNone(resp.get(key), "%s: a %s in %s" % (
                what, key, short(resp)))

    def patched(self, resp, obj, what):
        """obj with the response's patch applied by fast-json-patch."""
        self.assertIs(resp["allowed"], True, "%s: %s" % (what, short(resp)))
        self.assertEqual(resp.get("patchType"), "JSONPatch", "%s: %s" % (
            what, short(resp)))
        self.assertIsInstance(resp.get("patch"), str, "%s: %s" % (
            what, short(resp)))
        try:
            raw = base64.b64decode(resp["patch"], validate=True)
        except ValueError as e:
            self.fail("%s: patch is not base64 (%s): %r" % (
                what, e, resp["patch"][:200]))
        try:
            ops = json.loads(raw)
        except ValueError as e:
            self.fail("%s: decoded patch is not JSON (%s): %r" % (
                what, e, raw[:300]))
        self.assertIsInstance(ops, list, "%s: patch is not an array" % what)
        self.assertTrue(ops, "%s: patch is empty" % what)
        rc, out, err = apply_patch(obj, raw, self.tmp)
        self.assertEqual(rc, 0, "%s: fast-json-patch rejects the patch: %s\n"
                         "patch: %s" % (what, err.strip(),
                                        raw[:2000].decode(errors="replace")))
        return out

    def assert_same(self, got, want, what):
        if got != want:
            self.fail("%s: patch applied differs from `credbroker inject`:"
                      "\n%s" % (what, json_diff(want, got, "inject",
                                                "webhook patch applied")))

    def assert_serving(self, wh, what=""):
        self.assertTrue(wh.alive(), "webhook died%s (status %s); output:\n%s"
                        % (" after " + what if what else "",
                           wh.proc.returncode, wh.log_tail()))
        r = wh.curl("/healthz")
        self.assertEqual(r.status, 200, "/healthz%s: %r" % (
            " after " + what if what else "", r))

    def assert_still_mutates(self, wh, what):
        """After a bad request, a good one is still answered correctly."""
        self.assert_serving(wh, what)
        pod = load(os.path.join(GOLDEN, INJECTED_PODS[0]))
        resp = self.admission(wh, review(pod))
        self.assert_same(self.patched(resp, pod, "after " + what),
                         inject(pod, self.tmp), "after " + what)


# --- requests, one server for the class ------------------------------------

@unittest.skipIf(MISSING, MISSING)
class WebhookRequestsTest(WebhookCase):

    @classmethod
    def setUpClass(cls):
        cls.prepare_class()
        cls.wh = Webhook(os.path.join(cls.tmp, "wh"), cls.pki)
        cls.addClassCleanup(cls.wh.cleanup)
        cls.wh.start()

    def setUp(self):
        # a test that killed it should not take the following ones along
        if not self.wh.alive():
            cbtest.log("webhook dead before %s, restarting" % self.id())
            self.wh.start()

    def tearDown(self):
        if not self.wh.alive():
            self.fail("the webhook died during this test (status %s); "
                      "output:\n%s" % (self.wh.proc.returncode,
                                       self.wh.log_tail()))

    def test_healthz(self):
        r = self.wh.curl("/healthz")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body.strip(), b"ok", r)

    def test_injected_pods_equal_inject(self):
        for name in INJECTED_PODS:
            with self.subTest(pod=name):
                pod = load(os.path.join(GOLDEN, name))
                rev = review(pod)
                resp = self.admission(self.wh, rev)
                got = self.patched(resp, pod, name)
                want = inject(pod, self.tmp)
                self.assertNotEqual(want, pod, "inject changed nothing?")
                self.assert_same(got, want, name)
                # the patched pod, shown again, is left alone
                again = self.admission(self.wh, review(got))
                self.assert_unpatched(again, name + " once injected")

    def test_large_pod_within_the_limit(self):
        """2 MiB of body (under the 4 MiB limit): read whole across many TLS
        records, patched like any other."""
        pod = load(os.path.join(GOLDEN, INJECTED_PODS[0]))
        pod["metadata"]["annotations"]["example.com/blob"] = "x" * (2 * MIB)
        resp = self.admission(self.wh, review(pod))
        self.assert_same(self.patched(resp, pod, "2 MiB pod"),
                         inject(pod, self.tmp), "2 MiB pod")

    def test_unannotated_pods_are_not_patched(self):
        base = {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "plain", "namespace": "team-a"},
                "spec": {"containers": [{"name": "app",
                                         "image": "nginx:1.27"}]}}
        other = json.loads(json.dumps(base))
        other["metadata"]["annotations"] = {
            "credbroker.io/role": "web", "prometheus.io/scrape": "true"}
        off = json.loads(json.dumps(base))
        off["metadata"]["annotations"] = {"credbroker.io/inject": "false",
                                          "credbroker.io/role": "web"}
        for what, pod in (("no annotations", base),
                          ("no inject annotation", other),
                          ("inject: false", off)):
            with self.subTest(pod=what):
                self.assertEqual(inject(pod, self.tmp), pod,
                                 "inject changes it: the test is wrong")
                self.assert_unpatched(self.admission(self.wh, review(pod)),
                                      what)

    def test_already_injected_pod_is_not_patched(self):
        pod = pod_of_template(os.path.join(GOLDEN,
                                           "already-injected.in.json"))
        self.assertEqual(inject(pod, self.tmp), pod,
                         "inject changes it: the test is wrong")
        self.assert_unpatched(self.admission(self.wh, review(pod)),
                              "already injected pod")

    def test_bad_annotations_are_refused(self):
        """Every Pod of tests/golden/inject/errors/ that `credbroker inject`
        refuses (no-role.json at least) is refused, the annotation of its
        .err file named in the message."""
        cases = []
        for src in sorted(glob.glob(os.path.join(GOLDEN, "errors",
                                                 "*.json"))):
            obj = load(src)
            if obj.get("kind") != "Pod":
                continue
            p = subprocess.run([cbtest.BROKER, "inject", "-f", src],
                               capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
            if p.returncode != 2:
                # inject's own golden test reports that; the webhook
                # follows inject
                cbtest.log("%s: inject exits %d, not checked here" % (
                    os.path.basename(src), p.returncode))
                continue
            with open(src[:-len(".json")] + ".err") as f:
                err = f.read().strip()
            m = re.search(r"credbroker\.io/[A-Za-z0-9-]+", err)
            cases.append((os.path.basename(src), obj, m.group(0)))
        self.assertIn("no-role.json", [c[0] for c in cases],
                      "credbroker inject accepts errors/no-role.json")
        for name, pod, annotation in cases:
            with self.subTest(pod=name):
                resp = self.admission(self.wh, review(pod))
                self.assertIs(resp["allowed"], False, "%s: %s" % (
                    name, short(resp)))
                self.assertIsNone(resp.get("patch"), short(resp))
                st = resp.get("status")
                self.assertIsInstance(st, dict, "%s: no status: %r" % (
                    name, resp))
                self.assertEqual(st.get("code"), 400, "%s: %r" % (name, st))
                self.assertIsInstance(st.get("message"), str, st)
                self.assertIn(annotation, st["message"],
                              "%s: the message does not name the annotation"
                              % name)

    def test_other_kinds_are_not_patched(self):
        deploy = load(os.path.join(GOLDEN, "deployment-vault.in.json"))
        self.assertNotEqual(inject(deploy, self.tmp), deploy,
                            "the Deployment should be one inject changes")
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "c", "namespace": "team-a",
                           "annotations": {"credbroker.io/inject": "true"}},
              "data": {"a": "b"}}
        for what, obj, kind in (
                ("Deployment", deploy,
                 {"group": "apps", "version": "v1", "kind": "Deployment"}),
                ("ConfigMap", cm,
                 {"group": "", "version": "v1", "kind": "ConfigMap"})):
            with self.subTest(kind=what):
                self.assert_unpatched(
                    self.admission(self.wh, review(obj, kind=kind)), what)

    def test_malformed_json_is_400(self):
        good = json.dumps(review(load(os.path.join(
            GOLDEN, INJECTED_PODS[0])))).encode()
        for what, body in (("not JSON", b"{not json"),
                           ("empty body", b""),
                           ("truncated", good[:len(good) // 2]),
                           ("trailing garbage", good + b" }{"),
                           ("NUL inside", good[:40] + b"\0" + good[40:]),
                           ("stray bytes", good[:-3] + b"\xff\xfe" +
                            good[-3:]),
                           ("deeply nested", b"[" * 100000 + b"]" * 100000)):
            with self.subTest(body=what):
                r = self.wh.post(body)
                self.assertEqual(r.status, 400, "%s: %r" % (what, r))
                self.assert_still_mutates(self.wh, what)

    def test_not_an_admission_review_is_400(self):
        pod = load(os.path.join(GOLDEN, INJECTED_PODS[0]))
        rev = review(pod)
        no_request = {"apiVersion": "admission.k8s.io/v1",
                      "kind": "AdmissionReview"}
        wrong_kind = dict(rev, kind="Pod")
        wrong_version = dict(rev, apiVersion="v1")
        for what, body in (("an array", [1, 2]),
                           ("a string", "AdmissionReview"),
                           ("a bare Pod", pod),
                           ("no request", no_request),
                           ("kind Pod", wrong_kind),
                           ("apiVersion v1", wrong_version)):
            with self.subTest(body=what):
                r = self.wh.post(body)
                self.assertEqual(r.status, 400, "%s: %r" % (what, r))
                self.assert_still_mutates(self.wh, what)

    def test_oversized_body_is_refused(self):
        pod = load(os.path.join(GOLDEN, INJECTED_PODS[0]))
        pod["metadata"]["annotations"]["example.com/blob"] = "x" * (5 * MIB)
        body = json.dumps(review(pod)).encode()
        self.assertGreater(len(body), 5 * MIB)
        r = self.wh.post(body, timeout=60)
        self.assertIn(r.status, (413, 400),
                      "5 MiB body: %r (curl sends Expect: 100-continue for "
                      "it: answering 413 as soon as Content-Length says more "
                      "than 4 MiB, before reading the body, gets the answer "
                      "to the client)" % r)
        self.assert_still_mutates(self.wh, "a 5 MiB body")

    def test_missing_content_length_is_400(self):
        body = json.dumps(review(load(os.path.join(
            GOLDEN, INJECTED_PODS[0])))).encode()
        for what, extra in (
                ("chunked", ["-H", "Transfer-Encoding: chunked"]),
                ("no length at all", ["-H", "Content-Length:"])):
            with self.subTest(request=what):
                r = self.wh.post(body, extra=extra)
                # 411 Length Required is the precise HTTP answer; the
                # spec says 400: either is a refusal
                self.assertIn(r.status, (400, 411), "%s: %r" % (what, r))
                self.assert_still_mutates(self.wh, "no Content-Length, "
                                          + what)

    def test_bad_requests_are_logged(self):
        before = self.wh.log_size()
        r = self.wh.post(b"{not json")
        self.assertEqual(r.status, 400, r)
        cbtest.wait_until(lambda: self.wh.log_size() > before, 5,
                          what="a log line for a malformed request "
                          "(issue 9: \"400 and a log line\")")

    def test_unknown_paths_are_404(self):
        rev = review(load(os.path.join(GOLDEN, INJECTED_PODS[0])))
        for what, path, body in (("GET /", "/", None),
                                 ("GET /nope", "/nope", None),
                                 ("GET /healthzz", "/healthzz", None),
                                 ("POST /validate", "/validate", rev),
                                 ("POST /mutate/x", "/mutate/x", rev)):
            with self.subTest(request=what):
                if body is None:
                    r = self.wh.curl(path)
                else:
                    r = self.wh.post(body, path=path)
                self.assertEqual(r.status, 404, "%s: %r" % (what, r))
        self.assert_serving(self.wh, "unknown paths")

    def test_tls(self):
        port = self.wh.port
        self.assertEqual(presented_der(port), cert_der(self.pki.server_cert),
                         "the certificate presented is not --cert's")
        r = self.wh.curl("/healthz")
        self.assertEqual(r.status, 200, "with the PKI's CA: %r" % r)
        r = self.wh.curl("/healthz", ca=self.pki.other_ca_cert)
        self.assertNotEqual(r.rc, 0, "with an unrelated CA: %r" % r)
        self.assertEqual(r.status, 0, "with an unrelated CA: %r" % r)
        for what, extra in (("TLS 1.2", ["--tlsv1.2", "--tls-max", "1.2"]),
                            ("TLS 1.3", ["--tlsv1.3"])):
            with self.subTest(tls=what):
                r = self.wh.curl("/healthz", extra=extra)
                self.assertEqual(r.status, 200, "%s: %r" % (what, r))
        with self.subTest(tls="TLS 1.1 refused"):
            # a client allowed TLS 1.0/1.1 only (and every cipher, so the
            # refusal is the server's, not the client's own security level)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            version = None
            try:
                with socket.create_connection(("127.0.0.1", port), 10) as s:
                    with ctx.wrap_socket(s) as t:
                        version = t.version()
            except (ssl.SSLError, OSError) as e:
                if "NO_CIPHERS_AVAILABLE" in str(e) or \
                        "NO_PROTOCOLS_AVAILABLE" in str(e):
                    self.skipTest("this Python/OpenSSL cannot speak TLS "
                                  "1.1 as a client: %s" % e)
            self.assertIsNone(version, "handshake completed with %s" %
                              version)
        self.assert_serving(self.wh, "the TLS checks")

    def test_stray_connections_do_not_stop_it(self):
        """Beyond the written spec: plaintext HTTP on the TLS port, a
        connection closed at once, and an idle connection held open must
        not crash it nor keep other clients out for long (with failurePolicy
        Fail one stalled connection would block pod creation)."""
        port = self.wh.port
        for _ in range(5):
            socket.create_connection(("127.0.0.1", port), 5).close()
        with socket.create_connection(("127.0.0.1", port), 5) as s:
            s.sendall(b"POST /mutate HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 2\r\n\r\n{}")
            s.settimeout(5)
            try:
                s.recv(4096)
            except OSError:
                pass
        with socket.create_connection(("127.0.0.1", port), 5) as s:
            s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc" + b"\0" * 40)
        self.assert_serving(self.wh, "stray connections")
        idle = socket.create_connection(("127.0.0.1", port), 5)
        try:
            t0 = time.monotonic()
            r = self.wh.curl("/healthz", timeout=30)
            took = time.monotonic() - t0
            self.assertEqual(r.status, 200, "with an idle connection held "
                             "open for %.0fs, /healthz: %r" % (took, r))
        finally:
            idle.close()
        self.assert_serving(self.wh, "an idle connection")


# --- a server of its own per test ------------------------------------------

@unittest.skipIf(MISSING, MISSING)
class WebhookLifecycleTest(WebhookCase):

    @classmethod
    def setUpClass(cls):
        cls.prepare_class()

    def wait_presenting(self, wh, ca, der, what):
        """Polls until a curl trusting only ca gets /healthz and the
        certificate presented is der."""
        end = time.monotonic() + RELOAD_TIMEOUT
        last = None
        while time.monotonic() < end:
            self.assertTrue(wh.alive(), "webhook died %s; output:\n%s" % (
                what, wh.log_tail()))
            last = wh.curl("/healthz", ca=ca, timeout=3)
            try:
                if last.status == 200 and presented_der(wh.port) == der:
                    return
            except (OSError, ssl.SSLError):
                pass
            time.sleep(0.2)
        self.fail("%s: not presented within %ds (last curl: %r); webhook "
                  "output:\n%s" % (what, RELOAD_TIMEOUT, last,
                                   wh.log_tail()))

    def new_pair(self, name):
        cert = os.path.join(self.tmp, name + ".crt")
        key = os.path.join(self.tmp, name + ".key")
        make_server_pair(self.pki.other_ca_cert, self.pki.other_ca_key,
                         cert, key)
        return cert, key

    def test_certificate_reload(self):
        wh = self.new_webhook("reload")
        pid = wh.proc.pid
        self.assertEqual(presented_der(wh.port),
                         cert_der(self.pki.server_cert))
        cert, key = self.new_pair("rotated")
        replace_file(key, wh.key)
        replace_file(cert, wh.cert)
        bump_mtimes(wh.key, wh.cert)
        self.wait_presenting(wh, self.pki.other_ca_cert, cert_der(cert),
                             "the new certificate (other CA)")
        self.assertEqual(wh.proc.pid, pid)
        self.assertTrue(wh.alive(), "restarted?")
        r = wh.curl("/healthz")
        self.assertNotEqual(r.status, 200, "the old CA still works: %r" % r)
        # and it serves admission requests with it
        pod = load(os.path.join(GOLDEN, INJECTED_PODS[1]))
        resp = self.admission(wh, review(pod), ca=self.pki.other_ca_cert)
        self.assert_same(self.patched(resp, pod, "after reload"),
                         inject(pod, self.tmp), "after reload")

    def test_broken_certificate_files_keep_the_old_one(self):
        """Beyond the written spec: a garbage certificate, then a new
        certificate with the old key (the moment between two renames), keep
        the pair in use and the server alive; the matching key then loads."""
        wh = self.new_webhook("broken")
        old = cert_der(self.pki.server_cert)
        garbage = os.path.join(self.tmp, "garbage.crt")
        with open(garbage, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n"
                    "-----END CERTIFICATE-----\n")
        cert, key = self.new_pair("half")
        for what, src in (("a garbage certificate", garbage),
                          ("a certificate not matching the key", cert)):
            replace_file(src, wh.cert)
            bump_mtimes(wh.cert)
            end = time.monotonic() + 3
            while time.monotonic() < end:
                self.assert_serving(wh, what)
                self.assertEqual(presented_der(wh.port), old, what)
                time.sleep(0.3)
        replace_file(key, wh.key)
        bump_mtimes(wh.key, wh.cert)
        self.wait_presenting(wh, self.pki.other_ca_cert, cert_der(cert),
                             "the new pair once the key matches")

    def test_image_option(self):
        image = "registry.test/credbroker:webhook-test"
        wh = self.new_webhook("image", ["--image", image])
        for name in INJECTED_PODS:
            with self.subTest(pod=name):
                pod = load(os.path.join(GOLDEN, name))
                resp = self.admission(wh, review(pod))
                want = inject(pod, self.tmp, image=image)
                self.assertIn(image, json.dumps(want))
                self.assert_same(self.patched(resp, pod, name), want,
                                 name + " --image")

    def test_sigterm_exits_zero(self):
        wh = self.new_webhook("sigterm")
        self.assert_serving(wh)
        rc = wh.stop(signal.SIGTERM)
        self.assertIsNotNone(rc, "still running %ds after SIGTERM (killed); "
                             "output:\n%s" % (STOP_TIMEOUT, wh.log_tail()))
        self.assertEqual(rc, 0, "exit status after SIGTERM; output:\n%s" %
                         wh.log_tail())


if __name__ == "__main__":
    if MISSING:
        sys.stderr.write("SKIPPED: %s\n" % MISSING)
        sys.exit(SKIP_STATUS)
    unittest.main(verbosity=2)
