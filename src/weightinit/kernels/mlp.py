"""Simulation kernels: fused bias + activation + per-layer statistics, histogram, backward step.

Each kernel is specialised per activation and dtype (the activation code and that dtype's
scalar functions bound as globals, as in ``fill``), so the inner loop over units has no branch
on the activation and vectorises, and float32 runs compute in float32.

The kernels are serial (and release the GIL): the simulation gives each thread of its team a run
of row chunks, and that thread does the matrix product of its rows and then these kernels on
them, so the two cores never pass work between BLAS's thread pool and Numba's (see
``docs/performance.md``). Rows (samples) are taken in fixed chunks of ``CHUNK`` rows; every
chunk writes per-unit partial statistics into its own row of a partials array, which the caller
reduces. The chunking does not depend on the threads, so results are identical for any number.
"""

import math
import types as pytypes

import numpy as np
from numba import njit

from . import activations as A
from .norm import dot as _dot

CHUNK = 64  # rows per chunk of partial statistics
TILE = 256  # units per tile: the per-unit accumulators of a tile stay in the first-level cache
# Per-unit partial statistics (float64), one row per chunk and one column per unit: sums of a,
# a**2 and z**2, counts of saturated, zero and non-finite activations, extremes.
SUM_A, SUM_A2, SUM_Z2, SATURATED, ZERO, NONFINITE, MIN_A, MAX_A = range(8)
N_STATS = 8
# Row segments whose pre-activations all lie in (-TAME, TAME) take the fast path: statistics
# accumulated in the data's dtype over the rows of one chunk, then added to the float64
# partials. With |z| < 2**56 every activation is below 2**57 and a chunk's sum of 64 squares
# below 2**120, far from the float32 overflow at 2**128. Other segments (huge or non-finite
# values: exploding networks) take a float64 path that counts and skips non-finite values.
TAME = 2.0 ** 56

_JIT = dict(cache=True, error_model="numpy", fastmath={"contract"}, nogil=True)
# No contraction: NumPy's rounding. Set explicitly: a kernel that leaves ``fastmath`` unset
# inherits its caller's flags when it is first compiled for a call from another kernel.
_EXACT = dict(cache=True, error_model="numpy", fastmath=False, nogil=True)
# Bound per activation and dtype by ``_specialise``: the code (a compile-time constant), the
# scalar activation and derivative of the dtype, and the functions that call them.
_code = _act = _act_call = _deriv = _activate = _slow_row = _forward = None

U64 = np.uint64


@njit(inline="always", **_JIT)
def _add_bias(zr, br, biased):
    """``zr += br`` in place (if ``biased``: a zero bias is not added at all); returns how many
    results are not in (-TAME, TAME) (NaN counts)."""
    lim = zr.dtype.type(TAME)
    wild = 0
    for j in range(U64(zr.size)):
        x = zr[j] + br[j] if biased else zr[j]
        zr[j] = x
        wild += 0 if (x > -lim) & (x < lim) else 1
    return wild


def _activate_py(zr, z2, slope):
    """``zr <- phi(zr)``, adding z**2 to the per-unit accumulator ``z2`` (zr's dtype)."""
    for j in range(U64(zr.size)):
        x = zr[j]
        z2[j] += x * x
        zr[j] = _act(x, slope)


@njit(inline="always", **_JIT)
def _shifted_sums(zr, shift, sd, sd2):
    """Add d and d**2 per unit, d = a - shift: with the shift a value of the same unit in the same
    chunk, the sums keep the spread's precision however large the mean (sigmoid near 0.5)."""
    for j in range(U64(zr.size)):
        d = zr[j] - shift[j]
        sd[j] += d
        sd2[j] += d * d


@njit(inline="always", **_JIT)
def _sat_zero(a, sat_lo, sat_hi):
    """saturated + 128 * zero for one value (the count a fast-path accumulator adds)."""
    t = type(a)
    return (t(1) if (a < sat_lo) | (a > sat_hi) else t(0)) + (t(128) if a == 0 else t(0))


@njit(inline="always", **_JIT)
def _bin_params(t, lo, hi, bins):
    """(lo, scale, top) in the dtype ``t`` for equal bins over [lo, hi]; see :func:`_bin`."""
    return t(lo), t(bins / (hi - lo) if hi > lo else 0.0), t(bins - 1)


@njit(inline="always", **_JIT)
def _bin(v, lo, scale, top):
    """The bin of the finite ``v``: values outside [lo, hi] go to the end bins."""
    return np.int32(min(max((v - lo) * scale, type(v)(0)), top))


@njit(inline="always", **_JIT)
def _fast_counts(zr, cnt, idx, sat_lo, sat_hi, lo, scale, top):
    """Add saturated + 128 * zero to ``cnt`` per unit and write each value's histogram bin."""
    for j in range(U64(zr.size)):
        a = zr[j]
        cnt[j] += _sat_zero(a, sat_lo, sat_hi)
        idx[j] = _bin(a, lo, scale, top)


@njit(inline="always", **_JIT)
def _fast_counts_range(zr, cnt, amin, amax, sat_lo, sat_hi):
    """As :func:`_fast_counts`, tracking each unit's extremes instead of histogram bins (for a
    histogram whose range is only known after the pass)."""
    for j in range(U64(zr.size)):
        a = zr[j]
        cnt[j] += _sat_zero(a, sat_lo, sat_hi)
        amin[j] = min(amin[j], a)
        amax[j] = max(amax[j], a)


def _slow_row_py(zr, p, j0, slope, sat_lo, sat_hi):
    """The float64 path for one row segment (units j0...): ``zr <- phi(zr)`` with statistics
    added straight to the partials ``p``; non-finite values are counted and left out."""
    for j in range(zr.size):
        x = zr[j]
        a = _act_call(x, slope)  # not inlined: this path is rare, compile time is not
        zr[j] = a
        u = j0 + j
        xf = np.float64(x)
        if math.isfinite(xf):
            p[SUM_Z2, u] += xf * xf
        af = np.float64(a)
        if not math.isfinite(af):
            p[NONFINITE, u] += 1.0
            continue
        p[SUM_A, u] += af
        p[SUM_A2, u] += af * af
        p[SATURATED, u] += 1.0 if (af < sat_lo or af > sat_hi) else 0.0
        p[ZERO, u] += 1.0 if af == 0.0 else 0.0
        p[MIN_A, u] = min(p[MIN_A, u], af)
        p[MAX_A, u] = max(p[MAX_A, u], af)


@njit(inline="always", **_JIT)
def _count_bins(idx, h, n):
    """Count the first ``n`` bin indices (negative: skip) into four interleaved sub-histograms
    (rows of ``h``), which breaks the store-to-load dependency of runs of equal bins."""
    for j in range(U64(n)):
        k = idx[j]
        if k >= 0:
            h[j & U64(3), k] += 1


@njit(**_JIT)
def _count(values, lo, hi, h, idx):
    """Add the finite ``values`` to the histogram ``h`` of equal bins over [lo, hi] (values
    outside go to the end bins), in the values' dtype; ``idx`` is scratch. The bin indices (-1
    for non-finite values) vectorise; the counting is scalar."""
    lo_t, scale, top = _bin_params(values.dtype.type, lo, hi, h.shape[1])
    n = U64(values.size)
    for j in range(n):
        v = values[j]
        k = _bin(v, lo_t, scale, top)
        idx[j] = k if math.isfinite(v) else np.int32(-1)
    _count_bins(idx, h, n)


@njit(inline="always", **_JIT)
def _fill_rows(a, zero, inf, n, kmin, kmax):
    """Set the first ``n`` columns of ``a``: row ``kmin`` to ``inf``, row ``kmax`` to ``-inf``,
    the others to ``zero`` (initial partials and accumulators). Explicit loops: Numba's slice
    assignments cost seconds of compile time here."""
    for k in range(a.shape[0]):
        v = inf if k == kmin else (-inf if k == kmax else zero)
        row = a[k]
        for j in range(n):
            row[j] = v


@njit(inline="always", **_JIT)
def _copy_into(dst, src):
    for j in range(U64(src.size)):
        dst[j] = src[j]


# Rows of the per-tile accumulators (in the data's dtype): sums of z**2, of d = a - shift and
# of d**2, counts, extremes, and the shift (each unit's activation in the chunk's first fast row).
ACC_Z2, ACC_D, ACC_D2, ACC_COUNTS, ACC_MIN, ACC_MAX, ACC_SHIFT = range(7)
N_ACC = 7


def _forward_py(z, bias, biased, slope, sat_lo, sat_hi, part, lo, hi, h, acc, idx, wild,
                c0, c1):
    """In place, for the rows of chunks c0..c1: ``z[r, j] <- phi(z[r, j] + bias[j])`` (``bias``
    and ``slope`` of z's dtype; ``biased``: whether any bias is not 0); per-chunk, per-unit
    statistics in ``part`` of shape (n_chunks, N_STATS, width), and the histogram over [lo, hi]
    added to ``h`` (4, bins) if it has bins (a fixed range known in advance; otherwise each
    unit's extremes are recorded). ``acc`` (N_ACC, TILE) of z's dtype and ``idx`` (TILE) int32
    are scratch.

    Row segments that are not tame (see ``TAME``) get their bias only: they are marked in
    ``wild`` (uint8, one row per row of the chunks and one column per tile, zeros on entry) and
    their number is returned, for :func:`_wild_py` to finish. That path is compiled only when a
    call meets such values (exploding networks), not on every first run.

    Per chunk, units are taken in tiles of ``TILE`` so that the accumulators stay in the
    first-level cache while the chunk's rows pass over the tile. Each row segment takes short
    loops that each write few arrays (the vectoriser gives up when it must check many pointers
    for overlap), with unsigned indices (signed ones keep a negative-index check that stops
    vectorisation). The loops' helpers are inlined (``inline="always"``): each separately
    compiled function costs Numba 0.1-0.2 s of a first run, and inlining them keeps the speed.
    """
    t = z.dtype.type
    width = U64(z.shape[1])
    rows = U64(z.shape[0])
    bins = h.shape[1]
    lo_t, scale, top = _bin_params(t, lo, hi, bins)
    s_lo, s_hi = t(sat_lo), t(sat_hi)
    r_first = U64(c0) * U64(CHUNK)
    n_wild = 0
    for c in range(U64(c0), U64(c1)):
        r0 = c * U64(CHUNK)
        r1 = min(rows, r0 + U64(CHUNK))
        p = part[c]
        _fill_rows(p, 0.0, np.inf, width, MIN_A, MAX_A)
        for j0 in range(U64(0), width, U64(TILE)):
            j1 = min(width, j0 + U64(TILE))
            m = j1 - j0
            for k in range(N_ACC):  # zeros, but +inf for the minima and -inf for the maxima
                v = t(np.inf) if k == ACC_MIN else (t(-np.inf) if k == ACC_MAX else t(0))
                for j in range(m):
                    acc[k, j] = v
            fast = 0  # rows of the chunk that took the fast path for this tile
            for r in range(r0, r1):
                zr = z[r, j0:j1]
                if _add_bias(zr, bias[j0:j1], biased) == 0:
                    _activate(zr, acc[ACC_Z2, :m], slope)
                    if fast == 0:
                        _copy_into(acc[ACC_SHIFT], zr)
                    else:
                        _shifted_sums(zr, acc[ACC_SHIFT, :m], acc[ACC_D, :m], acc[ACC_D2, :m])
                    fast += 1
                    if bins:
                        _fast_counts(zr, acc[ACC_COUNTS, :m], idx, s_lo, s_hi, lo_t, scale, top)
                        _count_bins(idx, h, m)
                    else:
                        _fast_counts_range(zr, acc[ACC_COUNTS, :m], acc[ACC_MIN, :m],
                                           acc[ACC_MAX, :m], s_lo, s_hi)
                else:
                    wild[r - r_first, j0 // U64(TILE)] = 1
                    n_wild += 1
            for j in range(m):
                u = j0 + j
                k = np.float64(acc[ACC_SHIFT, j]) if fast else 0.0
                d, d2 = np.float64(acc[ACC_D, j]), np.float64(acc[ACC_D2, j])
                p[SUM_Z2, u] += np.float64(acc[ACC_Z2, j])
                p[SUM_A, u] += fast * k + d
                p[SUM_A2, u] += fast * k * k + 2.0 * k * d + d2
                cnt = np.float64(acc[ACC_COUNTS, j])  # saturated + 128 * zero, exact
                zero = np.floor(cnt * (1.0 / 128.0))
                p[SATURATED, u] += cnt - 128.0 * zero
                p[ZERO, u] += zero
                p[MIN_A, u] = min(p[MIN_A, u], np.float64(acc[ACC_MIN, j]))
                p[MAX_A, u] = max(p[MAX_A, u], np.float64(acc[ACC_MAX, j]))
    return n_wild


def _wild_py(z, wild, r_first, slope, sat_lo, sat_hi, part, lo, hi, h, idx):
    """Finish the row segments :func:`_forward_py` marked in ``wild`` (rows from ``r_first``):
    ``z <- phi(z)`` in float64, the statistics added straight to the partials and the finite
    values to the histogram ``h`` if it has bins; non-finite values are counted and left out."""
    width = z.shape[1]
    for i in range(wild.shape[0]):
        r = r_first + i
        p = part[r // CHUNK]
        for t in range(wild.shape[1]):
            if wild[i, t]:
                j0 = t * TILE
                zr = z[r, j0:min(width, j0 + TILE)]
                _slow_row(zr, p, j0, slope, sat_lo, sat_hi)
                if h.shape[1]:
                    _count(zr, lo, hi, h, idx)


def _aligned(shape, dtype, align=64):
    """An uninitialised C-contiguous array whose data start on an ``align``-byte boundary."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    raw = np.empty(n * dtype.itemsize + align, np.uint8)
    skip = -raw.ctypes.data % align
    return raw[skip: skip + n * dtype.itemsize].view(dtype).reshape(shape)


def _scratch(z, c0, c1):
    """The forward kernel's scratch for rows of chunks c0..c1 of ``z``: the tile accumulators,
    the bin indices and the marks of wild segments (zeros)."""
    r_first = c0 * CHUNK
    wild = np.zeros((max(0, min(z.shape[0], c1 * CHUNK) - r_first), -(-z.shape[1] // TILE)),
                    np.uint8)
    return r_first, _aligned((N_ACC, TILE), z.dtype), _aligned(TILE, np.int32), wild


def _forward_caller(kernel, finish_wild):
    """The forward kernel as callers use it, ``forward(z, bias, slope, sat_lo, sat_hi, part, lo,
    hi, h, c0, c1)``: the scratch arrays and the bias test are made here, in Python, so that the
    compiled kernel allocates nothing (Numba's array allocation costs compile time, not speed),
    and the segments the kernel left wild are finished by ``finish_wild``."""
    def forward(z, bias, slope, sat_lo, sat_hi, part, lo, hi, h, c0, c1):
        r_first, acc, idx, wild = _scratch(z, c0, c1)
        if kernel(z, bias, bool(bias.any()), slope, sat_lo, sat_hi, part, lo, hi, h, acc, idx,
                  wild, c0, c1):
            finish_wild(z, wild, r_first, slope, sat_lo, sat_hi, part, lo, hi, h, idx)

    forward.kernel = kernel  # the compiled kernel itself (its on-disk cache, for one)
    return forward


def _stream_py(h, f, bias, alpha, out, fsums, moment, part, zero, no_hist, acc, idx, wild, c0,
               c1):
    """:func:`residual_add` and then the linear forward kernel's statistics of ``out`` (with
    the zero bias ``zero`` and the empty histogram ``no_hist``), one chunk of rows at a time,
    while the chunk is still in the second-level cache: the residual stream of a block without
    post-normalisation. Returns the number of wild segments, marked in ``wild`` as by the
    forward kernel."""
    n = 0
    for c in range(c0, c1):
        residual_add(h, f, bias, alpha, out, fsums, moment, c, c + 1)
        # (the linear activation has no slope: alpha stands in for any value of the dtype)
        n += _forward(out, zero, False, alpha, -np.inf, np.inf, part, 0.0, 0.0, no_hist, acc,
                      idx, wild[(c - c0) * CHUNK:], c, c + 1)
    return n


def _stream_caller(kernel, finish_wild):
    """``stream(h, f, bias, alpha, out, fsums, moment, part, c0, c1)``: :func:`_stream_py`
    with its scratch made here and its wild segments finished (see :func:`_forward_caller`)."""
    def stream(h, f, bias, alpha, out, fsums, moment, part, c0, c1):
        r_first, acc, idx, wild = _scratch(out, c0, c1)
        zero, no_hist = np.zeros(out.shape[1], out.dtype), np.zeros((4, 0), np.int64)
        if kernel(h, f, bias, alpha, out, fsums, moment, part, zero, no_hist, acc, idx, wild,
                  c0, c1):
            finish_wild(out, wild, r_first, alpha, -np.inf, np.inf, part, 0.0, 0.0, no_hist,
                        idx)

    return stream


@njit(**_JIT)
def _histogram(a, lo, hi, h, r0, r1, idx):
    for r in range(r0, r1):
        _count(a[r], lo, hi, h, idx)


def histogram(a, lo, hi, h, r0, r1):
    """Add the finite values of rows r0..r1 of ``a`` to the histogram ``h`` (4, bins) over
    [lo, hi] (the bin-index scratch is made here, not in the kernel)."""
    _histogram(a, lo, hi, h, r0, r1, np.empty(a.shape[1], np.int32))


@njit(**_EXACT)
def _add_row(h, f, bias, alpha, out):
    for j in range(U64(h.size)):
        out[j] = h[j] + alpha * (f[j] + bias[j])


@njit(**_EXACT)
def _add_row_moment(h, f, bias, alpha, out, sq, bad):
    for j in range(U64(h.size)):
        v = f[j] + bias[j]
        out[j] = h[j] + alpha * v
        finite = math.isfinite(v)
        w = np.float64(v) if finite else 0.0
        sq[j] += w * w
        bad[j] += 0.0 if finite else 1.0


@njit(**_EXACT)
def residual_add(h, f, bias, alpha, out, fsums, moment, c0, c1):
    """Rows of chunks c0..c1: ``out <- h + alpha * (f + bias)``, the residual update (``bias``
    per unit, ``alpha`` of the data's dtype; rounded as NumPy would, without a fused
    multiply-add). With ``moment``, per chunk c and unit, the float64 sum of the finite
    ``(f + bias)**2`` into ``fsums[c, 0]`` and the count of the non-finite ones into
    ``fsums[c, 1]``: the branch output's second moment, in the same pass."""
    width = U64(out.shape[1])
    rows = U64(out.shape[0])
    for c in range(U64(c0), U64(c1)):
        q = fsums[c]
        if moment:
            _fill_rows(q, 0.0, 0.0, width, -1, -1)
        for r in range(c * U64(CHUNK), min(rows, (c + U64(1)) * U64(CHUNK))):
            if moment:
                _add_row_moment(h[r], f[r], bias, alpha, out[r], q[0], q[1])
            else:
                _add_row(h[r], f[r], bias, alpha, out[r])


@njit(**_EXACT)
def cotangent_sums(g, sums, c0, c1):
    """Per chunk c (c0..c1) of the rows of the cotangent ``g``: ``sums[0, c]``, its sum of
    squares, and ``sums[1, c]``, the sum of its rows' L2 norms (float64; the row sums
    vectorised as in :mod:`weightinit.kernels.norm`)."""
    rows = g.shape[0]
    for c in range(c0, c1):
        s2 = 0.0
        norms = 0.0
        for r in range(c * CHUNK, min(rows, (c + 1) * CHUNK)):
            ss = _dot(g[r], g[r])
            s2 += ss
            norms += math.sqrt(ss)
        sums[0, c] = s2
        sums[1, c] = norms


def reduce_partials(part, samples, out):
    """One layer's totals from its partials (n_chunks, N_STATS, width), into ``out``: the sums
    of a, a**2 and z**2, the saturated, zero and non-finite counts, and the number of units that
    are zero in all ``samples`` rows (dead units). Summed over chunks per unit first, in chunk
    order, then over units. NumPy, not a kernel: per layer it costs about as much (tens of
    microseconds at width 1024) and a compiled reduction cost 0.3 s of a first run."""
    per_unit = part[:, : NONFINITE + 1].sum(axis=0)
    out[: NONFINITE + 1] = per_unit.sum(axis=1)
    out[NONFINITE + 1] = np.count_nonzero(per_unit[ZERO] == samples)


def _backward_py(g, z, slope, r0, r1):
    """In place, rows r0..r1: ``g <- g * phi'(z)`` (the cotangent through the activation)."""
    width = U64(g.shape[1])
    for r in range(r0, r1):
        gr = g[r]
        zr = z[r]
        for j in range(width):
            gr[j] = gr[j] * _deriv(zr[j], slope)


def _copy(py, name, env):
    fn = pytypes.FunctionType(py.__code__, env, name)
    fn.__qualname__ = name
    fn.__doc__ = py.__doc__
    return fn


def _specialise(name, dtype):
    """Forward (through :func:`_forward_caller`) and backward kernels for one activation and
    dtype, each a cached module-level function, and for the linear activation the residual
    stream's kernel (through :func:`_stream_caller`; else None)."""
    scalar = A.BY_DTYPE[dtype]
    env = dict(globals(), _code=A.CODES[name], _act=scalar.phi[name], _deriv=scalar.dphi[name],
               _act_call=scalar.phi_call[name])
    tag = f"{name}_{dtype}"
    for py in (_activate_py, _slow_row_py):
        base = py.__name__[:-3]
        env[base] = njit(**_JIT)(_copy(py, f"{base}_{tag}", env))
    env["_forward"] = njit(**_JIT)(_copy(_forward_py, f"forward_{tag}", env))
    wild = njit(**_JIT)(_copy(_wild_py, f"wild_{tag}", env))
    stream = (_stream_caller(njit(**_JIT)(_copy(_stream_py, f"stream_{dtype}", env)), wild)
              if name == "linear" else None)
    return (_forward_caller(env["_forward"], wild),
            njit(**_JIT)(_copy(_backward_py, f"backward_{tag}", env)), stream)


_ALL = {(name, dtype): _specialise(name, dtype) for name in A.CODES
        for dtype in ("float32", "float64")}
#: (forward, backward) kernels per (activation name, dtype name).
KERNELS = {key: kernels[:2] for key, kernels in _ALL.items()}
#: The residual stream's kernel per dtype name (:func:`_stream_py`).
STREAM = {dtype: _ALL["linear", dtype][2] for dtype in ("float32", "float64")}
