"""Argument checks shared by the public API: the only place that raises on bad input.

Messages follow one form: what is wrong, what was received, and what to do instead.
"""

import importlib
import math
import numbers
import os

import numpy as np

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class InsufficientMemoryError(ValueError, MemoryError):
    """A request needs more memory than the machine has available (raised before allocating)."""


def check_shape(shape, name="shape"):
    """Return ``shape`` as a tuple of positive Python ints (an int means a 1-D shape)."""
    if isinstance(shape, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a tuple of positive integers. Received: {name}={shape!r}")
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a tuple of positive integers. Received: {name}={shape!r}") from None
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, numbers.Integral):
            raise TypeError(
                f"`{name}` must contain integers only. Received: {name}={shape!r} "
                f"(element {d!r} of type {type(d).__name__})")
        if d <= 0:
            raise ValueError(
                f"`{name}` must contain positive dimensions. Received: {name}={shape!r}")
    return tuple(int(d) for d in dims)


def check_dtype(dtype, name="dtype"):
    """Return ``dtype`` as a NumPy float32 or float64 dtype, or raise TypeError."""
    try:
        dt = None if dtype is None else np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in DTYPES:
        raise TypeError(
            f"`{name}` must be float32 or float64. Received: {name}={dtype!r}. "
            "Generate in one of these and cast with `.astype(...)` if you need another type.")
    return dt


def check_real(name, value, *, positive=False, nonnegative=False, finite=True):
    """Return ``value`` as a float after checking it is a real number with the stated sign."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number. Received: {name}={value!r}")
    v = float(value)
    if math.isnan(v) or (finite and math.isinf(v)):
        raise ValueError(f"`{name}` must be a finite number. Received: {name}={value!r}")
    if positive and not v > 0:
        raise ValueError(f"`{name}` must be positive. Received: {name}={value!r}")
    if nonnegative and not v >= 0:
        raise ValueError(f"`{name}` must be non-negative. Received: {name}={value!r}")
    return v


def check_choice(name, value, choices):
    """Return ``value`` if it is one of ``choices``; otherwise raise ValueError listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"Unknown `{name}`: {value!r}. Expected one of {sorted(choices)}")
    return value


def check_int(name, value, *, low=0, high=None):
    """Return ``value`` as an int in [low, high)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer. Received: {name}={value!r}")
    v = int(value)
    if v < low or (high is not None and v >= high):
        upper = "" if high is None else f" and below {high}"
        raise ValueError(f"`{name}` must be at least {low}{upper}. Received: {name}={value!r}")
    return v


def available_memory():
    """Bytes of memory available to a new allocation (MemAvailable on Linux), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


CHUNK_HINT = ("Generate it in chunks with `offset=` into a memory-mapped array (or on disk with "
              "`weightinit generate`), or use a smaller shape.")


def check_memory(nbytes, what="the requested array", hint=CHUNK_HINT):
    """Raise InsufficientMemoryError if ``nbytes`` exceeds the memory available right now.

    ``hint`` ends the message: what to do instead (by default, the chunked, out-of-core path)."""
    avail = available_memory()
    if avail is not None and nbytes > avail:
        raise InsufficientMemoryError(
            f"{what} needs {nbytes / 2**30:.2f} GiB but only {avail / 2**30:.2f} GiB of memory is "
            f"available. {hint}")


def check_out(out, shape, dtype, name="out"):
    """Check a caller's output array: ndarray of exactly ``shape``, ``dtype``, C-contiguous, writable."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"`{name}` must be a numpy.ndarray. Received: {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(
            f"`{name}` has dtype {out.dtype}, expected {dtype}. Pass dtype={out.dtype.name!r} or an "
            f"array of dtype {dtype}.")
    if out.shape != shape:
        raise ValueError(f"`{name}` has shape {out.shape}, expected {shape}.")
    if not out.flags.c_contiguous:
        raise ValueError(
            f"`{name}` must be C-contiguous. Pass np.ascontiguousarray(...) and copy back, or "
            "let the function allocate.")
    if not out.flags.writeable:
        raise ValueError(f"`{name}` is read-only. Pass a writable array.")
    return out


def resolve_dtype(dtype, out):
    """The dtype of a result: ``dtype`` if given, else ``out``'s, else float32."""
    if dtype is None:
        if isinstance(out, np.ndarray):
            return check_dtype(out.dtype, "out")
        dtype = np.float32
    return check_dtype(dtype)


def prepare_out(shape, dtype, out, what="the requested array"):
    """Validate ``out`` or allocate an uninitialised array after checking memory."""
    if out is not None:
        return check_out(out, shape, dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    check_memory(nbytes, f"{what} of shape {shape} and dtype {dtype}")
    return np.empty(shape, dtype)


def check_region(region, shape, name="region"):
    """Return ``region`` of the tensor ``shape`` as ``(starts, sizes)``, two tuples of ints.

    ``region`` is a tuple of slices with step 1 (``None`` bounds as in NumPy; fewer slices than
    axes leave the trailing axes whole) or a pair ``(offsets, sizes)`` of one int per axis. Bounds
    must lie within the shape: no negative indices, no clipping. Integers (which would drop an
    axis) are refused: write ``slice(i, i + 1)``.
    """
    if isinstance(region, slice):
        region = (region,)
    if not isinstance(region, (tuple, list)):
        raise TypeError(
            f"`{name}` must be a tuple of slices or a pair (offsets, sizes). Received: "
            f"{name}={region!r}")
    if not region:  # () as in NumPy: the whole tensor
        return (0,) * len(shape), tuple(shape)
    if all(isinstance(s, slice) for s in region):
        if len(region) > len(shape):
            raise ValueError(f"`{name}` has {len(region)} slices for a {len(shape)}-D shape "
                             f"{shape}. Received: {name}={region!r}")
        starts, sizes = [], []
        for axis, (s, dim) in enumerate(zip(tuple(region) + (slice(None),) * len(shape), shape)):
            for what in (s.start, s.stop, s.step):
                if what is not None and (isinstance(what, (bool, np.bool_))
                                         or not isinstance(what, numbers.Integral)):
                    raise TypeError(f"`{name}` slice {s!r} (axis {axis}) must have integer "
                                    f"bounds. Received: {name}={region!r}")
            if s.step not in (None, 1):
                raise ValueError(f"`{name}` slices must have step 1; slice {s!r} (axis {axis}) "
                                 f"has step {s.step}. Take the step from the result instead.")
            a = 0 if s.start is None else int(s.start)
            b = dim if s.stop is None else int(s.stop)
            if not 0 <= a <= b <= dim:
                raise ValueError(
                    f"`{name}` slice {s!r} (axis {axis}) must satisfy 0 <= start <= stop <= "
                    f"{dim} (the axis length of shape {shape}; negative indices are not "
                    f"accepted). Received: {name}={region!r}")
            starts.append(a)
            sizes.append(b - a)
        return tuple(starts), tuple(sizes)
    if (len(region) != 2 or isinstance(region[0], (str, bytes, slice))
            or not all(hasattr(x, "__len__") for x in region)):
        raise TypeError(
            f"`{name}` must be a tuple of slices (step 1, e.g. (slice(0, 4), slice(8, 16))) or a "
            f"pair (offsets, sizes) of one integer per axis. Received: {name}={region!r}")
    offsets, sizes = (tuple(x) for x in region)
    for what, vals in (("offsets", offsets), ("sizes", sizes)):
        if len(vals) != len(shape):
            raise ValueError(f"`{name}` {what} must have one entry per axis of shape {shape}. "
                             f"Received: {name}={region!r}")
        for v in vals:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                raise TypeError(f"`{name}` {what} must be integers. Received: {name}={region!r}")
    for axis, (a, k, dim) in enumerate(zip(offsets, sizes, shape)):
        if k < 0:
            raise ValueError(f"`{name}` sizes must be non-negative; axis {axis} has size {k}. "
                             f"Received: {name}={region!r}")
        if a < 0 or a + k > dim:
            raise ValueError(
                f"`{name}` lies outside shape {shape}: axis {axis} covers [{a}, {a + k}) but must "
                f"lie within [0, {dim}]. Received: {name}={region!r}")
    return tuple(int(a) for a in offsets), tuple(int(k) for k in sizes)


def region_runs(shape, starts, sizes):
    """A box of a C-order tensor as runs of consecutive flat indices.

    Returns ``(base, counts, strides, run)``: axes the box spans whole are merged into the axis
    before them, so the box is ``prod(counts)`` runs of ``run`` elements, run ``(i_0, ...)``
    starting at flat index ``base + sum(i_d * strides[d])`` (see ``kernels.fill``).
    """
    if not shape:
        return 0, (), (), 1
    dims, a0, ks = [], [], []
    for dim, a, k in zip(shape, starts, sizes):
        if dims and (a, k) == (0, dim):  # a whole axis: merge into the previous one
            dims[-1] *= dim
            a0[-1] *= dim
            ks[-1] *= dim
        else:
            dims.append(dim)
            a0.append(a)
            ks.append(k)
    strides = [math.prod(dims[d + 1:]) for d in range(len(dims))]
    base = sum(a * s for a, s in zip(a0, strides))
    return base, tuple(ks[:-1]), tuple(strides[:-1]), ks[-1]


def import_optional(module, extra, feature):
    """Import the optional dependency ``module``, or raise ImportError saying which extra installs
    it (``feature`` names what needs it)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{feature} needs {module}, which is not installed. Install it with: "
                          f'pip install "weightinit[{extra}]"') from e


def check_per_layer(name, value, n, unit="layer"):
    """A non-negative finite real ``value`` for each of ``n`` layers: one scalar for all, or a
    1-D sequence of length ``n`` (each entry checked as ``name[i]``). Returns a list of floats."""
    if isinstance(value, numbers.Real) or np.ndim(value) == 0:
        if isinstance(value, np.ndarray):
            value = value.item()
        return [check_real(name, value, nonnegative=True)] * n
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.size != n:
        raise ValueError(f"`{name}` must be a scalar or have one entry per {unit} (length {n}). "
                         f"Received an array of shape {arr.shape}")
    return [check_real(f"{name}[{i}]", v.item() if hasattr(v, "item") else v, nonnegative=True)
            for i, v in enumerate(arr)]


#: Default of a ``scheme=`` argument that may be replaced by ``std=``.
UNSET = object()


def scheme_or_std(scheme, std):
    """The scheme of a network given ``scheme`` or ``std`` (plain N(0, std^2) weights), exactly
    one of them: ``"glorot_normal"`` when neither is given, None for ``std``."""
    if scheme is UNSET:
        scheme = "glorot_normal" if std is None else None
    if (scheme is None) == (std is None):
        raise ValueError(
            "Give exactly one of `scheme` (a scheme name) and `std` (plain N(0, std^2) weights). "
            f"Received scheme={scheme!r}, std={std!r}")
    return scheme
