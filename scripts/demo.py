#!/usr/bin/env python3
"""make demo: credbroker's main job on this machine, nothing else needed.

Starts a throwaway PostgreSQL (Unix socket only, as `nobody` when run as
root), writes a demo config with a 20 s TTL so renewals and rotations show,
runs the broker with its FUSE mount at ./secrets, and on Ctrl-C (or after
DEMO_SECONDS) lets the broker revoke, unmount and exit, then stops
PostgreSQL.  Everything but the mount lives under .demo/.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from pgcluster import PgCluster  # noqa: E402

DEMO = os.path.join(ROOT, ".demo")
MOUNT = os.path.join(ROOT, "secrets")
BINARY = os.path.join(ROOT, "build", "credbroker")


def reachable_by_others(path):
    """True when every directory above path lets other users through, so
    the unprivileged PostgreSQL server can reach its data under .demo/."""
    path = os.path.abspath(path)
    while path != "/":
        path = os.path.dirname(path)
        if not os.stat(path).st_mode & 0o001:
            return False
    return True


def reader_uid():
    """The person running the demo, also under sudo."""
    return int(os.environ.get("SUDO_UID", os.getuid()))


def write_config(pg):
    dsn_file = os.path.join(DEMO, "admin.dsn")
    fd = os.open(dsn_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("host=%s port=%d user=cbadmin dbname=demo\n"
                % (pg.socket_dir, pg.port))
    uid = reader_uid()
    config = {
        "mount": {"path": MOUNT, "readers": [uid]},
        "control": {"socket": os.path.join(DEMO, "control.sock")},
        "audit": {"file": os.path.join(DEMO, "audit.log")},
        "backends": {"pg": {"type": "postgres", "admin_dsn_file": dsn_file}},
        "secrets": [{
            "name": "db", "backend": "pg", "ttl": "20s", "max_ttl": "30s",
            "uid": uid,
            "postgres": {"grants": [
                "GRANT SELECT ON demo_items TO {{name}}"]},
        }],
    }
    path = os.path.join(DEMO, "credbroker.json")
    with open(path, "w") as f:
        json.dump(config, f, indent=2)
    return path


def wait_for_file(path, broker, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if broker.poll() is not None:
            return False
        if os.path.exists(path):
            return True
        time.sleep(0.1)
    return False


def banner():
    print("""
credbroker demo: a PostgreSQL login role lives in %(m)s/db/ (TTL 20 s,
renewed at ~2/3 of its TTL, rotated to a new role near max_ttl 30 s).
Try, in another terminal, from %(r)s:
    ls -la secrets/db/            cat secrets/db/.lease.json
    cat secrets/db/dsn            psql "$(cat secrets/db/dsn)" -c 'SELECT * FROM demo_items'
    build/credbroker status       build/credbroker rotate db
    build/credbroker revoke db    build/credbroker unfreeze db
    build/credbroker revoke --all --reason drill --verify
    build/credbroker audit verify .demo/audit.log
Ctrl-C here revokes the role, unmounts and stops PostgreSQL.
""" % {"m": MOUNT, "r": ROOT}, flush=True)


def run_broker(config, seconds):
    broker = subprocess.Popen([BINARY, "run", "--config", config])
    try:
        if not wait_for_file(os.path.join(MOUNT, "db", "dsn"), broker):
            print("demo: the broker did not publish secrets/db/dsn",
                  file=sys.stderr)
            return 1
        banner()
        deadline = time.monotonic() + seconds if seconds > 0 else None
        while broker.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        if broker.poll() is None:
            broker.send_signal(signal.SIGTERM)
        try:
            broker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()
    return 0 if broker.returncode in (0, -signal.SIGTERM) else 1


def main():
    seconds = int(os.environ.get("DEMO_SECONDS", "0") or "0")
    os.makedirs(DEMO, mode=0o755, exist_ok=True)
    os.makedirs(MOUNT, exist_ok=True)
    # A throwaway database gets fresh roles: a freeze left by an earlier
    # demo's revoke does not carry over (in production it does).
    try:
        os.unlink(os.path.join(DEMO, "state.json"))
    except FileNotFoundError:
        pass
    if reachable_by_others(DEMO) or os.geteuid() != 0:
        tempfile.tempdir = DEMO
    else:
        print("demo: %s is not reachable by the unprivileged PostgreSQL "
              "user; its cluster goes to %s" % (DEMO, tempfile.gettempdir()))
    # Ctrl-C reaches the broker too (same process group); it cleans up.
    pg = PgCluster().start()
    try:
        pg.query("CREATE DATABASE demo")
        pg.query("CREATE TABLE demo_items (id int, name text); "
                 "INSERT INTO demo_items VALUES (1, 'it works')",
                 dbname="demo")
        return run_broker(write_config(pg), seconds)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        pg.stop()
        print("demo: stopped (role revoked, mount gone, PostgreSQL "
              "stopped)")


if __name__ == "__main__":
    sys.exit(main())
