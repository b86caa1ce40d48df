"""Leases and the expiration manager (vault/expiration.go,
vault/logical_system.go): renew, lookup, list, revoke, revoke-prefix and the
reaper that revokes what expires."""

import time
import traceback

from .common import (MAX_REVOKE_ATTEMPTS, VaultError, calculate_ttl,
                     lease_ttl, rfc3339)
from .pgplugin import pg_expiration_string


class LeaseMixin:
    def _active_lease(self, lease_id):
        le = self._leases.get(lease_id)
        return le if le is not None and le.active else None

    def _renew_lease(self, lease_id, increment):
        if not lease_id:
            raise VaultError(400, ["lease_id must be specified"])
        with self._lock:
            le = self._active_lease(lease_id)
            if le is None:
                raise VaultError(400, ["lease not found"])
            if le.expire_time < time.time():
                raise VaultError(400, ["lease expired"])
            if not le.renewable:
                raise VaultError(400, ["lease is not renewable"])
            if le.kind == "auth":
                raise VaultError(403, ["tokens cannot be renewed through "
                                       "this endpoint"])
            role = self._db_roles.get(le.role)
            issue = le.issue_time
        if role is None:
            raise VaultError(400, ["failed to renew entry: resp: "
                                   "(*logical.Response)(nil) err: error "
                                   "during renew: could not find role with "
                                   "name \"%s\"" % le.role])
        # builtin/logical/database/secret_creds.go secretCredsRenew
        ttl_b, _ = calculate_ttl(increment, role.default_ttl, 0, role.max_ttl,
                                 0, issue)
        if ttl_b > 0:
            expiration = pg_expiration_string(time.time() + ttl_b + 5)
            try:
                self._pg_renew(role, le.username, expiration)
            except Exception as e:  # noqa: BLE001 -- reported to the client
                raise VaultError(400, ["failed to renew entry: resp: "
                                       "(*logical.Response)(nil) err: %s" %
                                       self._pg_message(e)])
        # vault/expiration.go Renew: CalculateTTL again in core
        ttl, warnings = calculate_ttl(increment, role.default_ttl, 0,
                                      role.max_ttl, 0, issue)
        now = time.time()
        with self._lock:
            if not le.active:
                raise VaultError(400, ["lease not found"])
            le.expire_time, le.last_renewal, le.ttl = now + ttl, now, ttl
            self._events.append(("lease-renew", lease_id))
        return dict(lease_id=lease_id, renewable=True, lease_duration=ttl,
                    warnings=warnings)

    def _lookup_lease(self, lease_id):
        if not lease_id:
            raise VaultError(400, ["lease_id must be specified"])
        with self._lock:
            le = self._active_lease(lease_id)
            if le is None:
                raise VaultError(400, ["invalid lease"])
            renewable = le.renewable and le.expire_time >= time.time()
            return {"id": lease_id, "issue_time": rfc3339(le.issue_time),
                    "expire_time": rfc3339(le.expire_time),
                    "last_renewal": rfc3339(le.last_renewal),
                    "renewable": renewable, "ttl": lease_ttl(le.expire_time)}

    def _list_leases(self, prefix):
        """The lease view's List: the next path element under prefix."""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        keys = set()
        with self._lock:
            for lid, le in self._leases.items():
                if le.active and lid.startswith(prefix):
                    rest = lid[len(prefix):]
                    head, sep, _ = rest.partition("/")
                    keys.add(head + sep)
        return sorted(keys)

    def _lazy_revoke(self, lease_id):
        with self._lock:
            le = self._active_lease(lease_id)
            if le is not None:
                if le.kind == "auth":
                    t = self._tokens.get(le.token_id)
                    if t is not None:
                        t.expire_time = time.time()
                else:
                    le.expire_time = time.time()

    def _revoke_lease_id(self, lease_id, force=False):
        """ExpirationManager.Revoke: nothing to do for an unknown lease
        (logical_system.go handleRevoke answers 204 then)."""
        with self._lock:
            le = self._active_lease(lease_id)
        if le is None:
            return
        if le.kind == "auth":
            self._revoke_token(self._tokens[le.token_id], "token-revoke")
            return
        err = self._revoke_secret(le, "lease-revoke")
        if err is not None and not force:
            raise VaultError(400, ["failed to revoke entry: resp: "
                                   "(*logical.Response)(nil) err: %s" % err])

    def _revoke_prefix(self, prefix, force):
        """ExpirationManager.revokePrefixCommon: an exact lease ID when
        there is no trailing slash and it exists, else everything below
        prefix + "/"."""
        with self._lock:
            if not prefix.endswith("/") and self._active_lease(prefix):
                ids = [prefix]
            else:
                pre = prefix if prefix.endswith("/") else prefix + "/"
                ids = sorted(lid for lid, le in self._leases.items()
                             if le.active and lid.startswith(pre))
            self._events.append(("revoke-prefix", prefix))
        for i, lid in enumerate(ids):
            try:
                self._revoke_lease_id(lid, force=force)
            except VaultError as e:
                raise VaultError(400, ['failed to revoke "%s" (%d / %d): %s' %
                                       (lid, i + 1, len(ids), e.errors[0])])

    def _revoke_secret(self, le, event):
        """Runs the revocation; None on success, else the error text (the
        lease stays, as Vault keeps a lease whose revocation failed)."""
        with self._lock:
            if not le.active or le.revoking:
                return None
            le.revoking = True
            role = self._db_roles.get(le.role)
        try:
            self._pg_revoke(role, le.username)
        except Exception as e:  # noqa: BLE001
            msg = self._pg_message(e)
            with self._lock:
                le.revoking = False
                le.attempts += 1
                # vault/expiration.go revokeExponentialBackoff
                le.next_attempt = time.time() + self.revoke_retry_base * (
                    1 << min(le.attempts - 1, 10))
                if le.attempts >= MAX_REVOKE_ATTEMPTS:
                    le.irrevocable = True
                self._events.append(("lease-revoke-failed", le.id))
            self.log("revocation of %s failed: %s" % (le.id, msg))
            return msg
        with self._lock:
            le.revoking = False
            le.revoked, le.revoked_time = True, time.time()
            self._events.append((event, le.id))
        return None

    def _reap_loop(self):
        while not self._stop_evt.wait(0.2):
            try:
                self._reap_once()
            except Exception:  # noqa: BLE001 -- keep reaping
                self.log("reaper: " + traceback.format_exc())

    def _reap_once(self):
        if self._is_sealed():      # the expiration manager stops when sealed
            return
        now = time.time()
        with self._lock:
            tokens = [t for t in self._tokens.values()
                      if not t.revoked and t.expire_time is not None and
                      t.expire_time <= now]
        for t in tokens:
            self._revoke_token(t, "token-expire")
        with self._lock:
            due = [le for le in self._leases.values()
                   if le.kind == "secret" and le.active and not le.revoking
                   and not le.irrevocable and le.expire_time <= now and
                   le.next_attempt <= now]
        for le in due:
            self._revoke_secret(le, "lease-expire")
