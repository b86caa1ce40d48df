#!/usr/bin/env python3
"""The benchmark driver (issue 7): `make bench` builds, then runs this.

    python3 bench/run.py [--only NAME[,NAME]] [--reps N] [--quick] [--list]

Runs each scenario module bench/scen_<NAME>.py named in SCENARIOS, in
order, and writes, for one run stamped <UTC yyyymmddTHHMMSSZ>:

    bench/results/<stamp>.json   every row and each scenario's raw data
    bench/results/<stamp>.md     the report
    bench/results/<stamp>/       its PNG plots
    bench/REPORT.md              a copy of the report (README links it;
                                 its image links are relative to bench/),
                                 only for a full run: every scenario, at
                                 least 5 repetitions, not --quick

A scenario module defines NAME and run(ctx) -> dict with "scenario",
"title", "rows" (each: metric, value, unit, target, pass, model, detail),
"plots" (PNG paths relative to ctx.out_dir), "notes" and "raw".  It runs
every variant interleaved for ctx.reps repetitions, computes ratios from
figures of the same run, and starts and stops what it needs itself.
ctx (bench/common.py's Context): build_dir (CB_BUILD_DIR, default build/),
source_dir, out_dir, reps, quick, log(msg).

Exit status: 0 when every scenario ran (targets missed or not), 1 when a
scenario raised, 2 for bad arguments.  Fewer than 5 repetitions is allowed
for development but the report says it is not a real report."""

import argparse
import datetime
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402

SCENARIOS = ["read", "rotation", "coldstart", "revoke", "memory",
             "scheduler"]
MIN_REPS = 5


def sh(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        return p.stdout.strip() if p.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def machine():
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = "%.1f GiB" % (int(line.split()[1]) / 1048576)
    except (OSError, ValueError):
        pass
    commit = sh(["git", "-C", common.SOURCE_DIR, "rev-parse", "--short=12",
                 "HEAD"])
    dirty = sh(["git", "-C", common.SOURCE_DIR, "status", "--porcelain",
                "--untracked-files=no"])
    return {"kernel": platform.release(), "cpu": cpu,
            "cores": os.cpu_count(),
            "usable_cpus": sorted(os.sched_getaffinity(0)),
            "memory": mem,
            "libfuse": sh(["pkg-config", "--modversion", "fuse3"]),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%d %H:%M:%S UTC"),
            "commit": (commit or "unknown") + (" (modified)" if dirty
                                               else ""),
            "python": platform.python_version(),
            "load_at_start": os.getloadavg()[0]}


def fmt(v):
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.3g" % v


def verdict(r):
    if r.get("pass") is True:
        return "PASS"
    if r.get("pass") is False:
        return "FAIL"
    return "—"


def cell(s):
    return str(s if s is not None else "").replace("|", "\\|").replace(
        "\n", " ")


def report_md(stamp, mach, args, results, img_prefix, elapsed):
    out = ["# credbroker benchmarks", "",
           "Run `%s` (`make bench`; `python3 bench/run.py%s`), %d "
           "repetitions per variant, interleaved; ratios are to the limit "
           "measured in the same run.  Rows marked *model* are peers that "
           "cannot run here, modelled from their documented behaviour." % (
               stamp, (" " + " ".join(args)) if args else "",
               results["reps"]), ""]
    if results["reps"] < MIN_REPS or results["quick"]:
        out += ["**Not a real report:** %s." % (
            "--quick sample counts" if results["quick"] else
            "fewer than %d repetitions" % MIN_REPS), ""]
    out += ["## Machine", "", "| | |", "|---|---|"]
    for k in ("kernel", "cpu", "cores", "usable_cpus", "memory", "libfuse",
              "date", "commit", "load_at_start"):
        out.append("| %s | %s |" % (k, cell(mach.get(k))))
    out += ["", "Total run time: %.0f s." % elapsed, ""]
    # Summary of every target.
    out += ["## Targets", "", "| scenario | metric | value | target | "
            "result |", "|---|---|---|---|---|"]
    for s in results["scenarios"]:
        for r in s.get("rows", []):
            if r.get("target") and not r.get("model"):
                out.append("| %s | %s | %s %s | %s | %s |" % (
                    s["scenario"], cell(r["metric"]), fmt(r.get("value")),
                    cell(r.get("unit")), cell(r["target"]), verdict(r)))
    out.append("")
    for s in results["scenarios"]:
        out += ["## %s" % s.get("title", s["scenario"]), ""]
        if s.get("error"):
            out += ["**The scenario failed:** `%s`" % cell(
                s["error"].strip().splitlines()[-1]), ""]
        if s.get("loadavg"):
            out += ["%.0f s; 1-minute load average %.1f at its start, %.1f "
                    "at its end (on %d cores: other work on the machine "
                    "competes with what is measured)." % (
                        s.get("seconds", 0), s["loadavg"][0],
                        s["loadavg"][1], os.cpu_count() or 0), ""]
        rows = s.get("rows", [])
        if rows:
            out += ["| metric | value | unit | target | result | detail |",
                    "|---|---|---|---|---|---|"]
            for r in rows:
                m = cell(r["metric"]) + (" *(model)*" if r.get("model")
                                         else "")
                out.append("| %s | %s | %s | %s | %s | %s |" % (
                    m, fmt(r.get("value")), cell(r.get("unit")),
                    cell(r.get("target") or ""), verdict(r),
                    cell(r.get("detail"))))
            out.append("")
        for n in s.get("notes", []):
            out.append("- " + cell(n))
        if s.get("notes"):
            out.append("")
        for p in s.get("plots", []):
            out += ["![%s](%s/%s)" % (p, img_prefix, p), ""]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated scenario names")
    ap.add_argument("--reps", type=int, default=MIN_REPS)
    ap.add_argument("--quick", action="store_true",
                    help="tiny sample counts (development only)")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        print("\n".join(SCENARIOS))
        return 0
    names = SCENARIOS
    if a.only:
        names = [n.strip() for n in a.only.split(",") if n.strip()]
        bad = [n for n in names if n not in SCENARIOS]
        if bad:
            ap.error("unknown scenario(s): %s (have: %s)" % (
                ", ".join(bad), ", ".join(SCENARIOS)))
    if a.reps < 1:
        ap.error("--reps must be at least 1")

    build = os.environ.get("CB_BUILD_DIR",
                           os.path.join(common.SOURCE_DIR, "build"))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y%m%dT%H%M%SZ")
    resdir = os.path.join(HERE, "results")
    out_dir = os.path.join(resdir, stamp)
    os.makedirs(out_dir, exist_ok=True)
    ctx = common.Context(build, common.SOURCE_DIR, out_dir, a.reps, a.quick)
    mach = machine()
    ctx.log("bench: %s, build %s, reps %d%s" % (
        stamp, ctx.build_dir, a.reps, " (quick)" if a.quick else ""))
    results = {"stamp": stamp, "machine": mach, "reps": a.reps,
               "quick": a.quick, "build_dir": ctx.build_dir,
               "scenarios": []}
    status = 0
    t0 = time.monotonic()
    for n in names:
        ts = time.monotonic()
        try:
            mod = importlib.import_module("scen_" + n)
        except ImportError as e:
            ctx.log("bench: scenario %s not present (%s): skipped" % (n, e))
            results["scenarios"].append({
                "scenario": n, "title": n, "rows": [], "plots": [],
                "notes": ["not run: bench/scen_%s.py is missing" % n],
                "raw": {}})
            continue
        ctx.log("bench: scenario %s" % n)
        load0 = os.getloadavg()[0]
        try:
            r = mod.run(ctx)
        except Exception:  # noqa: BLE001 (recorded, the others still run)
            tb = traceback.format_exc()
            ctx.log("bench: scenario %s failed:\n%s" % (n, tb))
            r = {"scenario": n, "title": getattr(mod, "TITLE", n),
                 "rows": [], "plots": [], "notes": [], "raw": {},
                 "error": tb}
            status = 1
        r.setdefault("scenario", n)
        r["seconds"] = round(time.monotonic() - ts, 1)
        r["loadavg"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
        results["scenarios"].append(r)
        ctx.log("bench: scenario %s done in %.0f s" % (n, r["seconds"]))
    elapsed = time.monotonic() - t0
    results["seconds"] = round(elapsed, 1)

    jpath = os.path.join(resdir, stamp + ".json")
    with open(jpath, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True, default=str)
    argv = sys.argv[1:]
    with open(os.path.join(resdir, stamp + ".md"), "w") as f:
        f.write(report_md(stamp, mach, argv, results, stamp, elapsed))
    real = not a.quick and not a.only and a.reps >= MIN_REPS
    if real:
        with open(os.path.join(HERE, "REPORT.md"), "w") as f:
            f.write(report_md(stamp, mach, argv, results,
                              "results/" + stamp, elapsed))
    else:
        ctx.log("bench: not a full run (--quick, --only or reps < %d): "
                "bench/REPORT.md left as it was" % MIN_REPS)
    if not os.listdir(out_dir):
        shutil.rmtree(out_dir, ignore_errors=True)
    ctx.log("bench: wrote %s and %s.md (%.0f s)" % (
        jpath, os.path.join(resdir, stamp), elapsed))
    return status


if __name__ == "__main__":
    sys.exit(main())
