"""Jacobian spectrum speed: weightinit.jacobian_spectrum (exact) at width 1024, depth 100, one
input, tanh, orthogonal or Gaussian weights, against its floor: 100 float64 ``numpy.matmul`` of
1024 x 1024 matrices plus one ``numpy.linalg.svd`` (fixed matrices, no weight generation).
Target <= 1.3x. Both are timed alternately in one process, ``REPEATS`` times; prints each
ratio and the range. Run: ``python bench/spectrum_ratio.py [width depth repeats [gaussian]]``
(Gaussian: ``std=1/sqrt(width)`` weights instead of ``scheme="orthogonal"``).
"""

import os
import sys
import time

import numpy as np

import weightinit as wi

sys.path.insert(0, os.path.dirname(__file__))

import peers  # noqa: E402


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


def ours(width, depth, weights="orthogonal"):
    kw = dict(std=width ** -0.5) if weights == "gaussian" else dict(scheme="orthogonal")
    t = time.perf_counter()
    wi.jacobian_spectrum(depth, width, activation="tanh", samples=1, **kw)
    return time.perf_counter() - t


def main(width=1024, depth=100, repeats=3, weights="orthogonal"):
    print(f"CPU: {peers.cpu()[0]}; {weights} weights, width {width}, depth {depth}")
    ours(64, 2, weights)  # compile / load the kernels
    ratios = []
    for _ in range(repeats):
        f, o = floor(width, depth), ours(width, depth, weights)
        ratios.append(o / f)
        print(f"floor {f:.3f} s  jacobian_spectrum {o:.3f} s  ratio {o / f:.3f}")
    print(f"ratio range {min(ratios):.3f} - {max(ratios):.3f}")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:4]), *sys.argv[4:5])
