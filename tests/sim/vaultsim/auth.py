"""The token store (vault/token_store.go, vault/expiration.go RenewToken)
and the Kubernetes auth method (vault-plugin-auth-kubernetes
path_login.go)."""

import hashlib
import hmac
import re
import time
import uuid

from .common import (SYS_MAX_TTL, Lease, Reply, Token, VaultError, base62,
                     calculate_ttl, glob_match, lease_ttl, multierr, need_op,
                     new_token_id, parse_duration, rfc3339, sanitize_policies,
                     unsupported_path)
from .k8sjwt import SignatureError, service_account, validate_jwt


class K8sRole:
    def __init__(self, name, mount, names, namespaces, audience, ttl, max_ttl,
                 policies):
        self.name, self.mount = name, mount
        self.names, self.namespaces = list(names or []), list(namespaces or [])
        self.audience, self.policies = audience, list(policies or [])
        self.token_ttl, self.token_max_ttl = int(ttl), int(max_ttl)


class AuthMixin:
    def _check_token(self, headers):
        tid = headers.get("X-Vault-Token") or ""
        auth = headers.get("Authorization") or ""
        if not tid and auth.lower().startswith("bearer "):
            tid = auth[7:].strip()
        with self._lock:
            t = self._tokens.get(tid)
            if t is not None and not t.revoked and (
                    t.expire_time is None or t.expire_time > time.time()):
                return t
        if self.modern_token_errors:
            raise VaultError(403, [multierr("permission denied",
                                            "invalid token")])
        raise VaultError(403, ["permission denied"])

    def _route_token(self, op, rest, data, tok):
        if rest == "lookup-self":
            need_op(op, "read")
            return Reply(200, self.logical(data=self._token_lookup(tok),
                                           mount_type="token"))
        if rest == "renew-self":
            need_op(op, "update")
            inc = parse_duration(data.get("increment"), "increment")
            auth, warnings = self._renew_token(tok, inc)
            return Reply(200, self.logical(auth=auth, warnings=warnings,
                                           mount_type="token"))
        if rest == "revoke-self":
            need_op(op, "update")
            self._revoke_token(tok, "token-revoke-self")
            return Reply(204)
        raise unsupported_path()

    def _auth_block(self, t, ttl):
        return {"client_token": t.id, "accessor": t.accessor,
                "policies": list(t.policies),
                "token_policies": list(t.policies), "metadata": t.meta,
                "lease_duration": ttl, "renewable": not t.is_root,
                "entity_id": t.entity_id, "token_type": "service",
                "orphan": True, "mfa_requirement": None, "num_uses": 0}

    def _token_lookup(self, t):
        """token_store.go handleLookup."""
        with self._lock:
            d = {"accessor": t.accessor, "creation_time": t.creation_time,
                 "creation_ttl": t.ttl, "display_name": t.display_name,
                 "entity_id": t.entity_id, "expire_time": None,
                 "explicit_max_ttl": 0, "id": t.id, "meta": t.meta,
                 "num_uses": 0, "orphan": True, "path": t.path,
                 "policies": list(t.policies), "ttl": 0, "type": "service"}
            if t.expire_time is not None:
                d.update(expire_time=rfc3339(t.expire_time),
                         ttl=lease_ttl(t.expire_time),
                         issue_time=rfc3339(t.issue_time),
                         renewable=t.expire_time >= time.time())
                if t.last_renewal is not None:
                    d["last_renewal_time"] = int(t.last_renewal)
                    d["last_renewal"] = rfc3339(t.last_renewal)
            return d

    def _renew_token(self, t, increment):
        """ExpirationManager.RenewToken and the Kubernetes method's
        pathLoginRenew (TTL and max TTL from the role)."""
        with self._lock:
            if t.is_root or t.lease_id is None:
                raise VaultError(400, ["invalid lease ID"])
            role = self._k8s_mounts.get(t.mount, {}).get(t.role)
            issue = t.issue_time
        if role is None:
            raise VaultError(500, [multierr("failed to renew entry: failed "
                                            "to validate role %s during "
                                            "renewal" % t.role)])
        ttl, warnings = calculate_ttl(increment, role.token_ttl, 0,
                                      role.token_max_ttl, 0, issue)
        now = time.time()
        with self._lock:
            t.expire_time, t.last_renewal = now + ttl, now
            le = self._leases.get(t.lease_id)
            if le is not None:
                le.expire_time, le.last_renewal = t.expire_time, now
            self._events.append(("renew-self", t.accessor))
            return self._auth_block(t, ttl), warnings

    def _revoke_token(self, t, event):
        """TokenStore.revokeTree: the token's leases go first
        (ExpirationManager.RevokeByToken), then the token and its lease.
        Vault hands the leases to the expiration manager for immediate
        revocation; here they are revoked inline, and any that fails is
        left to the reaper's retries."""
        with self._lock:
            if t.revoked:
                return
            t.revoked = True
            leases = [le for le in self._leases.values()
                      if le.kind == "secret" and le.active and
                      le.token == t.accessor]
            tl = self._leases.get(t.lease_id)
            if tl is not None:
                tl.revoked, tl.revoked_time = True, time.time()
            self._events.append((event, t.accessor))
        for le in leases:
            if self._revoke_secret(le, "lease-revoke") is not None:
                with self._lock:
                    le.expire_time = min(le.expire_time, time.time())

    def _route_k8s(self, op, mount, rest, data):
        if rest == "login":
            need_op(op, "update")
            auth, warnings = self._k8s_login(mount, data)
            return Reply(200, self.logical(auth=auth, warnings=warnings,
                                           mount_type="kubernetes"))
        m = re.fullmatch(r"role/([\w.-]+)", rest)
        if m:
            need_op(op, "read")
            with self._lock:
                role = self._k8s_mounts[mount].get(m.group(1))
            if role is None:
                raise VaultError(404, [])
            return Reply(200, self.logical(data={
                "bound_service_account_names": role.names,
                "bound_service_account_namespaces": role.namespaces,
                "audience": role.audience or "", "token_ttl": role.token_ttl,
                "token_max_ttl": role.token_max_ttl,
                "token_policies": role.policies,
                "alias_name_source": "serviceaccount_uid"},
                mount_type="kubernetes"))
        raise unsupported_path()

    def _k8s_login(self, mount, data):
        role_name, jwt = data.get("role"), data.get("jwt")
        if not isinstance(role_name, str) or not role_name:
            raise VaultError(400, ["missing role"])
        if not isinstance(jwt, str) or not jwt:
            raise VaultError(400, ["missing jwt"])
        self._remember(jwt)
        with self._lock:
            role = self._k8s_mounts[mount].get(role_name)
        if role is None:
            raise VaultError(400, ['invalid role name "%s"' % role_name])
        try:
            claims = validate_jwt(jwt, self._jwt_key, role.audience)
        except SignatureError:
            # path_login.go: "verifying token signature" -> permission denied
            raise VaultError(403, ["permission denied"])
        except ValueError as e:
            raise VaultError(403, [str(e)])
        sa = service_account(claims)
        if len(role.names) > 1 or role.names[0] != "*":
            if not any(glob_match(n, sa["name"]) for n in role.names):
                raise VaultError(403, ["service account name not authorized"])
        if not role.namespaces or not (
                role.namespaces[0] == "*" or
                any(glob_match(n, sa["namespace"]) for n in role.namespaces)):
            raise VaultError(403, ["namespace not authorized"])
        if not sa["uid"]:
            raise VaultError(500, [multierr("could not parse UID from "
                                            "claims")])
        # The TokenReview call is not simulated: a valid JWT passes it.
        meta = {"role": role_name, "service_account_name": sa["name"],
                "service_account_namespace": sa["namespace"],
                "service_account_secret_name": sa["secret_name"],
                "service_account_uid": sa["uid"]}
        # vault/request_handling.go: display name = mount "-" + backend's
        display = "%s-%s-%s" % (mount.replace("/", "-"), sa["namespace"],
                                sa["name"])
        ttl, warnings = calculate_ttl(0, role.token_ttl, 0,
                                      role.token_max_ttl, 0, None)
        t = self._new_token(role, mount, meta, display, sa["uid"], ttl)
        return self._auth_block(t, ttl), warnings

    def _new_token(self, role, mount, meta, display, sa_uid, ttl):
        now = time.time()
        tid = new_token_id()
        self._remember(tid)
        path = "auth/%s/login" % mount
        salted = "h" + hmac.new(self._salt, tid.encode(),
                                hashlib.sha256).hexdigest()
        with self._lock:
            entity = self._entities.setdefault((mount, sa_uid),
                                               str(uuid.uuid4()))
            t = Token(id=tid, accessor=base62(24),
                      policies=sanitize_policies(role.policies), meta=meta,
                      display_name=display, path=path,
                      creation_time=int(now), issue_time=now,
                      expire_time=now + ttl, ttl=ttl,
                      max_ttl=role.token_max_ttl or SYS_MAX_TTL,
                      entity_id=entity, role=role.name, mount=mount,
                      lease_id=path + "/" + salted, revoked=False,
                      last_renewal=None, is_root=False)
            self._tokens[tid] = t
            self._leases[t.lease_id] = Lease(
                id=t.lease_id, kind="auth", path=path, issue_time=now,
                expire_time=t.expire_time, renewable=True, ttl=ttl,
                token=t.accessor, token_id=tid, username=None, role=role.name)
            self._events.append(("login", t.accessor))
        return t
