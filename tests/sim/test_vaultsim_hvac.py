#!/usr/bin/python3
"""Checks the Vault simulator (tests/sim/vaultsim/) with a client no one
here wrote: Debian's python3-hvac.  Run with /usr/bin/python3 (the pyenv
python3 has no hvac):

    /usr/bin/python3 tests/sim/test_vaultsim_hvac.py

It starts a throwaway PostgreSQL (tests/integration/pgcluster.py), a test
PKI (testca.py) and the simulator, then walks Kubernetes login, token
lookup/renewal/expiry/revocation, database credentials that really log in,
lease renew/lookup/revoke/revoke-prefix, KV v1/v2, sealing, login failures,
exact error shapes over raw http.client, injected faults, client-cert TLS
and the standalone mode.  One line per check; exit 0 when all pass,
1 with the failing check's message otherwise.  Everything it started is
stopped, and its temporary directory removed, on failure too.  The
simulator runs with VAULTSIM_DEBUG=1 and its stderr is searched for every
token, password and JWT the checks saw.
"""

import contextlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
os.environ["VAULTSIM_DEBUG"] = "1"

try:
    import hvac
    import hvac.exceptions as hexc
except ImportError:
    sys.exit("python3-hvac is missing: run this with /usr/bin/python3 "
             "(apt-get install -y python3-hvac)")

from cbtest import PgConn, conninfo_for  # noqa: E402
from pgcluster import PgCluster  # noqa: E402
from testca import TestPki  # noqa: E402
from vaultsim import VaultSim  # noqa: E402

SECRETS = set()        # every token, password and JWT seen
FULL_SHAPE = {"request_id", "lease_id", "renewable", "lease_duration",
              "data", "wrap_info", "warnings", "auth"}


class CheckFailed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise CheckFailed(msg)


@contextlib.contextmanager
def check(name):
    t0 = time.monotonic()
    try:
        yield
    except Exception as e:
        print("FAIL %s: %s: %s" % (name, type(e).__name__, e), flush=True)
        raise
    print("ok   %s (%.2fs)" % (name, time.monotonic() - t0), flush=True)


@contextlib.contextmanager
def raises(exc_type, errors_re=None):
    try:
        yield
    except exc_type as e:
        text = ", ".join(getattr(e, "errors", None) or [str(e)])
        if errors_re and not re.search(errors_re, text):
            raise CheckFailed("%s raised with %r, wanted /%s/" % (
                exc_type.__name__, text, errors_re))
        return
    raise CheckFailed("%s not raised" % exc_type.__name__)


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise CheckFailed("timed out after %.1fs waiting for %s" % (timeout, what))


class Tee(io.TextIOBase):
    """stderr, kept for the leak search."""

    def __init__(self, real):
        self.real, self.buf = real, io.StringIO()

    def write(self, s):
        self.buf.write(s)
        return self.real.write(s)

    def flush(self):
        self.real.flush()


class Env:
    def __init__(self, tmp):
        self.tmp, self.pg, self.sim = tmp, None, None

    def start(self):
        self.pg = PgCluster().start()
        self.pki = TestPki(os.path.join(self.tmp, "pki"))
        self.sim = VaultSim(self.pki, pg_conninfo=self.pg.admin_dsn).start()
        self.ctx = ssl.create_default_context(cafile=self.pki.ca_cert)
        self.port = int(self.sim.address.rsplit(":", 1)[1])

    def stop(self):
        if self.sim is not None:
            self.sim.stop()
        if self.pg is not None:
            self.pg.stop()

    def jwt(self, name="app", namespace="default", aud="vault", exp_in=600,
            key=None, legacy=False):
        now = int(time.time())
        if legacy:
            claims = {"iss": "kubernetes/serviceaccount",
                      "kubernetes.io/serviceaccount/namespace": namespace,
                      "kubernetes.io/serviceaccount/service-account.name":
                      name,
                      "kubernetes.io/serviceaccount/service-account.uid":
                      "uid-" + name,
                      "kubernetes.io/serviceaccount/secret.name":
                      name + "-token-abcde",
                      "sub": "system:serviceaccount:%s:%s" % (namespace,
                                                              name)}
        else:
            claims = {"iss": "https://kubernetes.default.svc", "aud": [aud],
                      "iat": now, "nbf": now, "exp": now + exp_in,
                      "sub": "system:serviceaccount:%s:%s" % (namespace,
                                                              name),
                      "kubernetes.io": {"namespace": namespace,
                                        "serviceaccount": {
                                            "name": name,
                                            "uid": "uid-" + name}}}
        token = self.pki.sign_jwt(claims, key=key)
        SECRETS.add(token)
        return token

    def client(self, token=None):
        c = hvac.Client(url=self.sim.address, verify=self.pki.ca_cert,
                        timeout=10)
        if token:
            c.token = token
        return c

    def login(self, role="app", **kw):
        c = self.client()
        resp = c.auth.kubernetes.login(role, self.jwt(**kw))
        SECRETS.add(resp["auth"]["client_token"])
        return c, resp

    def creds(self, client, role):
        resp = client.secrets.database.generate_credentials(name=role)
        SECRETS.add(resp["data"]["password"])
        return resp

    def valid_until(self, user):
        out = self.pg.query("SELECT extract(epoch FROM rolvaliduntil) FROM "
                            "pg_roles WHERE rolname = '%s'" % user).strip()
        return float(out) if out else None

    def role_exists(self, user):
        return self.pg.query("SELECT count(*) FROM pg_roles WHERE rolname = "
                             "'%s'" % user).strip() == "1"

    def raw(self, method, path, body=None, headers=None, conn=None):
        own = conn is None
        conn = conn or http.client.HTTPSConnection("127.0.0.1", self.port,
                                                   context=self.ctx,
                                                   timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.read(), r
        finally:
            if own:
                conn.close()


# --- the checks ----------------------------------------------------------

def check_login(env):
    c, resp = env.login()
    expect(FULL_SHAPE <= set(resp), "login keys %s" % sorted(resp))
    a = resp["auth"]
    expect(a["client_token"].startswith("hvs.") and
           len(a["client_token"]) == 95, "token format")
    expect(re.fullmatch(r"[0-9A-Za-z]{24}", a["accessor"]), "accessor")
    expect(a["policies"] == ["default", "reader"], a["policies"])
    expect(a["token_policies"] == ["default", "reader"], "token_policies")
    expect(a["metadata"] == {"role": "app", "service_account_name": "app",
                             "service_account_namespace": "default",
                             "service_account_secret_name": "",
                             "service_account_uid": "uid-app"},
           a["metadata"])
    expect(a["lease_duration"] == 30 and a["renewable"] is True,
           "lease_duration %r" % a["lease_duration"])
    expect(a["token_type"] == "service" and a["orphan"] is True, "type")
    expect(re.fullmatch(r"[0-9a-f-]{36}", a["entity_id"]), "entity_id")
    expect(resp["lease_id"] == "" and resp["renewable"] is False, "top")
    _, legacy = env.login(role="legacy", legacy=True)   # no aud claim
    expect(legacy["auth"]["metadata"]["service_account_secret_name"] ==
           "app-token-abcde", "legacy claims")
    return c


def check_lookup_self(env, c):
    d = c.auth.token.lookup_self()["data"]
    expect(d["creation_ttl"] == 30 and 28 <= d["ttl"] <= 30, d["ttl"])
    expect(d["path"] == "auth/kubernetes/login", d["path"])
    expect(d["display_name"] == "kubernetes-default-app", d["display_name"])
    expect(d["explicit_max_ttl"] == 0 and d["orphan"] is True, "fields")
    expect(d["meta"]["role"] == "app" and d["type"] == "service", "meta")
    expect(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z",
                        d["expire_time"]), d["expire_time"])
    expect(d["renewable"] is True and "issue_time" in d, "renewable")


def check_renew_self(env, c):
    a = c.auth.token.renew_self(increment=20)["auth"]
    expect(a["lease_duration"] == 20 and a["client_token"] == c.token,
           "renew-self lease_duration %r" % a["lease_duration"])
    resp = c.auth.token.renew_self(increment="1h")
    ld = resp["auth"]["lease_duration"]
    expect(55 <= ld <= 60, "capped to the max TTL: %r" % ld)
    expect(resp["warnings"] and re.match(
        r'TTL of "1h0m0s" exceeded the effective max_ttl of "(1m0s|\d\ds)"; '
        r'TTL value is capped accordingly', resp["warnings"][0]),
        resp["warnings"])
    d = c.auth.token.lookup_self()["data"]
    expect("last_renewal" in d and d["creation_ttl"] == 30, "last_renewal")


def check_db_creds(env, c):
    resp = env.creds(c, "ro")
    expect(FULL_SHAPE <= set(resp), "creds keys")
    expect(resp["lease_id"].startswith("database/creds/ro/") and
           re.fullmatch(r"[0-9A-Za-z]{24}", resp["lease_id"].rsplit("/")[-1]),
           resp["lease_id"])
    expect(resp["lease_duration"] == 10 and resp["renewable"] is True,
           "lease_duration")
    user, pw = resp["data"]["username"], resp["data"]["password"]
    expect(re.fullmatch(r"v-kubernet-ro-[0-9A-Za-z]{20}-\d{10}", user), user)
    expect(len(pw) == 20 and re.fullmatch(r"[A-Za-z0-9-]+", pw) and
           all(re.search(p, pw) for p in ("[a-z]", "[A-Z]", "[0-9]", "-")),
           "password format")
    conn = PgConn(conninfo_for(env.pg, user, pw, dbname="postgres"))
    expect(conn.execute("SELECT current_user") == [[user]], "login")
    vu = env.valid_until(user)
    expect(vu and abs(vu - (time.time() + 15)) < 3, "VALID UNTIL %r" % vu)
    return resp, conn


def check_renew_lease(env, c, creds):
    lid, user = creds["lease_id"], creds["data"]["username"]
    before = env.valid_until(user)
    time.sleep(1.1)
    r = c.sys.renew_lease(lid, increment=20)
    expect(r["lease_id"] == lid and r["lease_duration"] == 20 and
           r["renewable"] is True and r["warnings"] is None, r)
    after = env.valid_until(user)
    expect(after > before + 5, "VALID UNTIL %r -> %r" % (before, after))
    r = c.sys.renew_lease(lid, increment=3600)
    expect(25 <= r["lease_duration"] <= 29, r["lease_duration"])
    expect(r["warnings"] and "exceeded the effective max_ttl" in
           r["warnings"][0], r["warnings"])
    r = c.sys.renew_lease(lid)     # increment null: the role's default_ttl
    expect(r["lease_duration"] == 10, r["lease_duration"])


def check_read_lease(env, c, creds):
    d = c.sys.read_lease(creds["lease_id"])["data"]
    expect(d["id"] == creds["lease_id"] and d["renewable"] is True, d)
    expect(d["last_renewal"] and d["issue_time"] and d["expire_time"], d)
    expect(isinstance(d["ttl"], int) and 8 <= d["ttl"] <= 10, d["ttl"])


def check_revoke_lease(env, c, creds, conn):
    lid, user = creds["lease_id"], creds["data"]["username"]
    c.sys.revoke_lease(lid)
    expect(not env.role_exists(user), "role still exists")
    # hashicorp/vault#699: revocation does not end open sessions.
    expect(conn.execute("SELECT 1") == [["1"]], "session ended")
    conn.close()
    expect(env.sim.leases()[lid]["revoked"], "sim.leases() not revoked")
    with raises(hexc.InvalidRequest, r"^lease not found$"):
        c.sys.renew_lease(lid)
    with raises(hexc.InvalidRequest, r"^invalid lease$"):
        c.sys.read_lease(lid)
    r = c.sys.revoke_lease(lid)       # unknown lease: 204 as Vault answers
    expect(r.status_code == 204, r.status_code)


def check_revoke_prefix(env, c):
    a, b = env.creds(c, "ro"), env.creds(c, "ro")
    keys = c.sys.list_leases("database/creds/ro")["data"]["keys"]
    expect(set(keys) == {a["lease_id"].rsplit("/")[-1],
                         b["lease_id"].rsplit("/")[-1]}, keys)
    top = c.sys.list_leases("database/")["data"]["keys"]
    expect(top == ["creds/"], top)
    r = c.sys.revoke_prefix("database/creds/ro")
    expect(r.status_code == 204, r.status_code)
    for x in (a, b):
        expect(not env.role_exists(x["data"]["username"]), "role left")
    with raises(hexc.InvalidPath):
        c.sys.list_leases("database/creds/ro")


def check_kv(env, c):
    kv2 = c.secrets.kv.v2
    r1 = kv2.create_or_update_secret("app/cfg", {"api_key": "k-1"})
    r2 = kv2.create_or_update_secret("app/cfg", {"api_key": "k-2"})
    SECRETS.update(("k-1", "k-2"))
    expect(r1["data"]["version"] == 1 and r2["data"]["version"] == 2,
           "versions")
    latest = kv2.read_secret_version("app/cfg")
    expect(FULL_SHAPE <= set(latest) and latest["lease_duration"] == 0 and
           latest["lease_id"] == "", "kv2 envelope")
    d = latest["data"]
    expect(d["data"] == {"api_key": "k-2"} and
           d["metadata"]["version"] == 2 and
           d["metadata"]["deletion_time"] == "" and
           d["metadata"]["destroyed"] is False and
           d["metadata"]["custom_metadata"] is None, d["metadata"])
    v1 = kv2.read_secret_version("app/cfg", version=1)["data"]
    expect(v1["data"] == {"api_key": "k-1"} and v1["metadata"]["version"] ==
           1, v1)
    with raises(hexc.InvalidPath):
        kv2.read_secret_version("app/missing")
    with raises(hexc.InvalidRequest, "check-and-set parameter did not match"):
        kv2.create_or_update_secret("app/cfg", {"x": "y"}, cas=1)
    meta = kv2.read_secret_metadata("app/cfg")["data"]
    expect(meta["current_version"] == 2 and set(meta["versions"]) ==
           {"1", "2"}, meta)
    kv2.delete_latest_version_of_secret("app/cfg")
    with raises(hexc.InvalidPath):
        kv2.read_secret_version("app/cfg")
    st, body, _ = env.raw("GET", "/v1/secret/data/app/cfg",
                          headers={"X-Vault-Token": c.token})
    body = json.loads(body)
    expect(st == 404 and body["data"]["data"] is None and
           body["data"]["metadata"]["deletion_time"] and
           body["data"]["metadata"]["version"] == 2, body)
    expect(env.sim.kv2_put("app/cfg", {"api_key": "k-3"}) == 3, "kv2_put")
    env.sim.kv1_put("team/creds", {"token": "t-1"})
    SECRETS.add("t-1")
    r = c.secrets.kv.v1.read_secret("team/creds", mount_point="kv")
    expect(r["data"] == {"token": "t-1"} and
           r["lease_duration"] == 2764800 and r["lease_id"] == "" and
           r["renewable"] is False, r)


def check_sealed(env, c):
    env.sim.seal(1.0)
    with raises(hexc.VaultDown, r"^Vault is sealed$"):
        c.auth.token.lookup_self()
    expect(c.sys.is_sealed() is True, "seal-status")
    time.sleep(1.1)
    c.auth.token.lookup_self()
    expect(c.sys.is_sealed() is False, "unsealed")


def check_login_failures(env):
    c = env.client()
    with raises(hexc.InvalidRequest, r'^invalid role name "nope"$'):
        c.auth.kubernetes.login("nope", env.jwt())
    with raises(hexc.InvalidRequest, r"^missing role$"):
        c.auth.kubernetes.login("", env.jwt())
    with raises(hexc.Forbidden, r"^permission denied$"):   # bad signature
        c.auth.kubernetes.login("app", env.jwt(key=env.pki.client_key))
    with raises(hexc.Forbidden, r"^service account name not authorized$"):
        c.auth.kubernetes.login("app", env.jwt(name="other"))
    with raises(hexc.Forbidden, r"^namespace not authorized$"):
        c.auth.kubernetes.login("app", env.jwt(namespace="kube-system"))
    with raises(hexc.Forbidden, r"^invalid audience \(aud\) claim"):
        c.auth.kubernetes.login("app", env.jwt(aud="other"))
    with raises(hexc.Forbidden, r"token is expired$"):
        c.auth.kubernetes.login("app", env.jwt(exp_in=-120))


def check_token_expiry(env):
    """Token TTL 2 s, max 4 s: renewals are capped, then the reaper
    revokes the token and the lease made with it (role dropped)."""
    c, resp = env.login(role="short")
    acc = resp["auth"]["accessor"]
    creds = env.creds(c, "long")
    tiny_c, _ = env.login()
    tiny = env.creds(tiny_c, "tiny")
    time.sleep(1.5)
    r = c.auth.token.renew_self(increment=10)
    expect(r["auth"]["lease_duration"] <= 3 and r["warnings"], r["auth"])
    wait_for(lambda: not env.role_exists(tiny["data"]["username"]), 4,
             "the 2 s lease's role dropped at expiry")
    expect(("lease-expire", tiny["lease_id"]) in env.sim.events(),
           "no lease-expire event")
    wait_for(lambda: env.sim.tokens()[acc]["revoked"], 5, "token expiry")
    # CalculateTTL works in whole seconds: the cap lands within a second
    # of issue + max TTL.
    expect(time.time() - env.sim.tokens()[acc]["issue_time"] >= 3.0,
           "token revoked before its max TTL")
    with raises(hexc.Forbidden, r"^permission denied$"):
        c.auth.token.lookup_self()
    wait_for(lambda: not env.role_exists(creds["data"]["username"]), 3,
             "the token's lease revoked with it")
    expect(env.sim.leases()[creds["lease_id"]]["revoked"], "lease state")
    expect(("token-expire", acc) in env.sim.events(), "token-expire event")


def check_revoke_self(env):
    c, resp = env.login()
    creds = env.creds(c, "long")
    r = c.auth.token.revoke_self()
    expect(r.status_code == 204, r.status_code)
    expect(not env.role_exists(creds["data"]["username"]), "role left")
    with raises(hexc.Forbidden):
        c.auth.token.lookup_self()
    expect(("token-revoke-self", resp["auth"]["accessor"]) in
           env.sim.events(), "event")


def check_raw_shapes(env, token):
    hdr = {"X-Vault-Token": token}
    st, body, _ = env.raw("GET", "/v1/secret/data/nothing/here", headers=hdr)
    expect(st == 404 and json.loads(body) == {"errors": []}, (st, body))
    st, body, _ = env.raw("GET", "/v1/nomount/x", headers=hdr)
    expect(st == 404 and json.loads(body)["errors"] == [
        'no handler for route "nomount/x". route entry not found.'], body)
    st, body, r = env.raw("GET", "/v1/auth/token/lookup-self",
                          headers={"X-Vault-Token": "hvs.bogus"})
    expect(st == 403 and json.loads(body) == {"errors": ["permission "
                                                         "denied"]}, body)
    expect(r.getheader("Content-Type") == "application/json", "ctype")
    st, body, _ = env.raw("GET", "/v1/auth/token/lookup-self",
                          headers={"Authorization": "Bearer " + token})
    expect(st == 200, "Authorization: Bearer refused")
    st, body, _ = env.raw("POST", "/v1/database/creds/ro", body=b"{}",
                          headers=hdr)
    expect(st == 405 and "unsupported operation" in body.decode(), body)
    st, body, _ = env.raw("PUT", "/v1/sys/leases/lookup", body=b"{nope",
                          headers=hdr)
    expect(st == 400 and json.loads(body)["errors"][0].startswith(
        "failed to parse JSON input"), body)
    st, body, _ = env.raw("PUT", "/v1/sys/leases/renew",
                          body=b'{"lease_id": "database/creds/ro/nope"}',
                          headers=hdr)
    expect(st == 400 and json.loads(body) == {"errors": ["lease not found"]},
           body)
    st, _, _ = env.raw("GET", "/v1/sys/health")
    expect(st == 200, "health unauthenticated")
    # keep-alive: two requests on one connection
    conn = http.client.HTTPSConnection("127.0.0.1", env.port,
                                       context=env.ctx, timeout=10)
    try:
        for _ in range(2):
            st, _, r = env.raw("GET", "/v1/auth/token/lookup-self",
                               headers=hdr, conn=conn)
            expect(st == 200 and not r.will_close, "keep-alive")
    finally:
        conn.close()
    reqs = env.sim.requests()
    expect(all(r["headers"].get("x-vault-token", "<redacted>") ==
               "<redacted>" for r in reqs), "token recorded")
    expect(any(r["path"] == "auth/token/lookup-self" and
               r["status"] == 403 for r in reqs), "requests() paths")


def check_faults(env, token):
    hdr = {"X-Vault-Token": token}
    sim = env.sim
    sim.fault(r"^sys/health$", delay=0.6, times=1)
    t0 = time.monotonic()
    st, _, _ = env.raw("GET", "/v1/sys/health")
    expect(st == 200 and time.monotonic() - t0 >= 0.6, "delay")
    sim.fault(r"^auth/token/lookup-self$", status=500, times=1)
    st, body, _ = env.raw("GET", "/v1/auth/token/lookup-self", headers=hdr)
    expect(st == 500 and json.loads(body) == {"errors": ["internal error"]},
           body)
    st, _, _ = env.raw("GET", "/v1/auth/token/lookup-self", headers=hdr)
    expect(st == 200, "fault not cleared after times=1")
    sim.fault(r"lookup-self", status=429, method="GET")
    for _ in range(2):
        st, body, _ = env.raw("GET", "/v1/auth/token/lookup-self",
                              headers=hdr)
        expect(st == 429 and "rate limit quota exceeded" in body.decode(),
               body)
    sim.clear_faults()
    sim.fault(r"^auth/token/lookup-self$", body='{"data": [1, 2', times=1)
    st, body, _ = env.raw("GET", "/v1/auth/token/lookup-self", headers=hdr)
    expect(st == 200 and body == b'{"data": [1, 2', body)
    sim.fault(r"^auth/token/lookup-self$", body="oversized", times=1)
    st, body, _ = env.raw("GET", "/v1/auth/token/lookup-self", headers=hdr)
    expect(st == 200 and len(body) > 3 * 1024 * 1024 and
           "padding" in json.loads(body)["data"], len(body))
    sim.fault(r"^auth/token/lookup-self$", drop=True, times=1)
    try:
        env.raw("GET", "/v1/auth/token/lookup-self", headers=hdr)
        raise CheckFailed("drop answered")
    except (ConnectionResetError, http.client.RemoteDisconnected,
            ssl.SSLError):
        pass
    st, _, _ = env.raw("GET", "/v1/auth/token/lookup-self", headers=hdr)
    expect(st == 200, "after drop")
    c = env.client(token)
    sim.fault(r"^database/creds/ro$", status=503, times=1)
    with raises(hexc.VaultDown, "sealed"):
        c.secrets.database.generate_credentials(name="ro")


def check_client_cert(env):
    sim = VaultSim(env.pki, require_client_cert=True).start()
    try:
        port = int(sim.address.rsplit(":", 1)[1])
        ctx = ssl.create_default_context(cafile=env.pki.ca_cert)
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                               timeout=5)
            conn.request("GET", "/v1/sys/health")
            conn.getresponse().read()
            raise CheckFailed("served without a client certificate")
        except (ssl.SSLError, ConnectionResetError, BrokenPipeError,
                http.client.RemoteDisconnected):
            pass
        ctx.load_cert_chain(env.pki.client_cert, env.pki.client_key)
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                           timeout=5)
        conn.request("GET", "/v1/sys/health")
        expect(conn.getresponse().status == 200, "with a client cert")
        conn.close()
    finally:
        sim.stop()


def check_standalone(env, tee):
    cfg = os.path.join(env.tmp, "sim.json")
    addr = os.path.join(env.tmp, "addr")
    with open(cfg, "w") as f:
        json.dump({"k8s_roles": [{"name": "demo", "token_ttl": 5}],
                   "kv2": [{"path": "demo/x", "data": {"a": "b"}}]}, f)
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "vaultsim"),
                          "--pki", env.pki.dir, "--config", cfg,
                          "--address-file", addr],
                         stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: os.path.exists(addr), 15, "the address file")
        with open(addr) as f:
            url = f.read().strip()
        c = hvac.Client(url=url, verify=env.pki.ca_cert, timeout=5)
        resp = c.auth.kubernetes.login("demo", env.jwt(aud="x"))
        SECRETS.add(resp["auth"]["client_token"])
        expect(c.secrets.kv.v2.read_secret_version("demo/x")["data"]["data"]
               == {"a": "b"}, "seeded KV")
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=10)
        tee.buf.write(err)
        expect(p.returncode == 0, "exit status %r" % p.returncode)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def check_no_leaks(tee):
    text = tee.buf.getvalue()
    leaked = [s[:6] + "..." for s in SECRETS if s and s in text]
    expect(not leaked, "secrets in the simulator's stderr: %s" % leaked)
    expect("vaultsim:" in text, "VAULTSIM_DEBUG=1 logged nothing")


def run(env, tee):
    sim = env.sim
    sim.add_k8s_role("app", bound_service_account_names=["app"],
                     bound_service_account_namespaces=["default"],
                     audience="vault", token_ttl=30, token_max_ttl=60,
                     policies=["reader"])
    sim.add_k8s_role("legacy", token_ttl=30)
    sim.add_k8s_role("short", audience="vault", token_ttl=2, token_max_ttl=4)
    sim.add_db_role("ro", default_ttl=10, max_ttl=30)
    sim.add_db_role("long", default_ttl=60, max_ttl=120)
    sim.add_db_role("tiny", default_ttl=2, max_ttl=2)
    with check("kubernetes login: auth block as Vault's"):
        c = check_login(env)
    with check("lookup-self fields"):
        check_lookup_self(env, c)
    with check("renew-self, capped at the role's max TTL with a warning"):
        check_renew_self(env, c)
    with check("database creds: lease, formats, real PostgreSQL login"):
        creds, conn = check_db_creds(env, c)
    with check("renew_lease moves VALID UNTIL; capped at max_ttl"):
        check_renew_lease(env, c, creds)
    with check("read_lease"):
        check_read_lease(env, c, creds)
    with check("revoke_lease drops the role (sessions stay, vault#699)"):
        check_revoke_lease(env, c, creds, conn)
    with check("list_leases and revoke_prefix"):
        check_revoke_prefix(env, c)
    with check("KV v2 versions, cas, soft delete; KV v1"):
        check_kv(env, c)
    with check("sealed: VaultDown, then unsealed"):
        check_sealed(env, c)
    with check("login failures: 400 and 403 with Vault's messages"):
        check_login_failures(env)
    with check("token expiry at max TTL revokes its leases (reaper)"):
        check_token_expiry(env)
    with check("revoke_self revokes the token's leases"):
        check_revoke_self(env)
    with check("raw shapes: 404 / 403 / 405 / 400, keep-alive, redaction"):
        check_raw_shapes(env, c.token)
    with check("faults: delay, status, 429, malformed, oversized, drop"):
        check_faults(env, c.token)
    with check("require_client_cert"):
        check_client_cert(env)
    with check("standalone mode: address file, SIGTERM"):
        check_standalone(env, tee)
    with check("no token, password or JWT in the simulator's stderr"):
        check_no_leaks(tee)


def main():
    t0 = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="vaultsim-hvac-")
    tee = Tee(sys.stderr)
    sys.stderr = tee
    env = None
    status = 1
    try:
        env = Env(tmp)
        env.start()
        run(env, tee)
        status = 0
    except CheckFailed:
        pass
    except Exception:     # noqa: BLE001 -- reported, then cleaned up
        traceback.print_exc(file=sys.stdout)
    finally:
        sys.stderr = tee.real
        if env is not None:
            env.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%s in %.1fs" % ("PASS" if status == 0 else "FAIL",
                           time.monotonic() - t0))
    return status


if __name__ == "__main__":
    sys.exit(main())
