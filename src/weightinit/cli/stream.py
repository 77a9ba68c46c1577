"""``weightinit stream``: raw generator output (uint32 words) on stdout for test batteries."""

import os
import sys

import numpy as np

from .. import random as R
from ..random import _check_seed
from .common import nonneg_int


_STREAM_CHUNK = 1 << 18  # words per write: 1 MiB
_STREAM_DISTRIBUTIONS = ("uniform32", "float32-uniform", "normal-pit")


def add_parser(sub):
    s = sub.add_parser(
        "stream", help="write raw generator output (uint32 words) to stdout for test batteries",
        description="Write generator output as binary little-endian uint32 words to stdout, e.g. "
                    "`weightinit stream --seed 1 | dieharder -a -g 200`. uniform32: the raw "
                    "Philox words of the uniform stream; float32-uniform: the 24 bits of each "
                    "float32 U[0, 1) value, four values packed into three words; normal-pit: "
                    "float64 N(0, 1) values z as floor(2**32 * Phi(z)).")
    s.add_argument("--seed", type=int, required=True, help="0 <= seed < 2**64")
    s.add_argument("--distribution", default="uniform32", choices=_STREAM_DISTRIBUTIONS)
    s.add_argument("--count", type=nonneg_int, default=None,
                   help="number of words to write (default: endless)")
    s.add_argument("--offset", type=nonneg_int, default=0, help="index of the first word")
    s.set_defaults(run=run)


def _stream_words(distribution, seed, start, n):
    """Words ``start .. start + n - 1`` (n >= 1) of a ``weightinit stream`` distribution."""
    if distribution == "uniform32":
        return R.words(n, seed=seed, offset=start)
    if distribution == "normal-pit":
        return R._normal_pit_words(R.normal(n, seed=seed, dtype=np.float64, offset=start))
    # float32-uniform: every value is k * 2**-24 with k a 24-bit integer; values 4g..4g+3 fill
    # words 3g..3g+2, most significant bits first, so every bit of every value is tested.
    g0, g1 = start // 3, -(-(start + n) // 3)
    u = R.uniform(4 * (g1 - g0), seed=seed, offset=4 * g0)
    k = (u * np.float32(2**24)).astype(np.uint32).reshape(-1, 4)
    w = np.empty((g1 - g0, 3), np.uint32)
    w[:, 0] = (k[:, 0] << 8) | (k[:, 1] >> 16)
    w[:, 1] = ((k[:, 1] & 0xFFFF) << 16) | (k[:, 2] >> 8)
    w[:, 2] = ((k[:, 2] & 0xFF) << 24) | k[:, 3]
    return w.reshape(-1)[start - 3 * g0:][:n]


def run(args, stdout):
    seed = _check_seed(args.seed)
    end = None if args.count is None else args.offset + args.count
    if end:  # validate the far end before writing anything
        _stream_words(args.distribution, seed, end - 1, 1)
    out = getattr(stdout, "buffer", stdout)  # binary: sys.stdout.buffer, or a bytes stream
    if getattr(out, "isatty", lambda: False)():
        raise ValueError("refusing to write binary words to a terminal; pipe them into a test "
                         "battery or redirect to a file")
    pos = args.offset
    try:
        while end is None or pos < end:
            n = _STREAM_CHUNK if end is None else min(_STREAM_CHUNK, end - pos)
            out.write(np.ascontiguousarray(
                _stream_words(args.distribution, seed, pos, n), dtype="<u4").data)
            pos += n
        out.flush()
    except BrokenPipeError:  # the reader closed the pipe (a battery that has enough): success
        if out is getattr(sys.stdout, "buffer", None):
            # Route the interpreter's final flush of stdout to /dev/null, or it reports the
            # broken pipe again on exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return 0
    except KeyboardInterrupt:
        print(f"\nweightinit stream: interrupted after {pos - args.offset} words", file=sys.stderr)
        return 130
    return 0
