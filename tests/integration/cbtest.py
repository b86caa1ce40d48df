"""Shared helpers for credbroker's end-to-end tests (Python 3 stdlib + ctypes).

A test module typically does

    import cbtest
    class T(cbtest.BrokerTestCase):
        def test_x(self):
            b = self.start_broker(self.config(secrets=[self.secret("db")]))
            b.wait_active("db")
            files = b.read_secret("db")        # records the password
            ...

BrokerTestCase owns one throwaway PostgreSQL (database "cbtest" with the
tables granted_t and secret_t) per test class, a temporary directory per
test, and every broker it starts.  Clean-up runs on failure too: brokers are
stopped by PID (SIGTERM, then SIGKILL), mounts detached (fusermount3 -u -z,
else umount -l), temporary directories removed.  Before PostgreSQL goes away
every log the class produced (each broker's stderr, the CLI's output, the
PostgreSQL server log) is searched for every password the tests saw in the
mount (issue 2, "Tests" item 8): a hit fails the class.  Before a test's
temp dir is removed, every regular file in it (the mount excluded: never
read through it) and each broker's state_file are searched the same way
(issue 6): a hit fails that test.  A file listed for a check that is
missing or unreadable fails too, never passes unseen.

Environment: CB_BUILD_DIR (holds the credbroker binary), CB_SOURCE_DIR;
CB_BROKER_WRAPPER, a command that prefixes every daemon run of the broker
(`credbroker run`, `credbroker webhook`; one-shot CLI calls are not
wrapped), e.g. "valgrind --tool=memcheck ..." (make memcheck).  While it is
set, every timeout the suites wait for the broker is multiplied by
TIMEOUT_SCALE (CB_TIMEOUT_SCALE, default 20: memcheck is 20-50x slower on
the broker's own work).  A valgrind wrapper gets a --log-file per process
(daemon_argv), the broker's config gets "seccomp": false (start_broker),
and every class fails at teardown when one of its logs reports an error or
a definite leak (scan_valgrind_logs); the logs go to CB_VALGRIND_LOG_DIR
(default CB_BUILD_DIR/memcheck-logs), one directory per suite.
"""

import ctypes
import ctypes.util
import errno
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from pgcluster import PgCluster  # noqa: E402

SOURCE_DIR = os.environ.get("CB_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(HERE))
BUILD_DIR = os.environ.get("CB_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
BROKER = os.path.join(BUILD_DIR, "credbroker")

WRAPPER = shlex.split(os.environ.get("CB_BROKER_WRAPPER", ""))
TIMEOUT_SCALE = (float(os.environ.get("CB_TIMEOUT_SCALE") or 20)
                 if WRAPPER else 1.0)
# Where the valgrind logs go, one directory per suite, kept after the run
# (a failing class quotes the first lines of each bad log).
VALGRIND_LOG_DIR = os.environ.get("CB_VALGRIND_LOG_DIR") or os.path.join(
    BUILD_DIR, "memcheck-logs")

NOBODY = 65534
DBNAME = "cbtest"
SETUP_SQL = """
CREATE TABLE granted_t (id int PRIMARY KEY, v text);
INSERT INTO granted_t VALUES (1, 'visible');
CREATE TABLE secret_t (id int PRIMARY KEY, v text);
INSERT INTO secret_t VALUES (1, 'hidden');
"""
DEFAULT_FILES = ["username", "password", "dsn", "env"]


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until it returns a truthy value (returned) or timeout
    seconds (scaled()) pass (raises AssertionError naming what)."""
    timeout = scaled(timeout)
    end = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except AssertionError:
            raise
        except Exception as e:  # noqa: BLE001 -- reported below
            last_exc = e
        if time.monotonic() >= end:
            raise AssertionError("timed out after %.1fs waiting for %s%s" % (
                timeout, what, " (last error: %r)" % last_exc
                if last_exc else ""))
        time.sleep(interval)


# --- running the daemon under a wrapper (make memcheck) ---------------------

def scaled(seconds):
    """seconds, times TIMEOUT_SCALE: a timeout waiting on the broker."""
    return seconds * TIMEOUT_SCALE


def realtime(why):
    """Skips a test under CB_BROKER_WRAPPER when its contract is real time
    itself (credentials living a second or two, rotations racing readers),
    which no scaled timeout keeps meaningful on a 20-50x slower broker; the
    plain and sanitizer runs keep it."""
    return unittest.skipIf(bool(WRAPPER), "real-time contract (%s): not "
                           "under CB_BROKER_WRAPPER" % why)


def _is_valgrind():
    return bool(WRAPPER) and os.path.basename(WRAPPER[0]) == "valgrind"


def wrapper_fd(pid, fd):
    """True when descriptor fd of process pid is valgrind's own, not the
    broker's: its log file, or one of those it keeps at the top of the
    table (just under the real hard limit of open files).  Always False
    without a valgrind wrapper."""
    if not _is_valgrind():
        return False
    try:
        target = os.readlink("/proc/%d/fd/%d" % (pid, int(fd)))
        with open("/proc/%d/limits" % pid) as f:
            hard = [ln.split()[4] for ln in f
                    if ln.startswith("Max open files")][0]
    except (OSError, IndexError):
        return False
    return (_under(target, VALGRIND_LOG_DIR) or
            (hard.isdigit() and int(fd) >= int(hard) - 64))


_vg_dir = None


def valgrind_log_dir():
    """This suite's valgrind log directory (VALGRIND_LOG_DIR/SUITE),
    emptied at first use; sticky and world-writable, since a broker may
    run as nobody (test_e2e_csi)."""
    global _vg_dir
    if _vg_dir is None:
        suite = os.path.splitext(os.path.basename(sys.argv[0]))[0]
        d = os.path.join(VALGRIND_LOG_DIR, suite)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d, exist_ok=True)
        os.chmod(VALGRIND_LOG_DIR, 0o755)
        os.chmod(d, 0o1777)
        _vg_dir = d
    return _vg_dir


def daemon_argv(argv, tag):
    """argv of a daemon run of the broker, behind CB_BROKER_WRAPPER when it
    is set.  A valgrind wrapper without a --log-file of its own logs each
    process (the daemon, and the children it forks: cb-spawner,
    cb-unmount) to valgrind_log_dir()/TAG.PID.log; scan_valgrind_logs(TAG
    prefix) reads them back."""
    if not WRAPPER:
        return list(argv)
    pre = list(WRAPPER)
    if _is_valgrind() and not any(a.startswith("--log-file=") for a in pre):
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", tag)
        pre.append("--log-file=%s/%s.%%p.log" % (valgrind_log_dir(), safe))
    return pre + list(argv)


# What a memcheck log says when the run must fail: the summary (errors
# include definite leaks: --errors-for-leak-kinds=definite), a definite leak
# when the leak check ran without that option, valgrind's own crash.
_VG_ERRORS = re.compile(r"ERROR SUMMARY: ([0-9,]+) errors")
_VG_DEFINITE = re.compile(r"definitely lost: ([0-9,]+) bytes")
_VG_FATAL = ("the 'impossible' happened", "Valgrind's memory management: "
             "out of memory", "Process terminating with default action "
             "of signal 31 (SIGSYS)")


def scan_valgrind_logs(prefix, directory=None):
    """[(log, reason, excerpt)] for every valgrind log in directory
    (default: this suite's, and [] without a valgrind wrapper) whose name
    starts with prefix and that reports an error, a definite leak or
    valgrind's own failure.  A log without a summary (a process killed
    with SIGKILL by its test) is not an error."""
    if directory is None:
        if not _is_valgrind() or _vg_dir is None:
            return []
        directory = _vg_dir
    bad = []
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", prefix)
    for name in sorted(os.listdir(directory)):
        if not name.startswith(safe):
            continue
        path = os.path.join(directory, name)
        with open(path, errors="replace") as f:
            text = f.read()
        reasons = []
        m = _VG_ERRORS.search(text)
        if m and int(m.group(1).replace(",", "")) > 0:
            reasons.append("%s errors" % m.group(1))
        m = _VG_DEFINITE.search(text)
        if m and int(m.group(1).replace(",", "")) > 0:
            reasons.append("%s bytes definitely lost" % m.group(1))
        reasons += [f for f in _VG_FATAL if f in text]
        if reasons:
            bad.append((path, ", ".join(reasons),
                        "\n".join(text.splitlines()[:120])))
    return bad


def assert_valgrind_clean(prefix):
    """Raises AssertionError with the first lines of each log that
    scan_valgrind_logs(prefix) reports."""
    bad = scan_valgrind_logs(prefix)
    if bad:
        raise AssertionError("valgrind reports:\n" + "\n\n".join(
            "--- %s: %s\n%s" % b for b in bad))
    if _is_valgrind():
        log("valgrind: logs of %s* clean" % prefix)


# --- secret registry and leak checks (spec item 8, issue 6) ---------------

_PASSWORDS = set()
_INPUTS = {}   # realpath -> the secrets it may hold (note_secret_input)
_PW_LOCK = threading.Lock()


def record_password(pw):
    if pw:
        with _PW_LOCK:
            _PASSWORDS.add(pw)


def passwords():
    with _PW_LOCK:
        return set(_PASSWORDS)


def note_secret_input(path, *values):
    """Marks path as a file through which a test hands the broker a secret
    of its own (a service-account token, an admin DSN).  The leak checks
    allow a known secret there only as the file's whole content (a token
    file) or as one of values (the password in a DSN): any other secret in
    it is still a leak."""
    with _PW_LOCK:
        _INPUTS.setdefault(os.path.realpath(path), set()).update(
            v.encode() for v in values if v)


def _file_hits(path, data, needles):
    with _PW_LOCK:
        allowed = _INPUTS.get(os.path.realpath(path))
    if allowed is not None:
        allowed = allowed | {data.strip()}
    return [(path, n[:4].decode(errors="replace") + "...") for n in needles
            if n in data and not (allowed and n in allowed)]


def _read_regular(path):
    """The bytes of path, or None when it is not a regular file (a socket,
    a FIFO, a device: never opened for reading, never waited on).  Never
    follows a symlink.  Raises OSError when it cannot be read."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                 | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def _needles(secrets):
    return [s.encode() for s in (passwords() if secrets is None
                                 else secrets) if s]


def find_leaks(paths, secrets=None):
    """[(path, what)] for every known secret (default: every one recorded)
    found in a file of paths.  A listed file that is missing, unreadable
    or not a regular file is a hit too: a check that skips it proves
    nothing."""
    needles = _needles(secrets)
    hits = []
    for p in paths:
        try:
            data = _read_regular(p)
        except OSError as e:
            hits.append((p, "(cannot read: %s)" % ename(e.errno)))
            continue
        if data is None:
            hits.append((p, "(not a regular file)"))
            continue
        hits += _file_hits(p, data, needles)
    return hits


def mountpoints():
    """Every mountpoint in /proc/mounts (the kernel's absolute paths)."""
    with open("/proc/mounts") as f:
        return {_unescape_mount(ln.split()[1]) for ln in f
                if len(ln.split()) > 1}


def _canonical(path):
    """path with its parent resolved, itself not touched: a stale FUSE
    mount there must not be stat'ed."""
    path = os.path.abspath(path)
    return os.path.join(os.path.realpath(os.path.dirname(path)),
                        os.path.basename(path))


def scan_tree(root, secrets=None, prune=(), done=None):
    """(hits, files searched): every regular file under root searched for
    every known secret (default: every one recorded), as find_leaks does;
    done maps a path to the secrets it was already searched for (a log
    copied out of a test's dir, searched there).  A mountpoint
    (/proc/mounts) or a path in prune is never entered nor stat'ed: nothing
    is read through a mount.  Symlinks, sockets, FIFOs and devices are
    skipped; a directory or file that cannot be read is a hit."""
    needles = _needles(secrets)
    done = done or {}
    skip = mountpoints() | {_canonical(p) for p in prune}
    hits, files, stack = [], 0, [os.path.realpath(root)]
    while stack:
        d = stack.pop()
        if d in skip:
            continue
        try:
            with os.scandir(d) as it:
                entries = [e.path for e in it]
        except OSError as e:
            hits.append((d, "(cannot list: %s)" % ename(e.errno)))
            continue
        for p in entries:
            if p in skip:
                continue
            try:
                mode = os.lstat(p).st_mode
                if stat.S_ISDIR(mode):
                    stack.append(p)
                    continue
                if not stat.S_ISREG(mode):
                    continue
                data = _read_regular(p)
            except FileNotFoundError:
                continue   # a socket the broker removed as it stopped
            except OSError as e:
                hits.append((p, "(cannot read: %s)" % ename(e.errno)))
                continue
            if data is not None:
                files += 1
                seen = done.get(p, ())
                hits += _file_hits(p, data, [n for n in needles
                                             if n not in seen])
    return hits, files


def proc_secret_hits(pid, secrets):
    """[(file, secret-prefix)] for every secret in /proc/PID/environ and
    /proc/PID/cmdline of pid and of each of its children (the hook spawner,
    the unmounter): no secret in an environment or a command line
    (invariant 1)."""
    pids = [pid] + [int(d) for d in os.listdir("/proc") if d.isdigit()
                    and _ppid(int(d)) == pid]
    needles = [s.encode() for s in secrets if s]
    hits = []
    for p in pids:
        for name in ("environ", "cmdline"):
            path = "/proc/%d/%s" % (p, name)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except (FileNotFoundError, ProcessLookupError):
                if p == pid:
                    raise
                continue   # a child that exited meanwhile
            hits += [(path, n[:4].decode(errors="replace") + "...")
                     for n in needles if n in data]
    return hits


def _ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


# --- libpq through ctypes ----------------------------------------------------

class _PQ:
    CONNECTION_OK = 0
    PGRES_COMMAND_OK = 1
    PGRES_TUPLES_OK = 2

    def __init__(self):
        name = ctypes.util.find_library("pq") or "libpq.so.5"
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            lib = ctypes.CDLL("libpq.so.5")
        P = ctypes.c_void_p
        lib.PQconnectdb.argtypes = [ctypes.c_char_p]
        lib.PQconnectdb.restype = P
        lib.PQstatus.argtypes = [P]
        lib.PQstatus.restype = ctypes.c_int
        lib.PQerrorMessage.argtypes = [P]
        lib.PQerrorMessage.restype = ctypes.c_char_p
        lib.PQfinish.argtypes = [P]
        lib.PQfinish.restype = None
        lib.PQexec.argtypes = [P, ctypes.c_char_p]
        lib.PQexec.restype = P
        lib.PQresultStatus.argtypes = [P]
        lib.PQresultStatus.restype = ctypes.c_int
        lib.PQresultErrorMessage.argtypes = [P]
        lib.PQresultErrorMessage.restype = ctypes.c_char_p
        lib.PQntuples.argtypes = [P]
        lib.PQntuples.restype = ctypes.c_int
        lib.PQnfields.argtypes = [P]
        lib.PQnfields.restype = ctypes.c_int
        lib.PQgetvalue.argtypes = [P, ctypes.c_int, ctypes.c_int]
        lib.PQgetvalue.restype = ctypes.c_char_p
        lib.PQgetisnull.argtypes = [P, ctypes.c_int, ctypes.c_int]
        lib.PQgetisnull.restype = ctypes.c_int
        lib.PQclear.argtypes = [P]
        lib.PQclear.restype = None
        lib.PQbackendPID.argtypes = [P]
        lib.PQbackendPID.restype = ctypes.c_int
        self.lib = lib


_pq = None
_pq_lock = threading.Lock()


def pq():
    global _pq
    with _pq_lock:
        if _pq is None:
            _pq = _PQ()
        return _pq


class PgError(Exception):
    pass


class PgConn:
    """One libpq connection (real login, SCRAM included)."""

    def __init__(self, conninfo):
        self.p = pq()
        self.conn = self.p.lib.PQconnectdb(conninfo.encode())
        if not self.conn:
            raise PgError("PQconnectdb returned NULL")
        if self.p.lib.PQstatus(self.conn) != _PQ.CONNECTION_OK:
            msg = self.error()
            self.close()
            raise PgError(msg)

    def error(self):
        m = self.p.lib.PQerrorMessage(self.conn)
        return (m or b"").decode(errors="replace").strip()

    @property
    def backend_pid(self):
        return self.p.lib.PQbackendPID(self.conn)

    def execute(self, sql):
        """Rows as lists of str/None; raises PgError with the server's
        message."""
        if self.conn is None:
            raise PgError("connection closed")
        res = self.p.lib.PQexec(self.conn, sql.encode())
        if not res:
            raise PgError(self.error() or "PQexec returned NULL")
        try:
            st = self.p.lib.PQresultStatus(res)
            if st not in (_PQ.PGRES_COMMAND_OK, _PQ.PGRES_TUPLES_OK):
                m = self.p.lib.PQresultErrorMessage(res) or b""
                raise PgError(m.decode(errors="replace").strip()
                              or self.error())
            rows = []
            for i in range(self.p.lib.PQntuples(res)):
                row = []
                for j in range(self.p.lib.PQnfields(res)):
                    if self.p.lib.PQgetisnull(res, i, j):
                        row.append(None)
                    else:
                        row.append(self.p.lib.PQgetvalue(res, i, j).decode())
                rows.append(row)
            return rows
        finally:
            self.p.lib.PQclear(res)

    def close(self):
        if self.conn:
            self.p.lib.PQfinish(self.conn)
            self.conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def try_login(conninfo, sql="SELECT current_user"):
    """(True, rows) or (False, error message)."""
    try:
        with PgConn(conninfo) as c:
            return True, c.execute(sql)
    except PgError as e:
        return False, str(e)


def conninfo_for(pg, user, password, dbname=DBNAME):
    return "host=%s port=%d dbname=%s user=%s password=%s connect_timeout=5" % (
        pg.socket_dir, pg.port, dbname, user, password)


# --- parsing the mount's files ---------------------------------------------

def parse_env(text):
    """{KEY: value} from KEY='value' lines (single-quoted, shell style)."""
    out = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        m = re.match(r"^(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$", line)
        if not m:
            raise ValueError("env: bad line %r" % line)
        val = m.group(2)
        if len(val) >= 2 and val[0] == "'" and val[-1] == "'":
            val = val[1:-1].replace("'\\''", "'")
        elif len(val) >= 2 and val[0] == '"' and val[-1] == '"':
            val = val[1:-1]
        out[m.group(1)] = val
    return out


def parse_dsn(uri):
    """{user, password, dbname, host, port} from a postgresql:// URI."""
    u = urllib.parse.urlsplit(uri.strip())
    if u.scheme not in ("postgresql", "postgres"):
        raise ValueError("dsn: not a postgresql URI")
    q = urllib.parse.parse_qs(u.query)
    return {
        "user": urllib.parse.unquote(u.username or ""),
        "password": urllib.parse.unquote(u.password or ""),
        "dbname": urllib.parse.unquote(u.path.lstrip("/")),
        "host": q.get("host", [u.hostname or ""])[0],
        "port": q.get("port", [str(u.port or "")])[0],
    }


def read_file(path):
    """The file's text (one open, one read loop); records nothing."""
    with open(path, "rb") as f:
        data = b""
        while True:
            chunk = f.read(65536)
            if not chunk:
                break
            data += chunk
    return data.decode()


def errno_of(fn, *args):
    """0 when fn(*args) succeeds, else the OSError's errno."""
    try:
        fn(*args)
        return 0
    except OSError as e:
        return e.errno


def ename(code):
    return errno.errorcode.get(code, str(code)) if code else "OK"


# --- mounts -------------------------------------------------------------------

def _unescape_mount(s):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


def mounted(path):
    """True when path is a mountpoint in /proc/mounts."""
    path = os.path.realpath(path)
    try:
        with open("/proc/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 1 and _unescape_mount(fields[1]) == path:
                    return True
    except OSError:
        pass
    return False


def force_unmount(path):
    """Detaches whatever is mounted at path (lazy), bounded."""
    for argv in (["fusermount3", "-u", "-z", path], ["umount", "-l", path]):
        if not mounted(path):
            return
        try:
            subprocess.run(argv, capture_output=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            pass


# --- running commands as another uid ------------------------------------------

def _uid_op(op, path):
    if op == "read":
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    if op == "open":
        os.close(os.open(path, os.O_RDONLY))
        return None
    if op == "stat":
        os.stat(path)
        return None
    if op == "listdir":
        return sorted(os.listdir(path))
    raise ValueError("bad op %r" % op)


def as_uid(uid, op, path, gid=None, timeout=30):
    """Runs one file operation (read/open/stat/listdir) as uid in a forked
    child (setgroups([]), setresgid, setresuid); returns (errno, data).
    Call it while no other threads run."""
    gid = uid if gid is None else gid
    timeout = scaled(timeout)
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(rfd)
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            res = {"errno": 0, "data": None}
            try:
                res["data"] = _uid_op(op, path)
            except OSError as e:
                res["errno"] = e.errno
            os.write(wfd, json.dumps(res).encode())
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(wfd)
    chunks = []
    end = time.monotonic() + timeout
    try:
        while True:
            import select
            left = end - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                raise AssertionError("as_uid(%d, %s, %s) timed out" % (
                    uid, op, path))
            r, _, _ = select.select([rfd], [], [], left)
            if not r:
                continue
            chunk = os.read(rfd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
    if status != 0 or not chunks:
        raise AssertionError("as_uid(%d, %s, %s): child failed (status %d)"
                             % (uid, op, path, status))
    res = json.loads(b"".join(chunks))
    return res["errno"], res["data"]


_broker_copy = None


def broker_copy_for_others():
    """A copy of the broker binary that any uid may run (the build tree
    may sit under a directory only root can enter); removed at exit."""
    global _broker_copy
    if _broker_copy is None:
        import atexit
        d = tempfile.mkdtemp(prefix="cbbin-")
        os.chmod(d, 0o755)
        atexit.register(shutil.rmtree, d, True)
        dst = os.path.join(d, "credbroker")
        shutil.copyfile(BROKER, dst)
        os.chmod(dst, 0o755)
        _broker_copy = dst
    return _broker_copy


# --- the broker ---------------------------------------------------------------

class Broker:
    """A running `credbroker run --config FILE`, its stderr in log_path."""

    def __init__(self, cfg, cfg_path, log_path, workdir, user=None,
                 tag="broker"):
        self.cfg = cfg
        self.cfg_path = cfg_path
        self.log_path = log_path
        self.mount = cfg["mount"]["path"]
        self.socket = cfg["control"]["socket"]
        self.workdir = workdir
        self._log = open(log_path, "ab")
        # As another uid (an unprivileged broker): the binary from a copy
        # that uid can reach, no supplementary groups.
        kw = {} if user is None else dict(user=user, group=user,
                                          extra_groups=[])
        binary = BROKER if user is None else broker_copy_for_others()
        self.proc = subprocess.Popen(daemon_argv(
            [binary, "run", "--config", cfg_path], tag),
                                     stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log,
                                     cwd=workdir, **kw)
        self.pid = self.proc.pid
        self.cli_log = log_path + ".cli"
        self._harvest = threading.Thread(target=self._harvest_loop,
                                         daemon=True)
        self._harvest.start()

    def _harvest_loop(self):
        """Reads every version's files (..vN/) as often as a version can
        change, so that the leak check knows every password the broker
        issued, not only those a test happened to read.  Only secrets uid 0
        may read are harvested: a denied open would be logged and audited
        as the test's own doing."""
        mount_readers = self.cfg["mount"].get("readers", [])
        names = [s["name"] for s in self.cfg.get("secrets", [])
                 if 0 in s.get("readers", mount_readers)]
        while self.proc.poll() is None:
            for name in names:
                self._harvest_secret(name)
            time.sleep(0.1)

    def _harvest_secret(self, name):
        base = os.path.join(self.mount, name)
        try:
            entries = [e for e in os.listdir(base) if e.startswith("..v")]
        except OSError:
            return
        for e in entries:
            files = {}
            for f in ("password", "env", "dsn"):
                try:
                    with open(os.path.join(base, e, f)) as fh:
                        files[f] = fh.read()
                except (OSError, UnicodeDecodeError):
                    pass
            note_files(files)

    def state_file(self):
        """The freeze list's path: as configured, else beside the control
        socket (broker/config.c)."""
        return self.cfg.get("state_file") or os.path.join(
            os.path.dirname(self.socket), "state.json")

    # -- process --

    def alive(self):
        return self.proc.poll() is None

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=3000):
        return self.log_text()[-n:]

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signals the broker by PID and waits; returns its exit status
        (None when it had to be SIGKILLed after timeout, scaled())."""
        timeout = scaled(timeout)
        rc = None
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log("broker pid %d ignored signal %d for %ds: SIGKILL" % (
                    self.pid, sig, timeout))
                self.proc.kill()
                self.proc.wait(timeout=30)
                rc = None
        else:
            rc = self.proc.returncode
        self._log.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def cleanup(self):
        """Idempotent: the process gone, the mount gone."""
        try:
            self.stop(timeout=30)
        finally:
            force_unmount(self.mount)

    # -- control socket --

    def cli(self, *args, json_out=True, uid=None, timeout=60):
        """Runs `credbroker --socket S [--json] ARGS`; returns
        (rc, parsed JSON or stdout text, stderr).  The output is appended
        to a log file that the leak check searches too."""
        argv = [BROKER, "--socket", self.socket]
        if json_out:
            argv.append("--json")
        argv += list(args)
        kw = {}
        if uid is not None:
            kw = dict(user=uid, group=uid, extra_groups=[])
            argv[0] = broker_copy_for_others()
        p = subprocess.run(argv, capture_output=True, text=True,
                           timeout=scaled(timeout), cwd="/", **kw)
        with open(self.cli_log, "a") as f:
            f.write("$ %s\n%s%s[rc=%d]\n" % (" ".join(args), p.stdout,
                                            p.stderr, p.returncode))
        out = p.stdout
        if json_out and p.stdout.strip():
            try:
                out = json.loads(p.stdout)
            except ValueError:
                out = p.stdout
        return p.returncode, out, p.stderr

    def status(self):
        rc, out, err = self.cli("status")
        if rc != 0 or not isinstance(out, dict):
            raise AssertionError("status failed rc=%d: %s %s" % (rc, out,
                                                                 err))
        return out

    def secret_status(self, name):
        for s in self.status()["secrets"]:
            if s["name"] == name:
                return s
        raise AssertionError("status has no secret %r" % name)

    def wait_socket(self, timeout=30):
        def ready():
            if not self.alive():
                raise AssertionError(
                    "broker exited (%s) before its socket appeared:\n%s" % (
                        self.proc.returncode, self.log_tail()))
            return os.path.exists(self.socket)
        wait_until(ready, timeout, what="control socket %s" % self.socket)

    def wait_active(self, name, timeout=30, min_version=1):
        """Waits until name is active with version >= min_version and its
        files are in the mount; returns its status entry."""
        self.wait_socket(timeout)
        end = time.monotonic() + scaled(timeout)
        last = None
        while time.monotonic() < end:
            if not self.alive():
                raise AssertionError("broker exited (%s):\n%s" % (
                    self.proc.returncode, self.log_tail()))
            try:
                last = self.secret_status(name)
            except AssertionError:
                last = None
            if (last and last["state"] == "active"
                    and last["version"] >= min_version
                    and os.path.exists(os.path.join(self.mount, name,
                                                    ".lease.json"))):
                return last
            time.sleep(0.1)
        raise AssertionError("secret %s not active within %ds (last status "
                             "%r)\n--- broker log ---\n%s" % (
                                 name, timeout, last, self.log_tail()))

    # -- the mount --

    def path(self, *parts):
        return os.path.join(self.mount, *parts)

    def read_secret(self, name, files=None, base=None):
        """{file: text} of the secret's files (default: the four default
        files and .lease.json) at base (default the secret's directory);
        records the password."""
        base = base or self.path(name)
        out = {}
        for f in (files or DEFAULT_FILES + [".lease.json"]):
            out[f] = read_file(os.path.join(base, f))
        note_files(out)
        return out

    def lease(self, name):
        return json.loads(read_file(self.path(name, ".lease.json")))


def note_files(files):
    """Records every password in a {file: text} dict."""
    if files.get("password"):
        record_password(files["password"].strip())
    if files.get("env"):
        try:
            env = parse_env(files["env"])
        except ValueError:
            env = {}
        for key in ("PGPASSWORD", "AWS_SECRET_ACCESS_KEY",
                    "AWS_SESSION_TOKEN"):
            record_password(env.get(key))
    if files.get("dsn"):
        try:
            record_password(parse_dsn(files["dsn"])["password"])
        except ValueError:
            pass


# --- the test case base class --------------------------------------------------

class BrokerTestCase(unittest.TestCase):
    """One PostgreSQL per class (database cbtest), one temp dir per test."""

    pg = None
    with_pg = True
    _class_logs = None

    @classmethod
    def setUpClass(cls):
        if not os.access(BROKER, os.X_OK):
            raise unittest.SkipTest("no broker binary at %s" % BROKER)
        cls._class_logs = []
        cls._scanned = {}   # copied log -> the secrets it was searched for
        cls.class_tmp = tempfile.mkdtemp(prefix="cbit-")
        os.chmod(cls.class_tmp, 0o755)
        if cls.with_pg:
            cls.pg = PgCluster()
            try:
                cls.pg.start()
                cls.pg.query("CREATE DATABASE %s" % DBNAME)
                cls.pg.query(SETUP_SQL, dbname=DBNAME)
                # Log every statement and connection, so the leak check
                # would see a password sent in clear text in SQL.
                for setting in ("log_statement = 'all'",
                                "log_connections = on",
                                "log_disconnections = on",
                                "log_min_error_statement = 'info'"):
                    cls.pg.query("ALTER SYSTEM SET " + setting)
                cls.pg.query("SELECT pg_reload_conf()")
            except BaseException:
                cls.pg.stop()
                shutil.rmtree(cls.class_tmp, ignore_errors=True)
                raise
            cls.dsn_file = os.path.join(cls.class_tmp, "admin.dsn")
            write_secret_file(cls.dsn_file, cls.pg.dsn(dbname=DBNAME) + "\n")

    @classmethod
    def tearDownClass(cls):
        try:
            logs = list(cls._class_logs or [])
            if cls.pg is not None and cls.pg.logfile:
                logs.append(cls.pg.logfile)
            sanitizer = []
            for p in logs:
                try:
                    with open(p, errors="replace") as f:
                        text = f.read()
                except OSError:
                    continue
                for pat in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                            "runtime error:"):
                    if pat in text:
                        sanitizer.append((p, pat))
            if sanitizer:
                raise AssertionError("sanitizer reports in logs: %r"
                                     % sanitizer)
            # The class's own files (copied logs, simulator logs, inputs)
            # as a tree; a listed log elsewhere (PostgreSQL's) by name.
            outside = [p for p in logs if not _under(p, cls.class_tmp)]
            hits = [(p, "(listed, missing)") for p in logs
                    if _under(p, cls.class_tmp) and not os.path.lexists(p)]
            hits += find_leaks(outside)
            found, files = scan_tree(cls.class_tmp, done=cls._scanned)
            hits += found
            log("leak check: %d passwords seen, %d logs and %d class files "
                "searched, %d hits" % (len(passwords()), len(outside),
                                       files, len(hits)))
            if hits:
                raise AssertionError("secrets found in the class's logs "
                                     "or files: %r" % hits)
            # Every broker of the class has exited: its valgrind logs are
            # complete.
            assert_valgrind_clean(cls.__name__ + ".")
        finally:
            if cls.pg is not None:
                cls.pg.stop()
            shutil.rmtree(cls.class_tmp, ignore_errors=True)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix=self._testMethodName[:20] + "-",
                                    dir=self.class_tmp)
        os.chmod(self.tmp, 0o755)
        self.mountpoint = os.path.join(self.tmp, "mnt")
        os.mkdir(self.mountpoint, 0o755)
        self.brokers = []
        self.addCleanup(self._cleanup_tmp)

    def _cleanup_tmp(self):
        for b in self.brokers:
            try:
                b.cleanup()
            except Exception as e:  # noqa: BLE001
                log("cleanup of broker %d: %r" % (b.pid, e))
        for d, _, _ in os.walk(self.tmp):
            if mounted(d):
                force_unmount(d)
        # Logs outlive the temp dir: copy them into the class dir so the
        # leak check at class end still sees them.
        copies = []
        for b in self.brokers:
            for p in (b.log_path, b.cli_log):
                if os.path.exists(p):
                    dst = os.path.join(self.class_tmp, "%s-%d-%s" % (
                        self._testMethodName, b.pid, os.path.basename(p)))
                    shutil.copyfile(p, dst)
                    self._class_logs.append(dst)
                    copies.append(os.path.realpath(dst))
        hits, searched = self._leak_scan_tmp()
        # The class's check searches the copies only for secrets seen
        # later: a long run's logs are not searched twice.
        for dst in copies:
            self._scanned[dst] = searched
        if any(mounted(d) for d, _, _ in os.walk(self.tmp)):
            log("mount still present under %s; not removing" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if hits:
            raise AssertionError("leak scan of the test's files: %r"
                                 % hits)

    def note_run_secrets(self):
        """Records the secrets only a simulator knows (VaultCase: the tokens
        it issued) before a leak check.  None here."""

    def _leak_scan_tmp(self):
        """(hits, the secrets searched for): every regular file under this
        test's temp dir (audit logs, state files, hook output, configs; the
        mounts excluded) and each broker's state_file kept elsewhere,
        searched for every secret the tests saw.  The files a test listed
        for the class's check that lie here are searched now, before the
        dir goes, and must exist."""
        self.note_run_secrets()
        secrets = passwords()
        here = [p for p in self._class_logs if _under(p, self.tmp)]
        self._class_logs[:] = [p for p in self._class_logs
                               if not _under(p, self.tmp)]
        hits = [(p, "(listed, missing)") for p in sorted(set(here))
                if not os.path.lexists(p)]
        found, files = scan_tree(self.tmp, secrets, prune=[
            self.mountpoint] + [b.mount for b in self.brokers])
        hits += found
        states = sorted({b.state_file() for b in self.brokers
                         if not _under(b.state_file(), self.tmp)})
        hits += find_leaks([p for p in states if os.path.exists(p)], secrets)
        log("leak scan of %s: %d passwords, %d files, %d hits" % (
            os.path.basename(self.tmp), len(secrets), files, len(hits)))
        return hits, {s.encode() for s in secrets}

    def assert_no_secret_in_proc(self, b, must_check=()):
        """No secret the run had in /proc/PID/environ or /proc/PID/cmdline
        of broker b or its children (issue 6).  must_check lists values
        this run must have had (a token, a key): each must be non-empty,
        so the check cannot pass by looking for nothing."""
        self.note_run_secrets()
        for v in must_check:
            self.assertTrue(v, "a secret to look for is empty: bad test")
        secrets = passwords() | set(must_check)
        self.assertTrue(b.alive(), "broker exited:\n" + b.log_tail())
        self.assertEqual(proc_secret_hits(b.pid, secrets), [],
                         "secrets in a process's environment or command "
                         "line")
        return len(secrets)

    # -- configs --

    def secret(self, name="db", ttl="30s", max_ttl="1h", readers=None,
               **extra):
        s = {"name": name, "backend": "pg", "ttl": ttl, "max_ttl": max_ttl,
             "uid": 0, "gid": 0, "mode": "0400",
             "postgres": {"grants": ["GRANT SELECT ON granted_t TO {{name}}"],
                          "dbname": DBNAME}}
        if readers is not None:
            s["readers"] = readers
        s.update(extra)
        return s

    def config(self, secrets=None, **extra):
        cfg = {
            "mount": {"path": self.mountpoint, "readers": [0]},
            "control": {"socket": os.path.join(self.tmp, "control.sock"),
                        "responders": [0]},
            "revoke_on_exit": True,
            "log_level": "debug",
            "backends": {"pg": {"type": "postgres",
                                "admin_dsn_file": self.dsn_file,
                                "connect_timeout": "5s",
                                "statement_timeout": "5s"}}
            if self.with_pg else {},
            "secrets": secrets if secrets is not None else [self.secret()],
        }
        cfg.update(extra)
        return cfg

    def write_config(self, cfg, name="config.json"):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            json.dump(cfg, f, indent=2)
        return path

    def start_broker(self, cfg, name="broker", user=None):
        if _is_valgrind() and "seccomp" not in cfg:
            # valgrind cannot pass seccomp(2) through (it fails with
            # ENOSYS, so the broker would not start): the sandbox off, by
            # the documented key; test_e2e_hardening and test_seccomp
            # keep it exercised in the plain runs.
            cfg = dict(cfg, seccomp=False)
        cfg_path = self.write_config(cfg, name + ".json")
        if user is not None:
            os.chown(cfg_path, user, user)
        b = Broker(cfg, cfg_path, os.path.join(self.tmp, name + ".log"),
                   self.tmp, user=user, tag="%s.%s.%s" % (
                       type(self).__name__, self._testMethodName, name))
        self.brokers.append(b)
        return b

    def run_broker_to_exit(self, cfg, timeout=30, name="broker"):
        """Runs a broker expected to exit by itself; returns (rc, log)."""
        b = self.start_broker(cfg, name)
        try:
            rc = b.proc.wait(timeout=scaled(timeout))
        except subprocess.TimeoutExpired:
            raise AssertionError("broker did not exit within %ds:\n%s" % (
                timeout, b.log_tail()))
        return rc, b.log_text()

    # -- PostgreSQL as admin --

    def admin(self):
        return PgConn(self.pg.dsn(dbname=DBNAME) + " connect_timeout=5")

    def admin_rows(self, sql):
        with self.admin() as c:
            return c.execute(sql)

    def cb_roles(self):
        """{rolname: (rolcanlogin, epoch of rolvaliduntil or None)}."""
        rows = self.admin_rows(
            "SELECT rolname, rolcanlogin, "
            "extract(epoch FROM rolvaliduntil)::float8 "
            "FROM pg_roles WHERE rolname LIKE 'cb\\_%'")
        return {r[0]: (r[1] == "t", float(r[2]) if r[2] else None)
                for r in rows}

    def drop_cb_roles(self):
        """Drops every cb_ role (those a SIGKILLed broker left behind)."""
        with self.admin() as c:
            for r in c.execute("SELECT rolname FROM pg_roles "
                               "WHERE rolname LIKE 'cb\\_%'"):
                ident = '"%s"' % r[0].replace('"', '""')
                c.execute("SELECT pg_terminate_backend(pid) FROM "
                          "pg_stat_activity WHERE usename = '%s'" % r[0])
                c.execute("DROP OWNED BY %s" % ident)
                c.execute("DROP ROLE %s" % ident)

    def role_exists(self, name):
        return bool(self.admin_rows(
            "SELECT 1 FROM pg_roles WHERE rolname = '%s'" % name.replace(
                "'", "''")))

    def role_valid_until(self, name):
        rows = self.admin_rows(
            "SELECT extract(epoch FROM rolvaliduntil)::float8 FROM pg_roles "
            "WHERE rolname = '%s'" % name.replace("'", "''"))
        return float(rows[0][0]) if rows and rows[0][0] else None

    def sessions_of(self, prefix="cb\\_"):
        return self.admin_rows(
            "SELECT pid, usename FROM pg_stat_activity "
            "WHERE usename LIKE '%s%%'" % prefix)

    def assert_login_ok(self, files, msg=""):
        ok, res = try_login(files["dsn"].strip(),
                            "SELECT current_user")
        self.assertTrue(ok, "login with dsn failed: %s %s" % (res, msg))
        self.assertEqual(res[0][0], files["username"].strip())


def _under(path, root):
    """True when path lies inside directory root (by name)."""
    path, root = os.path.abspath(path), os.path.abspath(root)
    return path.startswith(root.rstrip("/") + "/")


def write_secret_file(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def iso_to_epoch(s):
    """RFC 3339 ("2026-12-04T14:30:00Z" or with +00:00) to epoch seconds."""
    from datetime import datetime
    s = s.strip()
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    return datetime.fromisoformat(s).timestamp()


def main():
    unittest.main(verbosity=2)
