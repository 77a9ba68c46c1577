"""Simulation kernels: fused bias + activation + per-layer statistics, histogram, backward step.

Each kernel is specialised per activation and dtype (the activation code and that dtype's
scalar functions bound as globals, as in ``fill``), so the inner loop over units has no branch
on the activation and vectorises, and float32 runs compute activations in float32 (the
statistics are accumulated in float64 for either dtype). Rows (samples) are
split into fixed chunks of ``CHUNK`` rows, processed in parallel; every chunk accumulates
per-unit partial sums in its own row of a partials array, and the caller reduces them. The
chunking does not depend on the thread count, so results are identical for any number of
threads.
"""

import math
import types as pytypes

import numpy as np
from numba import njit, prange

from . import activations as A

CHUNK = 64  # rows per parallel work item
TILE = 256  # units per tile: 6 float64 accumulators x 256 units = 12 KiB, in L1
# Per-unit partial statistics (float64), one row per chunk and one column per unit. COUNTS packs
# three counts into one exact float64 (each is at most CHUNK = 64 < 128):
# saturated + 128 * zero + 128**2 * non-finite.
SUM_A, SUM_A2, SUM_Z2, COUNTS, MIN_A, MAX_A = range(6)
N_STATS = 6
COUNT_BASE = 128

_JIT = dict(cache=True, error_model="numpy", fastmath={"contract"}, nogil=True)
# Bound per activation and dtype by ``_specialise``: the code (a compile-time constant), the
# scalar activation and derivative of the dtype, and the row kernels.
_code = _act = _deriv = _forward_rows = _backward_rows = None


U64 = np.uint64


def _forward_rows_py(z, bias, slope, sat_lo, sat_hi, p, r0, r1, lo, hi, h):
    """Rows r0..r1 of the forward kernel, with their statistics in ``p`` (N_STATS, width) and,
    if ``h`` has bins (a fixed range [lo, hi] is known in advance), their histogram in ``h``.

    Units are taken in tiles of ``TILE`` so that the six per-unit accumulators of a tile stay in
    the first-level cache while all rows pass over it. The accumulators are float64 whatever
    z's dtype: float32 sums of squares would overflow from |z| > 1.8e19 on, which exploding
    networks reach. Each row segment takes short loops that each write few arrays (the vectoriser gives up when
    it must check many pointers for overlap), with unsigned indices (signed ones keep a
    negative-index check that also stops it vectorising). A separate function from the parallel
    loop: inlined into it, the loops did not vectorise.
    """
    width = U64(z.shape[1])
    sa, sa2, sz2, cnt, amin, amax = p[SUM_A], p[SUM_A2], p[SUM_Z2], p[COUNTS], p[MIN_A], p[MAX_A]
    for j in range(width):
        sa[j] = sa2[j] = sz2[j] = cnt[j] = 0.0
        amin[j] = np.inf
        amax[j] = -np.inf
    idx = np.empty(TILE, np.int32)
    for j0 in range(U64(0), width, U64(TILE)):
        j1 = min(width, j0 + U64(TILE))
        for r in range(r0, r1):
            zr = z[r]
            for j in range(j0, j1):
                x = zr[j] + bias[j]
                a = _act(_code, x, slope)
                zr[j] = a
                ok = math.isfinite(a)
                af = np.float64(a) if ok else 0.0
                xf = np.float64(x) if math.isfinite(x) else 0.0
                sa[j] += af
                sa2[j] += af * af
                sz2[j] += xf * xf
            for j in range(j0, j1):
                a = np.float64(zr[j])
                ok = math.isfinite(a)
                cnt[j] += ((1.0 if (a < sat_lo or a > sat_hi) else 0.0)
                           + (128.0 if a == 0.0 else 0.0) + (0.0 if ok else 16384.0))
                amin[j] = min(amin[j], a if ok else np.inf)
                amax[j] = max(amax[j], a if ok else -np.inf)
            if h.size:
                _count(zr[j0:j1], lo, hi, h, idx)


@njit(**_JIT)
def _count(values, lo, hi, h, idx):
    """Add the finite ``values`` to the histogram ``h`` of equal bins over [lo, hi] (values
    outside go to the end bins), in the values' dtype. Two loops: the bin indices (into the
    scratch ``idx``; -1 for non-finite values) vectorise, then a scalar loop counts them into
    four interleaved sub-histograms (rows of ``h``), which breaks the store-to-load dependency
    of runs of equal bins."""
    bins = h.shape[1]
    t = values.dtype.type
    lo_t = t(lo)
    scale = t(bins / (hi - lo) if hi > lo else 0.0)
    top = t(bins - 1)
    n = U64(values.size)
    for j in range(n):
        v = values[j]
        k = np.int32(min(max((v - lo_t) * scale, t(0)), top))
        idx[j] = k if math.isfinite(v) else np.int32(-1)
    for j in range(n):
        k = idx[j]
        if k >= 0:
            h[j & U64(3), k] += 1


def _forward_py(z, bias, slope, sat_lo, sat_hi, part, lo, hi, hpart):
    """In place: ``z[r, j] <- phi(z[r, j] + bias[j])`` (``bias`` and ``slope`` of z's dtype);
    per-chunk, per-unit statistics in ``part``
    of shape (n_chunks, N_STATS, width), and per-chunk histograms over [lo, hi] in ``hpart``
    (n_chunks, 4, bins) unless it has zero bins. Non-finite activations are counted and left out
    of the sums, extremes and histogram."""
    rows = U64(z.shape[0])
    n_chunks = (rows + U64(CHUNK - 1)) // U64(CHUNK)
    for c in prange(n_chunks):
        r0 = U64(c) * U64(CHUNK)
        hpart[c] = 0
        _forward_rows(z, bias, slope, sat_lo, sat_hi, part[c], r0, min(rows, r0 + U64(CHUNK)),
                      lo, hi, hpart[c])


def _histogram_py(a, lo, hi, hpart):
    """Per-chunk histograms (n_chunks, 4, bins) of the finite values of ``a`` over [lo, hi]."""
    rows = U64(a.shape[0])
    n_chunks = (rows + U64(CHUNK - 1)) // U64(CHUNK)
    for c in prange(n_chunks):
        h = hpart[c]
        h[:] = 0
        idx = np.empty(a.shape[1], np.int32)
        for r in range(U64(c) * U64(CHUNK), min(rows, (U64(c) + U64(1)) * U64(CHUNK))):
            _count(a[r], lo, hi, h, idx)


def _backward_rows_py(g, z, slope, r0, r1):
    width = U64(g.shape[1])
    for r in range(r0, r1):
        gr = g[r]
        zr = z[r]
        for j in range(width):
            gr[j] = gr[j] * _deriv(_code, zr[j], slope)


def _backward_py(g, z, slope):
    """In place: ``g <- g * phi'(z)`` (the cotangent through the activation)."""
    rows = U64(g.shape[0])
    n_chunks = (rows + U64(CHUNK - 1)) // U64(CHUNK)
    for c in prange(n_chunks):
        r0 = U64(c) * U64(CHUNK)
        _backward_rows(g, z, slope, r0, min(rows, r0 + U64(CHUNK)))


def _copy(py, name, env):
    fn = pytypes.FunctionType(py.__code__, env, name)
    fn.__qualname__ = name
    fn.__doc__ = py.__doc__
    return fn


def _specialise(name, dtype):
    """Forward and backward kernels for one activation and dtype, each a cached module-level
    function."""
    scalar = A.BY_DTYPE[dtype]
    env = dict(globals(), _code=A.CODES[name], _act=scalar.activation, _deriv=scalar.derivative)
    tag = f"{name}_{dtype}"
    env["_forward_rows"] = njit(**_JIT)(_copy(_forward_rows_py, f"forward_rows_{tag}", env))
    env["_backward_rows"] = njit(**_JIT)(_copy(_backward_rows_py, f"backward_rows_{tag}", env))
    return (njit(parallel=True, **_JIT)(_copy(_forward_py, f"forward_{tag}", env)),
            njit(parallel=True, **_JIT)(_copy(_backward_py, f"backward_{tag}", env)))


#: (forward, backward) kernels per (activation name, dtype name).
KERNELS = {(name, dtype): _specialise(name, dtype) for name in A.CODES
           for dtype in ("float32", "float64")}
histogram = njit(parallel=True, **_JIT)(_histogram_py)
