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
import hashlib
import json
import os
import sys
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
    """Every secret value in a {file: text} dict joins the leak check."""
    for name, text in files.items():
        if name == "credential_process" and text:
            d = json.loads(text)
            cbtest.record_password(d.get("SecretAccessKey"))
            cbtest.record_password(d.get("SessionToken"))
        elif name in ("env",) and text:
            env = cbtest.parse_env(text)
            for k in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
                cbtest.record_password(env.get(k))


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


if __name__ == "__main__":
    cbtest.main()
