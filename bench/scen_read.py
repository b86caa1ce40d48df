"""The read path (issue 7): a real mount of the fusefs (bench/fsbench, in
each cache mode) against tmpfs (/dev/shm) measured in the same run.

- warm open+read+close of a 64-byte secret, p50/p99, one reader;
- pread on a file held open;
- two concurrent readers, ops/s.

Each case runs in two placements: reader and broker (every fs thread) on
the same core, and on different cores (sched_setaffinity in fsbench).  For
the two readers, "same core" puts both readers and the broker on one core,
"different cores" one reader per core and the broker unpinned (this machine
has no third core).  Every variant runs interleaved once per repetition;
ratios are taken within a repetition, then the median over repetitions.

The fs runs with an access listener that reads the opener's /proc/PID/comm,
as the broker's does per audited open; the broker's coalesced audit record
is not written.

Peers that cannot run here are modelled (rows marked model):
- Vault Agent renders templates to a file on tmpfs (an emptyDir with
  medium Memory): its reads are tmpfs reads, ratio 1 by construction.
- The Secrets Store CSI driver writes the mounted files on tmpfs and
  re-writes them when its rotation poll (--rotation-poll-interval, 2 min
  by default) finds a change: reads are tmpfs reads.
- keywhiz-fs serves secrets through FUSE with no kernel caching (go-fuse
  with zero entry/attribute timeouts; every open and read is a request):
  modelled by fsbench's own minimal FUSE server with entry/attr timeouts
  of 0 and direct_io, which answers LOOKUP, GETATTR, OPEN, READ, FLUSH and
  RELEASE from memory.  A Go server adds its own cost per request, so the
  model is a lower bound for keywhiz-fs."""

import os

import common as cm

NAME = "read"
TITLE = "Read path: open+read+close, pread, two readers (against tmpfs)"
SIZE = 64
MODES = ["audited", "fast", "none"]


def _counts(ctx):
    """Timed ops per run for each target (the slow ones get fewer)."""
    k = 10 if ctx.quick else 1
    return {"tmpfs": 20000 // k, "fast": 20000 // k, "audited": 10000 // k,
            "none": 10000 // k, "uncached": 5000 // k,
            "pread": 100000 // k, "two_ms": 200 if ctx.quick else 1000}


def _variants(ctx):
    """(key, kind, target, mode) in the order they run each repetition."""
    v = []
    for label, scpu, rcpu in cm.placements():
        for tgt, mode in [("tmpfs", "default")] + [
                ("fs", m) for m in MODES] + [("fs", "audited-nl"),
                                             ("uncached", "default")]:
            v.append(((label, "orc", tgt, mode), scpu, rcpu))
        for tgt, mode in [("tmpfs", "default"), ("fs", "audited"),
                          ("fs", "fast")]:
            v.append(((label, "pread", tgt, mode), scpu, rcpu))
    cs = cm.cpus()
    two = [("same core", cs[-1], "%d,%d" % (cs[-1], cs[-1]))]
    if len(cs) > 1:
        two.append(("different cores", -1, "%d,%d" % (cs[0], cs[-1])))
    for label, scpu, rcpus in two:
        for tgt, mode in [("tmpfs", "default"), ("fs", "audited"),
                          ("fs", "fast")]:
            v.append(((label, "two", tgt, mode), scpu, rcpus))
    return v


def _args(ctx, key, scpu, rcpu, samples):
    label, kind, tgt, mode = key
    c = _counts(ctx)
    if mode == "audited-nl":
        mode = "audited"
        extra = ["--listener", "none"]
    else:
        extra = []
    a = ["read", "--target", tgt, "--mode", mode, "--size", SIZE,
         "--server-cpu", scpu, "--reader-cpus", rcpu]
    if kind == "two":
        return a + ["--readers", 2, "--ms", c["two_ms"], "--warmup", 200]
    a += extra
    n = c["pread"] if kind == "pread" else c[mode if tgt == "fs" else tgt]
    a += ["--op", "pread" if kind == "pread" else "orc", "--count", n,
          "--warmup", max(200, n // 10)]
    if samples:
        a += ["--samples", samples]
    return a


def _name(key):
    label, kind, tgt, mode = key
    what = tgt if tgt != "fs" else "fs/%s" % mode
    return "%s %s %s" % (kind, what, label)


def run(ctx):
    res = {"scenario": NAME, "title": TITLE, "rows": [], "plots": [],
           "notes": [], "raw": {"runs": {}}}
    if not cm.have_fuse():
        res["notes"].append("skipped: needs root and /dev/fuse")
        return res
    variants = _variants(ctx)
    runs = res["raw"]["runs"]
    hist = {}
    sdir = os.path.join(ctx.out_dir, "raw-read")
    os.makedirs(sdir, exist_ok=True)
    for rep in range(ctx.reps):
        ctx.log("read: repetition %d/%d (%d variants)" % (
            rep + 1, ctx.reps, len(variants)))
        last = rep == ctx.reps - 1
        for key, scpu, rcpu in variants:
            name = _name(key)
            sp = None
            if last and key[1] != "two":
                sp = os.path.join(sdir, name.replace(" ", "_").replace(
                    "/", "-") + ".u32")
            try:
                r = cm.run_fsbench(ctx, _args(ctx, key, scpu, rcpu, sp))
            except Exception as e:  # noqa: BLE001 (recorded, run goes on)
                ctx.log("read: %s failed: %s" % (name, e))
                runs.setdefault(name, []).append({"error": str(e)})
                continue
            runs.setdefault(name, []).append(r)
            if sp:
                hist[name] = cm.read_samples(sp, "I")
                os.unlink(sp)
    os.rmdir(sdir)
    _rows(ctx, res, hist)
    return res


def _get(runs, name, field, rep):
    rs = runs.get(name, [])
    if rep >= len(rs) or "error" in rs[rep]:
        return None
    return rs[rep].get(field)


def _med_field(runs, name, field, scale=1.0):
    vals = [r[field] * scale for r in runs.get(name, [])
            if "error" not in r and r.get(field) is not None]
    return cm.median(vals)


def _med_ratio(runs, a, b, field, reps):
    """Median over repetitions of a/b, each from the same repetition."""
    vals = []
    for rep in range(reps):
        x = cm.ratio(_get(runs, a, field, rep), _get(runs, b, field, rep))
        if x is not None:
            vals.append(x)
    return cm.median(vals), vals


def _errors(runs, name):
    return sum(r.get("errors", 0) for r in runs.get(name, [])
               if "error" not in r)


def _rows(ctx, res, hist):
    runs, rows, notes = res["raw"]["runs"], res["rows"], res["notes"]
    reps = ctx.reps
    us = 1e-3
    total_err = 0
    for label, _, _ in cm.placements():
        t = "orc tmpfs %s" % label
        t50 = _med_field(runs, t, "p50_ns", us)
        t99 = _med_field(runs, t, "p99_ns", us)
        for mode in MODES:
            n = "orc fs/%s %s" % (mode, label)
            o50 = _med_field(runs, n, "p50_ns", us)
            o99 = _med_field(runs, n, "p99_ns", us)
            r50, _ = _med_ratio(runs, n, t, "p50_ns", reps)
            r99, _ = _med_ratio(runs, n, t, "p99_ns", reps)
            total_err += _errors(runs, n)
            det = "ours p50 %s us / p99 %s us; tmpfs %s / %s us" % (
                _f(o50), _f(o99), _f(t50), _f(t99))
            if mode == "fast":
                rows.append(cm.row(
                    "warm open+read+close p50, fast, %s" % label, r50,
                    "x tmpfs", "<= 1.6x", _le(r50, 1.6), det))
                rows.append(cm.row(
                    "warm open+read+close p99, fast, %s" % label, r99,
                    "x tmpfs", "<= 2.0x", _le(r99, 2.0), det))
            elif mode == "audited":
                rows.append(cm.row(
                    "warm open+read+close p50, audited, %s" % label, o50,
                    "us", "<= 30 us", _le(o50, 30.0),
                    det + "; %s x tmpfs" % _f(r50)))
                rows.append(cm.row(
                    "warm open+read+close p99, audited, %s" % label, r99,
                    "x tmpfs", None, None, det))
            else:
                rows.append(cm.row(
                    "warm open+read+close p50, none (no kernel cache), %s"
                    % label, r50, "x tmpfs", None, None, det))
        n = "orc fs/audited-nl %s" % label
        if runs.get(n):
            a50 = _med_field(runs, n, "p50_ns", us)
            rows.append(cm.row(
                "warm open+read+close p50, audited without the /proc/PID/"
                "comm read, %s" % label, a50, "us", None, None,
                "what the broker's per-open pid->comm lookup costs: compare "
                "the audited row (%s us)" % _f(_med_field(
                    runs, "orc fs/audited %s" % label, "p50_ns", us))))
        # keywhiz-fs model
        n = "orc uncached %s" % label
        r50, _ = _med_ratio(runs, n, t, "p50_ns", reps)
        r99, _ = _med_ratio(runs, n, t, "p99_ns", reps)
        rows.append(cm.row(
            "keywhiz-fs (uncached FUSE) open+read+close p50, %s" % label,
            r50, "x tmpfs", None, None,
            "model: every LOOKUP/GETATTR/OPEN/READ/FLUSH/RELEASE reaches "
            "a minimal C FUSE server; p50 %s us, p99 %s x tmpfs" % (
                _f(_med_field(runs, n, "p50_ns", us)), _f(r99)),
            model=True))
        for peer, why in (
                ("Vault Agent (template to tmpfs)",
                 "model: the app reads a tmpfs file; tmpfs p50 %s us"
                 % _f(t50)),
                ("Secrets Store CSI driver (poll and rewrite)",
                 "model: the app reads a tmpfs file; tmpfs p50 %s us"
                 % _f(t50))):
            rows.append(cm.row("%s open+read+close p50, %s" % (peer, label),
                               1.0, "x tmpfs", None, None, why, model=True))
        # pread
        t = "pread tmpfs %s" % label
        for mode in ("audited", "fast"):
            n = "pread fs/%s %s" % (mode, label)
            r, _ = _med_ratio(runs, n, t, "p50_ns", reps)
            total_err += _errors(runs, n)
            rows.append(cm.row(
                "pread on an open file p50, %s, %s" % (mode, label), r,
                "x tmpfs", "<= 1.05x", _le(r, 1.05),
                "ours %s ns, tmpfs %s ns" % (
                    _f(_med_field(runs, n, "p50_ns"), 0),
                    _f(_med_field(runs, t, "p50_ns"), 0))))
    two = ["same core"] + (["different cores"] if len(cm.cpus()) > 1
                           else [])
    for label in two:
        t = "two tmpfs %s" % label
        for mode in ("audited", "fast"):
            n = "two fs/%s %s" % (mode, label)
            r, _ = _med_ratio(runs, n, t, "ops_per_s", reps)
            total_err += _errors(runs, n)
            # The 0.55x target is the kernel-served path's (fast); an
            # audited open is a broker round trip by design, so that row
            # is shown, not judged (its own target is the 30 us p50).
            judged = mode == "fast"
            rows.append(cm.row(
                "two concurrent readers ops/s, %s, %s" % (mode, label), r,
                "x tmpfs", ">= 0.55x" if judged else "",
                None if r is None or not judged else r >= 0.55,
                "ours %s ops/s, tmpfs %s ops/s" % (
                    _f(_med_field(runs, n, "ops_per_s"), 0),
                    _f(_med_field(runs, t, "ops_per_s"), 0))))
    res["notes"].append(
        "two concurrent readers, audited: shown without a verdict.  Each "
        "audited open is a round trip to the broker, whose workers share "
        "the two cores with the readers; tmpfs has no third party.  The "
        "0.55x target is met by the kernel-served path (fast); the audited "
        "mode's own target is its 30 us open+read+close p50.")
    rows.append(cm.row("failed or short reads on the fs", total_err,
                       "count", "0", total_err == 0,
                       "every read must return the whole 64-byte file"))
    failed = [k for k, v in runs.items() if any("error" in r for r in v)]
    if failed:
        notes.append("runs that failed (see the JSON): " + ", ".join(failed))
    _notes(res)
    _plots(ctx, res, hist)


def _f(x, nd=2):
    if x is None:
        return "n/a"
    return ("%." + str(nd) + "f") % x


def _le(x, lim):
    return None if x is None else x <= lim


def _notes(res):
    """Why each missed target is missed, and what would close it."""
    for r in res["rows"]:
        if r["pass"] is not False:
            continue
        m = r["metric"]
        if "audited" in m and "open+read+close" in m:
            why = ("every audited open is a FUSE round trip to the broker "
                   "(OPEN with the reader check and the audit record), and "
                   "RELEASE (asynchronous) still costs a broker wake-up")
            why += (", here on the reader's own core (two context switches "
                    "per request)" if "same core" in m else
                    ", here on the other core (a cross-CPU wake-up per "
                    "request)")
            res["notes"].append(
                "%s: %s.  FLUSH is already answered ENOSYS (never sent "
                "again) and a re-opening process costs no /proc read.  What "
                "would close it: nothing while every open must reach the "
                "broker; the fast mode is that trade." % (m, why))
        elif "fast" in m and "open+read+close" in m:
            res["notes"].append(
                "%s: fast-mode opens never reach the broker, so the gap "
                "is the FUSE kernel path itself (dentry revalidation, "
                "fuse_open_common, page-cache lookup)." % m)
        elif "pread" in m:
            res["notes"].append(
                "%s: both are page-cache reads; the residual gap is the "
                "FUSE read_iter path (size/attribute checks per read)." % m)
        elif "two concurrent" in m:
            res["notes"].append(
                "%s: the broker is idle in fast mode, so the gap is the "
                "FUSE kernel path per open, doubled by two readers "
                "contending on one inode and one FUSE connection." % m)


def _plots(ctx, res, hist):
    for label, _, _ in cm.placements():
        series = []
        for name, lab in (("orc tmpfs", "tmpfs"),
                          ("orc fs/fast", "fs fast"),
                          ("orc fs/audited", "fs audited"),
                          ("orc fs/none", "fs none"),
                          ("orc uncached", "keywhiz-fs model")):
            vs = hist.get("%s %s" % (name, label))
            if vs:
                series.append((lab, [v / 1000.0 for v in vs]))
        slug = label.replace(" ", "_")
        p = cm.gnuplot_hist(
            ctx, "read_orc_%s.png" % slug,
            "warm open+read+close of a 64-byte file, %s (last repetition)"
            % label, "latency (us, log scale)", series,
            vline=(30.0, "audited target 30 us"))
        if p:
            res["plots"].append(p)
        series = []
        for name, lab in (("pread tmpfs", "tmpfs"),
                          ("pread fs/fast", "fs fast"),
                          ("pread fs/audited", "fs audited")):
            vs = hist.get("%s %s" % (name, label))
            if vs:
                series.append((lab, [v / 1000.0 for v in vs]))
        p = cm.gnuplot_hist(
            ctx, "read_pread_%s.png" % slug,
            "pread on an open file, %s (last repetition)" % label,
            "latency (us, log scale)", series)
        if p:
            res["plots"].append(p)
