#!/usr/bin/env python3
"""Issue 5: the aws backend end to end, against moto (moto_server 5.2.1 from
the image's Python, through tests/sim/motosim.py, which adds what moto lacks:
the unsigned AssumeRoleWithWebIdentity checked against the token file,
expired sessions refused, short session lifetimes) behind
tests/sim/faultproxy.py, which adds TLS and injects faults.

Keys appear in every format and moto accepts requests signed with them; the
broker sends the current token file's contents; keys are refreshed before
their expiry with no gap for a reader; a Secrets Manager version change
reaches the mount and an unchanged one does not; KMS plaintext appears only
in the mount; throttling and 5xx back off and keep the last good value; a bad
signature and an expired session are reported clearly; revoke drops the keys
and says what the account must do.  Every log is searched for every key,
token and value the tests saw."""

import base64
import errno
import hashlib
import json
import os
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sim"))
import cbtest  # noqa: E402
from cbtest import wait_until  # noqa: E402
from testca import TestPki  # noqa: E402

try:
    import boto3
    from botocore.config import Config as BotoConfig
    from motosim import MotoSim
    from faultproxy import FaultProxy
except ImportError as e:  # the contract: fail, say what is missing
    sys.stderr.write("test_e2e_aws needs moto_server 5.2.1 and boto3 from "
                     "the machine image's Python (%s): %s\n"
                     % (sys.executable, e))
    sys.exit(1)

ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE = "arn:aws:iam::%s:role/workspace" % ACCOUNT
SESSION_SECONDS = 20
TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
    "Principal": {"Federated": "arn:aws:iam::%s:oidc-provider/"
                  "oidc.eks.example" % ACCOUNT}}]}
ROLE_POLICY = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Resource": "*",
    "Action": ["secretsmanager:GetSecretValue", "kms:Decrypt",
               "sts:GetCallerIdentity"]}]}
ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Action": "*", "Resource": "*"}]}
CRED_FILES = ["credentials", "credential_process", "env"]
SM_TARGET = "secretsmanager.GetSecretValue"
LOGFMT = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')
# AccessDenied as Secrets Manager answers a session that a deny on
# aws:TokenIssueTime cuts off (moto does not evaluate that condition).
DENIED_JSON = ('{"__type":"AccessDeniedException","message":"User: '
               'arn:aws:sts::%s:assumed-role/workspace/ws-test is not '
               'authorized to perform: secretsmanager:GetSecretValue with '
               'an explicit deny in an identity-based policy"}' % ACCOUNT)
# What STS answers a projected token past its exp claim.
STS_EXPIRED_JWT = (
    '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
    '<Error><Type>Sender</Type><Code>ExpiredTokenException</Code>'
    '<Message>Token expired: current date/time 1767225600 must be before '
    'the expiration date/time 1767222000</Message></Error>'
    '<RequestId>e2e</RequestId></ErrorResponse>')


def logfmt(line):
    out = {}
    for k, v in LOGFMT.findall(line):
        out[k] = v[1:-1] if v.startswith('"') else v
    return out


def fake_jwt(sub):
    part = lambda d: base64.urlsafe_b64encode(  # noqa: E731
        json.dumps(d).encode()).rstrip(b"=").decode()
    return "%s.%s.%s" % (part({"alg": "RS256"}),
                         part({"sub": sub, "iat": int(time.time())}),
                         part({"n": os.urandom(8).hex()}))


def parse_ini(text):
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
            out[section] = {}
        elif "=" in line:
            k, v = line.split("=", 1)
            out[section][k.strip()] = v.strip()
    return out


def note_aws(files):
    """Every secret value in a {file: text} dict joins the leak check, and
    so does every access key id: not a secret by itself, but the logs and
    lease ids promise never to carry one."""
    for name, text in files.items():
        if name == "credential_process" and text:
            d = json.loads(text)
            for k in ("AccessKeyId", "SecretAccessKey", "SessionToken"):
                cbtest.record_password(d.get(k))
        elif name in ("env",) and text:
            env = cbtest.parse_env(text)
            for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                      "AWS_SESSION_TOKEN"):
                cbtest.record_password(env.get(k))
        elif name == "credentials" and text:
            for v in parse_ini(text).get("default", {}).values():
                cbtest.record_password(v)


class AwsTest(cbtest.BrokerTestCase):
    with_pg = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.moto = cls.proxy = None
        try:
            cls.pki = TestPki(os.path.join(cls.class_tmp, "pki"))
            cls.token_file = os.path.join(cls.class_tmp, "web-identity")
            cls.write_token(fake_jwt("system:serviceaccount:ws:app"))
            moto_log = os.path.join(cls.class_tmp, "moto.log")
            proxy_log = os.path.join(cls.class_tmp, "proxy.log")
            cls._class_logs.extend([moto_log, proxy_log])
            cls.moto = MotoSim.start(token_file=cls.token_file,
                                     max_session_seconds=SESSION_SECONDS,
                                     stderr_path=moto_log)
            cls.proxy = FaultProxy.start(cls.pki.server_cert,
                                         cls.pki.server_key, cls.moto.url,
                                         stderr_path=proxy_log)
            cls.setup_account()
        except BaseException:
            cls.stop_sims()
            super().tearDownClass()
            raise

    @classmethod
    def stop_sims(cls):
        for sim in (cls.proxy, cls.moto):
            if sim is not None:
                sim.stop()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.stop_sims()
        finally:
            super().tearDownClass()

    @classmethod
    def write_token(cls, token):
        cbtest.record_password(token)
        cbtest.note_secret_input(cls.token_file)
        tmp = cls.token_file + ".new"
        with open(tmp, "w") as f:
            f.write(token + "\n")
        os.replace(tmp, cls.token_file)   # as the kubelet does
        return token

    @classmethod
    def client(cls, service, creds=None, via_proxy=False):
        kw = dict(region_name=REGION,
                  config=BotoConfig(retries={"max_attempts": 1}))
        if via_proxy:
            kw.update(endpoint_url="https://127.0.0.1:%d" % cls.proxy.port,
                      verify=cls.pki.ca_cert)
        else:
            kw.update(endpoint_url=cls.moto.url)
        creds = creds or cls.admin
        kw.update(aws_access_key_id=creds["AccessKeyId"],
                  aws_secret_access_key=creds["SecretAccessKey"])
        if creds.get("SessionToken"):
            kw["aws_session_token"] = creds["SessionToken"]
        return boto3.client(service, **kw)

    @classmethod
    def setup_account(cls):
        """The role, an admin user for the tests' own calls, a secret and a
        KMS blob; then moto checks every signature and policy."""
        cls.admin = {"AccessKeyId": "AKIAIOSFODNN7EXAMPLE",
                     "SecretAccessKey": "setup-before-auth"}
        iam = cls.client("iam")
        iam.create_role(RoleName="workspace",
                        AssumeRolePolicyDocument=json.dumps(TRUST))
        iam.put_role_policy(RoleName="workspace", PolicyName="ws",
                            PolicyDocument=json.dumps(ROLE_POLICY))
        iam.create_user(UserName="admin")
        iam.put_user_policy(UserName="admin", PolicyName="all",
                            PolicyDocument=json.dumps(ADMIN_POLICY))
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        cls.admin = {"AccessKeyId": key["AccessKeyId"],
                     "SecretAccessKey": key["SecretAccessKey"]}
        cbtest.record_password(key["SecretAccessKey"])
        cls.db_password = "sm-" + os.urandom(12).hex()
        cbtest.record_password(cls.db_password)
        sm = cls.client("secretsmanager")
        sm.create_secret(Name="ws/db", SecretString=json.dumps(
            {"username": "app", "password": cls.db_password, "port": 5432}))
        kms = cls.client("kms")
        cls.kms_key = kms.create_key()["KeyMetadata"]["KeyId"]
        cls.kms_plain = "kms-" + os.urandom(12).hex()
        cbtest.record_password(cls.kms_plain)
        blob = kms.encrypt(KeyId=cls.kms_key, Plaintext=cls.kms_plain.encode(),
                           EncryptionContext={"app": "ws"})["CiphertextBlob"]
        cls.kms_blob = base64.b64encode(blob).decode()
        cls.moto.reset_auth(0)

    def setUp(self):
        super().setUp()
        self.proxy.reset(log=True)

    # -- configs --

    def aws_backend(self, **extra):
        url = "https://127.0.0.1:%d" % self.proxy.port
        be = {"type": "aws", "region": REGION, "role_arn": ROLE,
              "role_session_name": "ws-test", "token_file": self.token_file,
              "endpoints": {"sts": url, "secretsmanager": url, "kms": url},
              "tls": {"ca_file": self.pki.ca_cert},
              "connect_timeout": "2s", "request_timeout": "3s"}
        be.update(extra)
        return be

    def aws_secret(self, name, aws=None, **extra):
        s = {"name": name, "backend": "a", "ttl": "15m", "uid": 0, "gid": 0}
        if aws is not None:
            s["aws"] = aws
        s.update(extra)
        return s

    def sm_secret(self, name="db", **extra):
        return self.aws_secret(name, {"kind": "secretsmanager",
                                      "secret_id": "ws/db"},
                               refresh="1s", **extra)

    def aws_config(self, secrets, **extra):
        cfg = self.config(secrets=secrets, **extra)
        cfg["backends"] = {"a": self.aws_backend()}
        return cfg

    def read_creds(self, b, name, base=None):
        files = b.read_secret(name, files=CRED_FILES + [".lease.json"],
                              base=base)
        note_aws(files)
        return files

    def sts_calls(self):
        return [c for c in self.moto.calls() if c.get("status") == 200]

    def app_secret(self, name="aws", **aws):
        """Keys for the app under a session name of their own, so a fault
        can hit their STS call and not the broker's own session's."""
        return self.aws_secret(name, dict({"role_session_name": "app-keys"},
                                          **aws))

    @staticmethod
    def events(b, event, secret):
        return [logfmt(line) for line in b.log_text().splitlines()
                if "event=%s " % event in line and
                " secret=%s " % secret in line]

    def wait_events(self, b, event, secret, n, timeout):
        return wait_until(
            lambda: (lambda ev: ev if len(ev) >= n else None)(
                self.events(b, event, secret)), timeout, interval=0.1,
            what="%d %s event(s) for %s" % (n, event, secret))

    def rotate_async(self, b, name):
        """`credbroker rotate NAME` in a thread (it waits for the outcome);
        join() it to get rc, out, err."""
        res = {}

        def run():
            res["rc"], res["out"], res["err"] = b.cli("rotate", name,
                                                      timeout=60)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        res["join"] = lambda: (t.join(30), res)[1]
        return res

    def assert_status_prompt(self, b):
        """`credbroker status` answers at once, whatever hangs upstream."""
        t0 = time.monotonic()
        rc, out, err = b.cli("status")
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, (out, err))
        self.assertLess(took, 1.5, "status took %.2fs" % took)

    def sm_polls(self):
        return self.proxy_calls("secretsmanager.GetSecretValue")

    def proxy_calls(self, target):
        return [r for r in self.proxy.log()
                if (r.get("headers") or {}).get("X-Amz-Target") == target]

    # -- tests --

    def test_keys_appear_in_every_format_and_work(self):
        b = self.start_broker(self.aws_config([self.aws_secret("aws")]))
        b.wait_active("aws")
        files = self.read_creds(b, "aws")
        proc = json.loads(files["credential_process"])
        ini = parse_ini(files["credentials"])["default"]
        env = cbtest.parse_env(files["env"])
        self.assertEqual(proc["Version"], 1)
        self.assertTrue(proc["AccessKeyId"].startswith("ASIA"), proc)
        for a, b_ in ((ini["aws_access_key_id"], proc["AccessKeyId"]),
                      (ini["aws_secret_access_key"], proc["SecretAccessKey"]),
                      (ini["aws_session_token"], proc["SessionToken"]),
                      (env["AWS_ACCESS_KEY_ID"], proc["AccessKeyId"]),
                      (env["AWS_SECRET_ACCESS_KEY"], proc["SecretAccessKey"]),
                      (env["AWS_SESSION_TOKEN"], proc["SessionToken"]),
                      (env["AWS_CREDENTIAL_EXPIRATION"], proc["Expiration"]),
                      (env["AWS_REGION"], REGION)):
            self.assertEqual(a, b_)
        left = cbtest.iso_to_epoch(proc["Expiration"]) - time.time()
        self.assertTrue(0 < left <= SESSION_SECONDS + 1, left)
        lease = json.loads(files[".lease.json"])
        self.assertTrue(lease["lease_id"].startswith("sts:workspace/ws-test#"),
                        lease)
        self.assertNotIn(proc["AccessKeyId"], lease["lease_id"])
        # moto checks the signature (botocore's signer, the keys the
        # broker got) and the role's policy.
        me = self.client("sts", proc, via_proxy=True).get_caller_identity()
        self.assertIn("assumed-role/workspace/ws-test", me["Arn"])
        got = self.client("secretsmanager", proc).get_secret_value(
            SecretId="ws/db")
        self.assertIn(self.db_password, got["SecretString"])
        # The unsigned call carried the token file's contents.
        with open(self.token_file) as f:
            want = hashlib.sha256(f.read().strip().encode()).hexdigest()
        calls = self.sts_calls()
        self.assertTrue(calls)
        self.assertEqual({c["token_sha256"] for c in calls}, {want})
        self.assertEqual({c["role_arn"] for c in calls}, {ROLE})
        self.assertEqual(calls[-1]["duration_seconds"], 900)
        # Neither the keys nor the web-identity token in the broker's
        # environment or command line, or its children's (issue 6).
        with open(self.token_file) as f:
            token = f.read().strip()
        self.assert_no_secret_in_proc(b, [proc["SecretAccessKey"],
                                          proc["SessionToken"], token])

    def test_refresh_before_expiry_without_gap(self):
        """Keys live SESSION_SECONDS; a reader never sees expired keys nor
        an error while they are replaced at ~2/3 of their life, the old
        version stays readable, and a token file replaced mid-run is what
        the next exchange sends."""
        b = self.start_broker(self.aws_config([self.aws_secret("aws")]))
        b.wait_active("aws")
        new_token = None
        seen, errors, old_checked = {}, [], []
        end = time.time() + 2.2 * SESSION_SECONDS
        while time.time() < end:
            try:
                text = cbtest.read_file(b.path("aws", "credential_process"))
                d = json.loads(text)
            except (OSError, ValueError) as e:
                errors.append(repr(e))
                continue
            cbtest.record_password(d["AccessKeyId"])
            cbtest.record_password(d["SecretAccessKey"])
            cbtest.record_password(d["SessionToken"])
            self.assertGreater(cbtest.iso_to_epoch(d["Expiration"]),
                               time.time(), "expired keys served")
            if d["AccessKeyId"] not in seen and seen:
                # Just rotated: the superseded keys are still readable
                # under their ..vN/ and not expired.
                prev = int(os.readlink(b.path("aws", "..data"))[3:]) - 1
                old = self.read_creds(b, "aws", base=b.path(
                    "aws", "..v%d" % prev))
                old_checked.append(cbtest.iso_to_epoch(json.loads(
                    old["credential_process"])["Expiration"]) - time.time())
            seen.setdefault(d["AccessKeyId"], d["Expiration"])
            if new_token is None and len(seen) == 2:
                new_token = self.write_token(fake_jwt("rotated"))
            time.sleep(0.05)
        self.assertEqual(errors, [])
        self.assertGreaterEqual(len(seen), 3, seen)
        st = b.secret_status("aws")
        self.assertGreaterEqual(st["version"], 3)
        self.assertTrue(old_checked and min(old_checked) > 0, old_checked)
        want = hashlib.sha256(new_token.encode()).hexdigest()
        self.assertEqual(self.sts_calls()[-1]["token_sha256"], want)

    def test_secretsmanager_version_change_reaches_the_mount(self):
        b = self.start_broker(self.aws_config([self.sm_secret()]))
        b.wait_active("db")
        files = b.read_secret("db", files=["username", "password", "port",
                                           "SecretString", ".lease.json"])
        self.assertEqual(files["username"], "app")
        self.assertEqual(files["password"], self.db_password)
        self.assertEqual(files["port"], "5432")
        lease = json.loads(files[".lease.json"])
        self.assertTrue(lease["lease_id"].startswith("sm:ws/db@"), lease)
        version = b.secret_status("db")["version"]
        # Polled every second; unchanged: no new version.
        wait_until(lambda: len(self.sm_polls()) >= 4, 15, what="4 polls")
        self.assertEqual(b.secret_status("db")["version"], version)
        new_password = "sm2-" + os.urandom(12).hex()
        cbtest.record_password(new_password)
        self.client("secretsmanager").put_secret_value(
            SecretId="ws/db", SecretString=json.dumps(
                {"username": "app", "password": new_password}))
        wait_until(lambda: cbtest.read_file(b.path("db", "password"))
                   == new_password, 15, what="the new password")
        self.assertEqual(b.secret_status("db")["version"], version + 1)
        self.assertFalse(os.path.exists(b.path("db", "port")))
        self.restore_db_secret()

    def restore_db_secret(self):
        self.client("secretsmanager").put_secret_value(
            SecretId="ws/db", SecretString=json.dumps(
                {"username": "app", "password": self.db_password,
                 "port": 5432}))

    def test_kms_plaintext_only_in_the_mount(self):
        b = self.start_broker(self.aws_config([self.aws_secret(
            "key", {"kind": "kms", "ciphertext": self.kms_blob,
                    "encryption_context": {"app": "ws"},
                    "name": "api_key"}, refresh="1s")]))
        b.wait_active("key")
        self.assertEqual(cbtest.read_file(b.path("key", "api_key")),
                         self.kms_plain)
        # Re-decrypted every refresh, never republished.
        wait_until(lambda: len(self.proxy_calls("TrentService.Decrypt"))
                   >= 3, 15, what="3 decrypts")
        self.assertEqual(b.secret_status("key")["version"], 1)
        # On disk: only the ciphertext (config) — no file the test or the
        # broker wrote holds the plaintext.
        for root, _, names in os.walk(self.tmp):
            if root.startswith(self.mountpoint):
                continue
            for n in names:
                if not os.path.isfile(os.path.join(root, n)):
                    continue
                with open(os.path.join(root, n), "rb") as f:
                    self.assertNotIn(self.kms_plain.encode(), f.read(),
                                     os.path.join(root, n))
        # A wrong encryption context: KMS refuses, and the error says so.
        os.mkdir(self.mountpoint + "2", 0o755)
        b2 = self.start_broker(self.aws_config([self.aws_secret(
            "bad", {"kind": "kms", "ciphertext": self.kms_blob,
                    "encryption_context": {"app": "other"}})],
            mount={"path": self.mountpoint + "2", "readers": [0]},
            control={"socket": os.path.join(self.tmp, "c2.sock"),
                     "responders": [0]}), name="broker2")
        b2.wait_socket()
        wait_until(lambda: "TrentService.Decrypt" in (
            b2.secret_status("bad").get("last_error") or ""), 15,
            what="the decrypt error")
        self.assertNotEqual(b2.secret_status("bad")["state"], "active")

    def test_throttling_and_5xx_keep_the_last_good_value(self):
        b = self.start_broker(self.aws_config([self.sm_secret()]))
        b.wait_active("db")
        target = "secretsmanager.GetSecretValue"
        # Each wave: the faults, then recovery (failures back to 0), so the
        # backoff of one wave does not stretch the next.
        for preset, count in (("throttle_json", 2), ("http_503", 1),
                              ("http_500", 1)):
            self.proxy.reset(log=True)
            self.proxy.arm(preset, target=target, count=count)
            wait_until(lambda: len([r for r in self.proxy.log()
                                    if r.get("fault")]) >= count, 30,
                       what="%d faulted polls (%s)" % (count, preset))
            self.assertEqual(cbtest.read_file(b.path("db", "password")),
                             self.db_password)
            self.assertEqual(b.secret_status("db")["state"], "active")
            wait_until(lambda: b.secret_status("db")["failures"] == 0, 30,
                       what="recovery after %s" % preset)
        log = b.log_text()
        self.assertIn("400 ThrottlingException: Rate exceeded", log)
        self.assertIn("503", log)
        self.assertIn("retryable=yes", log)
        self.assertNotIn("retryable=no", log)
        self.assertEqual(b.secret_status("db")["version"], 1)

    def test_bad_signature_and_expired_session_are_reported(self):
        b = self.start_broker(self.aws_config([self.sm_secret()]))
        b.wait_active("db")
        target = "secretsmanager.GetSecretValue"
        # A body changed in flight: moto's real signature check fails, and
        # a refusal waits the backoff cap (rotate tries at once).
        self.proxy.arm("tamper", target=target, count=2)
        # (JSON services call it InvalidSignatureException.)
        wait_until(lambda: "InvalidSignatureException: The request "
                   "signature we calculated does not match" in (
                       b.secret_status("db").get("last_error") or ""), 20,
                   what="the signature refusal in status")
        self.assertIn("retryable=no", b.log_text())
        self.assertEqual(cbtest.read_file(b.path("db", "password")),
                         self.db_password)
        # One ExpiredTokenException: the broker assumes the role again and
        # the poll succeeds; two in a row: reported.
        self.proxy.reset(log=True)
        before = len(self.sts_calls())
        self.proxy.arm("expired_token_json", target=target, count=1)
        b.cli("rotate", "db")
        wait_until(lambda: len(self.sts_calls()) > before, 20,
                   what="a new session after ExpiredToken")
        self.proxy.arm("expired_token_json", target=target, count=2)
        b.cli("rotate", "db")
        wait_until(lambda: "ExpiredTokenException" in (
            b.secret_status("db").get("last_error") or ""), 20,
            what="ExpiredTokenException in status")
        self.assertEqual(cbtest.read_file(b.path("db", "password")),
                         self.db_password)

    def test_malformed_answers_are_refused_and_the_last_value_kept(self):
        """Garbage, a truncated body, a 10 MiB body and a plain-http
        redirect, on Secrets Manager and on STS: each is refused with a
        cause that names it, the broker keeps serving, and recovers."""
        b = self.start_broker(self.aws_config([self.sm_secret(),
                                               self.aws_secret("aws")]))
        b.wait_active("db")
        b.wait_active("aws")
        keys = self.read_creds(b, "aws")
        sm = "secretsmanager.GetSecretValue"
        cases = (("malformed", dict(target=sm, mode="garbage"), "db",
                  "secretsmanager: response is not a JSON object"),
                 ("malformed", dict(target=sm, mode="huge"), "db",
                  "response body larger than 1048576 bytes"),
                 ("redirect", dict(target=sm), "db", "307"),
                 ("malformed", dict(action="AssumeRoleWithWebIdentity",
                                    mode="truncate"), "aws",
                  "sts: response"),
                 ("malformed", dict(action="AssumeRoleWithWebIdentity",
                                    mode="garbage"), "aws",
                  "sts: response"))
        for kind, opts, name, cause in cases:
            self.proxy.reset(log=True)
            self.proxy.arm(kind, count=1, **opts)
            # The fault hits the next request, the rotation's or a poll's.
            b.cli("rotate", name)
            wait_until(lambda: [ln for ln in b.log_text().splitlines()
                                if "event=issue_failed secret=%s " % name
                                in ln and cause in ln], 20,
                       what="%r in %s's failure" % (cause, name))
            self.assertTrue(b.alive())
            self.assertEqual(b.secret_status(name)["state"], "active")
        self.assertEqual(cbtest.read_file(b.path("db", "password")),
                         self.db_password)
        self.assertNotIn("redirect-followed",
                         [r.get("fault") for r in self.proxy.log()])
        # (The STS faults may hit the broker's own session instead, so the
        # keys may have been replaced meanwhile: they must still be valid.)
        keys = self.read_creds(b, "aws")
        self.assertGreater(cbtest.iso_to_epoch(json.loads(
            keys["credential_process"])["Expiration"]), time.time())
        # Fault gone: the next try gets new keys.
        b.cli("rotate", "aws")
        wait_until(lambda: b.secret_status("aws")["failures"] == 0, 20,
                   what="recovery")
        self.read_creds(b, "aws")

    def test_revoke_drops_the_keys_and_says_what_to_do(self):
        b = self.start_broker(self.aws_config([self.aws_secret("aws"),
                                               self.aws_secret("aws2")]))
        b.wait_active("aws")
        b.wait_active("aws2")
        self.read_creds(b, "aws")
        self.read_creds(b, "aws2")
        rc, out, err = b.cli("revoke", "aws2", "--reason", "test")
        self.assertEqual(rc, 0, (out, err))
        self.assertFalse(os.path.exists(b.path("aws2", "credentials")))
        self.assertEqual(b.secret_status("aws2")["state"], "frozen")
        # --verify cannot prove STS keys dead: exit 3, and the record
        # names the account-side step with the time to use.
        rc, out, err = b.cli("revoke", "aws", "--reason", "test",
                             "--verify")
        self.assertEqual(rc, 3, (out, err))
        lease = out["revoked"][0]["leases"][0]
        self.assertFalse(lease["verified"]["ok"])
        self.assertIn("aws:TokenIssueTime before",
                      lease["verified"]["detail"])
        self.assertFalse(os.path.exists(b.path("aws", "credentials")))
        # The advised cut-off covers the revoked keys: it is no earlier
        # than the STS call that issued them (STS stamps TokenIssueTime
        # when it answers, after the broker noted its issue time), and a
        # whole second, as a policy condition takes it.
        when = re.search(r"aws:TokenIssueTime before (\S+Z)",
                         lease["verified"]["detail"]).group(1)
        self.assertRegex(when, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        last_sts = max(c["time"] for c in self.sts_calls())
        self.assertGreaterEqual(cbtest.iso_to_epoch(when), last_sts)
        self.assertLessEqual(cbtest.iso_to_epoch(when), time.time() + 1)

    # -- faults and incident response --

    def test_duration_is_what_sts_is_asked(self):
        """duration is asked of STS, but never past the secret's max_ttl
        (keys AWS cannot revoke must not outlive the lease)."""
        long_ = self.app_secret(duration="30m")
        long_["max_ttl"] = "1h"
        capped = self.app_secret("capped", duration="30m")
        capped["aws"]["role_session_name"] = "capped-keys"
        capped["max_ttl"] = "20m"
        b = self.start_broker(self.aws_config([long_, capped]))
        for name, session, want in (("aws", "app-keys", 1800),
                                    ("capped", "capped-keys", 1200)):
            b.wait_active(name)
            self.read_creds(b, name)
            calls = [c for c in self.sts_calls()
                     if c["role_session_name"] == session]
            self.assertEqual(calls[-1]["duration_seconds"], want, name)

    def test_denied_session_assumes_the_role_again(self):
        """A responder's deny on aws:TokenIssueTime refuses the broker's own
        session too: one AccessDenied makes it assume the role again and
        the poll goes through, with no failure and no 40-minute wait."""
        b = self.start_broker(self.aws_config([self.sm_secret()]))
        b.wait_active("db")
        before = len(self.sts_calls())
        self.proxy.arm("status", target=SM_TARGET, count=1, status=400,
                       headers={"Content-Type": "application/x-amz-json-1.1"},
                       body=DENIED_JSON)
        wait_until(lambda: [r for r in self.proxy.log()
                            if r.get("fault") == "status"], 15,
                   what="the denied poll")
        wait_until(lambda: len(self.sts_calls()) > before, 15,
                   what="a new session after AccessDenied")
        n = len(self.sm_polls())
        wait_until(lambda: len(self.sm_polls()) >= n + 2, 15,
                   what="polls after the new session")
        self.assertEqual(self.events(b, "issue_failed", "db"), [])
        st = b.secret_status("db")
        self.assertEqual((st["state"], st["failures"]), ("active", 0), st)
        self.assertEqual(cbtest.read_file(b.path("db", "password")),
                         self.db_password)

    def test_timeouts_keep_the_value_and_status_answers(self):
        """A Secrets Manager poll and an STS call that hang past
        request_timeout (3 s): each is cut and logged as a timeout, the
        last value stays served, status answers at once meanwhile."""
        b = self.start_broker(self.aws_config([self.sm_secret(),
                                               self.app_secret()]))
        b.wait_active("db")
        b.wait_active("aws")
        keys = self.read_creds(b, "aws")
        self.proxy.arm("delay", target=SM_TARGET, count=1, seconds=6)
        wait_until(lambda: [r for r in self.proxy.log()
                            if r.get("fault") == "delay"], 10,
                   what="the delayed poll")
        self.assert_status_prompt(b)
        ev = self.wait_events(b, "issue_failed", "db", 1, 10)[0]
        self.assertEqual(int(ev["errno"]), errno.ETIMEDOUT, ev)
        self.assertEqual(ev["retryable"], "yes", ev)
        self.assertEqual(cbtest.read_file(b.path("db", "password")),
                         self.db_password)
        # STS: the app's keys' exchange hangs.
        self.proxy.arm("delay", action="AssumeRoleWithWebIdentity",
                       body_contains="RoleSessionName=app-keys", count=1,
                       seconds=6)
        rot = self.rotate_async(b, "aws")
        time.sleep(1)
        self.assert_status_prompt(b)
        self.assertEqual(self.read_creds(b, "aws")["credential_process"],
                         keys["credential_process"])
        ev = self.wait_events(b, "issue_failed", "aws", 1, 10)[0]
        self.assertEqual(int(ev["errno"]), errno.ETIMEDOUT, ev)
        self.assertIn("AssumeRoleWithWebIdentity", ev["error"])
        self.assertNotEqual(rot["join"]()["rc"], 0)
        self.assertEqual(self.read_creds(b, "aws")["credential_process"],
                         keys["credential_process"])
        self.assertTrue(b.alive())

    def test_sts_throttling_and_429_are_retried(self):
        b = self.start_broker(self.aws_config([self.app_secret()]))
        b.wait_active("aws")
        keys = self.read_creds(b, "aws")
        match = dict(action="AssumeRoleWithWebIdentity",
                     body_contains="RoleSessionName=app-keys", count=1)
        for i, (preset, cause) in enumerate((
                ("throttle_xml", "400 Throttling: Rate exceeded"),
                ("http_429", "429"))):
            self.proxy.arm(preset, **match)
            rc, out, err = b.cli("rotate", "aws")
            self.assertNotEqual(rc, 0, (out, err))
            ev = self.wait_events(b, "issue_failed", "aws", i + 1, 10)[i]
            self.assertIn(cause, ev["error"])
            self.assertIn("AssumeRoleWithWebIdentity", ev["error"])
            self.assertEqual(ev["retryable"], "yes", ev)
            self.assertEqual(self.read_creds(b, "aws")["credential_process"],
                             keys["credential_process"])
        rc, out, err = b.cli("rotate", "aws")
        self.assertEqual(rc, 0, (out, err))
        self.assertNotEqual(self.read_creds(b, "aws")["credential_process"],
                            keys["credential_process"])

    def test_retry_delays_grow_across_failures(self):
        b = self.start_broker(self.aws_config([self.sm_secret()]))
        b.wait_active("db")
        self.proxy.arm("http_503", target=SM_TARGET, count=3)
        ev = self.wait_events(b, "issue_failed", "db", 3, 20)[:3]
        self.proxy.reset()
        delays = [int(e["retry_in_ms"]) for e in ev]
        cbtest.log("retry delays: %r" % delays)
        # Exponential with equal jitter: 1-2 s, 2-4 s, 4-8 s.
        for d, (lo, hi) in zip(delays, ((1000, 2000), (2000, 4000),
                                        (4000, 8000))):
            self.assertTrue(lo <= d <= hi, delays)
        self.assertEqual([int(e["attempt"]) for e in ev], [1, 2, 3])
        self.assertEqual(cbtest.read_file(b.path("db", "password")),
                         self.db_password)
        rc, out, err = b.cli("rotate", "db")
        self.assertEqual(rc, 0, (out, err))
        self.assertEqual(b.secret_status("db")["failures"], 0)

    def test_bad_web_identity_token_is_reported(self):
        """STS refusing the projected token (not the one it trusts; past
        its expiry) says so, naming the token file; the keys stay."""
        b = self.start_broker(self.aws_config([self.app_secret()]))
        b.wait_active("aws")
        keys = self.read_creds(b, "aws")
        other = os.path.join(self.tmp, "other-token")
        with open(other, "w") as f:
            f.write(fake_jwt("someone-else"))
        self.moto.config(token_file=other)
        try:
            rc, out, err = b.cli("rotate", "aws")
        finally:
            self.moto.config(token_file=self.token_file)
        self.assertNotEqual(rc, 0, (out, err))
        st = b.secret_status("aws")
        self.assertIn("400 InvalidIdentityToken", st["last_error"])
        self.assertIn("the web-identity token in %s was refused"
                      % self.token_file, st["last_error"])
        self.proxy.arm("status", action="AssumeRoleWithWebIdentity",
                       body_contains="RoleSessionName=app-keys", count=1,
                       status=400, headers={"Content-Type": "text/xml"},
                       body=STS_EXPIRED_JWT)
        rc, out, err = b.cli("rotate", "aws")
        self.assertNotEqual(rc, 0, (out, err))
        st = b.secret_status("aws")
        self.assertIn("400 ExpiredTokenException: Token expired",
                      st["last_error"])
        self.assertIn(self.token_file, st["last_error"])
        self.assertEqual(self.read_creds(b, "aws")["credential_process"],
                         keys["credential_process"])

    def test_revoke_all_then_unfreeze(self):
        """revoke --all drops every value and the broker's own session (no
        call to AWS while frozen); unfreeze assumes the role again and
        brings the values back."""
        b = self.start_broker(self.aws_config([self.sm_secret(),
                                               self.app_secret()]))
        b.wait_active("db")
        b.wait_active("aws")
        keys = self.read_creds(b, "aws")
        rc, out, err = b.cli("revoke", "--all", "--reason", "e2e")
        self.assertEqual(rc, 0, (out, err))
        for name, f in (("db", "password"), ("aws", "credentials")):
            self.assertFalse(os.path.exists(b.path(name, f)))
            self.assertEqual(b.secret_status(name)["state"], "frozen")
        n_sts, n_log = len(self.moto.calls()), len(self.proxy.log())
        time.sleep(2.5)   # two refresh periods of db
        self.assertEqual(len(self.moto.calls()), n_sts, "STS while frozen")
        self.assertEqual(self.proxy.log()[n_log:], [], "AWS while frozen")
        for name in ("db", "aws"):
            rc, out, err = b.cli("unfreeze", name)
            self.assertEqual(rc, 0, (out, err))
        b.wait_active("db", min_version=2)
        b.wait_active("aws", min_version=2)
        self.assertEqual(cbtest.read_file(b.path("db", "password")),
                         self.db_password)
        self.assertNotEqual(self.read_creds(b, "aws")["credential_process"],
                            keys["credential_process"])
        self.assertGreater(len(self.moto.calls()), n_sts)

    def test_secret_binary_and_long_names_through_the_mount(self):
        """SecretBinary arrives as raw bytes; a 512-character name (AWS's
        maximum) works, its lease id a digest form that fits."""
        marker = "bin-" + os.urandom(8).hex()
        cbtest.record_password(marker)
        raw = b"\x00\xff\x80" + marker.encode() + b"\n\x01"
        long_name = "ws/" + "n" * 509
        long_value = "long-" + os.urandom(8).hex()
        cbtest.record_password(long_value)
        sm = self.client("secretsmanager")
        sm.create_secret(Name="ws/bin", SecretBinary=raw)
        sm.create_secret(Name=long_name, SecretString=long_value)
        b = self.start_broker(self.aws_config([
            self.aws_secret("bin", {"kind": "secretsmanager",
                                    "secret_id": "ws/bin"}, refresh="1s"),
            self.aws_secret("long", {"kind": "secretsmanager",
                                     "secret_id": long_name},
                            refresh="1s")]))
        b.wait_active("bin")
        b.wait_active("long")
        with open(b.path("bin", "SecretBinary"), "rb") as f:
            self.assertEqual(f.read(), raw)
        self.assertEqual(cbtest.read_file(b.path("long", "SecretString")),
                         long_value)
        lease = b.lease("long")["lease_id"]
        self.assertTrue(lease.startswith("sm:" + long_name[:32] + "~"),
                        lease)
        self.assertLess(len(lease), 128)
        # Polled again, unchanged: the same version (the digest is stable).
        n = len(self.sm_polls())
        wait_until(lambda: len(self.sm_polls()) >= n + 4, 15,
                   what="more polls")
        self.assertEqual(b.secret_status("long")["version"], 1)
        self.assertEqual(b.secret_status("bin")["version"], 1)


if __name__ == "__main__":
    cbtest.main()
