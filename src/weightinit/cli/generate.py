"""``weightinit generate``: write an initialised tensor to a file atomically.

``--out`` writes ``.npy`` (streamed chunk by chunk through a memory map for big tensors) or, for
a ``.safetensors`` name, a safetensors file (the safetensors package; streamed chunk by chunk for
big tensors, with the scheme, seed, shape, dtype, layout and parameters in its metadata);
``--zarr PATH`` writes into ``PATH.part`` and keeps it when interrupted, so that the same command
resumes (zarr, the "dask" extra)."""

import importlib.util
import json
import math
import os
import struct
import sys
import tempfile

import numpy as np

from .. import __version__
from .. import initializers as _init
from .. import random as R
from .._validate import check_memory
from ..random import _check_seed, planning
from .common import (MissingDependencyError, argtype, check_disk, progress_bar, progress_option,
                     publish, scheme_options, want_progress)


_CHUNK = 1 << 24  # elements per chunk when streaming a large tensor to disk


def add_parser(sub):
    g = sub.add_parser("generate", help="write an initialised tensor to a .npy file atomically")
    g.add_argument("--shape", type=int, nargs="+", required=True)
    g.add_argument("--scheme", required=True)
    g.add_argument("--seed", type=int, default=None, help="0 <= seed < 2**64 (default: random)")
    g.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    dest = g.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", help="output path: .npy, or .safetensors (needs the safetensors "
                      "extra)")
    dest.add_argument("--zarr", metavar="PATH",
                      help="output zarr array (directory), written chunk by chunk with bounded "
                      "memory; an interrupted write stays in PATH.part and the same command "
                      "resumes it (needs the dask extra)")
    g.add_argument("--chunk-mib", type=argtype(float, 1e-6, "a positive number"), default=64.0,
                   help="with --zarr: MiB per chunk of whole rows (default 64; at least one "
                   "row per chunk)")
    g.add_argument("--name", default=None,
                   help="with a .safetensors --out: the tensor's name in the file (default weight)")
    progress_option(g)
    scheme_options(g)
    g.set_defaults(run=run)


_WHOLE = ("orthogonal", "identity", "dirac", "eye")  # built whole in memory


def run(args, stdout):
    if args.zarr is not None:
        return _generate_zarr(args, stdout)
    shape = tuple(args.shape)
    dtype = np.dtype(args.dtype)
    fn = _init.get(args.scheme)
    kwargs = dict(args.param, seed=_check_seed(args.seed), dtype=dtype, layout=args.layout)
    safetensors = args.out.lower().endswith(".safetensors")
    if args.name is not None and not safetensors:
        raise ValueError("--name names the tensor in a .safetensors file; give --out "
                         "PATH.safetensors, or leave --name out.")
    if safetensors:
        _check_safetensors(dtype)
    n = math.prod(shape) if all(d > 0 for d in shape) else 0
    streamed = args.scheme not in _WHOLE and n > _CHUNK
    if streamed:
        with planning():  # validates every argument before any file is touched
            plan = fn(shape, **kwargs)
    directory = os.path.dirname(os.path.abspath(args.out))
    if streamed:
        check_disk(directory, n * dtype.itemsize, f"--shape {' '.join(map(str, shape))}",
                   "Write it to a larger disk, or use a smaller shape; for tensors larger than "
                   "memory, --zarr PATH writes chunk by chunk and resumes after an "
                   "interruption.")
    suffix = ".safetensors.part" if safetensors else ".npy.part"
    fd, tmp = tempfile.mkstemp(prefix=".weightinit-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        if safetensors:
            name = "weight" if args.name is None else args.name
            metadata = {"generator": f"weightinit {__version__}", "scheme": args.scheme,
                        "seed": str(kwargs["seed"]), "shape": json.dumps(list(shape)),
                        "dtype": dtype.name, "layout": args.layout,
                        "params": json.dumps(dict(args.param), sort_keys=True)}
            if streamed:
                _stream_safetensors(tmp, name, metadata, plan, kwargs, shape, dtype, n,
                                    want_progress(args))
            else:
                from safetensors.numpy import save_file

                save_file({name: np.ascontiguousarray(fn(shape, **kwargs))}, tmp,
                          metadata=metadata)
        elif streamed:
            check_memory(_CHUNK * dtype.itemsize, "one chunk")
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            flat = mm.reshape(-1)
            with progress_bar(n, "generate", want_progress(args)) as bar:
                for start in range(0, n, _CHUNK):
                    stop = min(start + _CHUNK, n)
                    _draw_chunk(plan, kwargs["seed"], kwargs.get("offset", 0) + start,
                                flat[start:stop])
                    bar.update(stop - start)
            mm.flush()
            del mm, flat
        else:
            with open(tmp, "wb") as f:
                np.save(f, fn(shape, **kwargs))
        publish(tmp, args.out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    print(f"wrote {args.out}: {args.scheme} {shape} {dtype.name} seed={kwargs['seed']}",
          file=stdout)
    return 0


#: safetensors' names of the dtypes ``generate`` writes.
_SAFETENSORS_DTYPES = {"float32": "F32", "float64": "F64"}


def _check_safetensors(dtype):
    """Refuse a dtype safetensors output does not support, or a missing safetensors package."""
    if np.dtype(dtype).name not in _SAFETENSORS_DTYPES:
        raise TypeError(f"safetensors output supports dtype {' or '.join(_SAFETENSORS_DTYPES)}. "
                        f"Received: dtype={np.dtype(dtype).name}")
    if importlib.util.find_spec("safetensors") is None:
        raise MissingDependencyError(
            'generate --out PATH.safetensors needs safetensors, which is not installed. Install '
            'it with: pip install "weightinit[safetensors]"')


def _safetensors_header(name, metadata, shape, dtype):
    """The 8-byte little-endian header length and the JSON header of a one-tensor file, padded
    with spaces to a multiple of 8 bytes as the safetensors library writes it."""
    nbytes = math.prod(shape) * dtype.itemsize
    header = {"__metadata__": metadata,
              name: {"dtype": _SAFETENSORS_DTYPES[dtype.name], "shape": list(shape),
                     "data_offsets": [0, nbytes]}}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text


def _stream_safetensors(tmp, name, metadata, plan, kwargs, shape, dtype, n, progress):
    """Write the header, then the tensor chunk by chunk (little-endian, row-major): memory is
    one chunk, whatever the tensor's size."""
    check_memory(_CHUNK * dtype.itemsize, "one chunk")
    buf = np.empty(min(_CHUNK, n), dtype.newbyteorder("<"))
    with open(tmp, "wb") as f, progress_bar(n, "generate", progress) as bar:
        f.write(_safetensors_header(name, metadata, shape, dtype))
        for start in range(0, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            part = buf[:stop - start]
            _draw_chunk(plan, kwargs["seed"], kwargs.get("offset", 0) + start, part)
            f.write(part.data)
            bar.update(stop - start)


def _generate_zarr(args, stdout):
    """``generate --zarr PATH``: :func:`weightinit.dask.write_zarr` with a progress bar. The
    array is written in PATH.part and renamed to PATH when complete; an interrupted write is
    resumed by the same command; an existing PATH is never replaced."""
    import importlib.util

    try:
        from .. import dask as D
    except ImportError as e:
        raise MissingDependencyError(str(e)) from e
    if importlib.util.find_spec("zarr") is None:
        raise MissingDependencyError('generate --zarr needs zarr, which is not installed. '
                                     'Install it with: pip install "weightinit[dask]"')
    from .._validate import check_shape

    shape = check_shape(tuple(args.shape))
    dtype = np.dtype(args.dtype)
    directory = os.path.dirname(os.path.abspath(args.zarr))
    if not os.path.isdir(directory):
        raise ValueError(f"--zarr {args.zarr}: the directory {directory} does not exist.")
    part = args.zarr.rstrip("/" + os.sep) + ".part"
    written = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(part) for f in fs)
    check_disk(directory, math.prod(shape) * dtype.itemsize - written,
                f"--shape {' '.join(map(str, shape))}")
    bars = []

    def progress(done, total):
        if not bars:
            bars.append(progress_bar(total, "generate", want_progress(args)))
        bars[0].update(done - bars[0].n)

    try:
        info = D.write_zarr(args.zarr, shape, args.scheme, seed=args.seed, dtype=dtype,
                            layout=args.layout, chunk_bytes=max(1, int(args.chunk_mib * 2**20)),
                            progress=progress, **dict(args.param))
    except KeyboardInterrupt:
        if bars:
            bars.pop().close()
        if os.path.isdir(part):
            print(f"weightinit generate: the chunks written so far are kept in {part}; run "
                  "the same command again to resume", file=sys.stderr)
        raise
    finally:
        if bars:
            bars[0].close()
    resumed = (f", resumed after {info['resumed_from']} of {info['chunks_total']} chunks"
               if info["resumed_from"] else "")
    print(f"wrote {info['path']}: {args.scheme} {shape} {dtype.name} seed={info['seed']} "
          f"(zarr, {info['chunks_total']} chunks of {list(info['chunks'])}{resumed})",
          file=stdout)
    return 0


def _draw_chunk(plan, seed, start, out):
    """Fill the flat slice ``out`` with elements ``start..`` of the tensor ``plan`` describes."""
    if plan.kind == "constant":
        out.fill(plan.params[0])
        return
    draw = getattr(R, plan.kind)
    draw(out.shape, *plan.params, seed=seed, dtype=out.dtype, out=out, offset=start)
