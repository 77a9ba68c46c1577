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


def import_optional(module, extra, feature):
    """Import the optional dependency ``module``, or raise ImportError saying which extra installs
    it (``feature`` names what needs it)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"{feature} needs {module}, which is not installed. Install it with: "
                          f'pip install "weightinit[{extra}]"') from e
