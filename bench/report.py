"""Measure the issue's performance targets and print them as a markdown table of ratios.

    python bench/report.py                 # 5 runs: the tables in docs/performance.md
    python bench/report.py --runs 1 --reps 3 --no-startup --no-kernels   # a quick look

Each run is a fresh worker process. It warms every peer up on small arrays (compiling or loading
every kernel and starting every thread pool), then fills the same preallocated 2**26-value
arrays with every peer, interleaved round-robin (the starting peer rotates each round), and
keeps each peer's best time (``time.perf_counter``). Ratios are throughput ratios within one run
(peer time / weightinit time); the tables give their median over the runs, the range, and each
side's median speed.

This machine may be shared. Each timed call also records how much CPU other processes used
meanwhile (from /proc/stat); a call during which they kept more than ``--max-load`` cores busy
is not counted and is repeated (up to 4x the planned calls). Before each run the driver waits
for an idle moment. The output says how many calls were discarded.

Start-up and compile costs are measured in fresh processes with their own empty (cold) or
filled (warm) ``NUMBA_CACHE_DIR``, so the package's own cache is never touched.
"""

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numba  # noqa: E402
import numpy as np  # noqa: E402

import peers  # noqa: E402

N = peers.TARGET_N
ORTHO = (2048, 2048)

# Rows: (label, numerator peer, denominator peer, target or None). A peer is (dtype, lib, dist); the
# ratio is time(denominator) / time(numerator), i.e. the numerator's throughput relative to the
# denominator's. Rows without a target are reported for information.
_F32, _F64 = "float32", "float64"


def _rows(dtype, with_targets):
    t = (lambda x: x) if with_targets else (lambda x: None)
    wi = lambda dist: (dtype, "weightinit", dist)  # noqa: E731
    return [
        (f"uniform vs `ndarray.fill` ({dtype})", wi("uniform"), (dtype, "ndarray.fill", "uniform"), t(0.55)),
        (f"uniform vs NumPy `random(dtype={dtype}, out=)`", wi("uniform"), (dtype, "numpy", "uniform"), t(6.0)),
        (f"normal vs NumPy `standard_normal(dtype={dtype}, out=)`", wi("normal"), (dtype, "numpy", "normal"), t(9.0)),
        (f"truncated normal [-2, 2] vs torch `trunc_normal_` ({dtype})", wi("truncated_normal"), (dtype, "torch", "truncated_normal"), t(40.0)),
        (f"truncated normal [-2, 2] vs weightinit normal ({dtype})", wi("truncated_normal"), wi("normal"), t(0.75)),
        (f"uniform vs torch `uniform_` ({dtype})", wi("uniform"), (dtype, "torch", "uniform"), t(2.0)),
        (f"normal vs torch `normal_` ({dtype})", wi("normal"), (dtype, "torch", "normal"), t(2.0)),
    ]


def _info_rows():
    rows = [(f"truncated normal [-2, 2] vs NumPy rejection ({d})", (d, "weightinit", "truncated_normal"),
             (d, "numpy", "truncated_normal"), None) for d in (_F32, _F64)]
    rows += [(f"truncated normal [-5, 5] (general branch) vs [-2, 2] ({d})", (d, "weightinit", "trunc_tail"),
              (d, "weightinit", "truncated_normal"), None) for d in (_F32, _F64)]
    rows += [(f"{dist} parallel vs serial build ({d})", (d, "weightinit", dist),
              (d, "weightinit-serial", dist), None)
             for d in (_F32, _F64) for dist in peers.DISTS]
    # The memory limit (issue 11): the same array written by all threads with a constant.
    rows += [(f"{lib} vs the all-thread fill ({d})", (d, *peer), (d, "parallel fill", "uniform"),
              None) for d in (_F32, _F64) for lib, peer in (
                  ("`ndarray.fill`", ("ndarray.fill", "uniform")),
                  ("uniform", ("weightinit", "uniform")), ("normal", ("weightinit", "normal")),
                  ("truncated normal [-2, 2]", ("weightinit", "truncated_normal")))]
    return rows


TARGET_ROWS = _rows(_F32, True) + [
    ("orthogonal 2048x2048 vs torch `orthogonal_` (float32)", (_F32, "weightinit", "orthogonal"),
     (_F32, "torch", "orthogonal"), 1.0)]
FLOAT64_ROWS = _rows(_F64, False)
INFO_ROWS = _info_rows() + [
    ("orthogonal 2048x2048 vs NumPy QR recipe (float32)", (_F32, "weightinit", "orthogonal"),
     (_F32, "numpy", "orthogonal"), None)]
WARM_LIMIT = 1.5  # seconds: fresh process, import + first he_normal call, warm cache


# ----------------------------------------------------------------------------- worker
def _peers(n, ortho, torch_ok):
    """{(dtype, lib, dist): callable}: every peer any row needs, on shared arrays of n values."""
    out = {}
    for dtype in (_F32, _F64):
        a = peers.prefaulted(n, np.dtype(dtype))
        for dist in peers.DISTS:
            for lib in ("numpy", "weightinit", "weightinit-serial") + (("torch",) if torch_ok else ()):
                out[dtype, lib, dist] = peers.make(lib, dist, a)
        out[dtype, "ndarray.fill", "uniform"] = peers.make("ndarray.fill", "uniform", a)
        out[dtype, "parallel fill", "uniform"] = peers.make("parallel fill", "uniform", a)
        out[dtype, "weightinit", "trunc_tail"] = peers.make("weightinit", "truncated_normal", a, tail=True)
    m = peers.prefaulted(ortho[0] * ortho[1], np.float32).reshape(ortho)
    for lib in ("weightinit", "numpy") + (("torch",) if torch_ok else ()):
        out[_F32, lib, "orthogonal"] = peers.make_orthogonal(lib, m)
    return out


def _timed(fn):
    """(wall seconds, CPU-seconds other processes used meanwhile) of one call of ``fn``."""
    b0, s0, t0 = _cpu_times()[0], _self_cpu(), time.perf_counter()
    fn()
    wall = time.perf_counter() - t0
    return wall, max(0.0, (_cpu_times()[0] - b0) - (_self_cpu() - s0))


def _clean(wall, other, max_load):
    # /proc/stat counts in ticks (10 ms): allow three of them, so short calls always count as
    # clean and are filtered by best-of alone.
    return other <= max_load * wall + 3.0 / os.sysconf("SC_CLK_TCK")


def worker(reps, budget, max_load):
    torch = peers.import_torch()
    # Warm-up, untimed, on small arrays (2**17 values: above the parallel threshold, so every
    # build compiles or loads, and every thread pool starts) to spare a full-size call per peer.
    for fn in _peers(2**17, (512, 512), torch is not None).values():
        fn()
    fns = _peers(N, ORTHO, torch is not None)
    keys = list(fns)
    best, planned, clean, calls, spent = {}, {}, {}, {}, {}
    for k in keys:
        best[k] = {True: math.inf, False: math.inf}
        clean[k] = calls[k] = spent[k] = 0

    def call(k):
        wall, other = _timed(fns[k])
        ok = _clean(wall, other, max_load)
        best[k][ok] = min(best[k][ok], wall)
        clean[k] += ok
        calls[k] += 1
        spent[k] += wall
        return wall

    for k in keys:  # one timed call sets how many a slow peer gets
        planned[k] = max(3, min(reps, int(budget / call(k))))
    r = 0
    # Round-robin until every peer has its planned number of clean calls, rotating the starting
    # peer each round; a peer stops after 4x its planned calls or 4x the budget (3 calls at least).
    def todo(k):
        return clean[k] < planned[k] and calls[k] < 4 * planned[k] and (
            spent[k] < 4 * budget or calls[k] < 3)

    while any(todo(k) for k in keys):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            if todo(k):
                call(k)
        r += 1
    return dict(
        best={"|".join(k): (v[True] if clean[k] else v[False]) for k, v in best.items()},
        clean={"|".join(k): clean[k] for k in keys}, calls={"|".join(k): calls[k] for k in keys},
        threading_layer=numba.threading_layer(), numba_threads=numba.get_num_threads(),
        torch_threads=torch.get_num_threads() if torch else None,
        torch=torch.__version__ if torch else None)


# ----------------------------------------------------------------------------- driver
def _cpu_times():
    """(busy, idle) CPU-seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / tick, (v[3] + v[4]) / tick


def _child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return r.ru_utime + r.ru_stime


def wait_idle(limit, window=3.0, busy=0.05):
    """Wait (up to ``limit`` s) for a ``window`` in which the machine is < ``busy`` occupied."""
    end = time.monotonic() + limit
    while True:
        b0, i0 = _cpu_times()
        time.sleep(window)
        b1, i1 = _cpu_times()
        frac = (b1 - b0) / max(1e-9, (b1 - b0) + (i1 - i0))
        if frac < busy or time.monotonic() > end:
            return frac


def run_worker(reps, budget, max_load):
    b0, c0, t0 = _cpu_times()[0], _child_cpu(), time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--worker", "--reps", str(reps),
                           "--budget", str(budget), "--max-load", str(max_load)],
                          capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    other = max(0.0, (_cpu_times()[0] - b0) - (_child_cpu() - c0)) / wall
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["best"] = {tuple(k.split("|")): v for k, v in res["best"].items()}
    res.update(wall=wall, other_load=other)
    return res


def _clean_note(runs, max_load):
    calls = sum(sum(r["calls"].values()) for r in runs)
    clean = sum(sum(r["clean"].values()) for r in runs)
    missing = sorted({k for r in runs for k, c in r["clean"].items() if c == 0})
    note = (f"; {calls - clean} of {calls} timed calls discarded because other processes used "
            f"> {max_load:g} cores meanwhile")
    if missing:
        note += f" (no clean call at all, best disturbed call used: {', '.join(missing)})"
    return note


def _ratio(best, num, den):
    if num not in best or den not in best:
        return None
    return best[den] / best[num]


def _fmt(x, digits=2):
    return "n/a" if x is None else f"{x:.{digits}f}"


def _gps(runs, key):
    """The peer's median speed over the runs: G values/s, or seconds for orthogonal."""
    ts = [run["best"][key] for run in runs if key in run["best"]]
    if not ts:
        return "n/a"
    if key[2] == "orthogonal":
        return f"{statistics.median(ts):.2f} s"
    return f"{statistics.median(N / t / 1e9 for t in ts):.3f}"


def ratio_table(runs, rows, title):
    lines = [f"### {title}", "",
             "| comparison | target | median ratio | range over runs | weightinit, G values/s | peer, G values/s | result |",
             "|---|---|---|---|---|---|---|"]
    verdicts = []
    for label, num, den, target in rows:
        rs = [r for r in (_ratio(run["best"], num, den) for run in runs) if r is not None]
        if not rs:
            lines.append(f"| {label} | {_fmt(target)} | n/a | | | | skipped (peer missing) |")
            continue
        med = statistics.median(rs)
        if target is None:
            verdict = "info"
        elif med >= target:
            verdict = "PASS"
        else:
            verdict = f"FAIL ({100 * (1 - med / target):.0f}% short)"
        verdicts.append((label, target, med, verdict))
        lines.append(f"| {label} | {'≥ ' + _fmt(target) if target else '–'} | {med:.2f}× | "
                     f"{min(rs):.2f}–{max(rs):.2f} | {_gps(runs, num)} | {_gps(runs, den)} | {verdict} |")
    return lines, verdicts


def startup(n, idle_limit):
    cold, warm = [], []
    for _ in range(n):
        if idle_limit > 0:
            wait_idle(idle_limit)
        with tempfile.TemporaryDirectory(prefix="numba-cache-") as d:
            cold.append(peers.first_call(d))
            warm.append(peers.first_call(d))
    return cold, warm


def _names(names):
    return ", ".join(f"`{n}`" for n in names)


def startup_table(cold, warm):
    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    import_clean = all(not r["compiled_at_import"] and r["overloads_at_import"] == 0
                       for r in cold + warm)
    warm_total = med(warm, "process_wall")
    lines = [
        "### Start-up: fresh process, `import weightinit` then `he_normal((512, 256), seed=0)`", "",
        f"Median of {len(cold)} processes each; cold = empty `NUMBA_CACHE_DIR`, warm = the same "
        "directory after the cold run.", "",
        "| measurement | cold cache | warm cache | target | result |", "|---|---|---|---|---|",
        f"| `import numba` | {med(cold, 'import_numba'):.2f} s | {med(warm, 'import_numba'):.2f} s | | |",
        f"| `import weightinit` (after numba) | {med(cold, 'import_weightinit'):.2f} s | "
        f"{med(warm, 'import_weightinit'):.2f} s | | |",
        f"| Numba compilations during `import weightinit` | "
        f"{max(len(r['compiled_at_import']) for r in cold)} | "
        f"{max(len(r['compiled_at_import']) for r in warm)} | 0 | {'PASS' if import_clean else 'FAIL'} |",
        f"| first `he_normal` call | {med(cold, 'first_call'):.2f} s | {med(warm, 'first_call'):.2f} s | | |",
        f"| functions compiled by that call | {_names(cold[0]['compiled_by_call']) or 'none'} | "
        f"{_names(warm[0]['compiled_by_call']) or 'none (cache hit)'} | | |",
        f"| whole process (interpreter start to exit) | {med(cold, 'process_wall'):.2f} s | "
        f"{warm_total:.2f} s (range {min(r['process_wall'] for r in warm):.2f}–"
        f"{max(r['process_wall'] for r in warm):.2f}) | warm ≤ {WARM_LIMIT} s | "
        f"{'PASS' if warm_total <= WARM_LIMIT else 'FAIL'} |",
    ]
    verdicts = [("import compiles nothing", 0, 0, "PASS" if import_clean else "FAIL"),
                ("warm fresh process", WARM_LIMIT, warm_total,
                 "PASS" if warm_total <= WARM_LIMIT else
                 f"FAIL ({100 * (warm_total / WARM_LIMIT - 1):.0f}% over)")]
    return lines, verdicts


def kernel_table():
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as d:
        cold = peers.every_kernel(d)
        warm = peers.every_kernel(d)
    lines = ["### First call of every kernel (fresh process, in this order)", "",
             "| build | dtype | distribution | cold: s (compilations) | warm: s (compilations) |",
             "|---|---|---|---|---|"]
    for c, w in zip(cold, warm):
        lines.append(f"| {c['build']} | {c['dtype']} | {c['dist']} | {c['seconds']:.2f} ({c['compiled']}) | "
                     f"{w['seconds']:.3f} ({w['compiled']}) |")
    lines.append(f"| **total** | | | {sum(c['seconds'] for c in cold):.1f} | "
                 f"{sum(w['seconds'] for w in warm):.2f} |")
    return lines


def _source():
    """weightinit's version and, in a git checkout, the commit (and whether src/ has edits)."""
    root = os.path.dirname(HERE)
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, text=True,
                               capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"weightinit {peers.weightinit.__version__}"
    return f"weightinit {peers.weightinit.__version__} at commit {head}" + (
        " with uncommitted changes in src/" if dirty else "")


def sweep_table(path):
    """Speed ratios from a pytest-benchmark JSON of ``test_fill`` (best times): one row per
    (dist, dtype, n), weightinit's throughput relative to each peer."""
    with open(path) as f:
        data = json.load(f)
    best = {}
    for b in data["benchmarks"]:
        e = b.get("extra_info", {})
        if b["name"].startswith("test_fill[") and "lib" in e:
            best[e["dist"], e["dtype"], e["n"], e["lib"]] = b["stats"]["min"]
    others = [lib for lib in peers.LIBS if lib != "weightinit"]
    lines = ["### Size sweep (pytest-benchmark, best of its rounds): weightinit's speed relative to each peer", "",
             "| distribution | dtype | n | weightinit time | " + " | ".join(f"vs {lib}" for lib in others) + " |",
             "|---|---|---|---|" + "---|" * len(others)]
    for dist, dtype, n in sorted({k[:3] for k in best}, key=lambda k: (peers.DISTS.index(k[0]), k[1], k[2])):
        own = best.get((dist, dtype, n, "weightinit"))
        if own is None:
            continue
        cells = [_fmt(best[dist, dtype, n, lib] / own) + "×" if (dist, dtype, n, lib) in best else "n/a"
                 for lib in others]
        size = f"10^{round(math.log10(n))}" if 10 ** round(math.log10(n)) == n else str(n)
        speed = f"{own * 1e6:.1f} µs" if own < 1e-3 else f"{own * 1e3:.2f} ms"
        lines.append(f"| {dist} | {dtype} | {size} | {speed} | " + " | ".join(cells) + " |")
    return lines


def machine(first):
    model, flags = peers.cpu()
    return [
        "### Machine", "",
        f"- CPU: {model}, {os.cpu_count()} logical cores; SIMD flags: "
        f"{', '.join(flags) or 'none of avx2/fma/avx512f'}; widest vectors "
        f"{512 if 'avx512f' in flags else 256 if 'avx2' in flags else 128} bits "
        f"({(512 if 'avx512f' in flags else 256 if 'avx2' in flags else 128) // 32} float32 lanes)",
        f"- Python {platform.python_version()}, numba {numba.__version__} "
        f"(llvmlite {__import__('llvmlite').__version__}), numpy {np.__version__}, "
        f"torch {first.get('torch') or 'not installed'}",
        f"- {_source()}",
        f"- threads: numba {first['numba_threads']} ({first['threading_layer']} layer), "
        f"torch {first['torch_threads']} (set to numba's)",
    ]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=5, help="worker processes (default 5)")
    p.add_argument("--reps", type=int, default=7, help="timed calls per peer per run (default 7)")
    p.add_argument("--budget", type=float, default=8.0,
                   help="seconds per peer per run; slow peers get fewer reps, never < 3")
    p.add_argument("--startup-runs", type=int, default=5)
    p.add_argument("--no-startup", action="store_true")
    p.add_argument("--no-kernels", action="store_true", help="skip the per-kernel compile table")
    p.add_argument("--wait-idle", type=float, default=120.0, metavar="S",
                   help="before each run wait up to S s for the machine to be idle (0: don't)")
    p.add_argument("--max-load", type=float, default=0.2, metavar="CORES",
                   help="a call during which other processes kept more cores busy is not "
                        "counted (it is repeated, up to 4x the planned calls; default 0.2)")
    p.add_argument("--json", help="also write the raw measurements here")
    p.add_argument("--sweep", metavar="PYTEST_JSON",
                   help="only summarise a --benchmark-json file of bench/test_fill.py as ratios")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.reps, args.budget, args.max_load)))
        return 0
    if args.sweep:
        print("\n".join(sweep_table(args.sweep)))
        return 0

    model, flags = peers.cpu()  # first, so that every partial output says where it ran
    print(f"cpu: {model}; SIMD: {', '.join(flags) or 'no avx2'}", file=sys.stderr)
    runs = []
    for i in range(args.runs):
        if args.wait_idle > 0:
            wait_idle(args.wait_idle)
        runs.append(run_worker(args.reps, args.budget, args.max_load))
        unclean = [k for k, c in runs[-1]["clean"].items() if c == 0]
        print(f"run {i + 1}/{args.runs}: {runs[-1]['wall']:.0f} s, other load "
              f"{runs[-1]['other_load']:.2f} cores"
              + (f"; no clean call for {', '.join(unclean)}" if unclean else ""), file=sys.stderr)
    out = machine(runs[0]) + [""]
    loads = ", ".join(f"{r['other_load']:.2f}" for r in runs)
    out += [f"{args.runs} runs of best-of-{args.reps} (slow peers: ≥ 3 calls within "
            f"{args.budget:g} s), {N} values; other processes' load per run (cores): {loads}"
            + _clean_note(runs, args.max_load), ""]
    verdicts = []
    for rows, title in ((TARGET_ROWS, "Targets (float32, 2**26 values)"),
                        (FLOAT64_ROWS, "float64 (no targets)"),
                        (INFO_ROWS, "Other comparisons")):
        lines, v = ratio_table(runs, rows, title)
        out += lines + [""]
        verdicts += v
    cold = warm = None
    if not args.no_startup:
        cold, warm = startup(args.startup_runs, args.wait_idle)
        lines, v = startup_table(cold, warm)
        out += lines + [""]
        verdicts += v
    if not args.no_kernels:
        if args.wait_idle > 0:
            wait_idle(args.wait_idle)
        out += kernel_table() + [""]
    failed = [v for v in verdicts if v[3].startswith("FAIL")]
    out.append("**Summary:** " + ("all targets PASS" if not failed else
               "; ".join(f"{label}: {verdict}" for label, _, _, verdict in failed)))
    print("\n".join(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(runs=[dict(r, best={"|".join(k): v for k, v in r["best"].items()})
                                 for r in runs], startup_cold=cold, startup_warm=warm), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
