"""The database secrets engine (builtin/logical/database path_creds_create.go,
secret_creds.go) with the PostgreSQL plugin."""

import re
import time

from .common import (Lease, Reply, VaultError, base62, calculate_ttl,
                     multierr, need_op, unsupported_path)
from .pgplugin import (PG_DEFAULT_RENEW, generate_password, generate_username,
                       pg_default_revoke, pg_expiration_string, pg_transaction,
                       statement_queries)


class DatabaseMixin:
    def _route_db(self, op, rest, data, tok):
        m = re.fullmatch(r"creds/([\w.-]+)", rest)
        if m:
            need_op(op, "read")
            return Reply(200, self._db_creds(m.group(1), tok))
        m = re.fullmatch(r"roles/([\w.-]+)", rest)
        if m:
            need_op(op, "read")
            with self._lock:
                role = self._db_roles.get(m.group(1))
            if role is None:
                raise VaultError(404, [])
            return Reply(200, self.logical(data={
                "creation_statements": role.creation, "credential_type":
                "password", "db_name": "postgresql",
                "default_ttl": role.default_ttl, "max_ttl": role.max_ttl,
                "renew_statements": role.renewal,
                "revocation_statements": role.revocation,
                "rollback_statements": []}, mount_type="database"))
        if rest in ("roles", "roles/"):
            need_op(op, "list")
            with self._lock:
                keys = sorted(self._db_roles)
            if not keys:
                raise VaultError(404, [])
            return Reply(200, self.logical(data={"keys": keys},
                                           mount_type="database"))
        raise unsupported_path()

    def _db_creds(self, name, tok):
        """path_creds_create.go pathCredsCreateRead, then core's
        registration of the secret (expiration.go Register)."""
        with self._lock:
            role = self._db_roles.get(name)
        if role is None:
            raise VaultError(400, ["unknown role: %s" % name])
        ttl_b, _ = calculate_ttl(0, role.default_ttl, 0, role.max_ttl, 0,
                                 None)
        expiration = pg_expiration_string(time.time() + ttl_b + 5)
        password = generate_password()
        self._remember(password)
        username = generate_username(tok.display_name, name)
        try:
            self._pg_create(role, username, password, expiration)
        except Exception as e:  # noqa: BLE001
            raise VaultError(500, [multierr("failed to execute query: %s" %
                                            self._pg_message(e))])
        ttl, warnings = calculate_ttl(0, role.default_ttl, 0, role.max_ttl,
                                      0, None)
        now = time.time()
        lease_id = "database/creds/%s/%s" % (name, base62(24))
        with self._lock:
            self._leases[lease_id] = Lease(
                id=lease_id, kind="secret", path="database/creds/" + name,
                issue_time=now, expire_time=now + ttl, renewable=True,
                ttl=ttl, token=tok.accessor, token_id=tok.id,
                username=username, role=name)
            self._events.append(("lease-issue", lease_id))
        return self.logical(data={"username": username, "password": password},
                            lease_id=lease_id, renewable=True,
                            lease_duration=ttl, warnings=warnings,
                            mount_type="database")

    def _pg_message(self, e):
        return self.redact(str(e) or e.__class__.__name__)

    def _pg_create(self, role, username, password, expiration):
        params = {"name": username, "username": username,
                  "password": password, "expiration": expiration}
        queries = statement_queries(role.creation, params, True)
        self._pg.run(lambda c: pg_transaction(c, self._pg.PgError, queries))

    def _pg_renew(self, role, username, expiration):
        params = {"name": username, "username": username,
                  "expiration": expiration}
        queries = statement_queries(role.renewal or [PG_DEFAULT_RENEW], params,
                                    False)
        self._pg.run(lambda c: pg_transaction(c, self._pg.PgError, queries))

    def _pg_revoke(self, role, username):
        if role is not None and role.revocation:
            queries = statement_queries(role.revocation,
                                        {"name": username,
                                         "username": username}, False)
            self._pg.run(lambda c: pg_transaction(c, self._pg.PgError,
                                                  queries))
        else:
            self._pg.run(lambda c: pg_default_revoke(c, self._pg.PgError,
                                                     username))
