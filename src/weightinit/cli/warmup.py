"""``weightinit warmup``: compile (and cache) every kernel for both dtypes."""

import time

import numpy as np

from .. import random as R


def add_parser(sub):
    w = sub.add_parser("warmup", help="compile (and cache) every kernel for both dtypes")
    w.add_argument("--quiet", action="store_true")
    w.set_defaults(run=run)


def run(args, stdout):
    t0 = time.perf_counter()
    for dtype in ("float32", "float64"):
        for n in (8, 1 << 16):  # serial and parallel builds
            R.uniform(n, seed=0, dtype=dtype)
            R.normal(n, seed=0, dtype=dtype)
            R.truncated_normal(n, seed=0, dtype=dtype)
            R.truncated_normal(n, 0.0, 1.0, -5.0, 5.0, seed=0, dtype=dtype)
    for n in (8, 1 << 16):  # `weightinit stream`: raw words and the normal PIT
        R.words(n, seed=0)
        R._normal_pit_words(R.normal(n, seed=0, dtype=np.float64))
    if not args.quiet:
        print(f"compiled or loaded every kernel in {time.perf_counter() - t0:.1f} s", file=stdout)
    return 0
