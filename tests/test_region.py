"""region=: every scheme gives bitwise the box of the whole tensor, computed without the rest."""

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import weightinit as W
from weightinit import random as R

# (scheme, parameters, shape): every scheme, including a convolution shape for the fan rules.
CASES = [
    ("normal", dict(mean=0.5, std=2.0), (23, 41)),
    ("uniform", dict(low=-1.0, high=3.0), (7, 11, 13)),
    ("truncated_normal", dict(std=1.5, low=-1.0, high=2.5), (29, 37)),
    ("truncated_normal", dict(low=-4.0, high=-1.0), (31, 17)),  # the tail path
    ("zeros", {}, (9, 10)),
    ("ones", {}, (9, 10)),
    ("constant", dict(value=0.25), (9, 10)),
    ("variance_scaling", dict(scale=2.0, mode="fan_avg"), (16, 12, 3)),
    ("lecun_normal", {}, (19, 23)),
    ("lecun_uniform", {}, (19, 23)),
    ("glorot_normal", dict(distribution="truncated_normal"), (8, 6, 3, 3)),
    ("glorot_uniform", {}, (33, 21)),
    ("he_normal", {}, (12, 5, 3, 3)),
    ("he_uniform", dict(mode="fan_out"), (27, 14)),
    ("orthogonal", {}, (20, 12)),
    ("orthogonal", dict(gain=2.0), (6, 4, 3)),
    ("identity", {}, (13, 9)),
    ("dirac", dict(groups=2), (8, 3, 3, 8)),
]


def _boxes(shape):
    """A random box of ``shape`` (possibly empty, whole or a single element)."""
    def box(bounds):
        return tuple(slice(min(a, b), max(a, b)) for a, b in bounds)
    return st.tuples(*(st.tuples(st.integers(0, d), st.integers(0, d)) for d in shape)).map(box)


def _same_bits(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scheme, params, shape", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_region_is_the_slice_of_the_whole(scheme, params, shape, dtype):
    for layout in ("torch", "keras", "jax"):
        full = W.init(shape, scheme, seed=7, dtype=dtype, layout=layout, **params)

        @settings(max_examples=25, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(_boxes(shape))
        def check(box):
            got = W.init(shape, scheme, seed=7, dtype=dtype, layout=layout, region=box, **params)
            assert _same_bits(got, full[box]), box
            # the same box as (offsets, sizes), and into out= of the box's shape
            offsets = tuple(s.start for s in box)
            sizes = tuple(s.stop - s.start for s in box)
            out = np.full(sizes, np.nan, dtype)
            W.init(shape, scheme, seed=7, dtype=dtype, layout=layout, region=(offsets, sizes),
                   out=out, **params)
            assert _same_bits(out, full[box])

        check()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["uniform", "normal", "truncated_normal"])
def test_parallel_column_blocks_and_offsets(kind, dtype):
    """Large boxes go through the parallel kernel: a column block (Shard(1)) of many short runs
    at odd starts, a row block (one run), and a box of a tensor drawn at an ``offset``."""
    shape = (700, 301)
    full = getattr(R, kind)(shape, seed=3, dtype=dtype, offset=11)
    for box in [(slice(None), slice(3, 290)), (slice(5, 650),), (slice(1, 699), slice(7, 12)),
                (slice(0, 700), slice(100, 101))]:
        got = getattr(R, kind)(shape, seed=3, dtype=dtype, offset=11, region=box)
        assert _same_bits(got, full[box]), box


def test_generator_region_uses_the_same_draw():
    g, h = W.Generator(5), W.Generator(5)
    box = (slice(2, 9), slice(1, 4))
    assert _same_bits(g.normal((10, 6), region=box), h.normal((10, 6))[box])
    assert g.draws == h.draws == 1
    assert _same_bits(g.uniform((10, 6), region=box), h.uniform((10, 6))[box])


def test_region_accepts_short_tuples_and_whole():
    full = W.he_normal((6, 5, 4), seed=1)
    assert _same_bits(W.he_normal((6, 5, 4), seed=1, region=(slice(2, 4),)), full[2:4])
    assert _same_bits(W.he_normal((6, 5, 4), seed=1, region=()), full)
    assert _same_bits(W.he_normal((6, 5, 4), seed=1, region=slice(1, 3)), full[1:3])


def test_region_of_a_tensor_larger_than_memory():
    """A shard of a 32768 x 262144 x 1024 kernel (32 TiB of float32): memory ~ the shard."""
    shape = (32768, 262144, 1024)
    assert math.prod(shape) * 4 >= 2**45
    box = (slice(1000, 1004), slice(262100, 262144), slice(0, 1024))
    tracemalloc.start()
    got = W.lecun_normal(shape, seed=0, region=box)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert got.shape == (4, 44, 1024)
    assert peak < 4 * got.nbytes
    # the first row of the box, from the flat index of its first element
    first = (1000 * 262144 + 262100) * 1024
    row = R.normal((1024,), 0.0, math.sqrt(1.0 / (262144 * 1024)), seed=0, offset=first)
    assert _same_bits(got[0, 0], row)


def test_orthogonal_region_is_the_slice_of_the_full_qr():
    full = W.orthogonal((64, 48), seed=2, layout="keras")
    box = (slice(10, 30), slice(5, 48))
    assert _same_bits(W.orthogonal((64, 48), seed=2, layout="keras", region=box), full[box])
