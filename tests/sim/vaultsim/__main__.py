"""Standalone: python3 tests/sim/vaultsim --pki DIR [--pg CONNINFO]
[--config FILE] --address-file FILE (or python3 -m vaultsim ...)."""

import argparse
import json
import os
import signal
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from vaultsim.core import VaultSim  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description="HashiCorp Vault simulator")
    ap.add_argument("--pki", required=True, help="testca.TestPki directory")
    ap.add_argument("--pg", help="admin conninfo for the database engine")
    ap.add_argument("--config", help="JSON: roles and KV seeds")
    ap.add_argument("--address-file", required=True)
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.dirname(HERE))
    from testca import TestPki
    cfg = {}
    if args.config:
        with open(args.config) as f:
            cfg = json.load(f)
    sim = VaultSim(TestPki(args.pki), pg_conninfo=args.pg,
                   require_client_cert=bool(cfg.get("require_client_cert")))
    for r in cfg.get("k8s_roles", []):
        sim.add_k8s_role(**r)
    for r in cfg.get("db_roles", []):
        sim.add_db_role(**r)
    for e in cfg.get("kv2", []):
        sim.kv2_put(e["path"], e["data"], e.get("mount", "secret"))
    for e in cfg.get("kv1", []):
        sim.kv1_put(e["path"], e["data"], e.get("mount", "kv"))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    sim.start()
    tmp = args.address_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(sim.address + "\n")
    os.replace(tmp, args.address_file)
    try:
        while not done.wait(0.5):
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
