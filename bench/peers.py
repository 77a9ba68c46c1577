"""The callables every benchmark times, shared by the pytest benches and ``report.py``.

Each peer fills a preallocated array in place, so every timing is generation plus one write of
the output, never allocation or page faults:

=================  ===========================================================================
lib                what it runs
=================  ===========================================================================
ndarray.fill       ``a.fill(0.5)``: one single-threaded memory write, the write-speed reference
parallel fill      the same constant written by every Numba thread (``prange``): the memory
                   limit, the fastest write of the array on this machine
numpy              ``default_rng(0)`` (PCG64) with ``out=``: ``random(dtype=, out=a)``,
                   ``standard_normal(dtype=, out=a)``; truncated normal on [-2, 2] by rejection
                   (``standard_normal(out=a)``, then redraw the values outside until none remain:
                   NumPy has no truncated normal of its own)
weightinit         ``weightinit.random.<dist>(a.shape, ..., seed=0, out=a)``, its own dispatch
                   (serial build below ``weightinit.random.PARALLEL_FROM`` values)
weightinit-serial  the same call with the serial build forced
weightinit-par     the same call with the parallel build forced (only for the crossover bench)
torch              ``torch.nn.init.uniform_/normal_/trunc_normal_(t, ..., generator=g)`` on
                   ``t = torch.from_numpy(a)``: the same memory as every other peer
=================  ===========================================================================

Every peer draws the same distribution: U[0, 1), N(0, 1), N(0, 1) truncated to [-2, 2].
Forcing a build patches the thresholds ``weightinit.random.PARALLEL_FROM`` and
``_PARALLEL_MIN`` for the duration of the call; nothing else in the package is touched.
"""

import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager

import numba
import numpy as np

import weightinit
from weightinit import random as R

DISTS = ("uniform", "normal", "truncated_normal")
LIBS = ("ndarray.fill", "numpy", "weightinit-serial", "weightinit", "torch")
SWEEP = (10**3, 10**5, 10**7)
TARGET_N = 2**26
TRUNC = (-2.0, 2.0)
_ALWAYS, _NEVER = 0, 1 << 62  # thresholds that force the parallel / serial build


def cpu():
    """(model, SIMD flags of interest) from /proc/cpuinfo; ("unknown", []) elsewhere. The model
    is the model name with the CPU family and model numbers, which tell apart CPU families that
    share a name (AMD EPYC: family 25 is Zen 3/4, family 26 Zen 5)."""
    fields, flags = {}, []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model") and key not in fields:
                    fields[key] = value.strip()
                elif key == "flags" and not flags:
                    have = set(value.split())
                    flags = [x for x in ("avx2", "fma", "avx512f") if x in have]
                elif not line.strip() and fields:
                    break  # the first processor's block is enough
    except OSError:
        pass
    model = fields.get("model name", "unknown")
    if "cpu family" in fields:
        model += f" (cpu family {fields['cpu family']}, model {fields.get('model', '?')})"
    return model, flags


def import_torch():
    """torch with its intra-op thread count set to Numba's, or None if it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(numba.get_num_threads())
    return torch


@contextmanager
def forced_build(build):
    """Within the block weightinit uses the ``"serial"`` or ``"parallel"`` build at every size."""
    old, table = R._PARALLEL_MIN, dict(R.PARALLEL_FROM)
    R._PARALLEL_MIN = {"serial": _NEVER, "parallel": _ALWAYS}[build]
    R.PARALLEL_FROM.update({k: R._PARALLEL_MIN for k in table})
    try:
        yield
    finally:
        R._PARALLEL_MIN = old
        R.PARALLEL_FROM.update(table)


def _weightinit(dist, a, tail=False):
    shape = a.shape
    if dist == "uniform":
        return lambda: R.uniform(shape, seed=0, out=a)
    if dist == "normal":
        return lambda: R.normal(shape, seed=0, out=a)
    lo, hi = (-5.0, 5.0) if tail else TRUNC  # [-5, 5]: past the +-2 sigma fit, general branch
    return lambda: R.truncated_normal(shape, 0.0, 1.0, lo, hi, seed=0, out=a)


def _numpy_trunc(rng, a, lo, hi):
    rng.standard_normal(dtype=a.dtype, out=a)
    flat = a.reshape(-1)
    bad = np.flatnonzero((flat < lo) | (flat > hi))
    while bad.size:
        flat[bad] = rng.standard_normal(bad.size, dtype=a.dtype)
        bad = bad[(flat[bad] < lo) | (flat[bad] > hi)]


@numba.njit(parallel=True, cache=True)
def _parallel_fill(a, value):
    for i in numba.prange(a.size):
        a[i] = value


def make(lib, dist, a, tail=False):
    """A no-argument callable that fills the array ``a`` with ``dist`` using ``lib``."""
    if lib == "ndarray.fill":
        return lambda: a.fill(0.5)
    if lib == "parallel fill":
        flat, value = a.reshape(-1), a.dtype.type(0.5)
        return lambda: _parallel_fill(flat, value)
    if lib == "numpy":
        rng = np.random.default_rng(0)
        if dist == "uniform":
            return lambda: rng.random(dtype=a.dtype, out=a)
        if dist == "normal":
            return lambda: rng.standard_normal(dtype=a.dtype, out=a)
        return lambda: _numpy_trunc(rng, a, *TRUNC)
    if lib == "weightinit":
        return _weightinit(dist, a, tail)
    if lib in ("weightinit-serial", "weightinit-par"):
        call = _weightinit(dist, a, tail)
        build = "serial" if lib == "weightinit-serial" else "parallel"

        def forced():
            with forced_build(build):
                call()
        return forced
    if lib == "torch":
        torch = import_torch()
        t = torch.from_numpy(a)
        g = torch.Generator().manual_seed(0)
        init = torch.nn.init
        if dist == "uniform":
            return lambda: init.uniform_(t, 0.0, 1.0, generator=g)
        if dist == "normal":
            return lambda: init.normal_(t, 0.0, 1.0, generator=g)
        return lambda: init.trunc_normal_(t, 0.0, 1.0, *TRUNC, generator=g)
    raise ValueError(f"unknown lib {lib!r}")


def make_orthogonal(lib, a):
    """A callable writing a (semi-)orthogonal matrix into the 2-D array ``a``."""
    if lib == "weightinit":
        return lambda: weightinit.orthogonal(a.shape, seed=0, out=a)
    if lib == "torch":
        torch = import_torch()
        t = torch.from_numpy(a)
        g = torch.Generator().manual_seed(0)
        return lambda: torch.nn.init.orthogonal_(t, generator=g)
    if lib == "numpy":  # the textbook recipe weightinit follows, in a's dtype
        rng = np.random.default_rng(0)
        rows, cols = a.shape
        big, small = max(rows, cols), min(rows, cols)

        def qr():
            q, r = np.linalg.qr(rng.standard_normal((big, small), dtype=a.dtype))
            q *= np.where(np.diagonal(r) < 0, -1, 1).astype(a.dtype)
            a[...] = q if rows >= cols else q.T
        return qr
    raise ValueError(f"unknown lib {lib!r}")


def prefaulted(n, dtype):
    """An array of n values whose pages are already mapped."""
    a = np.empty(n, dtype)
    a.fill(0)
    return a


# ----------------------------------------------------------------------------- fresh processes
# Run in a new interpreter: time ``import numba``, ``import weightinit`` and the first
# ``he_normal((512, 256), seed=0)``, counting the Numba compilations each triggers (an on-disk
# cache hit is a load, not a compilation) and the kernel overloads present after the import.
_FIRST_CALL = r"""
import json, time
t0 = time.perf_counter()
import numba
from numba.core import event
t1 = time.perf_counter()

def compiled(rec):
    return sorted(e.data["dispatcher"].py_func.__qualname__ for _, e in rec.buffer if e.is_start)

with event.install_recorder("numba:compile") as rec_import:
    import weightinit
    from weightinit.kernels import fill
t2 = time.perf_counter()
dispatchers = list(fill.KERNELS.values())
dispatchers += list({id(w): w for w in (d.py_func.__globals__["_whole"]
                                           for d in dispatchers)}.values())
loaded_at_import = sum(len(d.overloads) for d in dispatchers)
with event.install_recorder("numba:compile") as rec_call:
    w = weightinit.he_normal((512, 256), seed=0)
t3 = time.perf_counter()
print(json.dumps(dict(
    import_numba=t1 - t0, import_weightinit=t2 - t1, first_call=t3 - t2,
    compiled_at_import=compiled(rec_import), overloads_at_import=loaded_at_import,
    compiled_by_call=compiled(rec_call),
    cache_hits=sum(sum(d.stats.cache_hits.values()) for d in dispatchers),
    threads=numba.get_num_threads())))
"""

# Every kernel (distribution x dtype x serial/parallel build) once, in a fixed order, timing the
# first call of each through the public API.
_EVERY_KERNEL = r"""
import json, time
from numba.core import event
from weightinit import random as R
rows = []
for build in ("serial", "parallel"):
    for dtype in ("float32", "float64"):
        for label, fn, args in (
                ("uniform", R.uniform, ()), ("normal", R.normal, ()),
                ("truncated_normal [-2, 2]", R.truncated_normal, ()),
                ("truncated_normal [-5, 5] (general branch)", R.truncated_normal, (0.0, 1.0, -5.0, 5.0))):
            # the parallel build from its threshold on (section 6.1 of docs/performance.md)
            n = 8 if build == "serial" else R.PARALLEL_FROM.get((fn.__name__, dtype),
                                                                 R._PARALLEL_MIN)
            with event.install_recorder("numba:compile") as rec:
                t = time.perf_counter()
                fn(n, *args, seed=0, dtype=dtype)
                t = time.perf_counter() - t
            rows.append(dict(dist=label, dtype=dtype, build=build, seconds=t,
                             compiled=sum(1 for _, e in rec.buffer if e.is_start)))
print(json.dumps(rows))
"""


def run_fresh(code, cache_dir):
    """Run ``code`` in a new interpreter with NUMBA_CACHE_DIR=cache_dir; (JSON result, wall s)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True)
    wall = time.perf_counter() - t
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def first_call(cache_dir):
    """A fresh process importing weightinit and calling he_normal once: its measurements."""
    info, wall = run_fresh(_FIRST_CALL, cache_dir)
    info["process_wall"] = wall
    return info


def every_kernel(cache_dir):
    """First-call seconds and compilation counts for every kernel, in a fresh process."""
    return run_fresh(_EVERY_KERNEL, cache_dir)[0]
