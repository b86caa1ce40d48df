"""vaultsim -- a HashiCorp Vault simulator for credbroker's tests (Python 3
standard library only; libpq through tests/integration/cbtest.PgConn).

It follows Vault's published HTTP API: paths, JSON shapes, status codes,
error bodies {"errors": [...]}, TTL and max-TTL arithmetic
(sdk/framework/lease.go CalculateTTL), the expiration manager (leases and
tokens are revoked when they expire; a token takes its leases with it), the
Kubernetes auth method verifying service-account JWTs against a PEM key (as
with `pem_keys`), the database engine with Vault's PostgreSQL plugin (real
roles in a real PostgreSQL), KV v1 and v2.  Comments name the Vault source
followed wherever the behaviour is not obvious.

    from vaultsim import VaultSim
    sim = VaultSim(pki, pg_conninfo=pg.admin_dsn).start()  # testca.TestPki
    sim.address                                  # https://127.0.0.1:PORT
    sim.add_k8s_role("app", bound_service_account_names=["app"],
                     bound_service_account_namespaces=["default"],
                     token_ttl=60, token_max_ttl=300)
    sim.add_db_role("ro", default_ttl=60, max_ttl=300)
    sim.kv2_put("app/config", {"k": "v"})        # -> version
    sim.fault(r"^database/creds/ro$", status=503, times=2)
    sim.seal(5); sim.unseal(); sim.revoke_prefix("database/creds/ro")
    sim.leases(); sim.tokens(); sim.requests(); sim.events()
    sim.stop()                                   # also at exit / with-block

Standalone (for demos): python3 tests/sim/vaultsim --pki DIR [--pg CONNINFO]
[--config FILE] --address-file FILE (or, with tests/sim on PYTHONPATH,
python3 -m vaultsim ...); SIGTERM stops it.  The config is JSON:
{"k8s_roles": [{"name": ..., ...add_k8s_role kwargs}], "db_roles": [...],
"kv2": [{"path", "data", "mount"}], "kv1": [...],
"require_client_cert": false}.

Nothing here prints a token, password, JWT or secret value.  With
VAULTSIM_DEBUG=1 it logs one line per request (method, path, status) to
stderr, with every secret it knows of replaced by "<redacted>".

Layout: common.py (constants, TTL arithmetic, formats, records), core.py
(VaultSim: state, public API, routing, sys/), auth.py (token store and
Kubernetes auth), k8sjwt.py (JWT verification), leases.py (expiration
manager), database.py and pgplugin.py (database engine, PostgreSQL
plugin), kv.py (KV v1/v2), server.py (HTTPS, faults), __main__.py.
"""

from .core import VaultSim

__all__ = ["VaultSim"]
