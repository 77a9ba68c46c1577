"""``weightinit.warmup`` reaches every kernel: after it, in a fresh process with the same (at
first empty) Numba cache, calls of every kind compile nothing.

Two child processes share a new ``NUMBA_CACHE_DIR``. The first runs ``warmup`` for float64 and
one activation; the second listens for Numba's compile events (a kernel loaded from the cache
sends none) while it draws with every distribution and build, factors an orthogonal matrix on
the blocked path, runs MLP and residual simulations (both norms, both positions, backward),
a Jacobian spectrum, LSUV and the stream kernels. Any kernel ``warmup`` missed shows up by name.
The test can fail: without the warmup process the second child compiles dozens of kernels.
"""

import json
import os
import subprocess
import sys

_WARMUP = "import weightinit; weightinit.warmup(['float64'], ['relu'])"

_CALLS = r"""
import json
import numpy as np
from numba.core import event
import weightinit as W
from weightinit import random as R
from weightinit.kernels import activations as KA

with event.install_recorder("numba:compile") as rec:
    for n in (8, 1 << 20):
        for fn, args in ((R.uniform, ()), (R.normal, ()), (R.truncated_normal, ()),
                         (R.truncated_normal, (0.0, 1.0, -5.0, 5.0))):
            fn(n, *args, seed=1, dtype="float64")
    W.he_normal((300, 200), seed=2, dtype="float64")
    W.orthogonal((1024, 1024), seed=3, dtype="float64")
    kw = dict(activation="relu", samples=100, dtype="float64", seed=4)
    W.simulate(3, 40, std=1.4, backward=True, bins=7, **kw)
    W.simulate(3, 40, scheme="he_normal", **kw)
    for norm, position, depth in (("layer", "pre", 2), ("rms", "post", 1), (None, "pre", 2)):
        W.simulate(3, 40, std=1.0, architecture="residual", norm=norm, norm_position=position,
                   branch_depth=depth, backward=True, branch_scale="1/sqrt(L)", **kw)
    W.jacobian_spectrum(3, 16, activation="relu", std=1.4, samples=2)
    x = np.random.default_rng(0).standard_normal((64, 16))
    W.lsuv([W.he_normal((16, 16), seed=5, dtype="float64")], ["relu"], x)
    R.words(1 << 17, seed=6)
    R._normal_pit_words(R.normal(1 << 17, seed=7, dtype=np.float64))
print(json.dumps(sorted({e.data["dispatcher"].py_func.__qualname__
                         for _, e in rec.buffer if e.is_start})))
"""


def _child(code, cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_warmup_leaves_nothing_to_compile(tmp_path):
    _child(_WARMUP, tmp_path)
    compiled = json.loads(_child(_CALLS, tmp_path).strip().splitlines()[-1])
    assert compiled == [], f"compiled after warmup: {compiled}"
