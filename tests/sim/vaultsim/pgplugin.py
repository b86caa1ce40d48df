"""Vault's PostgreSQL database plugin (plugins/database/postgresql/
postgresql.go, sdk/helper/dbtxn, sdk/helper/strutil) against a real
server: statement parsing, placeholders, the default renewal and
revocation, usernames and passwords as Vault makes them."""

import base64
import json
import os
import re
import secrets
import sys
import threading
import time
from datetime import datetime, timezone

from .common import base62

HERE = os.path.dirname(os.path.abspath(__file__))

# plugins/database/postgresql/postgresql.go
# expirationFormat "2006-01-02 15:04:05-0700", in UTC
PG_EXPIRATION_FORMAT = "%Y-%m-%d %H:%M:%S+0000"
PG_DEFAULT_RENEW = "\nALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}';\n"
# The plugin has no default creation statement (it fails with "empty
# creation statements"); None means the example of Vault's PostgreSQL
# database secrets engine docs (website/content/docs/secrets/databases/
# postgresql.mdx).
PG_DOCS_CREATION = [
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
    "VALID UNTIL '{{expiration}}';",
    "GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";"]
# sdk/helper/random/string_generator.go DefaultStringGenerator: 20 runes,
# at least one lowercase, uppercase, digit and "-".
PW_CLASSES = ("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
              "0123456789", "-")
PW_CHARSET = "".join(PW_CLASSES)


def parse_statements(stmt):
    """sdk/helper/strutil ParseArbitraryStringSlice(stmt, ";"): base64, a
    JSON list, else split on ";" (trimmed, empties dropped)."""
    try:
        decoded = base64.b64decode(stmt, validate=True).decode()
        if decoded:
            stmt = decoded
    except (ValueError, UnicodeDecodeError):
        pass
    try:
        lst = json.loads(stmt)
        if isinstance(lst, list) and all(isinstance(x, str) for x in lst):
            return lst
    except ValueError:
        pass
    return [q.strip() for q in stmt.split(";") if q.strip()]


def contains_multiline(stmt):
    """postgresql.go containsMultilineStatement (its quirk included: only
    the last quoted literal is removed before looking for END)."""
    literals = re.findall(r'(".*?")', stmt) + re.findall(r"('.*?')", stmt)
    without = stmt
    for lit in literals:
        without = stmt.replace(lit, "")
    return re.search(r"\bEND\b", without) is not None


def fill(query, params):
    """sdk/helper/dbtxn parseQuery: plain {{key}} substitution."""
    for k, v in params.items():
        query = query.replace("{{%s}}" % k, v)
    return query


def quote_ident(s):
    return '"' + s.replace('"', '""') + '"'    # lib/pq QuoteIdentifier


def quote_literal(s):
    return "'" + s.replace("'", "''") + "'"


class PgAdmin:
    """One admin connection (libpq via cbtest.PgConn), reconnected when the
    server went away; Go's database/sql likewise retries on a bad
    connection."""

    def __init__(self, conninfo):
        if "connect_timeout" not in conninfo:
            conninfo += " connect_timeout=5"
        self.conninfo = conninfo
        self.conn = None
        self.lock = threading.Lock()
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)),
                                        "integration"))
        from cbtest import PgConn, PgError
        self.PgConn, self.PgError = PgConn, PgError

    def _broken(self):
        return self.conn is None or self.conn.conn is None or \
            self.conn.p.lib.PQstatus(self.conn.conn) != 0

    def run(self, fn):
        with self.lock:
            for attempt in (0, 1):
                if self._broken():
                    self.close_locked()
                    self.conn = self.PgConn(self.conninfo)
                    # Vault's plugin sends passwords in clear SQL; the
                    # tests log every statement to catch a broker that
                    # does, so the simulated Vault's own session is not
                    # logged (a Vault operator would do the same).
                    self.conn.execute("SET log_statement = 'none'")
                try:
                    return fn(self.conn)
                except self.PgError:
                    if attempt == 0 and self._broken():
                        continue
                    raise

    def close_locked(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self):
        with self.lock:
            self.close_locked()


def pg_transaction(conn, error_cls, queries):
    conn.execute("BEGIN")
    try:
        for q in queries:
            conn.execute(q)
        conn.execute("COMMIT")
    except BaseException:
        try:
            conn.execute("ROLLBACK")
        except error_cls:
            pass
        raise


def statement_queries(stmts, params, multiline_ok):
    out = []
    for stmt in stmts:
        if multiline_ok and contains_multiline(stmt):
            out.append(fill(stmt, params))
            continue
        out.extend(fill(q, params) for q in parse_statements(stmt))
    return out


def pg_expiration_string(ts):
    return datetime.fromtimestamp(int(ts), timezone.utc).strftime(
        PG_EXPIRATION_FORMAT)


def generate_password():
    """random.DefaultStringGenerator: 20 from [a-zA-Z0-9-], every class
    present (candidates failing a rule are drawn again)."""
    while True:
        pw = "".join(secrets.choice(PW_CHARSET) for _ in range(20))
        if all(any(c in cls for c in pw) for cls in PW_CLASSES):
            return pw


def generate_username(display_name, role_name):
    """postgresql.go defaultUserNameTemplate: {{ printf "v-%s-%s-%s-%s"
    (.DisplayName | truncate 8) (.RoleName | truncate 8) (random 20)
    (unix_time) | truncate 63 }} (no lowercasing: that is Redshift's)."""
    name = "v-%s-%s-%s-%d" % (display_name[:8], role_name[:8], base62(20),
                              int(time.time()))
    return name[:63]


def pg_default_revoke(conn, error_cls, username):
    """postgresql.go defaultDeleteUser: revoke privileges statement by
    statement (no transaction), then DROP ROLE.  Open sessions are not
    terminated (hashicorp/vault#699)."""
    lit = quote_literal(username)
    rows = conn.execute("SELECT exists (SELECT rolname FROM pg_roles WHERE "
                        "rolname=%s);" % lit)
    if not rows or rows[0][0] != "t":
        return
    schemas = conn.execute("SELECT DISTINCT table_schema FROM "
                           "information_schema.role_column_grants WHERE "
                           "grantee=%s;" % lit)
    user = quote_ident(username)
    stmts = []
    for (schema,) in schemas:
        stmts.append("REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA %s FROM "
                     "%s;" % (quote_ident(schema), user))
        stmts.append("REVOKE USAGE ON SCHEMA %s FROM %s;" % (
            quote_ident(schema), user))
    stmts += ["REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM "
              "%s;" % user,
              "REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public FROM "
              "%s;" % user,
              "REVOKE USAGE ON SCHEMA public FROM %s;" % user]
    dbname = conn.execute("SELECT current_database();")
    if dbname and dbname[0][0]:
        stmts.append("REVOKE CONNECT ON DATABASE %s FROM %s;" % (
            quote_ident(dbname[0][0]), user))
    last = None
    for q in stmts:
        try:
            conn.execute(q)
        except error_cls as e:
            last = e
    if last is not None:
        raise error_cls("could not perform all revocation statements: %s" %
                        last)
    conn.execute("DROP ROLE IF EXISTS %s;" % user)


class DbRole:
    def __init__(self, name, creation, revocation, renewal, default_ttl,
                 max_ttl):
        def lst(v):
            return [v] if isinstance(v, str) else list(v or [])
        self.name = name
        self.creation = lst(creation) or list(PG_DOCS_CREATION)
        self.revocation, self.renewal = lst(revocation), lst(renewal)
        self.default_ttl, self.max_ttl = int(default_ttl), int(max_ttl)
