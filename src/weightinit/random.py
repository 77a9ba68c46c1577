r"""Counter-based random generation: Philox4x32-10 keyed by the seed, addressed by element index.

Every value is a pure function of ``(seed, stream, draw, kind, index)``:

* the Philox **key** is the 64-bit seed itself (``k0`` = low, ``k1`` = high 32 bits), so distinct
  seeds are distinct keys by construction;
* the **counter** is ``(block_lo, block_hi, draw, stream << 2 | kind)``: ``block`` is the element
  index divided by the elements per block (5 for float32 uniform, 4 for the other float32
  distributions, 2 for float64; see weightinit/kernels/fill.py), ``draw`` counts the
  calls a :class:`Generator` has made (0 for the stateless functions), ``stream`` tells spawned
  generators apart and ``kind`` the distribution (0 uniform, 1 normal, 2 truncated normal).

No two draws of one seed share a counter, so no two share Philox output. Results are therefore
bitwise identical for any thread count, for serial or parallel kernels and for any chunking:
``normal((k,), seed=s, offset=j)`` equals ``normal((n,), seed=s)[j:j + k]``.
"""

import math
import secrets
import threading
from contextlib import contextmanager, nullcontext
from typing import NamedTuple

import numba
import numpy as np

from . import _validate as V
from ._threads import LOCK
from .kernels import fill as _k
from .kernels.philox import philox_words

__all__ = ["Generator", "philox4x32", "uniform", "normal", "truncated_normal", "words",
           "SEED_BITS"]

SEED_BITS = 64
_STREAMS = 1 << 30  # stream ids fit in 30 bits beside the 2-bit kind
_DRAWS = 1 << 32
#: From how many values a fill takes the parallel build, per (distribution, dtype): the
#: break-even points of the serial and parallel builds measured by ``bench/threshold.py``
#: (docs/performance.md section 6; a parallel launch on Numba's workqueue layer costs 0.1-0.3
#: ms, which the float32 kernels need a few hundred thousand values to repay). Values do not
#: depend on the build.
PARALLEL_FROM = {("uniform", "float32"): 1 << 20, ("normal", "float32"): 1 << 19,
                 ("truncated_normal", "float32"): 1 << 19, ("uniform", "float64"): 1 << 19,
                 ("normal", "float64"): 1 << 17, ("truncated_normal", "float64"): 1 << 16}
_PARALLEL_MIN = 1 << 16  # the other parallel kernels (raw words, normal PIT): not measured
_KIND = {"uniform": 0, "normal": 1, "truncated_normal": 2}
_LAYOUTS = ("torch", "keras", "jax")

# Truncations within this many standard deviations use the central (log-free) quantile.
_CENTRAL_Z = 2.0005
# Beyond this many standard deviations the normal's mass (< 1e-20) is too small to sample.
TRUNCATION_LIMIT = 9.2


def philox4x32(counter, key):
    """Philox4x32-10 block function: four 32-bit counter words and two key words to four words.

    Parameters
    ----------
    counter : array_like of uint32, shape (4,) or (n, 4)
    key : array_like of uint32, shape (2,) or (n, 2)

    Returns
    -------
    numpy.ndarray of uint32, shape (4,) or (n, 4)

    References
    ----------
    J. K. Salmon, M. A. Moraes, R. O. Dror, D. E. Shaw, "Parallel random numbers: as easy as
    1, 2, 3", SC 2011. Checked against the Random123 known-answer vectors.
    """
    c = _as_words(counter, 4, "counter")
    k = _as_words(key, 2, "key")
    if c.ndim != k.ndim or (c.ndim == 2 and c.shape[0] != k.shape[0]):
        raise ValueError(
            f"`counter` and `key` must both be single blocks or have the same number of rows. "
            f"Received shapes {c.shape} and {k.shape}")
    c2, k2 = np.atleast_2d(c), np.atleast_2d(k)
    out = np.empty_like(c2)
    philox_words(c2, k2, out)
    return out.reshape(c.shape)


def _as_words(x, width, name):
    a = np.asarray(x)
    if a.dtype.kind not in "ui" or a.shape[-1:] != (width,) or a.ndim not in (1, 2):
        raise ValueError(
            f"`{name}` must be unsigned 32-bit integers of shape ({width},) or (n, {width}). "
            f"Received dtype {a.dtype} and shape {a.shape}")
    if a.size and (a.min() < 0 or a.max() > 0xFFFFFFFF):
        raise ValueError(f"`{name}` words must lie in [0, 2**32). Received: {a!r}")
    return np.ascontiguousarray(a, dtype=np.uint32)


def _check_seed(seed):
    """An int seed in [0, 2**64), or fresh OS entropy for None."""
    if seed is None:
        return secrets.randbits(SEED_BITS)
    return V.check_int("seed", seed, low=0, high=1 << SEED_BITS)


def _std_normal_cdf(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _params(kind, dtype, a, b, c, d):
    """Validate distribution parameters; return (kernel code, 8-tuple of dtype scalars)."""
    t = dtype.type
    if kind == "uniform":
        low, high = V.check_real("low", a), V.check_real("high", b)
        if not low < high:
            raise ValueError(f"`low` must be less than `high`. Received: low={a!r}, high={b!r}")
        _check_range(dtype, low=low, high=high)
        if not (high - low) <= float(np.finfo(dtype).max):
            raise ValueError(f"`high - low` exceeds the {dtype} range. Received: low={a!r}, "
                             f"high={b!r}. Narrow the interval.")
        if not t(low) < t(high):  # else the only value left would be t(high), possibly >= high
            raise ValueError(
                f"`low` and `high` round to the same {dtype} value {float(t(low))!r}: the "
                f"interval is too narrow for {dtype}. Received: low={a!r}, high={b!r}. Widen "
                "it or use dtype=float64.")
        top = np.nextafter(t(high), t(low))  # float rounding must never reach `high`
        return _k.UNIFORM, (t(low), t(high) - t(low), top, t(0), t(0), t(0), t(0), t(0))
    mean, std = V.check_real("mean", a), V.check_real("std", b, nonnegative=True)
    _check_range(dtype, mean=mean, std=std)
    if kind == "normal":
        return _k.NORMAL, (t(mean), t(std)) + (t(0),) * 6
    low, high = V.check_real("low", c, finite=False), V.check_real("high", d, finite=False)
    _check_range(dtype, low=low, high=high)
    if not low < high:
        raise ValueError(f"`low` must be less than `high`. Received: low={c!r}, high={d!r}")
    if std == 0:
        raise ValueError("`std` must be positive for a truncated normal. Received: std=0")
    alpha, beta = (low - mean) / std, (high - mean) / std
    sign = 1.0
    if alpha + beta > 0:  # sample the mirror image, whose far end is the accurate lower tail
        alpha, beta, sign = -beta, -alpha, -1.0
    if -_CENTRAL_Z <= alpha and beta <= _CENTRAL_Z:  # the +-2 sigma case: a log-free rational
        plo, phi = 0.5 * math.erf(alpha / math.sqrt(2.0)), 0.5 * math.erf(beta / math.sqrt(2.0))
        code = _k.TRUNC_CENTRAL
    else:
        plo, phi = _std_normal_cdf(alpha), _std_normal_cdf(beta)
        code = _k.TRUNC_TAIL
    if beta < -TRUNCATION_LIMIT:
        raise ValueError(
            f"The truncation interval [low, high] = [{low!r}, {high!r}] lies more than "
            f"{TRUNCATION_LIMIT} standard deviations from `mean`, where the normal has no usable "
            "mass. Move `mean` towards the interval, widen `std`, or use `uniform`.")
    pmax = 1.0 - np.finfo(dtype).epsneg
    lo = t(low) if math.isfinite(low) else t(-np.finfo(dtype).max)
    hi = t(high) if math.isfinite(high) else t(np.finfo(dtype).max)
    return code, (t(mean), t(std * sign), t(plo), t(phi - plo), t(1.0), lo, hi, t(pmax))


class Plan(NamedTuple):
    """What a draw would do, returned instead of values inside :func:`planning`."""

    kind: str
    shape: tuple
    dtype: np.dtype
    params: tuple  # (low, high) | (mean, std) | (mean, std, low, high)


_planning = threading.local()


@contextmanager
def planning():
    """Within this context every generator validates and returns a :class:`Plan`, no array.

    :func:`weightinit.describe` uses it to report the exact distribution a scheme would draw.
    """
    _planning.on = True
    try:
        yield
    finally:
        _planning.on = False


def is_planning():
    """True inside :func:`planning` (on this thread)."""
    return getattr(_planning, "on", False)


_serial = threading.local()


@contextmanager
def serial():
    """Within this context (on this thread) every generator uses its serial kernel.

    For callers that run their own threads, each filling a part of a tensor with ``offset=``:
    the values are the same as from the parallel kernels, and the calls neither start Numba's
    thread pool nor wait for one another.
    """
    before = getattr(_serial, "on", False)
    _serial.on = True
    try:
        yield
    finally:
        _serial.on = before


def _fill_run(plan, seed, out, offset):
    """Fill the 1-D ``out`` with the flat (C-order) elements ``offset, offset + 1, ...`` of the
    tensor ``plan`` describes (an element-wise or constant :class:`Plan`): the values of the whole
    draw, whatever the runs it is cut into. The one place chunked and shared draws fill values
    (the simulation's threads)."""
    if plan.kind == "constant":
        out.fill(plan.params[0])
    elif out.size:
        globals()[plan.kind]((out.size,), *plan.params, seed=seed, dtype=out.dtype, out=out,
                             offset=offset)
    return out


def _check_range(dtype, **values):
    """Every value must be representable in ``dtype`` (so no arithmetic on it overflows)."""
    big = float(np.finfo(dtype).max)
    for name, v in values.items():
        if math.isfinite(v) and abs(v) > big:
            raise ValueError(
                f"`{name}` = {v!r} exceeds the {dtype} range (|x| <= {big:.4g}). Use "
                "dtype=float64 or smaller parameters.")


def _fill(kind, shape, params, *, key, stream, draw, offset, dtype, out, layout, region=None):
    """Validate, allocate and fill: the one path every generator and scheme goes through.

    With ``region`` only that box of the ``shape`` tensor is produced (``out`` has its shape)."""
    shape = V.check_shape(shape)
    if layout not in _LAYOUTS:
        V.check_choice("layout", layout, _LAYOUTS)
    dtype = V.resolve_dtype(dtype, out)
    starts, sizes = (0,) * len(shape), shape
    if region is not None:
        starts, sizes = V.check_region(region, shape)
    code, p = _params(kind, dtype, *params)
    if is_planning():
        used = {"uniform": 2, "normal": 2, "truncated_normal": 4}[kind]
        return Plan(kind, shape, dtype, tuple(float(x) for x in params[:used]))
    offset = V.check_int("offset", offset, low=0, high=1 << 64)
    n = math.prod(shape)
    if offset + n > 1 << 64:
        raise ValueError(
            f"`offset` + the size of `shape` must not exceed 2**64 elements (the counter space). "
            f"Received offset={offset} for shape={shape} ({n} elements)")
    out = V.prepare_out(sizes, dtype, out)
    if not out.size:
        return out
    base, counts, strides, run = V.region_runs(shape, starts, sizes)
    flat = out.reshape(-1)  # a view: out is C-contiguous
    parallel = (out.size >= PARALLEL_FROM.get((kind, dtype.name), _PARALLEL_MIN)
                and not getattr(_serial, "on", False))
    s1 = np.uint64((stream << 2) | _KIND[kind])
    # one block of scratch per thread for the partial blocks (thread ids of the parallel build)
    edges = np.empty((numba.config.NUMBA_NUM_THREADS if parallel else 1,
                      _k.PER_BLOCK[code, dtype.name]), dtype)
    with LOCK if parallel else nullcontext():
        _k.KERNELS[code, dtype.name, parallel](
            flat, np.uint64(offset + base), np.array(counts, np.uint64),
            np.array(strides, np.uint64), np.uint64(run), np.uint64(key & 0xFFFFFFFF),
            np.uint64(key >> 32), np.uint64(draw), s1, p, edges)
    return out


def uniform(shape, low=0.0, high=1.0, *, seed=None, dtype=None, out=None, offset=0,
            layout="torch", region=None):
    r"""Uniform values on :math:`[\mathrm{low}, \mathrm{high})`.

    float32 takes the top 24 bits of one Philox word, float64 53 bits of two; the result is
    ``low + (high - low) * u`` rounded down below ``high`` if rounding reached it, so ``high`` is
    never returned. :math:`\operatorname{Var} = (\mathrm{high}-\mathrm{low})^2 / 12`.

    Parameters
    ----------
    shape : int or tuple of int
    low, high : float
        Bounds, ``low < high``.
    seed : int in [0, 2**64) or None
        None draws a fresh seed from the OS.
    dtype : {float32, float64}, optional
        Default float32, or the dtype of ``out``.
    out : numpy.ndarray, optional
        C-contiguous writable array of ``shape`` (of the region's shape with ``region``) and
        ``dtype`` to fill in place.
    offset : int
        Index of the first element within the seed's sequence (for chunked generation).
    layout : str
        Accepted for a uniform scheme signature; unused (no fans involved).
    region : tuple of slices, or (offsets, sizes), optional
        Produce only this box of the ``shape`` tensor: bitwise ``f(shape, ...)[region]``,
        computed without the rest (memory and time ~ the box). Slices must have step 1 and lie
        within the shape (no negative indices, no clipping); fewer slices than axes leave the
        trailing axes whole; integers are refused (write ``slice(i, i + 1)``). ``(offsets,
        sizes)`` gives one integer per axis each. Anything else raises ValueError/TypeError.

    Returns
    -------
    numpy.ndarray
    """
    return _fill("uniform", shape, (low, high, None, None), key=_check_seed(seed), stream=0, draw=0,
                 offset=offset, dtype=dtype, out=out, layout=layout, region=region)


def normal(shape, mean=0.0, std=1.0, *, seed=None, dtype=None, out=None, offset=0, layout="torch",
           region=None):
    r"""Normal values :math:`\mathcal{N}(\mathrm{mean}, \mathrm{std}^2)` (``std`` is the standard deviation).

    Box-Muller on pairs of Philox words: :math:`r = \sqrt{-2\ln u_1}`,
    :math:`z = (r\cos 2\pi u_2, r\sin 2\pi u_2)` with :math:`u_1 \in (0, 1]`, so values are always
    finite; :math:`|z| \le 5.77` in float32 (24-bit :math:`u_1`) and :math:`\le 8.57` in float64.

    Parameters are as for :func:`uniform`; ``std`` must be finite and non-negative.
    """
    return _fill("normal", shape, (mean, std, None, None), key=_check_seed(seed), stream=0, draw=0,
                 offset=offset, dtype=dtype, out=out, layout=layout, region=region)


def _std_bounds(mean, std, low, high, bounds):
    """Absolute bounds from ``bounds="absolute"`` (as given) or ``"std"`` (mean + k std)."""
    V.check_choice("bounds", bounds, ("absolute", "std"))
    if bounds == "absolute":
        return low, high
    mean = V.check_real("mean", mean)
    std = V.check_real("std", std, positive=True)
    return (mean + V.check_real("low", low, finite=False) * std,
            mean + V.check_real("high", high, finite=False) * std)


def truncated_normal(shape, mean=0.0, std=1.0, low=-2.0, high=2.0, *, bounds="absolute",
                     seed=None, dtype=None, out=None, offset=0, layout="torch", region=None):
    r"""Normal :math:`\mathcal{N}(\mathrm{mean}, \mathrm{std}^2)` conditioned on :math:`[\mathrm{low}, \mathrm{high}]`.

    ``low`` and ``high`` are absolute bounds, as PyTorch's ``trunc_normal_(a, b)``; the standard
    deviation is *not* renormalised (the variance after truncation is smaller than ``std**2``;
    :func:`weightinit.variance_scaling` corrects for it). Inverse-CDF sampling:
    :math:`x = \mu + \sigma\,\Phi^{-1}(\Phi(\alpha) + u(\Phi(\beta) - \Phi(\alpha)))` with
    :math:`\alpha, \beta` the standardised bounds, sampled on the mirror image when the interval
    lies right of the mean so that tail probabilities keep their precision. One of ``low``/``high``
    may be infinite (half-normal: ``low=mean, high=inf``).

    ``bounds="std"`` reads ``low`` and ``high`` in units of ``std`` around ``mean``: the interval
    is :math:`[\mathrm{mean} + \mathrm{low}\cdot\mathrm{std}, \mathrm{mean} +
    \mathrm{high}\cdot\mathrm{std}]`, so ``truncated_normal(shape, std=0.02, low=-3, high=3,
    bounds="std")`` cuts at 3 std. With the default absolute bounds the same call with
    ``std=0.02`` and bounds -2..2 (PyTorch's ``trunc_normal_`` defaults, as torchtitan uses them)
    cuts at 100 std, i.e. not at all in practice.
    """
    low, high = _std_bounds(mean, std, low, high, bounds)
    return _fill("truncated_normal", shape, (mean, std, low, high), key=_check_seed(seed), stream=0,
                 draw=0, offset=offset, dtype=dtype, out=out, layout=layout, region=region)


class Generator:
    """A stateful stream of draws from one seed, like :class:`numpy.random.Generator`.

    Each method call uses the next ``draw`` counter word, so successive calls give new values;
    the first call of ``Generator(s)`` equals the stateless function with ``seed=s``.
    :meth:`spawn` makes children whose ``stream`` ids are unique within the seed's tree, so their
    counters never overlap the parent's or each other's.

    Thread safety: the draw counter advances under a lock, so calls from several threads each get
    their own draw (which thread gets which is up to the scheduler).
    """

    def __init__(self, seed=None, *, _stream=0, _tree=None):
        self._seed = _check_seed(seed)
        self._stream = _stream
        self._draw = 0
        self._lock = threading.Lock()
        self._tree = _tree if _tree is not None else {"next": 1, "lock": threading.Lock()}

    @property
    def seed(self):
        """The 64-bit seed (the Philox key)."""
        return self._seed

    @property
    def stream(self):
        """This generator's stream id (0 for a root generator)."""
        return self._stream

    @property
    def draws(self):
        """How many draws (method calls) this generator has made."""
        return self._draw

    def __repr__(self):
        return f"Generator(seed={self._seed}, stream={self._stream}, draws={self._draw})"

    def _next_draw(self):
        with self._lock:
            if self._draw >= _DRAWS:
                raise RuntimeError(
                    f"This generator has made all {_DRAWS} draws its counter allows; spawn() a new one.")
            d = self._draw
            self._draw += 1
            return d

    def _take(self, kind, shape, params, dtype, out, region):
        # Validate and allocate first, so a rejected call does not consume a draw.
        shape = V.check_shape(shape)
        dtype = V.resolve_dtype(dtype, out)
        sizes = shape if region is None else V.check_region(region, shape)[1]
        _params(kind, dtype, *params)
        out = V.prepare_out(sizes, dtype, out)
        return _fill(kind, shape, params, key=self._seed, stream=self._stream,
                     draw=self._next_draw(), offset=0, dtype=dtype, out=out, layout="torch",
                     region=region)

    def uniform(self, shape, low=0.0, high=1.0, *, dtype=None, out=None, region=None):
        """Next draw of uniform values on [low, high); see :func:`weightinit.random.uniform`."""
        return self._take("uniform", shape, (low, high, None, None), dtype, out, region)

    def normal(self, shape, mean=0.0, std=1.0, *, dtype=None, out=None, region=None):
        """Next draw of N(mean, std**2) values; see :func:`weightinit.random.normal`."""
        return self._take("normal", shape, (mean, std, None, None), dtype, out, region)

    def truncated_normal(self, shape, mean=0.0, std=1.0, low=-2.0, high=2.0, *,
                         bounds="absolute", dtype=None, out=None, region=None):
        """Next draw of truncated normal values; see :func:`weightinit.random.truncated_normal`."""
        low, high = _std_bounds(mean, std, low, high, bounds)
        return self._take("truncated_normal", shape, (mean, std, low, high), dtype, out, region)

    def spawn(self, n):
        """Return ``n`` independent child generators (same key, fresh unique stream ids)."""
        n = V.check_int("n", n, low=1)
        with self._tree["lock"]:
            first = self._tree["next"]
            if first + n > _STREAMS:
                raise ValueError(
                    f"`n`={n} is too many: a seed supports {_STREAMS - 1} spawned streams and "
                    f"this tree has used {first - 1}.")
            self._tree["next"] = first + n
        return [Generator(self._seed, _stream=first + i, _tree=self._tree) for i in range(n)]


_WORD_SPACE = 1 << 66  # 2**64 blocks of four words


def words(count, *, seed=None, offset=0, kind="uniform", stream=0, draw=0, out=None):
    r"""The raw Philox4x32-10 output words behind a draw, as ``uint32``.

    Word ``j`` is word ``j % 4`` of block ``b = j // 4``, i.e. of
    :math:`\mathrm{Philox}_{10}((b \bmod 2^{32},\ \lfloor b / 2^{32} \rfloor,\ \mathrm{draw},\
    \mathrm{stream} \cdot 4 + \mathrm{kind}),\ (\mathrm{seed} \bmod 2^{32},\ \lfloor\mathrm{seed}
    / 2^{32}\rfloor))`, the counters the generators of this module use (module docstring). These
    are the bits :func:`uniform` (``kind="uniform"``), :func:`normal` or :func:`truncated_normal`
    transform into values; ``weightinit stream`` writes them for external test batteries.

    Parameters
    ----------
    count : int
        Number of words, >= 0.
    seed : int in [0, 2**64) or None
        None draws a fresh seed from the OS.
    offset : int
        Index of the first word; ``offset + count`` must not exceed ``2**66`` (``2**64`` blocks).
    kind : {"uniform", "normal", "truncated_normal"}
        Which distribution's counters to use.
    stream, draw : int
        The counter's stream id (< 2**30) and draw number (< 2**32), as for a
        :class:`Generator` and its spawned children; 0 for the stateless functions.
    out : numpy.ndarray, optional
        C-contiguous writable ``uint32`` array of shape ``(count,)`` to fill in place.

    Returns
    -------
    numpy.ndarray of uint32, shape (count,)

    References
    ----------
    J. K. Salmon, M. A. Moraes, R. O. Dror, D. E. Shaw, "Parallel random numbers: as easy as
    1, 2, 3", SC 2011.
    """
    from .kernels import stream as _ks

    count = V.check_int("count", count, low=0)
    key = _check_seed(seed)
    offset = V.check_int("offset", offset, low=0, high=_WORD_SPACE)
    V.check_choice("kind", kind, _KIND)
    stream = V.check_int("stream", stream, low=0, high=_STREAMS)
    draw = V.check_int("draw", draw, low=0, high=_DRAWS)
    if offset + count > _WORD_SPACE:
        raise ValueError(
            f"`offset` + `count` must not exceed 2**66 words (2**64 blocks of four). Received "
            f"offset={offset}, count={count}")
    if out is None:
        V.check_memory(count * 4, f"{count} uint32 words")
        out = np.empty(count, np.uint32)
    else:
        if isinstance(out, np.ndarray) and out.dtype != np.uint32:
            raise TypeError(f"`out` must have dtype uint32. Received dtype {out.dtype}")
        V.check_out(out, (count,), np.dtype(np.uint32))
    parallel = count >= _PARALLEL_MIN
    kernel = _ks.words_parallel if parallel else _ks.words_serial
    with LOCK if parallel else nullcontext():
        kernel(out, np.uint64(offset // 4), np.uint64(offset % 4), np.uint64(key & 0xFFFFFFFF),
               np.uint64(key >> 32), np.uint64(draw), np.uint64((stream << 2) | _KIND[kind]))
    return out


def _normal_pit_words(z):
    """``floor(2**32 * Phi(z))`` as uint32 for float64 ``z`` (the probability-integral transform
    of standard normals to words; uniform words for exact N(0, 1) input)."""
    from .kernels import stream as _ks

    z = np.ascontiguousarray(z, dtype=np.float64).reshape(-1)
    out = np.empty(z.size, np.uint32)
    parallel = z.size >= _PARALLEL_MIN
    with LOCK if parallel else nullcontext():
        (_ks.pit_parallel if parallel else _ks.pit_serial)(z, out)
    return out
