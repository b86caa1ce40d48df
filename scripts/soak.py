#!/usr/bin/env python3
"""make soak: a bounded run (SOAK_SECONDS, default 300) of one broker under
steady load, to catch slow leaks that the short tests cannot.

Starts a throwaway PostgreSQL (tests/integration/pgcluster.py: Unix socket
only, as `nobody` when run as root) and a broker with a FUSE mount serving
three secrets whose ttl of a few seconds makes them renew and rotate every
few seconds; reader processes (tests/integration/test_e2e_load.py --reader)
read every secret's files constantly; `credbroker rotate` runs every
ROTATE_EVERY seconds (round robin) and `credbroker status` every
STATUS_EVERY.  Every SAMPLE_EVERY seconds the broker's VmRSS and Threads
(/proc/PID/status) and open descriptors (/proc/PID/fd) are sampled, between
two control calls so that no per-connection thread is counted.

At the end a table shows start, warm-up (the first sample at WARMUP of the
run), end and max, and the run fails (exit 1) when, after warm-up, RSS grew
by more than RSS_TOLERANCE_PCT percent and RSS_TOLERANCE_KIB at once,
when descriptors or threads at the end exceed those at warm-up, when a
reader saw a torn read or an error README's mount section does not
document, or when a rotate or status call failed.  A top-level file that
went missing (a credential that expired before its successor came: a
documented ENOENT, but a sign of a stalled broker or host) is only a
warning.  Everything is removed at
the end, also on Ctrl-C: readers, the broker (SIGTERM by PID: it revokes
its roles and unmounts), the mount (detached if still there), PostgreSQL.
"""

import json
import os
import shutil
import signal
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("CB_SOURCE_DIR", ROOT)

import cbtest  # noqa: E402
import test_e2e_load as load  # noqa: E402
from pgcluster import PgCluster  # noqa: E402

# (name, ttl, max_ttl): renewed at ~2/3 of the ttl, rotated every few
# seconds ("report": every refresh is a rotation).
SECRETS = [("db", "5s", "10s"), ("app", "6s", "12s"), ("report", "4s", "4s")]
READER_PROCS_PER_SECRET = 2
READER_THREADS = 4
ROTATE_EVERY = 5.0
STATUS_EVERY = 2.0
SAMPLE_EVERY = 10.0
WARMUP = 0.2
RSS_TOLERANCE_PCT = 10.0
RSS_TOLERANCE_KIB = 2048
STATUS_BOUND = 2.0
DBNAME = "soak"


def log(msg):
    sys.stderr.write("[soak %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def proc_sample(pid):
    """{rss_kib, threads, fds} of pid (fds None when /proc/PID/fd cannot be
    read: the broker is not dumpable, so only root may list it)."""
    out = {"rss_kib": None, "threads": None, "fds": None}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                out["rss_kib"] = int(line.split()[1])
            elif line.startswith("Threads:"):
                out["threads"] = int(line.split()[1])
    try:
        out["fds"] = len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        pass
    return out


def quiet_sample(pid):
    """The smallest of three samples 50 ms apart: a thread or descriptor
    that a just-closed control connection still held is not counted."""
    best = None
    for i in range(3):
        s = proc_sample(pid)
        if best is None:
            best = s
        else:
            best = {k: (min(best[k], s[k]) if s[k] is not None else best[k])
                    for k in best}
        if i < 2:
            time.sleep(0.05)
    return best


def write_config(work, pg):
    dsn_file = os.path.join(work, "admin.dsn")
    cbtest.write_secret_file(dsn_file, pg.dsn(dbname=DBNAME) + "\n")
    uid = os.getuid()
    secrets = [{
        "name": name, "backend": "pg", "ttl": ttl, "max_ttl": max_ttl,
        "uid": uid, "gid": os.getgid(), "mode": "0400",
        "postgres": {"dbname": DBNAME,
                     "grants": ["GRANT SELECT ON soak_t TO {{name}}"]},
    } for name, ttl, max_ttl in SECRETS]
    return {
        "mount": {"path": os.path.join(work, "mnt"), "readers": [uid]},
        "control": {"socket": os.path.join(work, "control.sock"),
                    "responders": [uid]},
        "audit": {"file": os.path.join(work, "audit.log")},
        "state_file": os.path.join(work, "state.json"),
        "revoke_on_exit": True,
        "log_level": "info",
        "backends": {"pg": {"type": "postgres", "admin_dsn_file": dsn_file,
                            "connect_timeout": "5s",
                            "statement_timeout": "5s"}},
        "secrets": secrets,
    }


def start_broker(work, pg):
    cfg = write_config(work, pg)
    os.mkdir(cfg["mount"]["path"], 0o755)
    cfg_path = os.path.join(work, "credbroker.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)
    b = cbtest.Broker(cfg, cfg_path, os.path.join(work, "broker.log"), work)
    for name, _, _ in SECRETS:
        b.wait_active(name, timeout=60)
    return b


class Run:
    """What the main loop saw."""

    def __init__(self):
        self.samples = []            # (seconds since start, sample)
        self.rotate_ok = 0
        self.rotate_failed = []
        self.status_s = []
        self.status_failed = []


def main_loop(b, seconds, run):
    t0 = time.monotonic()
    end = t0 + seconds
    next_sample = t0
    next_rotate = t0 + ROTATE_EVERY
    next_status = t0
    turn = 0
    while True:
        now = time.monotonic()
        if not b.alive():
            raise RuntimeError("the broker exited (%s):\n%s" % (
                b.proc.returncode, b.log_tail()))
        if now >= next_sample or now >= end:
            run.samples.append((now - t0, quiet_sample(b.pid)))
            next_sample += SAMPLE_EVERY
            s = run.samples[-1][1]
            log("t=%4.0fs rss=%s KiB threads=%s fds=%s" % (
                now - t0, s["rss_kib"], s["threads"], s["fds"]))
        if now >= end:
            return
        if now >= next_rotate:
            name = SECRETS[turn % len(SECRETS)][0]
            turn += 1
            rc, out, err = b.cli("rotate", name)
            if rc == 0:
                run.rotate_ok += 1
            else:
                run.rotate_failed.append((name, rc, str(out)[:200]))
            next_rotate += ROTATE_EVERY
        if now >= next_status:
            t = time.monotonic()
            rc, out, err = b.cli("status")
            run.status_s.append(time.monotonic() - t)
            if rc != 0 or not isinstance(out, dict) or not out.get("ok"):
                run.status_failed.append((rc, str(out)[:200], err[:200]))
            next_status += STATUS_EVERY
        time.sleep(max(0.0, min(next_sample, next_rotate, next_status, end)
                       - time.monotonic()))


def reader_verdict(reports):
    """(errors by key, torn count, failures, warnings)."""
    errors, torn, torn_count, failures, warnings = {}, [], 0, [], []
    for r in reports:
        for k, n in r["errors"].items():
            errors[k] = errors.get(k, 0) + n
        torn += r["torn"]
        torn_count += r["torn_count"]
        if r["alive"]:
            failures.append("%d reader threads did not stop" % r["alive"])
        if r["idle_threads"]:
            failures.append("%d reader threads never read"
                            % r["idle_threads"])
    for k, n in errors.items():
        _, where, op, name = k.split()
        if getattr(__import__("errno"), name, None) not in \
                load.DOCUMENTED[op]:
            failures.append("undocumented error: %s x%d" % (k, n))
        elif where == "top":
            # Documented (an expiry), but it means the broker did not
            # replace a credential within the last third of its life.
            warnings.append("a current version expired before its "
                            "successor was published (a stalled broker or "
                            "host?): %s x%d" % (k, n))
    if torn_count:
        failures.append("%d torn reads, e.g. %r" % (torn_count, torn[:3]))
    return errors, torn_count, failures, warnings


def verdict(run, reports):
    failures = []
    samples = run.samples
    if len(samples) < 3:
        return ["too few samples (%d): run longer" % len(samples)]
    span = samples[-1][0]
    warm = next(s for t, s in samples if t >= WARMUP * span)
    start, last = samples[0][1], samples[-1][1]
    rows = []
    for key, label in (("rss_kib", "VmRSS (KiB)"), ("threads", "threads"),
                       ("fds", "descriptors")):
        vals = [s[key] for _, s in samples if s[key] is not None]
        rows.append((label, start[key], warm[key], last[key],
                     max(vals) if vals else None))
    print("\n%-14s %10s %10s %10s %10s" % ("broker", "start", "warm-up",
                                          "end", "max"))
    for row in rows:
        print("%-14s %10s %10s %10s %10s" % tuple(
            "n/a" if v is None else v for v in row))
    grew = last["rss_kib"] - warm["rss_kib"]
    pct = 100.0 * grew / warm["rss_kib"]
    print("RSS after warm-up: %+d KiB (%+.1f%%); tolerance %d KiB and "
          "%.0f%%" % (grew, pct, RSS_TOLERANCE_KIB, RSS_TOLERANCE_PCT))
    if grew > RSS_TOLERANCE_KIB and pct > RSS_TOLERANCE_PCT:
        failures.append("RSS grew by %d KiB (%.1f%%) after warm-up"
                        % (grew, pct))
    for key in ("threads", "fds"):
        if last[key] is None:
            log("%s not sampled (run as root to count descriptors)" % key)
        elif last[key] > warm[key]:
            failures.append("%s grew after warm-up: %d -> %d" % (
                key, warm[key], last[key]))
    errors, torn_count, rfail, warnings = reader_verdict(reports)
    failures += rfail
    for w in warnings:
        print("warning: " + w)
    reads = sum(sum(r["ok"].values()) for r in reports)
    print("readers: %d processes, %d reads ok, errors %r, torn %d" % (
        len(reports), reads, errors, torn_count))
    print("control: %d forced rotations ok, %d failed; status %s" % (
        run.rotate_ok, len(run.rotate_failed), load._stats(run.status_s)))
    if run.rotate_failed:
        failures.append("rotate failed: %r" % run.rotate_failed[:3])
    if run.status_failed:
        failures.append("status failed: %r" % run.status_failed[:3])
    if run.status_s and max(run.status_s) > STATUS_BOUND:
        failures.append("status took %.1fs" % max(run.status_s))
    if not reports or reads == 0:
        failures.append("no reader reported")
    return failures


def soak(seconds):
    work = tempfile.mkdtemp(prefix="cbsoak-")
    os.chmod(work, 0o755)
    pg = broker = None
    pools = []
    try:
        pg = PgCluster().start()
        pg.query("CREATE DATABASE %s" % DBNAME)
        pg.query("CREATE TABLE soak_t (id int); INSERT INTO soak_t "
                 "VALUES (1)", dbname=DBNAME)
        # Our own copy of the binary, daemon and CLI alike: a rebuild of
        # the tree during the run must not pull it from under us.
        binary = os.path.join(work, "credbroker")
        shutil.copyfile(cbtest.BROKER, binary)
        os.chmod(binary, 0o755)
        cbtest.BROKER = binary
        broker = start_broker(work, pg)
        log("broker pid %d, mount %s, %d secrets, %ds" % (
            broker.pid, broker.mount, len(SECRETS), seconds))
        for name, _, _ in SECRETS:
            pools.append(load.ReaderPool(broker.path(name),
                                         READER_PROCS_PER_SECRET,
                                         READER_THREADS))
        run = Run()
        main_loop(broker, seconds, run)
        st = {s["name"]: s for s in broker.status()["secrets"]}
        reports = [r for p in pools for r in p.stop()]
        print("\nsecrets: %s" % ", ".join(
            "%s v%d (%d rotations, %d renewals, %d failures)" % (
                n, s["version"], s["rotations"], s["renewals"],
                s["failures"]) for n, s in st.items()))
        failures = verdict(run, reports)
        rc = broker.stop(timeout=60)
        if rc != 0:
            failures.append("broker exit status %r at SIGTERM" % rc)
        if cbtest.mounted(broker.mount):
            failures.append("mount left after the broker exited")
        if failures:
            print("\nsoak FAILED:\n  " + "\n  ".join(failures))
            print("--- broker log (tail) ---\n" + broker.log_tail(2000))
            return 1
        print("\nsoak passed")
        return 0
    finally:
        for p in pools:
            p.stop(timeout=20)
        if broker is not None:
            broker.cleanup()
        if pg is not None:
            pg.stop()
        if broker is None or not cbtest.mounted(broker.mount):
            shutil.rmtree(work, ignore_errors=True)
        else:
            log("mount still present; left %s" % work)


def main():
    seconds = int(os.environ.get("SOAK_SECONDS", "300") or "300")
    if seconds < 30:
        print("soak: SOAK_SECONDS must be at least 30", file=sys.stderr)
        return 2
    if not os.access(cbtest.BROKER, os.X_OK):
        print("soak: no broker at %s (make build)" % cbtest.BROKER,
              file=sys.stderr)
        return 2

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    try:
        return soak(seconds)
    except KeyboardInterrupt:
        print("soak: interrupted; cleaned up", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
