#!/usr/bin/env python3
"""with_pg.py -- CMD ARGS...

Starts a throwaway PostgreSQL (pgcluster.py), creates the test database
`cbtest` with the tables `granted_t` and `secret_t`, writes the admin DSN to
a 0600 file, runs CMD with

    CB_TEST_PG_DSN_FILE   the admin DSN file (superuser cbadmin, db cbtest)
    CB_TEST_PG_SOCKET     the socket directory
    CB_TEST_PG_PORT       the port (names the socket file)
    CB_TEST_PG_DBNAME     cbtest
    CB_TEST_PG_LOG        the server log (every statement is logged)

then stops the cluster and exits with CMD's status (128+N for signal N).
"""

import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pgcluster import PgCluster  # noqa: E402

SETUP = """
CREATE TABLE granted_t (id int PRIMARY KEY, v text);
INSERT INTO granted_t VALUES (1, 'visible');
CREATE TABLE secret_t (id int PRIMARY KEY, v text);
INSERT INTO secret_t VALUES (1, 'hidden');
"""


def _terminate(signum, frame):
    # Turn ctest's timeout SIGTERM into an exception so the cluster is
    # stopped and its directory removed.
    raise SystemExit(128 + signum)


def main(argv):
    if len(argv) < 2 or argv[0] != "--":
        sys.stderr.write(__doc__)
        return 2
    cmd = argv[1:]
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    with PgCluster() as pg:
        # Log every statement, so a password sent in clear text would be
        # seen by the suite's log search (CB_TEST_PG_LOG).
        for setting in ("log_statement = 'all'", "log_connections = on"):
            pg.query("ALTER SYSTEM SET " + setting)
        pg.query("SELECT pg_reload_conf()")
        pg.query("CREATE DATABASE cbtest")
        pg.query(SETUP, dbname="cbtest")
        dsn_file = os.path.join(pg.tmpdir, "admin.dsn")
        fd = os.open(dsn_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pg.dsn(dbname="cbtest") + "\n")
        env = dict(os.environ,
                   CB_TEST_PG_DSN_FILE=dsn_file,
                   CB_TEST_PG_SOCKET=pg.socket_dir,
                   CB_TEST_PG_PORT=str(pg.port),
                   CB_TEST_PG_DBNAME="cbtest",
                   CB_TEST_PG_LOG=pg.logfile)
        proc = subprocess.Popen(cmd, env=env)
        try:
            rc = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
