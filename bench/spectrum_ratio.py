"""Jacobian spectrum speed: weightinit.jacobian_spectrum (exact) at width 1024, depth 100, one
input, tanh, orthogonal weights, against its floor: 100 float64 ``numpy.matmul`` of
1024 x 1024 matrices plus one ``numpy.linalg.svd`` (fixed matrices, no weight generation).
Target <= 1.3x. Both are timed alternately in one process, ``REPEATS`` times; prints each
ratio and the range. Run: ``python bench/spectrum_ratio.py [width depth repeats]``.
"""

import sys
import time

import numpy as np

import weightinit as wi


def floor(width, depth):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((width, width)) / np.sqrt(width)
    w = rng.standard_normal((width, width)) / np.sqrt(width)
    b = np.empty_like(a)
    t = time.perf_counter()
    for _ in range(depth):
        np.matmul(a, w, out=b)
        a, b = b, a
    np.linalg.svd(a, compute_uv=False)
    return time.perf_counter() - t


def ours(width, depth):
    t = time.perf_counter()
    wi.jacobian_spectrum(depth, width, activation="tanh", scheme="orthogonal", samples=1)
    return time.perf_counter() - t


def main(width=1024, depth=100, repeats=3):
    ours(64, 2)  # compile / load the kernels
    ratios = []
    for _ in range(repeats):
        f, o = floor(width, depth), ours(width, depth)
        ratios.append(o / f)
        print(f"floor {f:.3f} s  jacobian_spectrum {o:.3f} s  ratio {o / f:.3f}")
    print(f"ratio range {min(ratios):.3f} - {max(ratios):.3f}")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:]))
