"""The Vault simulator beside the class's PostgreSQL, for end-to-end tests
of the vault backend (test_e2e_vault.py) and of incident response
(test_e2e_ir.py): a test PKI, a VaultSim whose database engine creates real
roles in the class's PostgreSQL, and config helpers.  Every token the
simulator issued and every JWT a test signed join the leak check."""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "sim"))
import cbtest  # noqa: E402
from cbtest import DBNAME  # noqa: E402
from testca import TestPki  # noqa: E402
from vaultsim import VaultSim  # noqa: E402

VAULT_FILES = ["username", "password", "dsn", "env", "json"]


def grant_statements():
    return ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' "
            "VALID UNTIL '{{expiration}}';",
            "GRANT SELECT ON granted_t TO \"{{name}}\";"]


class VaultCase(cbtest.BrokerTestCase):
    sim = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.pki = TestPki(os.path.join(cls.class_tmp, "pki"))
            cls.sim = VaultSim(cls.pki,
                               pg_conninfo=cls.pg.dsn(dbname=DBNAME)).start()
        except BaseException:
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.sim is not None:
                cls.note_sim_tokens()
                cls.sim.stop()
        finally:
            super().tearDownClass()

    @classmethod
    def note_sim_tokens(cls):
        """Every token the simulator issued joins the leak checks."""
        for t in cls.sim.tokens().values():
            cbtest.record_password(t.get("client_token"))

    def note_run_secrets(self):
        self.note_sim_tokens()

    # -- configs --

    def jwt(self, name="app", namespace="default", ttl=3600, **claims):
        now = int(time.time())
        body = {"iss": "https://kubernetes.default.svc", "aud": ["vault"],
                "sub": "system:serviceaccount:%s:%s" % (namespace, name),
                "iat": now, "nbf": now, "exp": now + ttl,
                "kubernetes.io": {"namespace": namespace,
                                  "serviceaccount": {"name": name,
                                                     "uid": "u-%d" % now}}}
        body.update(claims)
        token = self.pki.sign_jwt(body)
        cbtest.record_password(token)
        return token

    def write_jwt(self, token):
        path = os.path.join(self.tmp, "sa-token")
        cbtest.note_secret_input(path)
        tmp = path + ".new"
        with open(tmp, "w") as f:
            f.write(token + "\n")
        os.replace(tmp, path)   # as the kubelet does: a new file
        return path

    def vault_backend(self, role, **extra):
        if not os.path.exists(os.path.join(self.tmp, "sa-token")):
            self.write_jwt(self.jwt())
        be = {"type": "vault", "address": self.sim.address,
              "auth": {"role": role,
                       "token_file": os.path.join(self.tmp, "sa-token")},
              "tls": {"ca_file": self.pki.ca_cert},
              "connect_timeout": "2s", "request_timeout": "3s"}
        be.update(extra)
        return be

    def db_secret(self, name, role, ttl, **extra):
        s = {"name": name, "backend": "v", "ttl": ttl, "max_ttl": "1h",
             "uid": 0, "gid": 0, "files": VAULT_FILES,
             "vault": {"path": "database/creds/" + role,
                       "host": self.pg.socket_dir, "port": str(self.pg.port),
                       "dbname": DBNAME}}
        s.update(extra)
        return s

    def vault_config(self, secrets, k8s_role, **extra):
        cfg = self.config(secrets=secrets, **extra)
        cfg["backends"] = {"v": self.vault_backend(k8s_role)}
        return cfg

    def setup_roles(self, name, token_ttl=60, token_max_ttl=3600,
                    default_ttl=30, max_ttl=300):
        self.sim.add_k8s_role(name, bound_service_account_names=["app"],
                              bound_service_account_namespaces=["default"],
                              audience="vault", token_ttl=token_ttl,
                              token_max_ttl=token_max_ttl)
        self.sim.add_db_role(name, creation_statements=grant_statements(),
                             default_ttl=default_ttl, max_ttl=max_ttl)

    # -- helpers --

    def leases_of(self, role):
        prefix = "database/creds/%s/" % role
        return {k: v for k, v in self.sim.leases().items()
                if k.startswith(prefix)}

    def read(self, b, name):
        files = b.read_secret(name, files=VAULT_FILES + [".lease.json"])
        return files

    def assert_logs_in(self, files):
        ok, res = cbtest.try_login(files["dsn"].strip(),
                                   "SELECT v FROM granted_t")
        self.assertTrue(ok, "dsn does not log in: %s" % res)
        self.assertEqual(res, [["visible"]])
