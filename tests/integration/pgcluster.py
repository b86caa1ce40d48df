"""A throwaway PostgreSQL cluster for tests (Python 3 standard library only).

    with PgCluster() as pg:
        pg.query("SELECT 1")            # as the superuser cbadmin
        pg.admin_dsn                     # "host=SOCKDIR port=P user=cbadmin dbname=postgres"

The cluster listens on a Unix socket only (listen_addresses=''), in a socket
directory inside its own temporary directory, so tests never collide with a
system server or each other.  PostgreSQL refuses to run as root: when we are
root, initdb and the server run as `nobody`.  cbadmin connects over the local
socket without a password (trust); every other role needs its SCRAM password.

stop() stops the server by the postmaster's PID and removes the directory;
it runs on exceptions (context manager) and at interpreter exit (atexit).
kill()/halt()/start() let a test take the server away mid-life and bring it
back on the same data directory.
"""

import atexit
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ADMIN = "cbadmin"
UNPRIVILEGED = "nobody"
TIMEOUT = 60


# Runs beside the harness in its own session: when its stdin reaches EOF
# (the harness finished, or was SIGKILLed by a test timeout and never ran
# atexit), it shuts the server down (SIGQUIT: immediate) and removes the
# directory.
WATCHDOG = r"""
import os, shutil, signal, sys, time
datadir, tmpdir = sys.argv[1], sys.argv[2]
sys.stdin.buffer.read()
try:
    with open(os.path.join(datadir, "postmaster.pid")) as f:
        pid = int(f.readline())
    os.kill(pid, signal.SIGQUIT)
    for _ in range(200):
        os.kill(pid, 0)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
except (OSError, ValueError):
    pass
shutil.rmtree(tmpdir, ignore_errors=True)
"""


def find_bindir():
    """pg_config --bindir when it holds initdb, else the newest
    /usr/lib/postgresql/*/bin."""
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True,
                             text=True, timeout=TIMEOUT, check=True).stdout
        bindir = out.strip()
        if os.access(os.path.join(bindir, "initdb"), os.X_OK):
            return bindir
    except (OSError, subprocess.SubprocessError):
        pass
    dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
            if os.access(os.path.join(d, "initdb"), os.X_OK)]

    def version(d):
        try:
            return float(d.split("/")[-2])
        except ValueError:
            return 0.0
    if not dirs:
        raise RuntimeError("PostgreSQL server binaries not found "
                           "(pg_config --bindir, /usr/lib/postgresql/*/bin)")
    return max(dirs, key=version)


class PgCluster:
    def __init__(self, port=5432, bindir=None):
        self.bindir = bindir or find_bindir()
        self.port = int(port)
        self.tmpdir = None
        self.datadir = None
        self.socket_dir = None
        self.logfile = None
        self._initialised = False
        self._watchdog = None
        self._owner = None            # (uid, gid) the server runs as, or None
        if os.geteuid() == 0:
            pw = pwd.getpwnam(UNPRIVILEGED)
            self._owner = (pw.pw_uid, pw.pw_gid)

    # --- plumbing ---------------------------------------------------------

    def _bin(self, name):
        return os.path.join(self.bindir, name)

    def _run_as_owner(self, argv, check=True):
        """Runs a server-side tool as the unprivileged owner when root."""
        kw = {}
        if self._owner is not None:
            kw = dict(user=self._owner[0], group=self._owner[1],
                      extra_groups=[])
        env = dict(os.environ, LC_ALL="C", LANG="C", HOME=self.tmpdir)
        for k in list(env):
            if k.startswith("PG"):
                del env[k]
        p = subprocess.run(argv, capture_output=True, text=True, env=env,
                           cwd=self.tmpdir, timeout=TIMEOUT, **kw)
        if check and p.returncode != 0:
            raise RuntimeError("%s failed (%d): %s%s" % (
                os.path.basename(argv[0]), p.returncode, p.stdout,
                p.stderr + self._log_tail()))
        return p

    def _log_tail(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return "\n--- server log ---\n" + f.read()[-2000:]
        except (OSError, TypeError):
            return ""

    def _chown(self, path):
        if self._owner is not None:
            os.chown(path, *self._owner)

    def _setup_dirs(self):
        self.tmpdir = tempfile.mkdtemp(prefix="cbpg-")
        # Other uids (the server, the test's roles) must reach the socket.
        os.chmod(self.tmpdir, 0o755)
        self.datadir = os.path.join(self.tmpdir, "data")
        self.socket_dir = os.path.join(self.tmpdir, "sock")
        self.logfile = os.path.join(self.tmpdir, "server.log")
        os.mkdir(self.datadir, 0o700)
        os.mkdir(self.socket_dir, 0o755)
        os.chmod(self.socket_dir, 0o755)
        with open(self.logfile, "w"):
            pass
        for p in (self.datadir, self.socket_dir, self.logfile):
            self._chown(p)

    def _initdb(self):
        self._run_as_owner([self._bin("initdb"), "-D", self.datadir,
                            "-U", ADMIN, "--auth-local=trust",
                            "--auth-host=reject", "-E", "UTF8",
                            "--locale=C", "--no-sync"])
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("local all %s trust\n" % ADMIN)
            f.write("local all all scram-sha-256\n")
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\n# pgcluster.py\n")
            f.write("listen_addresses = ''\n")
            f.write("unix_socket_directories = '%s'\n" % self.socket_dir)
            f.write("unix_socket_permissions = 0777\n")
            f.write("port = %d\n" % self.port)
            f.write("password_encryption = 'scram-sha-256'\n")
            f.write("fsync = off\n")
            f.write("max_connections = 50\n")
        self._initialised = True

    # --- lifecycle --------------------------------------------------------

    def start(self):
        """Creates the cluster on first use, then starts the server and
        waits until it accepts connections."""
        if self.tmpdir is None:
            atexit.register(self.stop)
            try:
                self._setup_dirs()
                self._watchdog = subprocess.Popen(
                    [sys.executable, "-c", WATCHDOG, self.datadir,
                     self.tmpdir], stdin=subprocess.PIPE,
                    start_new_session=True)
                self._initdb()
            except BaseException:
                self.stop()
                raise
        self._run_as_owner([self._bin("pg_ctl"), "-D", self.datadir,
                            "-l", self.logfile, "-w", "-t", str(TIMEOUT),
                            "start"])
        return self

    @property
    def pid(self):
        """The postmaster's PID from postmaster.pid, or None."""
        try:
            with open(os.path.join(self.datadir, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError, TypeError):
            return None

    def _alive(self, pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _wait_gone(self, pid, timeout=TIMEOUT):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self._alive(pid):
                return True
            time.sleep(0.05)
        return False

    def halt(self, mode="fast"):
        """Stops the server (pg_ctl stop -m MODE) and keeps the data."""
        pid = self.pid
        if pid is None or not self._alive(pid):
            return
        p = self._run_as_owner([self._bin("pg_ctl"), "-D", self.datadir,
                                "-m", mode, "-w", "-t", str(TIMEOUT),
                                "stop"], check=False)
        if p.returncode != 0 or not self._wait_gone(pid, 10):
            self.kill(signal.SIGKILL)

    def kill(self, sig=signal.SIGKILL):
        """Signals the postmaster by PID (SIGKILL: a crash) and waits for
        it.  After SIGKILL its children, which would otherwise hold the
        data directory's shared memory, are killed too."""
        pid = self.pid
        if pid is None or not self._alive(pid):
            return
        children = self._children(pid) if sig == signal.SIGKILL else []
        os.kill(pid, sig)
        self._wait_gone(pid)
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass
        for child in children:
            self._wait_gone(child, 10)

    @staticmethod
    def _children(pid):
        """PIDs whose parent is pid (from /proc/N/stat)."""
        out = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == pid:
                out.append(int(d))
        return out

    def restart(self):
        self.halt()
        return self.start()

    def stop(self):
        """Stops the server and removes everything.  Idempotent."""
        if self.tmpdir is None:
            return
        try:
            if self.datadir and os.path.isdir(self.datadir):
                self.halt()
        finally:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None
            if self._watchdog is not None:
                self._watchdog.stdin.close()
                self._watchdog.wait(TIMEOUT)
                self._watchdog = None
            try:
                atexit.unregister(self.stop)
            except Exception:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # --- clients ----------------------------------------------------------

    def dsn(self, dbname="postgres", user=ADMIN):
        return "host=%s port=%d user=%s dbname=%s" % (
            self.socket_dir, self.port, user, dbname)

    @property
    def admin_dsn(self):
        return self.dsn()

    def query(self, sql, dbname="postgres", user=ADMIN, password=None,
              check=True):
        """Runs sql with psql -XAtq; returns stdout (rows '|'-separated).
        The password, when given, reaches psql through its environment
        only: test passwords, never real ones."""
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("PG"):
                del env[k]
        if password is not None:
            env["PGPASSWORD"] = password
        p = subprocess.run([self._bin("psql"), "-XAtq", "-v",
                            "ON_ERROR_STOP=1", "-h", self.socket_dir,
                            "-p", str(self.port), "-U", user, "-d", dbname,
                            "-c", sql], capture_output=True, text=True,
                           env=env, timeout=TIMEOUT)
        if check and p.returncode != 0:
            raise RuntimeError("psql failed: %s" % p.stderr.strip())
        return p.stdout
