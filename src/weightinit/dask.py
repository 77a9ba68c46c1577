r"""Out-of-core weights: lazy :mod:`dask.array` tensors and resumable zarr files.

Needs the optional extra: ``pip install "weightinit[dask]"`` (dask[array,distributed] and zarr).
``import weightinit`` never imports this module or dask.

Every random value of a scheme is a pure function of ``(seed, flat index)`` (see
:mod:`weightinit.random`), so any block of a tensor can be drawn on its own, by any worker, in any
order. A dask chunk is a box of the C-order array, i.e. a set of contiguous runs of flat indices;
:func:`_fill_block` fills it with the public ``region=`` of the in-memory functions. Hence

* ``weightinit.dask.init(shape, scheme, chunks=c, seed=s).compute()`` is **bitwise identical**
  to ``weightinit.init(shape, scheme, seed=s)`` for every chunking ``c``, every scheme except
  ``orthogonal``, both dtypes and every layout;
* ``orthogonal`` is a QR factorisation, which cannot be computed chunk by chunk: here it is a
  tall-and-skinny QR (:func:`dask.array.linalg.tsqr`) of the *same* Gaussian matrix the in-memory
  :func:`weightinit.orthogonal` factors, with the same sign correction, so the two agree to
  rounding (a few 1e-16 in float64, 1e-7 in float32), not bitwise. It needs one small dimension
  (``min(rows, cols) <= ORTHOGONAL_MAX_SMALL``).

:func:`write_zarr` streams a tensor to a zarr store chunk by chunk with bounded memory, resumably
and with atomic completion (it backs ``weightinit generate --zarr``).
"""

import errno
import functools
import inspect
import json
import math
import os
import re

import numpy as np

try:
    import dask
    import dask.array as da
    from dask.base import tokenize
    from dask.utils import parse_bytes
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        'weightinit.dask needs dask, which is not installed. Install it with: '
        'pip install "weightinit[dask]"') from exc

from . import __version__
from . import _validate as V
from . import initializers as _I
from . import random as R
from .random import Plan, _check_seed, planning

__all__ = ["init", "seed_of", "write_zarr", "read_zarr_attrs", "ORTHOGONAL_MAX_SMALL",
           "ZARR_CHUNK_BYTES"] + _I.schemes(aliases=True)

#: Largest small dimension (min(rows, cols)) the lazy orthogonal accepts: every TSQR task
#: factors a block of at least 2 x this many rows by this many columns.
ORTHOGONAL_MAX_SMALL = 4096
#: Bytes per row block of the Gaussian matrix the lazy orthogonal factors.
_TSQR_BLOCK_BYTES = 32 << 20
#: Default size of one zarr chunk written by :func:`write_zarr` (whole rows of the tensor).
ZARR_CHUNK_BYTES = 64 << 20
#: Version of the attribute layout :func:`write_zarr` stores.
ZARR_FORMAT = "weightinit-zarr/1"

_SEED_IN_NAME = re.compile(r"-seed(\d+)-")


# ============================================================================= blocks
def _fill_block(plan, seed, offset, shape, location, out):
    """Fill ``out`` with the box ``location`` (one ``(start, stop)`` per axis) of the tensor
    ``plan`` describes, through the public ``region=`` of the in-memory functions: the values are
    bitwise those of the whole tensor. The only place chunked generation fills values (the dask
    graph and :func:`write_zarr` both call it)."""
    region = tuple(slice(a, b) for a, b in location)
    if plan.kind == "eye":
        return _I.identity(shape, gain=plan.params[0], dtype=out.dtype, out=out, region=region)
    if plan.kind == "dirac":
        groups, gain, layout = plan.params
        return _I.dirac(shape, groups, gain=gain, dtype=out.dtype, layout=layout, out=out,
                        region=region)
    if plan.kind == "constant":
        return _I.constant(shape, plan.params[0], dtype=out.dtype, out=out, region=region)
    return getattr(R, plan.kind)(shape, *plan.params, seed=seed, dtype=out.dtype, out=out,
                                 offset=offset, region=region)


def _block(block_info=None, *, plan, seed, offset, shape):
    """dask task: one chunk of the tensor, its position read from ``block_info``."""
    location = block_info[None]["array-location"]
    out = np.empty([b - a for a, b in location], plan.dtype)
    return _fill_block(plan, seed, offset, shape, location, out)


def _contiguous_chunk(shape, itemsize, target):
    """Chunk shape of about ``target`` bytes whose boxes are single runs of flat indices: whole
    trailing dimensions, part of one axis, extent 1 before it."""
    chunk = list(shape)
    for a in range(len(shape)):
        inner = math.prod(shape[a + 1:]) * itemsize
        if inner <= target or a == len(shape) - 1:
            chunk[a] = max(1, min(shape[a], target // max(inner, 1)))
            chunk[:a] = [1] * a
            return tuple(chunk)
    return tuple(chunk)  # pragma: no cover - the loop always returns


def _normalize_chunks(chunks, shape, dtype):
    if isinstance(chunks, str) and chunks == "auto":
        target = parse_bytes(dask.config.get("array.chunk-size"))
        chunks = _contiguous_chunk(shape, dtype.itemsize, target)
    try:
        return da.core.normalize_chunks(chunks, shape, dtype=dtype)
    except (ValueError, TypeError) as e:
        raise ValueError(f"`chunks` {chunks!r} does not fit shape {shape}: {e}") from None


def _lazy(plan, seed, offset, shape, chunks, label):
    """A dask array of the tensor ``plan`` describes, chunked as ``chunks`` (normalised)."""
    token = tokenize("weightinit", __version__, label, shape, plan.kind, plan.dtype.str,
                     plan.params, seed, offset, chunks)
    return da.map_blocks(_block, chunks=chunks, dtype=plan.dtype,
                         meta=np.empty((0,) * len(shape), plan.dtype),
                         name=f"{label}-seed{seed}-{token}", plan=plan, seed=seed,
                         offset=offset, shape=shape)


# ============================================================================= plans
def _sparse_plan(name, shape, dtype, layout, params):
    """identity as its gain, dirac as (groups, gain, layout), validated by the
    in-memory function on a shape with the same checks but a handful of elements."""
    if name == "identity":
        if len(shape) != 2:
            _I.identity(shape, dtype=dtype, layout=layout, **params)  # raises before allocating
        _I.identity((1, 1), dtype=dtype, layout=layout, **params)
        return Plan("eye", shape, dtype, (V.check_real("gain", params.get("gain", 1.0)),))
    if len(shape) not in (3, 4, 5):
        _I.dirac(shape, dtype=dtype, layout=layout, **params)  # raises before allocating
    ones = (1,) * (len(shape) - 2)  # the output channels, with every other dimension 1
    small = (shape[0], 1) + ones if layout == "torch" else ones + (1, shape[-1])
    _I.dirac(small, dtype=dtype, layout=layout, **params)
    sig = inspect.signature(_I.dirac).bind((), **params)
    sig.apply_defaults()
    return Plan("dirac", shape, dtype, (int(sig.arguments["groups"]),
                                        float(sig.arguments["gain"]), layout))


def _plan(shape, scheme, params):
    """Validate a request; return (canonical name, plan, seed, offset, dtype, layout)."""
    if "out" in params:
        raise TypeError("`out` is not supported: a dask array is lazy. Use "
                        "`dask.array.store(x, target)` or `x.to_zarr(path)` to fill storage.")
    name = _I.ALIASES.get(scheme, scheme) if isinstance(scheme, str) else scheme
    _I.get(name)  # unknown scheme -> ValueError naming the choices
    params = dict(params)
    shape = V.check_shape(shape)
    seed = _check_seed(params.pop("seed", None))
    dtype = V.resolve_dtype(params.pop("dtype", None), None)
    layout = params.pop("layout", "torch")
    if name in ("identity", "dirac"):
        return name, _sparse_plan(name, shape, dtype, layout, params), seed, 0, dtype, layout
    with planning():  # validates every argument, draws nothing
        plan = _I.get(name)(shape, seed=seed, dtype=dtype, layout=layout, **params)
    offset = V.check_int("offset", params.get("offset", 0), low=0, high=1 << 64)
    if plan.kind != "constant" and offset + math.prod(shape) > 1 << 64:
        raise ValueError(
            f"`offset` + size must not exceed 2**64 elements (the counter space). Received "
            f"offset={offset} for {math.prod(shape)} elements")
    return name, plan, seed, offset, dtype, layout


# ============================================================================= public API
def init(shape, scheme, *, chunks="auto", **params):
    """Lazy ``weightinit.init(shape, scheme, **params)`` as a :class:`dask.array.Array`.

    Parameters
    ----------
    shape : int or tuple of int
    scheme : str
        Any name of :func:`weightinit.schemes` (aliases too).
    chunks : dask chunk specification
        Anything :func:`dask.array.core.normalize_chunks` accepts (an int, a tuple per axis,
        explicit ragged tuples, ``-1`` for a whole axis). ``"auto"`` (default) gives chunks of
        about ``dask.config["array.chunk-size"]`` (128 MiB) made of whole trailing dimensions
        (whole rows of a matrix), which fill fastest: one generator call per chunk. Any chunking
        gives the same values; a chunk that cuts rows needs one call per row piece.
    **params
        As for the in-memory scheme: ``seed``, ``dtype``, ``layout``, ``offset`` and the scheme's
        own parameters. ``out`` is not accepted.

    Returns
    -------
    dask.array.Array
        Computing it gives exactly (bitwise) ``weightinit.init(shape, scheme, **params)``, except
        for ``orthogonal`` (equal to rounding; see the module docstring).

    Seeds
    -----
    ``seed=None`` draws one seed from the OS when the graph is built, so every chunk (on every
    worker) uses the same one; it is part of the array's name (``<scheme>-seed<seed>-<token>``)
    and :func:`seed_of` reads it back. Task names are deterministic: the same arguments give the
    same graph keys.

    Notes
    -----
    ``orthogonal`` needs ``min(rows, cols) <= ORTHOGONAL_MAX_SMALL`` (tall or wide matrices; a
    wide one is factored transposed as in memory): it draws the same Gaussian matrix as
    :func:`weightinit.orthogonal` lazily in row blocks, factors it with
    :func:`dask.array.linalg.tsqr` and multiplies Q's columns by the signs of R's diagonal
    (Mezzadri 2007). When both dimensions are large, use the in-memory
    :func:`weightinit.orthogonal` (about ``32 * rows * cols`` bytes).
    """
    name, plan, seed, offset, dtype, layout = _plan(shape, scheme, params)
    chunks = _normalize_chunks(chunks, plan.shape, dtype)
    if plan.kind == "orthogonal":
        return _orthogonal(plan, seed, chunks)
    if plan.kind == "delta_orthogonal":  # a convolution kernel: small, made in memory
        w = _I.delta_orthogonal(plan.shape, plan.params[0], seed=seed, dtype=dtype, layout=layout)
        return da.from_array(w, chunks=chunks, name=f"{name}-seed{seed}-{tokenize(w)}")
    return _lazy(plan, seed, offset, plan.shape, chunks, name)


def seed_of(array):
    """The seed of an array returned by :func:`init` or a scheme function of this module (the
    seed drawn for ``seed=None``). Arrays derived from it by further dask operations have other
    names; take the seed from the original."""
    name = getattr(array, "name", None)
    m = _SEED_IN_NAME.search(name) if isinstance(name, str) else None
    if m is None:
        raise ValueError(
            f"Not an array made by weightinit.dask (its name {name!r} carries no seed). Pass the "
            "array returned by weightinit.dask.init or a scheme function.")
    return int(m.group(1))


def _orthogonal(plan, seed, chunks):
    gain, batch, rows, cols = plan.params
    big, small = max(rows, cols), min(rows, cols)
    if small > ORTHOGONAL_MAX_SMALL:
        raise ValueError(
            f"The lazy orthogonal factors a tall-and-skinny matrix; shape {plan.shape} gives "
            f"{rows} x {cols}, whose smaller dimension {small} exceeds ORTHOGONAL_MAX_SMALL = "
            f"{ORTHOGONAL_MAX_SMALL}. Use the in-memory weightinit.orthogonal (about "
            f"{4 * plan.dtype.itemsize * batch * rows * cols / 2**30:.2f} GiB) and "
            "dask.array.from_array.")
    # Row blocks of about _TSQR_BLOCK_BYTES, at least 2 * small rows (TSQR's blocks are tall).
    step = max(2 * small, _TSQR_BLOCK_BYTES // (plan.dtype.itemsize * small))
    a_chunks = (tuple(min(step, big - r) for r in range(0, big, step)), (small,))
    # The in-memory code draws normal((batch, big, small)) in the requested dtype and factors it
    # in that dtype: the same here, block by block.
    gauss = Plan("normal", (batch, big, small), plan.dtype, (0.0, 1.0))
    qs = []
    for b in range(batch):
        a = _lazy(gauss, seed, b * big * small, (big, small), a_chunks, f"orthogonal-gaussian{b}")
        q, r = da.linalg.tsqr(a)
        sign = da.sign(da.diagonal(r))
        q = q * da.where(sign == 0, 1.0, sign)[None, :]
        qs.append(q.T if rows < cols else q)
    q = (da.stack(qs) if len(qs) > 1 else qs[0]) * gain
    q = q.reshape(plan.shape).astype(plan.dtype).rechunk(chunks)
    # A last no-op layer gives the result a name that carries the seed (see seed_of).
    token = tokenize(q.name, seed)
    return q.map_blocks(_same, dtype=plan.dtype, name=f"orthogonal-seed{seed}-{token}")


def _same(block):
    return block


def _scheme_function(name):
    """``weightinit.dask.<name>``: the in-memory scheme's signature plus ``chunks``, lazily."""
    fn = _I.get(name)
    sig = inspect.signature(fn)
    params = [p for p in sig.parameters.values() if p.name != "out"]
    var_kw = [p for p in params if p.kind is p.VAR_KEYWORD]
    params = [p for p in params if p.kind is not p.VAR_KEYWORD]
    params.append(inspect.Parameter("chunks", inspect.Parameter.KEYWORD_ONLY, default="auto"))
    public = sig.replace(parameters=params + var_kw)

    @functools.wraps(fn)
    def scheme(*args, chunks="auto", **kwargs):
        bound = sig.bind(*args, **kwargs)
        kw = {}
        for key, value in bound.arguments.items():
            if sig.parameters[key].kind is inspect.Parameter.VAR_KEYWORD:
                kw.update(value)
            elif key != "shape":
                kw[key] = value
        return init(bound.arguments["shape"], name, chunks=chunks, **kw)

    scheme.__signature__ = public
    scheme.__name__ = scheme.__qualname__ = name
    scheme.__module__ = __name__
    scheme.__doc__ = (
        f"Lazy :func:`weightinit.{name}` as a dask array (``chunks`` as for :func:`init`).\n\n"
        f"Computed values are bitwise those of ``weightinit.{name}`` with the same arguments"
        + (" up to rounding (TSQR; see :func:`init`)." if _I.ALIASES.get(name, name) == "orthogonal"
           else ".") + f"\n\nIn-memory documentation:\n\n{inspect.getdoc(fn) or ''}")
    return scheme


for _name in _I.schemes(aliases=True):
    globals()[_name] = _scheme_function(_name)
del _name


# ============================================================================= zarr
def _zarr():
    try:
        import zarr
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ImportError('Writing zarr needs zarr, which is not installed. Install it with: '
                          'pip install "weightinit[dask]"') from exc
    return zarr


def _zarr_major(zarr):
    return int(zarr.__version__.split(".")[0])


def _create_array(zarr, path, shape, chunk, dtype, attrs):
    """An uncompressed zarr array in the zarr library's default format (v3 for zarr 3)."""
    if _zarr_major(zarr) >= 3:
        arr = zarr.create_array(store=path, shape=shape, chunks=chunk, dtype=dtype,
                                compressors=None, fill_value=0, attributes=attrs)
    else:  # zarr 2: format v2
        arr = zarr.open_array(path, mode="w-", shape=shape, chunks=chunk, dtype=dtype,
                              compressor=None, fill_value=0)
        arr.attrs.update(attrs)
    return arr


def read_zarr_attrs(path):
    """The weightinit attributes of a zarr array written by :func:`write_zarr` (a dict), or None
    if ``path`` is not a zarr array or was not written by weightinit."""
    zarr = _zarr()
    try:
        arr = zarr.open_array(path, mode="r")
    except Exception:  # noqa: BLE001 - any unreadable store is "not ours"
        return None
    attrs = dict(arr.attrs)
    return attrs if attrs.get("format") == ZARR_FORMAT else None


def _record(name, shape, dtype, layout, params, chunk, seed):
    """The attributes that identify a write (everything but progress)."""
    return {"format": ZARR_FORMAT, "scheme": name, "shape": list(shape), "dtype": dtype.name,
            "layout": layout, "params": params, "chunks": list(chunk), "seed": seed,
            "weightinit_version": __version__}


def _fsync_tree(root):
    """Flush every file under ``root`` and the directories themselves to stable storage."""
    for directory, _, files in os.walk(root):
        for f in files:
            fd = os.open(os.path.join(directory, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(directory)


def _fsync_chunk(arr, root, coords):
    """Flush one chunk file to stable storage, so that ``chunks_done`` never counts a chunk a
    power failure could lose. (A chunk equal to the fill value is not written at all.)"""
    try:
        key = arr.metadata.encode_chunk_key(coords)  # zarr 3
    except AttributeError:
        key = arr._chunk_key(coords)  # zarr 2
    path = os.path.join(root, key)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    while path != root:  # the directory entries leading to it, too
        path = os.path.dirname(path)
        _fsync_dir(path)


def _fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def _remove_partials(root):
    """Delete the temporary chunk files (``*.partial``) a killed zarr write left behind."""
    for directory, _, files in os.walk(root):
        for f in files:
            if f.endswith(".partial"):
                os.unlink(os.path.join(directory, f))


def write_zarr(path, shape, scheme, *, seed=None, dtype=None, layout="torch",
               chunk_bytes=ZARR_CHUNK_BYTES, progress=None, **params):
    """Write ``weightinit.init(shape, scheme, ...)`` to a zarr array at ``path``, chunk by chunk.

    Memory stays at one chunk buffer (``chunk_bytes``, default 64 MiB) plus zarr's transient copy,
    whatever the tensor's size, except for ``orthogonal``, which is built whole in memory first.
    Chunks are whole rows (whole trailing dimensions), uncompressed (random floats do not
    compress: zarr's default zstd saves about 7 % of float32 at a fraction of the disk's speed),
    in the zarr library's default format (v3 with zarr 3, v2 with zarr 2).

    Completion is atomic and the write resumable:

    * the array is written into ``path + ".part"`` and renamed to ``path`` only once every chunk
      is written and flushed (``fsync``), with attribute ``"complete": true``; an interrupted
      write is therefore never found at ``path``;
    * after each chunk is written and flushed to disk, the attribute ``"chunks_done"`` records
      how many leading chunks are written; a later call with the same arguments resumes after
      them (with ``seed=None`` it adopts the interrupted write's seed). A ``.part`` with other
      arguments is an error, so it is never silently mixed or discarded;
    * an existing ``path`` is never replaced (FileExistsError).

    Attributes stored: format, scheme (canonical name), shape, dtype, layout, params (the scheme's
    own parameters), chunks, seed, weightinit_version, complete, chunks_done. Two processes must
    not write the same path at once.

    Parameters
    ----------
    path : str
        Destination directory (conventionally ending in ``.zarr``).
    shape, scheme, seed, dtype, layout, **params
        As for :func:`weightinit.init`.
    chunk_bytes : int
        Target bytes per chunk: as many whole rows (whole trailing dimensions) as fit, or, when a
        row is larger, a piece of the last axes that fits (at least one element).
    progress : callable, optional
        Called as ``progress(chunks_done, chunks_total)`` after each chunk.

    Returns
    -------
    dict
        ``path``, ``seed``, ``shape``, ``dtype``, ``chunks``, ``nbytes``, ``chunks_total`` and
        ``resumed_from`` (chunks found already written).
    """
    zarr = _zarr()
    chunk_bytes = V.check_int("chunk_bytes", chunk_bytes, low=1)
    path = os.fspath(path).rstrip("/" + os.sep) or os.fspath(path)
    part = path + ".part"
    if os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "already exists; weightinit never replaces a zarr "
                              "store (remove it or choose another path)", path)
    explicit_seed = seed is not None
    params = dict(params)
    name, plan, seed, offset, dtype, layout = _plan(
        shape, scheme, dict(params, seed=seed, dtype=dtype, layout=layout))
    json_params = _json_params(params)
    shape = plan.shape
    chunk = _contiguous_chunk(shape, dtype.itemsize, chunk_bytes)
    record = _record(name, shape, dtype, layout, json_params, chunk, seed)
    boxes = _boxes(shape, chunk)

    resumed = 0
    if os.path.lexists(part):
        arr, resumed, seed = _open_part(zarr, part, record, explicit_seed)
        record["seed"] = seed
        _remove_partials(part)
    else:
        arr = _create_array(zarr, part, shape, chunk, dtype,
                            dict(record, complete=False, chunks_done=0))
    if plan.kind == "orthogonal":
        whole = _I.orthogonal(shape, seed=seed, dtype=dtype, layout=layout, **params)
        resumed = 0  # recomputed whole anyway: rewrite every chunk from it
    buf = np.empty(math.prod(chunk), dtype)
    for i in range(resumed, len(boxes)):
        box = boxes[i]
        if plan.kind == "orthogonal":
            block = whole[tuple(slice(a, b) for a, b in box)]
        else:
            block = buf[:math.prod(b - a for a, b in box)].reshape([b - a for a, b in box])
            _fill_block(plan, seed, offset, shape, box, block)
        arr[tuple(slice(a, b) for a, b in box)] = block
        _fsync_chunk(arr, part, tuple(a // c for (a, _), c in zip(box, chunk)))
        arr.attrs["chunks_done"] = i + 1  # only after the chunk is on disk
        if progress is not None:
            progress(i + 1, len(boxes))
    arr.attrs["complete"] = True
    _fsync_tree(part)
    if os.path.lexists(path):  # appeared while we wrote: still never replace it
        raise FileExistsError(errno.EEXIST, "appeared during the write; the finished array is "
                              f"left at {part}", path)
    os.rename(part, path)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))
    return {"path": path, "seed": seed, "shape": shape, "dtype": dtype.name, "chunks": chunk,
            "nbytes": math.prod(shape) * dtype.itemsize, "chunks_total": len(boxes),
            "resumed_from": resumed}


def _json_params(params):
    """The scheme parameters as stored in the attributes (JSON round trip, so they compare)."""
    try:
        return json.loads(json.dumps(params, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ValueError(f"Scheme parameters must be JSON values to be recorded in the zarr "
                         f"attributes. Received {params!r}: {e}") from None


def _boxes(shape, chunk):
    """The chunk boxes ((start, stop) per axis) in C order of the chunk grid."""
    grids = [range(0, n, c) for n, c in zip(shape, chunk)]
    boxes = [()]
    for axis, g in enumerate(grids):
        boxes = [b + ((s, min(s + chunk[axis], shape[axis])),) for b in boxes for s in g]
    return boxes


def _open_part(zarr, part, record, explicit_seed):
    """Open an interrupted write; check it matches ``record``; return (array, done, seed)."""
    try:
        arr = zarr.open_array(part, mode="r+")
        attrs = dict(arr.attrs)
    except Exception as e:  # noqa: BLE001 - anything unreadable: refuse, never delete
        raise ValueError(f"{part} exists but is not a readable zarr array ({e}). It is not "
                         "weightinit's interrupted write; move or remove it.") from None
    if attrs.get("format") != ZARR_FORMAT:
        raise ValueError(f"{part} exists and was not written by weightinit; move or remove it.")
    want = dict(record)
    if not explicit_seed:
        want["seed"] = attrs.get("seed")
    diff = sorted(k for k in want if attrs.get(k) != want[k])
    if diff:
        detail = "; ".join(f"{k}: {attrs.get(k)!r} there, {want[k]!r} now" for k in diff)
        raise ValueError(f"{part} holds an interrupted write with other arguments ({detail}). "
                         "Rerun with the same arguments to resume it, or remove it to start "
                         "over.")
    done = attrs.get("chunks_done", 0)
    if not isinstance(done, int) or done < 0:
        raise ValueError(f"{part}: invalid chunks_done attribute {done!r}; remove it to start "
                         "over.")
    return arr, done, want["seed"]
