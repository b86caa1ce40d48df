"""Rotation (issue 7): publish -> the first reader sees the new version,
and torn reads, on a real mount of the fusefs (bench/fsbench) against a
tmpfs writer measured in the same run.

fsbench publishes a new version every INTERVAL_US (store_publish for the
fs; write to a temporary file + rename(2) on tmpfs), recording the
CLOCK_MONOTONIC time just before the publish starts (version built and
published, or file written and renamed).  Reader processes loop
open+read+close and validate every read: the content carries its version
number, a payload derived from it and an FNV-1a checksum, so a read mixing
two versions, or a short one, is counted torn.  The latency of a version is
the end of the first read that returned it (or a newer one) minus its
publish time.  Every 64 reads a reader also checks a descriptor it holds
open across rotations: the version it pinned must never change under it
(invariant 2), and it counts stale reads (opened more than 5 ms after a
newer version's publish returned, still old) and regressions (older after
newer).

Variants, interleaved each repetition: fs audited, fs fast, tmpfs
write+rename, and the negative control, a naive tmpfs writer that rewrites
the file in place (O_TRUNC, then two writes), which must show torn reads
(it proves the checker sees them); each with reader and broker on the same
core and on different cores.  Under memory pressure, audited, fast and
tmpfs run again with a hog in a separate process: it holds PRESSURE_MIB
touched (bounded by a quarter of MemAvailable; this machine is shared, so
no cgroup and no attempt to fill memory), keeps dropping and re-faulting
it in 2 MiB chunks, and after each chunk evicts the benchmark file from the
page cache (posix_fadvise DONTNEED), which is what reclaim does to those
pages.  Then a soak (fast mode, two readers, one per core, pressure on
every other chunk) tops the validated reads on the fs up to 10^7.

Peers are modelled (rows marked model): the Secrets Store CSI driver sees a
rotation at its next poll (--rotation-poll-interval, 2 min by default:
uniform phase, p50 60 s, p99 118.8 s) and writes through Kubernetes'
atomic writer (..data symlink swap), so no torn reads; Vault Agent
re-renders a KV (non-leased) secret every static_secret_render_interval
(5 min by default) and consul-template writes by temp file + rename, so
tmpfs write+rename above is its best case once it has the new value."""

import os

import common as cm

NAME = "rotation"
TITLE = "Rotation: publish to first read of the new version; torn reads"
SIZE = 64
INTERVAL_US = 1000
TORN_TARGET = 10 ** 7
MODES = ["audited", "fast"]


def _pressure_mib(ctx):
    avail = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    want = 256 if ctx.quick else 1024
    return max(0, min(want, avail // 8))


def _variants(ctx):
    """(name, args) in the order they run each repetition."""
    ms = 300 if ctx.quick else 1000
    out = []
    pl = cm.placements()
    for label, scpu, rcpu in pl:
        for tgt, mode in [("fs", m) for m in MODES] + [
                ("tmpfs", "default"), ("naive", "default")]:
            what = "fs/%s" % mode if tgt == "fs" else tgt
            out.append(("%s %s" % (what, label), [
                "rotate", "--target", tgt, "--mode", mode, "--ms", ms,
                "--interval-us", INTERVAL_US, "--size", SIZE,
                "--server-cpu", scpu, "--reader-cpus", rcpu]))
    # The same with each publish waiting for the kernel invalidations
    # (fs_flush_invalidations): the publish call then measures them.
    label, scpu, rcpu = pl[-1]
    for mode in MODES:
        out.append(("fs/%s+flush %s" % (mode, label), [
            "rotate", "--target", "fs", "--mode", mode, "--ms", ms,
            "--interval-us", INTERVAL_US, "--size", SIZE, "--server-cpu",
            scpu, "--reader-cpus", rcpu, "--flush-ms", 100]))
    pm = _pressure_mib(ctx)
    if pm > 0:
        label, scpu, rcpu = pl[-1]
        for tgt, mode in [("fs", m) for m in MODES] + [("tmpfs", "default")]:
            what = "fs/%s" % mode if tgt == "fs" else tgt
            out.append(("%s %s, pressure" % (what, label), [
                "rotate", "--target", tgt, "--mode", mode, "--ms", ms,
                "--interval-us", INTERVAL_US, "--size", SIZE,
                "--server-cpu", scpu, "--reader-cpus", rcpu,
                "--pressure-mib", pm]))
    return out


def _run_one(ctx, res, name, args, lat):
    sp = os.path.join(ctx.out_dir, "rot-%d.u64" % os.getpid())
    try:
        r = cm.run_fsbench(ctx, args + ["--samples", sp], timeout=180)
    except Exception as e:  # noqa: BLE001 (recorded, the run goes on)
        ctx.log("rotation: %s failed: %s" % (name, e))
        res["raw"]["runs"].setdefault(name, []).append({"error": str(e)})
        return None
    finally:
        samples = cm.read_samples(sp, "Q")
        if os.path.exists(sp):
            os.unlink(sp)
    lat.setdefault(name, []).extend(samples)
    res["raw"]["runs"].setdefault(name, []).append(r)
    return r


def run(ctx):
    res = {"scenario": NAME, "title": TITLE, "rows": [], "plots": [],
           "notes": [], "raw": {"runs": {},
                                "pressure_mib": _pressure_mib(ctx)}}
    if not cm.have_fuse():
        res["notes"].append("skipped: needs root and /dev/fuse")
        return res
    os.makedirs(ctx.out_dir, exist_ok=True)
    lat = {}
    variants = _variants(ctx)
    for rep in range(ctx.reps):
        ctx.log("rotation: repetition %d/%d (%d variants)" % (
            rep + 1, ctx.reps, len(variants)))
        for name, args in variants:
            _run_one(ctx, res, name, args, lat)
    _soak(ctx, res, lat)
    _rows(ctx, res, lat)
    return res


def _fs_valid(res):
    return sum(r.get("valid", 0) for n, rs in res["raw"]["runs"].items()
               if n.startswith("fs/") for r in rs if "error" not in r)


def _soak(ctx, res, lat):
    """Fast mode, two readers, until the fs has TORN_TARGET validated reads
    (at most 110 s of soak)."""
    target = 10 ** 5 if ctx.quick else TORN_TARGET
    budget = 10 if ctx.quick else 110
    chunk_ms = 1000 if ctx.quick else 5000
    cs = cm.cpus()
    rc = "%d,%d" % (cs[0], cs[-1])
    pm = _pressure_mib(ctx)
    spent, i = 0.0, 0
    while _fs_valid(res) < target and spent < budget:
        pressure = pm > 0 and i % 2 == 1
        name = "fs/fast soak, two readers%s" % (", pressure" if pressure
                                                else "")
        args = ["rotate", "--target", "fs", "--mode", "fast", "--ms",
                chunk_ms, "--interval-us", INTERVAL_US, "--size", SIZE,
                "--readers", 2, "--reader-cpus", rc, "--server-cpu", -1]
        if pressure:
            args += ["--pressure-mib", pm]
        r = _run_one(ctx, res, name, args, {})
        spent += chunk_ms / 1000.0
        i += 1
        if r is None:
            break
        ctx.log("rotation: soak %d: %d validated reads on the fs so far" % (
            i, _fs_valid(res)))


def _f(x, nd=3):
    return "n/a" if x is None else ("%." + str(nd) + "f") % x


def _sum(runs, names, field):
    return sum(r.get(field, 0) for n in names for r in runs.get(n, [])
               if "error" not in r)


def _rows(ctx, res, lat):
    runs, rows, notes = res["raw"]["runs"], res["rows"], res["notes"]
    ms = 1e-6
    pl = cm.placements()
    for label, _, _ in pl:
        t = "tmpfs %s" % label
        t99 = cm.percentile([v * ms for v in lat.get(t, [])], 99)
        t50 = cm.percentile([v * ms for v in lat.get(t, [])], 50)
        rows.append(cm.row(
            "publish -> first read of the new version p99, tmpfs "
            "write+rename, %s" % label, t99, "ms", None, None,
            "the limit; p50 %s ms, %d rotations" % (
                _f(t50), len(lat.get(t, [])))))
        for mode in MODES:
            n = "fs/%s %s" % (mode, label)
            v = [x * ms for x in lat.get(n, [])]
            p99, p50 = cm.percentile(v, 99), cm.percentile(v, 50)
            ok = [r for r in runs.get(n, []) if "error" not in r]
            pub = cm.median([r["pub_p99_ns"] * ms for r in ok])
            cold = cm.median([r["first_read_p50_ns"] * ms for r in ok])
            tcold = cm.median([r["first_read_p50_ns"] * ms
                               for r in runs.get(t, []) if "error" not in r])
            rows.append(cm.row(
                "publish -> first read of the new version p99, %s, %s" % (
                    mode, label), p99, "ms", "<= 0.5 ms",
                None if p99 is None else p99 <= 0.5,
                "p50 %s ms, max %s ms, %d rotations; %s x tmpfs p99; the "
                "publish call itself p99 %s ms; the open+read+close that "
                "first returned a version took p50 %s ms (tmpfs %s ms)" % (
                    _f(p50), _f(max(v) if v else None), len(v),
                    _f(cm.ratio(p99, t99), 2), _f(pub), _f(cold),
                    _f(tcold))))
    # Publish waiting for the invalidations, for the record.
    inval = {}
    for n in sorted(k for k in runs if "+flush" in k):
        ok = [r for r in runs[n] if "error" not in r]
        v = [x * ms for x in lat.get(n, [])]
        inval[n] = cm.median([r["pub_p50_ns"] * ms for r in ok])
        rows.append(cm.row(
            "publish -> first read p99, %s (publish waits for the kernel "
            "invalidations)" % n, cm.percentile(v, 99), "ms", None, None,
            "p50 %s ms; the publish call (so the invalidations) p50 %s ms, "
            "p99 %s ms; %d flushes timed out (100 ms)" % (
                _f(cm.percentile(v, 50)), _f(inval[n]),
                _f(cm.median([r["pub_p99_ns"] * ms for r in ok])),
                _sum(runs, [n], "flush_timeouts"))))
    # Pressure latency, for the record.
    for n in sorted(k for k in lat if k.endswith(", pressure") and
                    "soak" not in k):
        v = [x * ms for x in lat[n]]
        rows.append(cm.row("publish -> first read p99, %s" % n,
                           cm.percentile(v, 99), "ms", None, None,
                           "p50 %s ms, %d rotations" % (
                               _f(cm.percentile(v, 50)), len(v))))

    fs_all = [n for n in runs if n.startswith("fs/")]
    fs_np = [n for n in fs_all if "pressure" not in n]
    fs_p = [n for n in fs_all if "pressure" in n]
    valid = _sum(runs, fs_all, "valid")
    need = 10 ** 5 if ctx.quick else TORN_TARGET
    torn = _sum(runs, fs_np, "torn")
    rows.append(cm.row(
        "torn reads on the fs", torn, "count", "0 in >= 10^7 validated",
        torn == 0 and _sum(runs, fs_all, "torn") == 0 and valid >= need,
        "%d validated reads on the fs in all (%d without pressure), audited "
        "and fast" % (valid, _sum(runs, fs_np, "valid"))))
    torn_p = _sum(runs, fs_p, "torn")
    rows.append(cm.row(
        "torn reads on the fs under memory pressure", torn_p, "count", "0",
        torn_p == 0 if fs_p else None,
        "%d validated reads under pressure (hog of %d MiB plus page-cache "
        "eviction, %d evictions)" % (
            _sum(runs, fs_p, "valid"), res["raw"]["pressure_mib"],
            _sum(runs, fs_p, "hog_evictions"))))
    naive = [n for n in runs if n.startswith("naive")]
    nt = _sum(runs, naive, "torn")
    rows.append(cm.row(
        "negative control: torn reads, naive in-place tmpfs writer", nt,
        "count", "> 0", nt > 0 if naive else None,
        "%d of %d reads (%d short); proves the checker sees a torn file" % (
            nt, _sum(runs, naive, "ops"), _sum(runs, naive, "short"))))
    tm = [n for n in runs if n.startswith("tmpfs")]
    rows.append(cm.row(
        "torn reads, tmpfs write+rename", _sum(runs, tm, "torn"), "count",
        None, None, "%d validated reads" % _sum(runs, tm, "valid")))
    pv = _sum(runs, fs_all, "pin_violations")
    rows.append(cm.row(
        "version changed under an open descriptor (fs)", pv, "count", "0",
        pv == 0, "%d checks of descriptors held across rotations" %
        _sum(runs, fs_all, "pin_checks")))
    st = _sum(runs, fs_all, "stale")
    rows.append(cm.row(
        "stale reads after rotation (fs)", st, "count", "0", st == 0,
        "opened > 5 ms after a newer version's publish returned, yet old; "
        "regressions (older after newer) %d" % _sum(runs, fs_all,
                                                   "regress")))
    for mode in MODES:
        names = [n for n in fs_all if n.startswith("fs/%s " % mode)]
        if not names:
            continue
        ops = _sum(runs, names, "ops")
        en = _sum(runs, names, "open_enoent")
        er = _sum(runs, names, "errors")
        rows.append(cm.row(
            "failed open+read during rotation, %s" % mode, er, "count", "0",
            er == 0, "%d of %d opens: ENOENT %d, ESTALE %d, other open "
            "errors %d, read errors %d; held descriptors: %d failed preads "
            "(first errno %s)" % (
                er, ops, en, _sum(runs, names, "open_estale"),
                _sum(runs, names, "open_other"),
                er - en - _sum(runs, names, "open_estale") -
                _sum(runs, names, "open_other"),
                _sum(runs, names, "held_errors"),
                ",".join(sorted({str(r.get("held_errno")) for n in names
                                 for r in runs.get(n, [])
                                 if r.get("held_errno")})) or "-")))
    # Models.
    rows.append(cm.row(
        "Secrets Store CSI driver: publish -> visible p99", 118800.0, "ms",
        None, None, "model: rotation poll every 120 s (default), uniform "
        "phase: p50 60 s; atomic writer, so torn reads 0", model=True))
    rows.append(cm.row(
        "Vault Agent (KV secret): publish -> visible p99", 297000.0, "ms",
        None, None, "model: static_secret_render_interval 5 min (default), "
        "uniform phase: p50 150 s; then temp file + rename (as tmpfs "
        "write+rename above), torn reads 0", model=True))
    rows.append(cm.row(
        "keywhiz-fs: publish -> visible", None, "ms", None, None,
        "model: not modelled: it serves from its own client-side cache, "
        "refreshed on a timer; its reads are uncached FUSE (see the read "
        "scenario)", model=True))
    if valid < need:
        notes.append("only %d validated reads on the fs (the soak's time "
                     "budget ran out before %d)" % (valid, need))
    missed = [r["metric"] for r in rows if r["pass"] is False]
    if any("publish -> first read" in m for m in missed):
        notes.append(
            "publish -> first read: the publish call itself is short (each "
            "row), and so, measured with fs_flush_invalidations() (the "
            "+flush rows), is the invalidation: p50 %s ms for the few "
            "notifications fs_inval_slot sends per rotation (the old "
            "names, ..data, vanished ..vN directories, the directory).  "
            "Most of the latency is the first open+read+close of the new "
            "version: the kernel has nothing cached for the new inode, so "
            "it takes LOOKUP, OPEN (audited) and READ round trips to the "
            "broker.  A miss in fast mode on the reader's own core is the "
            "reader itself: it loops on page-cache hits without ever "
            "blocking, so the invalidation thread on that core waits for "
            "the scheduler to preempt it (a few ms); an application that "
            "does anything else between reads does not starve it.  What "
            "would close the rest: pushing the new version's pages with "
            "fuse_lowlevel_notify_store() at publish so READ is not needed, "
            "and a quieter machine: tmpfs's own tail in the same run shows "
            "how much is load." %
            ", ".join("%s %s" % (k.split()[0].split("/")[1], _f(v))
                      for k, v in sorted(inval.items())))
    if any(m.startswith("stale reads") for m in missed):
        notes.append(
            "stale reads: an open more than 5 ms after a newer publish "
            "returned still reached the old version, through a kernel "
            "entry not yet invalidated (the invalidation thread lagging, "
            "or a LOOKUP reply racing the invalidation).")
    if any(m.startswith("failed open+read") for m in missed):
        notes.append(
            "failed open+read during rotation: a diagnostic run (fstat of "
            "the failing descriptor; its inode number carries the version) "
            "showed fast-mode EIOs on descriptors opened 10-15 versions "
            "behind the current one: the reader resolved the name through "
            "an entry not yet invalidated, or ran again only after more "
            "than STORE_KEEP_VERSIONS (4) rotations (1 per ms here), and a "
            "fast-mode handle reads only while its version is listed "
            "(fs.h), with nothing in the page cache yet.  Audited mode "
            "answers such an OPEN with ESTALE, so the VFS looks the name "
            "up again (once, with LOOKUP_REVAL); when that second walk "
            "also lands on a superseded version (the next rotation came "
            "first), ESTALE reaches the application (the ESTALE count).  "
            "Fast "
            "mode has no OPEN to answer.  Rotations minutes "
            "apart make it practically impossible; a READ of a top-level "
            "file's superseded version could still be served while the "
            "version is live (not only while listed) to close it.  Failed "
            "preads on descriptors held across many rotations are by "
            "design in fast mode (fs.h) and not counted here.")
    failed = [k for k, v in runs.items() if any("error" in r for r in v)]
    if failed:
        notes.append("runs that failed (see the JSON): " + ", ".join(failed))
    _plots(ctx, res, lat)


def _plots(ctx, res, lat):
    for label, _, _ in cm.placements():
        series = []
        for n, lab in (("tmpfs", "tmpfs write+rename"),
                       ("fs/fast", "fs fast"), ("fs/audited", "fs audited")):
            vs = lat.get("%s %s" % (n, label))
            if vs:
                series.append((lab, [v / 1e6 for v in vs]))
        p = cm.gnuplot_hist(
            ctx, "rotation_latency_%s.png" % label.replace(" ", "_"),
            "publish -> first read of the new version, %s (all "
            "repetitions)" % label, "latency (ms, log scale)", series,
            vline=(0.5, "target p99 0.5 ms"))
        if p:
            res["plots"].append(p)
