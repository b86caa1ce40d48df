"""Helpers shared by the cold-start, revocation, memory and scheduler
scenarios (bench/scen_coldstart.py, scen_revoke.py, scen_memory.py,
scen_scheduler.py): a throwaway PostgreSQL, a broker process, the Vault
simulator in its own process, /proc readings, statistics and gnuplot.

Everything started here is stopped by PID and every mount detached on the
way out, failures included (context managers)."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration"))
sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "sim"))

from pgcluster import PgCluster  # noqa: E402
import cbtest  # noqa: E402  (PgConn, try_login, force_unmount, mounted)
import common  # noqa: E402

DBNAME = "cbtest"
SETUP_SQL = cbtest.SETUP_SQL
TMP_ROOT = "/dev/shm" if os.path.isdir("/dev/shm") else None


# --- statistics and table rows: bench/common.py's -------------------------

percentile = common.percentile
median = common.median
row = common.row


# --- plots ---------------------------------------------------------------

def gnuplot(ctx, png, script, data):
    """common.gnuplot_run with data as datablocks: {"$name": text}."""
    return common.gnuplot_run(ctx, png, script, data)


def cdf_plot(ctx, png, title, xlabel, series, vline=None):
    """Empirical CDFs: series is [(label, [values])]; vline: (x, label)."""
    data, plots = {}, []
    for i, (label, vals) in enumerate(series):
        s = sorted(vals)
        if not s:
            continue
        name = "$s%d" % i
        data[name] = "".join("%g %g\n" % (v, (j + 1) / len(s))
                             for j, v in enumerate(s))
        plots.append("%s using 1:2 with steps lw 2 title '%s'" % (
            name, label.replace("'", "")))
    if not plots:
        return None
    script = ("set title '%s'\nset xlabel '%s'\nset ylabel 'fraction'\n"
              "set key bottom right\nset grid\nset yrange [0:1.02]\n" % (
                  title.replace("'", ""), xlabel.replace("'", "")))
    if vline is not None:
        script += ("set arrow from %g, graph 0 to %g, graph 1 nohead "
                   "dt 2 lc rgb 'red'\nset label '%s' at %g, graph 0.5 "
                   "left offset 0.5,0 tc rgb 'red'\n" % (
                       vline[0], vline[0], vline[1], vline[0]))
    return gnuplot(ctx, png, script + "plot " + ", ".join(plots) + "\n",
                   data)


# --- files and headers ---------------------------------------------------

def header_int(rel, name, default=None):
    """The integer value of `#define NAME <int>` in a source header (how
    the scenarios learn today's caps, so they grow with the product)."""
    try:
        with open(os.path.join(SOURCE_DIR, rel)) as f:
            text = f.read()
    except OSError:
        return default
    m = re.search(r"^#define\s+%s\s+([^\n]*)" % re.escape(name), text,
                  re.M)
    if not m:
        return default
    expr = re.sub(r"/\*.*?\*/|//.*", "", m.group(1))
    expr = re.sub(r"(\d+)[uUlL]+", r"\1", expr).strip()
    if not re.fullmatch(r"[0-9()*+\- <]+", expr):
        return default
    try:
        return int(eval(expr, {"__builtins__": {}}))  # digits and operators
    except (SyntaxError, ValueError, ArithmeticError):
        return default


def source_has(rel, needle):
    try:
        with open(os.path.join(SOURCE_DIR, rel)) as f:
            return needle in f.read()
    except OSError:
        return False


def write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


@contextlib.contextmanager
def workdir(prefix="cbbench-"):
    """A 0755 temporary directory; everything mounted below is detached
    before it is removed."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        for sub, _, _ in os.walk(d):
            if cbtest.mounted(sub):
                cbtest.force_unmount(sub)
        shutil.rmtree(d, ignore_errors=True)


# --- /proc ---------------------------------------------------------------

def proc_status(pid):
    """{VmRSS, VmHWM, VmLck, ...} in KiB, plus maps (mapping count)."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k.startswith("Vm") or k.startswith("Rss"):
                out[k] = int(v.split()[0])
    with open("/proc/%d/maps" % pid) as f:
        out["maps"] = sum(1 for _ in f)
    return out


# --- PostgreSQL ----------------------------------------------------------

class Pg:
    """A throwaway cluster with database cbtest (tables granted_t,
    secret_t) and an admin DSN file in wd."""

    def __init__(self, wd):
        self.cluster = PgCluster()
        self.dsn_file = os.path.join(wd, "admin.dsn")

    def __enter__(self):
        self.cluster.start()
        try:
            self.cluster.query("CREATE DATABASE %s" % DBNAME)
            self.cluster.query(SETUP_SQL, dbname=DBNAME)
            write_private(self.dsn_file,
                          self.cluster.dsn(dbname=DBNAME) + "\n")
        except BaseException:
            self.cluster.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.cluster.stop()
        return False

    @property
    def socket_dir(self):
        return self.cluster.socket_dir

    @property
    def port(self):
        return self.cluster.port

    def admin(self):
        return cbtest.PgConn(self.cluster.dsn(dbname=DBNAME) +
                             " connect_timeout=5")

    def drop_roles(self, like):
        """Drops every role whose name matches the LIKE pattern."""
        with self.admin() as c:
            for (name,) in c.execute("SELECT rolname FROM pg_roles WHERE "
                                     "rolname LIKE '%s'" % like):
                ident = '"%s"' % name.replace('"', '""')
                c.execute("SELECT pg_terminate_backend(pid) FROM "
                          "pg_stat_activity WHERE usename = '%s'" % name)
                c.execute("DROP OWNED BY %s" % ident)
                c.execute("DROP ROLE %s" % ident)

    def login_works(self, dsn):
        ok, _ = cbtest.try_login(dsn.strip())
        return ok


def pg_secret(name, ttl="1h", max_ttl="2h", backend="pg"):
    return {"name": name, "backend": backend, "ttl": ttl, "max_ttl": max_ttl,
            "uid": 0, "gid": 0, "mode": "0400",
            "postgres": {"grants": ["GRANT SELECT ON granted_t TO {{name}}"],
                         "dbname": DBNAME}}


def pg_backend(pg):
    return {"type": "postgres", "admin_dsn_file": pg.dsn_file,
            "connect_timeout": "5s", "statement_timeout": "5s"}


# --- the broker ------------------------------------------------------------

def broker_binary(ctx):
    return os.path.join(ctx.build_dir, "credbroker")


def bench_binary(ctx, name):
    for d in (os.path.join(ctx.build_dir, "bench"), ctx.build_dir):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    raise RuntimeError("%s not built in %s (cmake --build ... --target %s)"
                       % (name, ctx.build_dir, name))


def broker_config(wd, secrets, backends, mount="mnt", **extra):
    mnt = os.path.join(wd, mount)
    os.makedirs(mnt, exist_ok=True)
    cfg = {"mount": {"path": mnt, "readers": [0]},
           "control": {"socket": os.path.join(wd, mount + ".sock"),
                       "responders": [0]},
           "revoke_on_exit": True,
           "log_level": "info",
           "backends": backends,
           "secrets": secrets}
    cfg.update(extra)
    return cfg


class Broker:
    """`credbroker run --config FILE`, stderr to a log in its directory.
    start() returns at once; stop() is idempotent and always detaches the
    mount."""

    def __init__(self, ctx, wd, cfg, name="broker", taskset=None):
        self.ctx, self.wd, self.cfg, self.name = ctx, wd, cfg, name
        self.mount = cfg["mount"]["path"]
        self.socket = cfg["control"]["socket"]
        self.cfg_path = os.path.join(wd, name + ".json")
        self.log_path = os.path.join(wd, name + ".log")
        self.taskset = taskset
        self.proc = None
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f)

    def argv(self):
        argv = [broker_binary(self.ctx), "run", "--config", self.cfg_path]
        if self.taskset is not None:
            argv = ["taskset", "-c", str(self.taskset)] + argv
        return argv

    def start(self):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(self.argv(),
                                         stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log,
                                         cwd=self.wd)
        finally:
            log.close()
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n=2000):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def cli(self, *args, timeout=60):
        """(rc, parsed JSON or text, seconds taken)."""
        argv = [broker_binary(self.ctx), "--socket", self.socket, "--json"]
        t0 = time.monotonic()
        p = subprocess.run(argv + list(args), capture_output=True,
                           text=True, timeout=timeout, cwd="/")
        dt = time.monotonic() - t0
        out = p.stdout
        try:
            out = json.loads(p.stdout) if p.stdout.strip() else p.stderr
        except ValueError:
            pass
        return p.returncode, out, dt

    def status(self):
        rc, out, _ = self.cli("status")
        return out if rc == 0 and isinstance(out, dict) else None

    def wait_ready(self, timeout=60, interval=0.02):
        """Until `credbroker ready` says every secret is in the mount."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.alive():
                raise RuntimeError("broker exited (%s):\n%s" % (
                    self.proc.returncode, self.log_tail()))
            if os.path.exists(self.socket):
                rc, out, _ = self.cli("ready")
                if rc == 0:
                    return
            time.sleep(interval)
        raise RuntimeError("broker not ready within %ds:\n%s" % (
            timeout, self.log_tail()))

    def secret(self, name):
        st = self.status()
        for s in (st or {}).get("secrets", []):
            if s["name"] == name:
                return s
        return None

    def wait_active(self, name, min_version=1, timeout=30):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            s = self.secret(name)
            if (s and s["state"] == "active" and s["version"] >= min_version
                    and os.path.exists(os.path.join(self.mount, name,
                                                    ".lease.json"))):
                return s
            if not self.alive():
                break
            time.sleep(0.01)
        raise RuntimeError("%s not active:\n%s" % (name, self.log_tail()))

    def stop(self, timeout=60):
        """SIGTERM by PID, SIGKILL after timeout; detaches the mount.
        Returns seconds the broker took to exit (None if killed)."""
        took = None
        try:
            if self.alive():
                t0 = time.monotonic()
                os.kill(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                    took = time.monotonic() - t0
                except subprocess.TimeoutExpired:
                    self.ctx.log("broker %d ignored SIGTERM: SIGKILL" %
                                 self.proc.pid)
                    self.proc.kill()
                    self.proc.wait(timeout=30)
        finally:
            cbtest.force_unmount(self.mount)
        return took

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


# --- the Vault simulator, in a process of its own ----------------------------

# The simulator runs in a child Python so that its request handling never
# competes for our interpreter lock with the timing loops.  Commands on
# stdin, one JSON line each; answers on stdout, one JSON line each.
VAULT_CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from testca import TestPki
from vaultsim import VaultSim
pki = TestPki(sys.argv[2])
sim = VaultSim(pki, pg_conninfo=sys.argv[3]).start()
print(json.dumps({"address": sim.address}), flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    out = {}
    if cmd["op"] == "k8s_role":
        sim.add_k8s_role(**cmd["args"])
    elif cmd["op"] == "db_role":
        sim.add_db_role(**cmd["args"])
    elif cmd["op"] == "revoke_prefix":
        t0 = time.monotonic()
        sim.revoke_prefix(cmd["prefix"])
        out = {"t_start": t0, "t_end": time.monotonic()}
    elif cmd["op"] == "leases":
        out = {"leases": {k: bool(v.get("revoked")) for k, v in
                          sim.leases().items()}}
    print(json.dumps(out), flush=True)
sim.stop()
"""


class VaultSimProc:
    """tests/sim/vaultsim over TLS with a test PKI under wd, its database
    engine creating real roles in pg."""

    def __init__(self, wd, pg):
        self.wd, self.pg = wd, pg
        self.pki_dir = os.path.join(wd, "pki")
        self.proc = None
        self.address = None

    def __enter__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", VAULT_CHILD,
             os.path.join(SOURCE_DIR, "tests", "sim"), self.pki_dir,
             self.pg.cluster.dsn(dbname=DBNAME)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=self.wd)
        try:
            first = self.proc.stdout.readline()
            self.address = json.loads(first)["address"]
            from testca import TestPki
            self.pki = TestPki(self.pki_dir)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=15)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=15)
        return False

    def call(self, op, **kw):
        kw["op"] = op
        self.proc.stdin.write(json.dumps(kw) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("vault simulator exited")
        return json.loads(line)

    def jwt_file(self, path, name="app", namespace="default"):
        now = int(time.time())
        body = {"iss": "https://kubernetes.default.svc", "aud": ["vault"],
                "sub": "system:serviceaccount:%s:%s" % (namespace, name),
                "iat": now, "nbf": now, "exp": now + 3600,
                "kubernetes.io": {"namespace": namespace,
                                  "serviceaccount": {"name": name,
                                                     "uid": "u-%d" % now}}}
        write_private(path, self.pki.sign_jwt(body) + "\n")
        return path

    def setup_db_role(self, role, default_ttl=300, max_ttl=3600):
        self.call("k8s_role", args=dict(
            name=role, bound_service_account_names=["app"],
            bound_service_account_namespaces=["default"], audience="vault",
            token_ttl=3600, token_max_ttl=7200))
        self.call("db_role", args=dict(
            name=role, creation_statements=[
                "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD "
                "'{{password}}' VALID UNTIL '{{expiration}}';",
                "GRANT SELECT ON granted_t TO \"{{name}}\";"],
            default_ttl=default_ttl, max_ttl=max_ttl))

    def backend(self, role, token_file):
        return {"type": "vault", "address": self.address,
                "auth": {"role": role, "token_file": token_file},
                "tls": {"ca_file": self.pki.ca_cert},
                "connect_timeout": "2s", "request_timeout": "3s"}

    def db_secret(self, name, role, ttl="300s", backend="v"):
        return {"name": name, "backend": backend, "ttl": ttl,
                "max_ttl": "1h", "uid": 0, "gid": 0,
                "files": ["username", "password", "dsn", "env", "json"],
                "vault": {"path": "database/creds/" + role,
                          "host": self.pg.socket_dir,
                          "port": str(self.pg.port), "dbname": DBNAME}}
