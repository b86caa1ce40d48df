"""The simulator: state, the public API the tests use, request routing and
sys/ endpoints.  Subsystems live in the mixins (auth, leases, database, kv)."""

import atexit
import json
import re
import secrets
import socket
import ssl
import sys
import threading
import time
import uuid

from .auth import AuthMixin, K8sRole
from .common import (VAULT_VERSION, Reply, Token, VaultError, base62,
                     debug_enabled, logical, need_op, new_token_id,
                     no_handler, parse_duration, unsupported_path)
from .database import DatabaseMixin
from .k8sjwt import load_rsa_public_key
from .kv import KvMixin
from .leases import LeaseMixin
from .pgplugin import DbRole, PgAdmin
from .server import _Server


class Fault:
    def __init__(self, regex, status, delay, body, drop, times, method):
        self.regex = re.compile(regex)
        self.status, self.delay, self.body = status, float(delay or 0), body
        self.drop, self.times = drop, times
        self.method = method.upper() if method else None


class VaultSim(AuthMixin, LeaseMixin, DatabaseMixin, KvMixin):
    def __init__(self, pki, pg_conninfo=None, require_client_cert=False,
                 revoke_retry_base=10.0, modern_token_errors=False):
        """pki: a testca.TestPki.  revoke_retry_base: the expiration
        manager's retry base after a failed revocation (Vault's
        CoreConfig.ExpirationRevokeRetryBase, 10 s).  modern_token_errors:
        answer an invalid token as Vault 1.15+ does ("permission denied"
        and "invalid token" in one multierror) instead of the plain
        {"errors":["permission denied"]}."""
        self.pki = pki
        self.require_client_cert = require_client_cert
        self.revoke_retry_base = float(revoke_retry_base)
        self.modern_token_errors = modern_token_errors
        self._lock = threading.RLock()
        self._jwt_key = load_rsa_public_key(pki.jwt_pub)
        self._pg = PgAdmin(pg_conninfo) if pg_conninfo else None
        self._salt = secrets.token_bytes(32)
        self._tokens = {}          # token id -> Token
        self._leases = {}          # lease id -> Lease (secrets and tokens)
        self._entities = {}        # (mount, sa uid) -> entity id
        self._k8s_mounts = {"kubernetes": {}}
        self._db_roles = {}
        self._kv2 = {"secret": {}}
        self._kv1 = {"kv": {}}
        self._mount_ids = {}
        self._faults = []
        self._sealed_until = None
        self._requests, self._events = [], []
        self._secrets = set()      # strings never to appear in output
        self._conns = set()
        self._server = self._thread = self._reaper = None
        self._stop_evt = threading.Event()
        self._stopped = False
        self.cluster_id = str(uuid.uuid4())
        self.cluster_name = "vault-cluster-" + secrets.token_hex(4)
        self.address = None
        self.root_token = new_token_id()
        self._remember(self.root_token)
        self._tokens[self.root_token] = Token(
            id=self.root_token, accessor=base62(24), policies=["root"],
            meta=None, display_name="root", path="auth/token/root",
            creation_time=int(time.time()), issue_time=time.time(),
            expire_time=None, ttl=0, max_ttl=0, entity_id="", role=None,
            mount="token", lease_id=None, revoked=False, last_renewal=None,
            is_root=True)

    def start(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.pki.server_cert, self.pki.server_key)
        if self.require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.pki.ca_cert)
        self._server = _Server(self, ctx)
        self.address = "https://127.0.0.1:%d" % self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="vaultsim-http", daemon=True)
        self._thread.start()
        self._reaper = threading.Thread(target=self._reap_loop,
                                        name="vaultsim-expiration",
                                        daemon=True)
        self._reaper.start()
        atexit.register(self.stop)
        return self

    def stop(self):
        """Stops serving and the expiration manager; revokes nothing.
        Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._stop_evt.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            for sock in list(self._conns):
                try:
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._reaper is not None:
            self._reaper.join(10)
        if self._pg is not None:
            self._pg.close()
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass

    def __enter__(self):
        return self.start() if self._server is None else self

    def __exit__(self, *exc):
        self.stop()
        return False

    def add_k8s_role(self, name, bound_service_account_names=("app",),
                     bound_service_account_namespaces=("default",),
                     audience=None, token_ttl=60, token_max_ttl=300,
                     policies=("default",), mount="kubernetes"):
        if not bound_service_account_names:
            raise ValueError('"bound_service_account_names" can not be empty')
        role = K8sRole(name, mount, bound_service_account_names,
                       bound_service_account_namespaces, audience, token_ttl,
                       token_max_ttl, policies)
        if role.token_max_ttl and role.token_ttl > role.token_max_ttl:
            raise ValueError("token_ttl cannot be greater than token_max_ttl")
        with self._lock:
            self._k8s_mounts.setdefault(mount, {})[name] = role
        return role

    def add_db_role(self, name, creation_statements=None,
                    revocation_statements=None, renew_statements=None,
                    default_ttl=60, max_ttl=300):
        if self._pg is None:
            raise ValueError("no database engine: VaultSim(pg_conninfo=...)")
        role = DbRole(name, creation_statements, revocation_statements,
                      renew_statements, default_ttl, max_ttl)
        if role.max_ttl and role.default_ttl > role.max_ttl:
            # builtin/logical/database/path_roles.go
            raise ValueError("ttl cannot be greater than max_ttl")
        with self._lock:
            self._db_roles[name] = role
        return role

    def kv2_put(self, path, data, mount="secret"):
        with self._lock:
            store = self._kv2.setdefault(mount, {})
            return self._kv2_write(store, path.strip("/"), dict(data), None)[
                "version"]

    def kv1_put(self, path, data, mount="kv"):
        with self._lock:
            self._kv1.setdefault(mount, {})[path.strip("/")] = dict(data)

    def fault(self, path_regex, status=None, delay=0.0, body=None, drop=False,
              times=None, method=None):
        """Matched (re.search) against the path after /v1/, before normal
        handling, in the order added; times=None: until clear_faults()."""
        with self._lock:
            self._faults.append(Fault(path_regex, status, delay, body, drop,
                                      times, method))

    def clear_faults(self):
        with self._lock:
            self._faults = []

    def seal(self, seconds=None):
        with self._lock:
            self._sealed_until = float("inf") if seconds is None else \
                time.time() + seconds
            self._event("seal", None)

    def unseal(self):
        with self._lock:
            self._sealed_until = None
            self._event("unseal", None)

    def revoke_prefix(self, prefix):
        """`vault lease revoke -prefix PREFIX`: synchronous, as the API's
        sys/leases/revoke-prefix with sync=true (the default)."""
        self._revoke_prefix(prefix, force=False)

    def leases(self):
        with self._lock:
            return {l.id: {"expire_time": l.expire_time,
                           "issue_time": l.issue_time,
                           "last_renewal": l.last_renewal,
                           "renewable": l.renewable, "token": l.token,
                           "revoked": l.revoked, "username": l.username,
                           "role": l.role, "irrevocable": l.irrevocable}
                    for l in self._leases.values() if l.kind == "secret"}

    def tokens(self):
        with self._lock:
            return {t.accessor: {"expire_time": t.expire_time,
                                 "max_expire_time": t.issue_time + t.max_ttl,
                                 "issue_time": t.issue_time,
                                 "revoked": t.revoked,
                                 "policies": list(t.policies),
                                 "role": t.role, "lease_id": t.lease_id,
                                 "entity_id": t.entity_id,
                                 "client_token": t.id}
                    for t in self._tokens.values() if not t.is_root}

    def requests(self):
        with self._lock:
            return [dict(r, headers=dict(r["headers"]))
                    for r in self._requests]

    def events(self):
        with self._lock:
            return list(self._events)

    def _remember(self, s):
        if s:
            with self._lock:
                self._secrets.add(s)

    def redact(self, text):
        with self._lock:
            known = sorted(self._secrets, key=len, reverse=True)
        for s in known:
            if s and s in text:
                text = text.replace(s, "<redacted>")
        return text

    def log(self, msg):
        if debug_enabled():
            sys.stderr.write("vaultsim: %s\n" % self.redact(msg))
            sys.stderr.flush()

    def _event(self, kind, ident):
        with self._lock:
            self._events.append((kind, ident))

    def _is_sealed(self):
        with self._lock:
            if self._sealed_until is None:
                return False
            if time.time() >= self._sealed_until:
                self._sealed_until = None
                self._events.append(("unseal", None))
                return False
            return True

    def record_request(self, method, path, query, status, headers):
        hdrs = {}
        for k, v in headers.items():
            k = k.lower()
            if k in ("x-vault-token", "authorization", "cookie"):
                v = "<redacted>"
            hdrs[k] = self.redact(v)
        with self._lock:
            self._requests.append({"method": method, "path": self.redact(path),
                                   "query": self.redact(query),
                                   "status": status, "headers": hdrs,
                                   "time": time.time()})

    def take_fault(self, method, path):
        with self._lock:
            for f in self._faults:
                if f.method and f.method != method:
                    continue
                if not f.regex.search(path):
                    continue
                if f.times is not None:
                    f.times -= 1
                    if f.times <= 0:
                        self._faults.remove(f)
                self._events.append(("fault", path))
                return f
        return None

    def handle(self, method, path, query, headers, body):
        """One HTTP request -> Reply.  path is the URL path (with /v1/)."""
        if not path.startswith("/v1/"):
            return Reply(404, {"errors": []})
        p = path[4:]
        try:
            op = self._operation(method, query)
            if p == "sys/health":
                return self._sys_health(query, method)
            if p == "sys/seal-status":
                return Reply(200, self._seal_status())
            data = self._request_data(op, query, body)
            if self._is_sealed():
                raise VaultError(503, ["Vault is sealed"])
            token = None if self._unauthenticated(p) else \
                self._check_token(headers)
            return self._route(op, p, data, token)
        except VaultError as e:
            return Reply(e.status, e.body if e.body is not None
                         else {"errors": e.errors})

    @staticmethod
    def _operation(method, query):
        """http/logical.go buildLogicalRequestNoAuth."""
        if method in ("GET", "HEAD"):
            lst = query.get("list", [""])[0].lower()
            return "list" if lst in ("1", "t", "true") else "read"
        ops = {"POST": "update", "PUT": "update", "DELETE": "delete",
               "LIST": "list", "PATCH": "patch"}
        if method not in ops:
            raise VaultError(405, [])
        return ops[method]

    @staticmethod
    def _request_data(op, query, body):
        if op in ("read", "list", "delete"):
            return {k: v[0] for k, v in query.items() if k != "list"}
        if not body or not body.strip():
            return {}
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            # http/util.go parseJSONRequest
            raise VaultError(400, ["failed to parse JSON input: %s" % e])
        if not isinstance(data, dict):
            raise VaultError(400, ["failed to parse JSON input: json: cannot "
                                   "unmarshal %s into Go value of type "
                                   "map[string]interface {}" %
                                   type(data).__name__])
        return data

    def _unauthenticated(self, p):
        if p.startswith("sys/internal/ui/mounts"):
            return True
        parts = p.split("/")
        with self._lock:
            return (len(parts) == 3 and parts[0] == "auth" and
                    parts[1] in self._k8s_mounts and parts[2] == "login")

    def _route(self, op, p, data, tok):
        parts = p.split("/")
        if parts[0] == "sys":
            return self._route_sys(op, "/".join(parts[1:]), data, tok)
        if parts[0] == "auth" and len(parts) > 1:
            rest = "/".join(parts[2:])
            if parts[1] == "token":
                return self._route_token(op, rest, data, tok)
            with self._lock:
                known = parts[1] in self._k8s_mounts
            if known:
                return self._route_k8s(op, parts[1], rest, data)
            raise no_handler(p)
        mount, rest = parts[0], "/".join(parts[1:])
        if mount == "database" and self._pg is not None:
            return self._route_db(op, rest, data, tok)
        with self._lock:
            kv2, kv1 = self._kv2.get(mount), self._kv1.get(mount)
        if kv2 is not None:
            return self._route_kv2(op, mount, kv2, rest, data)
        if kv1 is not None:
            return self._route_kv1(op, kv1, rest, data)
        raise no_handler(p)

    def _health_body(self, sealed):
        body = {"initialized": True, "sealed": sealed, "standby": False,
                "performance_standby": False,
                "replication_performance_mode": "disabled",
                "replication_dr_mode": "disabled",
                "server_time_utc": int(time.time()),
                "version": VAULT_VERSION, "enterprise": False,
                "echo_duration_ms": 0, "clock_skew_ms": 0}
        if not sealed:
            body.update(cluster_name=self.cluster_name,
                        cluster_id=self.cluster_id)
        return body

    def _sys_health(self, query, method):
        # vault/http/sys_health.go: 200 active, 503 sealed (?sealedcode=)
        sealed = self._is_sealed()
        key, default = ("sealedcode", 503) if sealed else ("activecode", 200)
        try:
            code = int(query.get(key, [default])[0])
        except ValueError:
            code = default
        return Reply(code, None if method == "HEAD" else
                     self._health_body(sealed))

    def _seal_status(self):
        sealed = self._is_sealed()
        body = {"type": "shamir", "initialized": True, "sealed": sealed,
                "t": 1, "n": 1, "progress": 0, "nonce": "",
                "version": VAULT_VERSION, "build_date": "2024-01-01T00:00:00Z",
                "migration": False, "recovery_seal": False,
                "storage_type": "inmem"}
        if not sealed:
            body.update(cluster_name=self.cluster_name,
                        cluster_id=self.cluster_id)
        return body

    def _route_sys(self, op, p, data, tok):
        def sysres(**kw):
            return Reply(200, self.logical(mount_type="system", **kw))
        m = re.fullmatch(r"(?:leases/)?renew(?:/(.+))?", p)
        if m:
            need_op(op, "update")
            lease_id = data.get("lease_id") or m.group(1) or ""
            inc = parse_duration(data.get("increment"), "increment")
            return sysres(**self._renew_lease(lease_id, inc))
        m = re.fullmatch(r"(?:leases/)?revoke(?:/(.+))?", p)
        if m:
            need_op(op, "update")
            lease_id = data.get("lease_id") or m.group(1) or ""
            if not lease_id:
                raise VaultError(400, ["lease_id must be specified"])
            if data.get("sync", True) in (False, "false"):
                self._lazy_revoke(lease_id)
                return Reply(202, None)
            self._revoke_lease_id(lease_id)
            return Reply(204)
        m = re.fullmatch(r"(?:leases/)?revoke-(prefix|force)/(.+)", p)
        if m:
            need_op(op, "update")
            self._revoke_prefix(m.group(2), force=m.group(1) == "force")
            return Reply(204)
        if p == "leases/lookup":
            need_op(op, "update")
            return sysres(data=self._lookup_lease(data.get("lease_id") or ""))
        m = re.fullmatch(r"leases/lookup/(.*)", p)
        if m:
            need_op(op, "list")
            keys = self._list_leases(m.group(1))
            if not keys:
                raise VaultError(404, [])
            return sysres(data={"keys": keys})
        m = re.fullmatch(r"internal/ui/mounts/(.+)", p)
        if m:
            need_op(op, "read")
            return sysres(data=self._mount_info(m.group(1)))
        raise unsupported_path()

    def _mount_info(self, path):
        """vault/logical_system.go handleInternalUIMountRead."""
        mount = path.split("/")[0]
        with self._lock:
            kind = ("kv", "2") if mount in self._kv2 else \
                ("kv", "1") if mount in self._kv1 else \
                ("database", None) if mount == "database" and self._pg \
                else None
        if kind is None:
            raise VaultError(403, ["preflight capability check returned 403, "
                                   "please ensure client's policies grant "
                                   "access to path \"%s/\"" % mount])
        ident = self._mount_ids.setdefault(mount, str(uuid.uuid4()))
        return {"accessor": "%s_%s" % (kind[0], ident[:8]),
                "config": {"default_lease_ttl": 0, "force_no_cache": False,
                           "max_lease_ttl": 0},
                "description": "", "external_entropy_access": False,
                "local": False,
                "options": {"version": kind[1]} if kind[1] else None,
                "path": mount + "/", "plugin_version": "", "seal_wrap": False,
                "type": kind[0], "uuid": ident}

    logical = staticmethod(logical)
