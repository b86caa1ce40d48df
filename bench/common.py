"""What every benchmark scenario shares (bench/run.py drives them; the
contract is in bench/run.py's docstring): the run context, statistics,
gnuplot plots, scratch directories that never outlive a scenario (mounts
detached, files removed, failures included) and CPU pinning choices."""

import contextlib
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)


class Context:
    """One `make bench` run, as each scenario sees it."""

    def __init__(self, build_dir, source_dir=SOURCE_DIR, out_dir=None,
                 reps=5, quick=False):
        self.build_dir = os.path.abspath(build_dir)
        self.source_dir = os.path.abspath(source_dir)
        self.out_dir = out_dir or tempfile.mkdtemp(prefix="cbbench-out-")
        self.reps = reps
        self.quick = quick
        self.t0 = time.monotonic()

    def log(self, msg):
        sys.stderr.write("[%s +%5.1fs] %s\n" % (
            time.strftime("%H:%M:%S"), time.monotonic() - self.t0, msg))
        sys.stderr.flush()


# --- statistics -------------------------------------------------------------

def percentile(samples, p):
    """Linear-interpolated percentile p (0..100) of samples; None when
    empty."""
    s = sorted(samples)
    if not s:
        return None
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(samples):
    return percentile(samples, 50)


def ratio(a, b):
    """a / b, None when either is missing or b is 0."""
    if a is None or b is None or b == 0:
        return None
    return a / b


def row(metric, value, unit, target=None, ok=None, detail="", model=False):
    """One line of a scenario's table (the contract's row shape)."""
    return {"metric": metric,
            "value": None if value is None else round(value, 4),
            "unit": unit, "target": target, "pass": ok, "model": model,
            "detail": detail}


# --- CPUs -------------------------------------------------------------------

def cpus():
    """The CPUs this process may run on, sorted."""
    return sorted(os.sched_getaffinity(0))


def placements():
    """The reader/server placements the read and rotation cases run in:
    [(label, server_cpu, reader_cpu)].  Same core: both on the last CPU;
    different cores: the server on the first, the reader on the last.
    With one CPU only the first is possible."""
    c = cpus()
    out = [("same core", c[-1], c[-1])]
    if len(c) > 1:
        out.append(("different cores", c[0], c[-1]))
    return out


# --- plots ------------------------------------------------------------------

def have_gnuplot():
    return shutil.which("gnuplot") is not None


def _quote(s):
    return str(s).replace("'", "")


def gnuplot_run(ctx, png, script, blocks):
    """Runs a gnuplot script that writes ctx.out_dir/png; blocks maps a
    datablock name ("$d0") to its text.  Returns png (relative to
    out_dir) or None when gnuplot is missing or fails (logged)."""
    if not have_gnuplot():
        ctx.log("gnuplot not installed: no %s" % png)
        return None
    os.makedirs(ctx.out_dir, exist_ok=True)
    text = ["set terminal pngcairo size 800,480 noenhanced font ',10'",
            "set output '%s'" % os.path.join(os.path.abspath(ctx.out_dir),
                                             png)]
    for name, data in blocks.items():
        text.append("%s << EOD\n%sEOD" % (name, data))
    full = "\n".join(text) + "\n" + script
    for term in ("pngcairo", "png"):
        p = subprocess.run(["gnuplot"], input=full.replace(
            "pngcairo", term), text=True, capture_output=True, timeout=60)
        if p.returncode == 0:
            return png
    ctx.log("gnuplot failed for %s: %s" % (png, p.stderr[-400:]))
    return None


def gnuplot_hist(ctx, png, title, xlabel, series, logx=True, bins=60,
                 vline=None):
    """Latency distributions: series is [(label, [values])], drawn as the
    fraction of samples per bin (log-spaced bins when logx), one line per
    series on shared bins.  vline: (x, label) for a target.  Returns png
    or None."""
    vals = [v for _, vs in series for v in vs if v is not None and v > 0]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    if hi <= lo:
        hi = lo * 1.01 + 1e-9
    if logx:
        edges = [lo * (hi / lo) ** (i / bins) for i in range(bins + 1)]
    else:
        edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
    blocks, plots = {}, []
    for i, (label, vs) in enumerate(series):
        vs = [v for v in vs if v is not None and v > 0]
        if not vs:
            continue
        counts = [0] * bins
        for v in vs:
            if logx:
                k = int(bins * math.log(v / lo) / math.log(hi / lo))
            else:
                k = int(bins * (v - lo) / (hi - lo))
            counts[min(max(k, 0), bins - 1)] += 1
        name = "$d%d" % i
        blocks[name] = "".join(
            "%g %g\n" % (math.sqrt(edges[k] * edges[k + 1]) if logx else
                         (edges[k] + edges[k + 1]) / 2, c / len(vs))
            for k, c in enumerate(counts))
        plots.append("%s using 1:2 with histeps lw 2 title '%s'" % (
            name, _quote(label)))
    script = ("set title '%s'\nset xlabel '%s'\nset ylabel "
              "'fraction of samples'\nset grid\nset key top right\n" % (
                  _quote(title), _quote(xlabel)))
    if logx:
        script += "set logscale x\n"
    if vline is not None:
        script += ("set arrow from %g, graph 0 to %g, graph 1 nohead dt 2 "
                   "lc rgb 'red'\nset label '%s' at %g, graph 0.9 left "
                   "offset 0.5,0 tc rgb 'red'\n" % (
                       vline[0], vline[0], _quote(vline[1]), vline[0]))
    return gnuplot_run(ctx, png, script + "plot " + ", ".join(plots) + "\n",
                       blocks)


def gnuplot_lines(ctx, png, title, xlabel, ylabel, series, logx=False,
                  logy=False, points=True):
    """Curves: series is [(label, [(x, y), ...])].  Returns png or None."""
    blocks, plots = {}, []
    for i, (label, pts) in enumerate(series):
        pts = [(x, y) for x, y in pts if x is not None and y is not None]
        if not pts:
            continue
        name = "$d%d" % i
        blocks[name] = "".join("%g %g\n" % p for p in pts)
        plots.append("%s using 1:2 with %s lw 2 title '%s'" % (
            name, "linespoints" if points else "lines", _quote(label)))
    if not plots:
        return None
    script = ("set title '%s'\nset xlabel '%s'\nset ylabel '%s'\nset grid\n"
              "set key top left\n" % (_quote(title), _quote(xlabel),
                                      _quote(ylabel)))
    if logx:
        script += "set logscale x\n"
    if logy:
        script += "set logscale y\n"
    return gnuplot_run(ctx, png, script + "plot " + ", ".join(plots) + "\n",
                       blocks)


# --- scratch directories and mounts -----------------------------------------

def mounted(path):
    """True when path is a mount point (per /proc/self/mountinfo)."""
    path = os.path.realpath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].replace("\\040", " ")
                if mp == path:
                    return True
    except OSError:
        pass
    return False


def mounts_under(path):
    """Mount points at or below path (per /proc/self/mountinfo)."""
    path = os.path.realpath(path)
    out = []
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].replace("\\040", " ")
                if mp == path or mp.startswith(path + "/"):
                    out.append(mp)
    except OSError:
        pass
    return out


def detach(path):
    """Detaches whatever is mounted at path (lazily, so a hung FUSE server
    cannot block us)."""
    for argv in (["fusermount3", "-u", "-z", path], ["umount", "-l", path]):
        if not mounted(path):
            return
        subprocess.run(argv, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10)


@contextlib.contextmanager
def scratch(tmpfs=False, prefix="cbbench-"):
    """A fresh directory (on /dev/shm when tmpfs) removed on the way out,
    after detaching any mount left under it."""
    base = "/dev/shm" if tmpfs else None
    d = tempfile.mkdtemp(prefix=prefix, dir=base)
    try:
        yield d
    finally:
        for mp in sorted(mounts_under(d), reverse=True):
            detach(mp)
        shutil.rmtree(d, ignore_errors=True)


def bench_binary(ctx, name):
    """build_dir/bench/name; raises with the build hint when missing."""
    p = os.path.join(ctx.build_dir, "bench", name)
    if not os.access(p, os.X_OK):
        raise RuntimeError("%s not built: cmake --build %s --target %s"
                           % (p, ctx.build_dir, name))
    return p


def have_fuse():
    return os.geteuid() == 0 and os.path.exists("/dev/fuse")


# --- bench/fsbench (the read and rotation scenarios) --------------------------

def run_fsbench(ctx, args, timeout=120):
    """Runs build_dir/bench/fsbench with args (a list; --dir is added: a
    fresh tmpfs directory, detached and removed afterwards) and returns its
    JSON result.  Raises RuntimeError when it fails (subprocess's
    TimeoutExpired past timeout)."""
    import json
    exe = bench_binary(ctx, "fsbench")
    with scratch(tmpfs=True, prefix="cbbench-fs-") as d:
        p = subprocess.run([exe] + [str(a) for a in args] + ["--dir", d],
                           capture_output=True, text=True, timeout=timeout,
                           start_new_session=True)
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        raise RuntimeError("fsbench %s: exit %d: %s" % (
            " ".join(str(a) for a in args), p.returncode,
            p.stderr.strip()[-600:]))
    return json.loads(lines[-1])


def read_samples(path, typecode):
    """The binary samples fsbench wrote ("I": uint32 ns, "Q": uint64 ns)."""
    import array
    a = array.array(typecode)
    try:
        with open(path, "rb") as f:
            a.frombytes(f.read())
    except OSError:
        return []
    return a.tolist()
