#!/usr/bin/env python3
"""motosim.py and faultproxy.py checked with a client no one here wrote:
botocore/boto3, from the Python that ships moto (pyenv 3.11).

motosim (moto 5.2.1 in-process, plain HTTP) runs behind faultproxy (TLS
with a throwaway CA from testca.py); boto3 talks to the proxy with
verify=<CA>.  Roles, policies, a secret and a KMS key are made while moto's
auth is off, then POST /moto-api/reset-auth "0" turns SigV4 and IAM checks
on.  Every test starts with no fault armed.  At the end every log (the
proxy's request log and stderr, motosim's stderr) is searched for every
credential, token and secret the tests saw: a hit fails the class.
"""

import email.utils
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from faultproxy import FaultProxy  # noqa: E402
from motosim import MOTO_REQUIRED, MotoSim  # noqa: E402
from testca import TestPki  # noqa: E402

try:
    import boto3
    import botocore
    import botocore.exceptions as bex
    from botocore.config import Config
    from botocore.parsers import ResponseParserError
    import moto  # noqa: F401 -- motosim runs it in this same interpreter
    MISSING = None
except ImportError as e:  # pragma: no cover
    MISSING = str(e)

for _k in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
           "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
           "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
           "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
    os.environ.pop(_k, None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

ACCOUNT = "123456789012"
REGION = "us-east-1"
CAP = 20                  # motosim --max-session-seconds for the class
OIDC = "arn:aws:iam::%s:oidc-provider/oidc.example.test" % ACCOUNT


def role_arn(name):
    return "arn:aws:iam::%s:role/%s" % (ACCOUNT, name)


def trust_policy():
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Federated": OIDC},
        "Action": "sts:AssumeRoleWithWebIdentity"}]})


def allow(*actions):
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": list(actions), "Resource": "*"}]})


def code_of(err):
    return err.response["Error"]["Code"], \
        err.response["ResponseMetadata"]["HTTPStatusCode"]


class FaultProxyMotoTest(unittest.TestCase):
    sim = fp = tmp = None
    seen = set()           # every credential / secret the tests handled

    @classmethod
    def setUpClass(cls):
        if MISSING:
            raise AssertionError("%s: %s" % (MOTO_REQUIRED, MISSING))
        cls.tmp = tempfile.mkdtemp(prefix="cb-fpmoto-")
        try:
            cls._start()
        except BaseException:
            cls._stop()
            raise

    @classmethod
    def _start(cls):
        cls.pki = TestPki(os.path.join(cls.tmp, "pki"))
        now = int(time.time())
        cls.token = cls.pki.sign_jwt({
            "iss": "https://oidc.example.test", "sub": "system:serviceaccount"
            ":ns:app", "aud": "sts.amazonaws.com", "iat": now,
            "exp": now + 3600})
        cls.token_file = os.path.join(cls.tmp, "token")
        fd = os.open(cls.token_file, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(cls.token + "\n")
        cls.secret = "s3cr3t-" + secrets.token_urlsafe(24)
        cls.plain = ("kms-plain-" + secrets.token_urlsafe(24)).encode()
        cls.seen.update({cls.token, cls.secret, cls.plain.decode()})
        cls.logs = {n: os.path.join(cls.tmp, n) for n in (
            "motosim.stderr", "proxy.stderr", "proxy.jsonl")}
        cls.sim = MotoSim.start(token_file=cls.token_file,
                                max_session_seconds=CAP,
                                stderr_path=cls.logs["motosim.stderr"])
        cls.fp = FaultProxy.start(cls.pki.server_cert, cls.pki.server_key,
                                  cls.sim.url,
                                  log_file=cls.logs["proxy.jsonl"],
                                  stderr_path=cls.logs["proxy.stderr"])
        admin = dict(aws_access_key_id="AKIAADMINEXAMPLE",
                     aws_secret_access_key="admin-secret-unused")
        iam = cls.client("iam", admin)
        iam.create_role(RoleName="reader", MaxSessionDuration=43200,
                        AssumeRolePolicyDocument=trust_policy())
        iam.put_role_policy(RoleName="reader", PolicyName="read",
                            PolicyDocument=allow(
                                "secretsmanager:GetSecretValue",
                                "kms:Decrypt"))
        iam.create_role(RoleName="nokms",
                        AssumeRolePolicyDocument=trust_policy())
        iam.put_role_policy(RoleName="nokms", PolicyName="read",
                            PolicyDocument=allow(
                                "secretsmanager:GetSecretValue"))
        cls.client("secretsmanager", admin).create_secret(
            Name="app/db", SecretString=cls.secret)
        kms = cls.client("kms", admin)
        key = kms.create_key(Description="cb test")["KeyMetadata"]["KeyId"]
        cls.blob = kms.encrypt(KeyId=key, Plaintext=cls.plain)[
            "CiphertextBlob"]
        cls.sim.reset_auth(0)

    @classmethod
    def tearDownClass(cls):
        log_text = ""
        if cls.fp is not None:
            try:
                log_text = "".join(json.dumps(e) for e in cls.fp.log())
            except Exception as e:  # noqa: BLE001 -- reported below
                log_text = "(GET /log failed: %r)" % e
        cls._stop()
        try:
            texts = {"GET /log": log_text}
            for name, path in cls.logs.items():
                with open(path, errors="replace") as f:
                    texts[name] = f.read()
            hits = [(name, s[:6] + "...") for name, text in texts.items()
                    for s in cls.seen if s and s in text]
            sys.stderr.write("leak check: %d values, %d logs, %d hits\n" % (
                len(cls.seen), len(texts), len(hits)))
            if hits:
                raise AssertionError("secrets found in logs: %r" % hits)
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def _stop(cls):
        for srv in (cls.fp, cls.sim):
            if srv is not None:
                srv.stop()

    def setUp(self):
        self.fp.reset()

    def tearDown(self):
        self.fp.reset()

    # -- clients --

    @classmethod
    def _note_request(cls, request, **kwargs):
        for h in ("Authorization", "X-Amz-Security-Token"):
            v = request.headers.get(h)
            if v:
                v = v.decode() if isinstance(v, bytes) else v
                cls.seen.add(v)
                if "Signature=" in v:
                    cls.seen.add(v.split("Signature=")[1])

    @classmethod
    def client(cls, service, creds=None, attempts=1, **config):
        """A boto3 client through the proxy, verifying its CA; creds a
        dict of boto3 keyword arguments or an STS Credentials dict."""
        if creds and "AccessKeyId" in creds:
            creds = dict(aws_access_key_id=creds["AccessKeyId"],
                         aws_secret_access_key=creds["SecretAccessKey"],
                         aws_session_token=creds["SessionToken"])
        creds = creds or dict(aws_access_key_id="AKIANOBODYEXAMPLE",
                              aws_secret_access_key="unused")
        for k in ("aws_secret_access_key", "aws_session_token"):
            if creds.get(k):
                cls.seen.add(creds[k])
        cfg = dict(connect_timeout=5, read_timeout=10,
                   retries={"total_max_attempts": attempts,
                            "mode": "standard"})
        cfg.update(config)
        c = boto3.session.Session().client(
            service, region_name=REGION, endpoint_url=cls.fp.url,
            verify=cls.pki.ca_cert, config=Config(**cfg), **creds)
        c.meta.events.register("before-send", cls._note_request)
        return c

    def assume(self, role="reader", duration=3600, token=None, **config):
        sts = self.client("sts", **config)
        kw = dict(RoleArn=role_arn(role), RoleSessionName="app1",
                  WebIdentityToken=token or self.token)
        if duration is not None:
            kw["DurationSeconds"] = duration
        return sts.assume_role_with_web_identity(**kw)

    def creds(self, role="reader"):
        return self.assume(role)["Credentials"]

    def get_secret(self, creds=None, **config):
        sm = self.client("secretsmanager", creds or self.creds(), **config)
        return sm.get_secret_value(SecretId="app/db")

    def entries(self, since, **match):
        return [e for e in self.fp.log(since)
                if all(e.get(k) == v for k, v in match.items())]

    def mark(self):
        log = self.fp.log()
        return log[-1]["seq"] if log else 0

    def assertClientError(self, code, status, fn, *args, **kw):
        with self.assertRaises(bex.ClientError) as cm:
            fn(*args, **kw)
        self.assertEqual(code_of(cm.exception), (code, status))
        return cm.exception

    # -- motosim: web identity, caps, IAM, expiry --

    def test_web_identity_unsigned_succeeds_and_is_capped(self):
        since = self.mark()
        t0 = time.time()
        r = self.assume(duration=3600)
        exp = r["Credentials"]["Expiration"].timestamp()
        self.assertGreater(exp, t0 + CAP - 3)
        self.assertLess(exp, t0 + CAP + 3, "Expiration not capped")
        self.assertTrue(r["Credentials"]["AccessKeyId"].startswith("ASIA"))
        e = self.entries(since, action="AssumeRoleWithWebIdentity")[-1]
        self.assertFalse(e["present"]["Authorization"], "boto3 signed it")
        self.assertIn("WebIdentityToken", e["form_fields"])
        self.assertEqual(e["status"], 200)
        call = self.sim.calls()[-1]
        self.assertEqual(call["token_sha256"],
                         hashlib.sha256(self.token.encode()).hexdigest())
        self.assertEqual((call["role_arn"], call["role_session_name"],
                          call["duration_seconds"], call["status"]),
                         (role_arn("reader"), "app1", 3600, 200))
        self.assertNotIn(self.token, json.dumps(self.sim.calls()))

    def test_web_identity_wrong_token_is_invalid_identity_token(self):
        other = self.pki.sign_jwt({"sub": "someone-else"})
        self.seen.add(other)
        err = self.assertClientError("InvalidIdentityToken", 400,
                                     self.assume, token=other)
        self.assertIn("verification key", err.response["Error"]["Message"])
        call = self.sim.calls()[-1]
        self.assertEqual((call["status"], call["error"]),
                         (400, "InvalidIdentityToken"))
        self.assertEqual(call["token_sha256"],
                         hashlib.sha256(other.encode()).hexdigest())

    def test_web_identity_validation_like_aws(self):
        kw = dict(parameter_validation=False)
        for d in (899, 43201):
            self.assertClientError("ValidationError", 400, self.assume,
                                   duration=d, **kw)
        err = self.assertClientError("ValidationError", 400, self.assume,
                                     role="nokms", duration=7200)
        self.assertIn("MaxSessionDuration", err.response["Error"]["Message"])
        self.assertClientError("AccessDenied", 403, self.assume,
                               role="no-such-role")
        # The cap shortens a long grant the role allows.
        exp = self.assume(duration=43200)["Credentials"]["Expiration"]
        self.assertLess(exp.timestamp(), time.time() + CAP + 3)

    def test_role_policy_allows_secret_and_decrypt(self):
        creds = self.creds("reader")
        self.assertEqual(self.get_secret(creds)["SecretString"], self.secret)
        kms = self.client("kms", creds)
        self.assertEqual(kms.decrypt(CiphertextBlob=self.blob)["Plaintext"],
                         self.plain)
        ident = self.client("sts", creds).get_caller_identity()
        self.assertIn(":assumed-role/reader/app1", ident["Arn"])

    def test_role_policy_denies_what_it_does_not_allow(self):
        creds = self.creds("nokms")
        self.assertEqual(self.get_secret(creds)["SecretString"], self.secret)
        kms = self.client("kms", creds)
        err = self.assertClientError("AccessDeniedException", 400,
                                     kms.decrypt, CiphertextBlob=self.blob)
        self.assertIn("kms:Decrypt", err.response["Error"]["Message"])
        # An unknown access key, as AWS's JSON services say it.
        bogus = dict(creds, AccessKeyId="ASIA" + "Z" * 16)
        self.assertClientError("UnrecognizedClientException", 400,
                               self.get_secret, bogus)

    def test_unsigned_request_is_refused(self):
        unsigned = dict(signature_version=botocore.UNSIGNED)
        sm = self.client("secretsmanager", **unsigned)
        self.assertClientError("MissingAuthenticationTokenException", 400,
                               sm.get_secret_value, SecretId="app/db")
        sts = self.client("sts", **unsigned)
        self.assertClientError("MissingAuthenticationToken", 403,
                               sts.get_caller_identity)

    def test_expired_session_is_rejected(self):
        self.sim.config(max_session_seconds=2)
        try:
            creds = self.creds()
        finally:
            self.sim.config(max_session_seconds=CAP)
        self.assertEqual(self.get_secret(creds)["SecretString"], self.secret)
        left = creds["Expiration"].timestamp() - time.time()
        self.assertLess(left, 3)
        time.sleep(max(0, left) + 0.3)
        self.assertClientError("ExpiredTokenException", 400,
                               self.get_secret, creds)
        self.assertClientError("ExpiredToken", 400,
                               self.client("sts", creds).get_caller_identity)
        # A fresh session works again.
        self.assertEqual(self.get_secret()["SecretString"], self.secret)

    # -- faultproxy faults --

    def test_tamper_breaks_the_signature(self):
        creds = self.creds()
        self.fp.arm("tamper", target="secretsmanager.GetSecretValue",
                    count=1)
        # moto's SignatureDoesNotMatch, in AWS's JSON shape for JSON APIs.
        self.assertClientError("InvalidSignatureException", 400,
                               self.get_secret, creds)
        self.fp.arm("tamper", action="GetCallerIdentity", count=1)
        sts = self.client("sts", creds)
        bodies = []
        sts.meta.events.register(
            "before-parse", lambda response_dict, **kw: bodies.append(
                response_dict["body"]))
        self.assertClientError("SignatureDoesNotMatch", 403,
                               sts.get_caller_identity)
        # moto's XML reshaped as STS answers: ErrorResponse/Error.
        self.assertIn(b'<ErrorResponse xmlns="https://sts.amazonaws.com/'
                      b'doc/2011-06-15/">', bodies[-1])
        self.assertNotIn(b"<Errors>", bodies[-1])
        # count=1: the next ones pass.
        self.assertEqual(self.get_secret(creds)["SecretString"], self.secret)
        sts.get_caller_identity()

    def test_throttle_json_counts_and_retries(self):
        creds = self.creds()
        since = self.mark()
        self.fp.arm("throttle_json", target="secretsmanager.GetSecretValue",
                    count=2)
        got = self.get_secret(creds, attempts=3)
        self.assertEqual(got["SecretString"], self.secret)
        faults = [e["fault"] for e in self.entries(
            since, path="/")
            if e["headers"].get("X-Amz-Target") ==
            "secretsmanager.GetSecretValue"]
        self.assertEqual(faults, ["throttle_json", "throttle_json", None])
        self.fp.arm("throttle_json", target="secretsmanager.GetSecretValue")
        err = self.assertClientError("ThrottlingException", 400,
                                     self.get_secret, creds)
        self.assertEqual(err.response["Error"]["Message"], "Rate exceeded")

    def test_throttle_xml_and_expired_token_presets(self):
        n = len(self.sim.calls())
        self.fp.arm("throttle_xml", action="AssumeRoleWithWebIdentity")
        self.assertClientError("Throttling", 400, self.assume)
        self.assertEqual(len(self.sim.calls()), n, "forwarded anyway")
        self.fp.reset()
        creds = self.creds()
        self.fp.arm("expired_token_json", target="TrentService.Decrypt")
        self.assertClientError("ExpiredTokenException", 400,
                               self.client("kms", creds).decrypt,
                               CiphertextBlob=self.blob)

    def test_http_5xx(self):
        creds = self.creds()
        for kind, status in (("http_500", 500), ("http_503", 503),
                             ("http_429", 429)):
            self.fp.arm(kind, count=1)
            with self.assertRaises(bex.ClientError) as cm:
                self.get_secret(creds)
            self.assertEqual(cm.exception.response["ResponseMetadata"]
                             ["HTTPStatusCode"], status)
        self.fp.arm("status", status=502, body="bad gateway", count=1,
                    headers={"Content-Type": "text/plain"})
        with self.assertRaises(bex.ClientError) as cm:
            self.get_secret(creds)
        self.assertEqual(cm.exception.response["ResponseMetadata"]
                         ["HTTPStatusCode"], 502)

    def test_delay(self):
        creds = self.creds()
        self.fp.arm("delay", seconds=2, count=1)
        with self.assertRaises(bex.ReadTimeoutError):
            self.get_secret(creds, read_timeout=0.5)
        self.fp.arm("delay", seconds=0.5, count=1)
        t0 = time.monotonic()
        self.assertEqual(self.get_secret(creds)["SecretString"], self.secret)
        self.assertGreaterEqual(time.monotonic() - t0, 0.5)

    def test_trickle(self):
        creds = self.creds()
        self.fp.arm("trickle", seconds=3, count=1)
        with self.assertRaises(bex.ReadTimeoutError):
            self.get_secret(creds, read_timeout=1)
        since = self.mark()
        self.fp.arm("trickle", seconds=0.001, count=1)
        t0 = time.monotonic()
        self.assertEqual(self.get_secret(creds)["SecretString"], self.secret)
        e = self.entries(since, fault="trickle")[-1]
        self.assertGreater(e["response_bytes"], 100)
        self.assertGreaterEqual(time.monotonic() - t0,
                                e["response_bytes"] * 0.001)

    def test_drop(self):
        creds = self.creds()
        closed = (bex.ConnectionClosedError, bex.HTTPClientError,
                  bex.ConnectionError)
        for opts in ({}, {"reset": True}):
            self.fp.arm("drop", count=1, **opts)
            with self.assertRaises(closed):
                self.get_secret(creds)
        # Forwarded, then dropped: the upstream acted, the client saw none.
        n = len(self.sim.calls())
        self.fp.arm("drop", forward=True, action="AssumeRoleWithWebIdentity",
                    count=1)
        with self.assertRaises(closed):
            self.assume()
        self.assertEqual(len(self.sim.calls()), n + 1)

    def test_malformed(self):
        creds = self.creds()
        self.fp.arm("malformed", action="AssumeRoleWithWebIdentity", count=1)
        with self.assertRaises(ResponseParserError):
            self.assume()
        for mode in ("garbage", "truncate", "empty"):
            self.fp.arm("malformed", mode=mode, count=1,
                        target="secretsmanager.GetSecretValue")
            # botocore fails to decode the garbage (UnicodeDecodeError) and
            # turns a cut or empty JSON 200 into a result without fields.
            try:
                got = self.get_secret(creds)
            except (ResponseParserError, UnicodeDecodeError):
                continue
            self.assertNotIn("SecretString", got, mode)
        self.fp.arm("malformed", mode="short", count=1)
        with self.assertRaises(Exception) as cm:
            self.get_secret(creds)
        self.assertNotIsInstance(cm.exception, AssertionError)

    def test_malformed_huge(self):
        creds = self.creds()
        for chunked in (False, True):
            since = self.mark()
            self.fp.arm("malformed", mode="huge", chunked=chunked, count=1,
                        target="secretsmanager.GetSecretValue")
            got = self.get_secret(creds, read_timeout=30)
            self.assertEqual(got["SecretString"], self.secret)
            e = self.entries(since, fault="malformed")[-1]
            self.assertEqual(e["response_bytes"], 10 << 20)
            hdrs = got["ResponseMetadata"]["HTTPHeaders"]
            if chunked:
                self.assertEqual(hdrs.get("transfer-encoding"), "chunked")
            else:
                self.assertEqual(hdrs.get("content-length"), str(10 << 20))

    def test_skew(self):
        creds = self.creds()
        self.fp.arm("skew", seconds=-3600, count=1)
        got = self.get_secret(creds)
        date = email.utils.parsedate_to_datetime(
            got["ResponseMetadata"]["HTTPHeaders"]["date"]).timestamp()
        self.assertAlmostEqual(date, time.time() - 3600, delta=30)
        got = self.get_secret(creds)
        date = email.utils.parsedate_to_datetime(
            got["ResponseMetadata"]["HTTPHeaders"]["date"]).timestamp()
        self.assertAlmostEqual(date, time.time(), delta=30)

    def test_redirect_is_not_followed(self):
        creds = self.creds()
        since = self.mark()
        self.fp.arm("redirect", count=1)
        with self.assertRaises(bex.ClientError) as cm:
            self.get_secret(creds)
        meta = cm.exception.response["ResponseMetadata"]
        self.assertEqual(meta["HTTPStatusCode"], 307)
        loc = meta["HTTPHeaders"]["location"]
        self.assertTrue(loc.startswith("http://127.0.0.1:"), loc)
        self.assertEqual(self.entries(since, fault="redirect-followed"), [])
        # The default Location is live, so the check above means something.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(loc, timeout=10) as r:
            self.assertEqual(r.status, 200)
        self.assertEqual(len(self.entries(since, fault="redirect-followed")),
                         1)
        self.fp.arm("redirect", status=302, location="http://example.test/",
                    count=1)
        with self.assertRaises(bex.ClientError) as cm:
            self.get_secret(creds)
        self.assertEqual(code_of(cm.exception)[1], 302)

    def test_after_and_predicates(self):
        creds = self.creds()
        since = self.mark()
        fid = self.fp.arm("http_503", target="secretsmanager.GetSecretValue",
                          after=1, count=1)
        self.fp.arm("http_500", method="GET")           # never matches
        self.fp.arm("http_500", body_contains="no-such-text")
        self.get_secret(creds)                          # let through
        with self.assertRaises(bex.ClientError):
            self.get_secret(creds)                      # the one 503
        self.get_secret(creds)                          # count used up
        armed = {f["id"]: f for f in self.fp.faults()}
        self.assertEqual((armed[fid]["seen"], armed[fid]["applied"]), (3, 1))
        self.fp.disarm(fid)
        self.assertNotIn(fid, [f["id"] for f in self.fp.faults()])
        self.assertEqual([e["fault"] for e in self.entries(since)],
                         [None, "http_503", None])

    def test_log_records_names_not_values(self):
        since = self.mark()
        creds = self.creds()
        self.get_secret(creds)
        log = self.fp.log(since)
        sts = [e for e in log if e["action"] == "AssumeRoleWithWebIdentity"]
        sm = [e for e in log if e["headers"].get("X-Amz-Target") ==
              "secretsmanager.GetSecretValue"]
        self.assertTrue(sts and sm)
        self.assertEqual(sorted(sts[-1]["form_fields"]), sorted([
            "Action", "Version", "RoleArn", "RoleSessionName",
            "WebIdentityToken", "DurationSeconds"]))
        e = sm[-1]
        self.assertEqual(e["present"], {"Authorization": True,
                                        "X-Amz-Security-Token": True,
                                        "X-Vault-Token": False})
        self.assertEqual(e["json_keys"], ["SecretId"])
        self.assertEqual(e["headers"]["Host"], "127.0.0.1:%d" % self.fp.port)
        self.assertRegex(e["headers"]["X-Amz-Date"], r"^\d{8}T\d{6}Z$")
        self.assertTrue(e["done"])
        text = json.dumps(log)
        for s in (self.token, self.secret, creds["SecretAccessKey"],
                  creds["SessionToken"], "app/db", "AWS4-HMAC-SHA256"):
            self.assertNotIn(s, text)


if __name__ == "__main__":
    if MISSING:
        sys.stderr.write("FAIL: %s: %s\n" % (MOTO_REQUIRED, MISSING))
    unittest.main(verbosity=2)
