"""Reproducibility and the counter-based addressing contract of weightinit.random.

Every value is a pure function of (seed, stream, draw, kind, index): same seed -> same bits, any
chunking or thread count -> same bits, and the mapping from Philox words is checked exactly for
uniforms (the bit recipe of shared/reference.md), so the tests do not trust the kernels.
"""

import json
import math
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import weightinit as W
from weightinit import random as R

DTYPES = [np.float32, np.float64]
PAR = 1 << 16  # from this size the parallel kernel runs (pinned for the tests in conftest.py)

# (name, function, positional params) covering every kernel: uniform, normal, the central
# truncated-normal branch ([-2, 2]), the tail branch (infinite bounds) and a mirrored interval.
DISTS = [
    ("uniform01", R.uniform, (0.0, 1.0)),
    ("uniform_shifted", R.uniform, (-3.0, 5.0)),
    ("uniform_scaled", R.uniform, (-0.3, 0.3)),  # 0.6 is not a power of two: an FMA shows
    ("normal", R.normal, (0.0, 1.0)),
    ("normal_shifted", R.normal, (2.0, 0.5)),
    ("normal_scaled", R.normal, (0.1, 0.7)),
    ("trunc_central", R.truncated_normal, (0.0, 1.0, -2.0, 2.0)),
    ("trunc_tail", R.truncated_normal, (0.0, 1.0, -math.inf, math.inf)),
    ("trunc_mirrored", R.truncated_normal, (1.0, 2.0, 2.0, 7.0)),
]
DIST_IDS = [d[0] for d in DISTS]


# ----------------------------------------------------------------------------- same seed, same bits
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, fn, params", DISTS, ids=DIST_IDS)
@pytest.mark.parametrize("n", [7, PAR + 13])
def test_same_seed_bitwise_identical(name, fn, params, dtype, n):
    a = fn(n, *params, seed=12345, dtype=dtype)
    b = fn(n, *params, seed=12345, dtype=dtype)
    assert a.dtype == dtype and a.shape == (n,)
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, fn, params", DISTS, ids=DIST_IDS)
def test_different_seeds_differ(name, fn, params, dtype):
    # Seeds differing only in the low key word, only in the high key word, and the extremes.
    seeds = [0, 1, 2**32, 2**32 + 1, 2**64 - 1]
    arrays = [fn(4096, *params, seed=s, dtype=dtype) for s in seeds]
    for i in range(len(seeds)):
        for j in range(i):
            # Independent streams coincide elementwise with probability <= 2**-23 per element.
            assert np.mean(arrays[i] == arrays[j]) < 0.01, (seeds[i], seeds[j])


def test_kinds_use_distinct_counters():
    # uniform and truncated_normal on [-inf, inf] are both monotone maps of one word per float32
    # element; if they shared counters their ranks would agree.
    u = R.uniform(4096, seed=5)
    t = R.truncated_normal(4096, 0.0, 1.0, -math.inf, math.inf, seed=5)
    assert abs(np.corrcoef(np.argsort(np.argsort(u)), np.argsort(np.argsort(t)))[0, 1]) < 0.1


# ----------------------------------------------------------------------------- exact bit mapping
@pytest.mark.parametrize("dtype", DTYPES)
def test_uniform_bits_match_reference_recipe(dtype, uniform_values):
    # float32: block i // 5 gives elements 5b..5b+4 (four high 24-bit fields, then the low
    # bytes); float64: block i // 2, words (0, 1) then (2, 3). U[0, 1) is exact: bitwise check.
    seed = 0x0123456789ABCDEF
    n = 4 * 1000 + 3
    np.testing.assert_array_equal(
        R.uniform(n, seed=seed, dtype=dtype), uniform_values(seed, n, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_uniform_bits_high_block_word(dtype, uniform_values):
    # An offset whose block index needs the counter's second word (block >= 2**32).
    per = 5 if dtype == np.float32 else 2
    offset = per * (2**32 + 5) + 1  # unaligned as well
    np.testing.assert_array_equal(
        R.uniform(11, seed=77, dtype=dtype, offset=offset),
        uniform_values(77, 11, dtype, offset=offset))


def test_uniform_bits_near_the_end_of_the_index_space(uniform_values):
    # Elements just below the end of the 2**64 index space are addressable (they span two
    # blocks, the last one partial).
    offset = 2**64 - 8
    np.testing.assert_array_equal(
        R.uniform(8, seed=3, offset=offset), uniform_values(3, 8, np.float32, offset=offset))


def test_uniform_recipe_low_byte_element(words):
    # Independent of the reference helper: element 4 of block 0 is built from the low bytes.
    w = [int(x) for x in words(11, "uniform", [0])[0]]
    k = ((w[0] & 255) << 16) | ((w[1] & 255) << 8) | (w[2] & 255)
    assert R.uniform(5, seed=11)[4] == np.float32(k * 2.0**-24)
    assert R.uniform(1, seed=11, offset=4)[0] == np.float32(k * 2.0**-24)


def test_offset_past_index_space_rejected():
    with pytest.raises(ValueError, match="offset"):
        R.uniform(4, seed=0, offset=2**64 - 2)


def test_offset_beyond_uint64_is_value_error():
    with pytest.raises(ValueError, match="offset"):
        R.uniform(4, seed=0, offset=2**64)


# ----------------------------------------------------------------------------- chunking via offset
N_FULL = 2 * PAR + PAR // 2 + 11  # parallel kernel, odd length
OFFSETS = [0, 1, 2, 3, 4, 5, 7, 1021, PAR - 1, PAR + 2, 2 * PAR + 1]
LENGTHS = [1, 2, 3, 4, 5, 6, 7, 9, 4099, PAR - 1, PAR + 5, 2 * PAR - 3]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, fn, params", DISTS, ids=DIST_IDS)
def test_offset_chunks_equal_slices(name, fn, params, dtype):
    # The full array goes through the parallel kernel; chunks shorter than 2**16 through the
    # serial one, longer ones through the parallel one with partial blocks at either end.
    full = fn(N_FULL, *params, seed=2024, dtype=dtype)
    checked = 0
    for off in OFFSETS:
        for length in LENGTHS:
            if off + length > N_FULL:
                continue
            chunk = fn(length, *params, seed=2024, dtype=dtype, offset=off)
            assert chunk.tobytes() == full[off:off + length].tobytes(), (off, length)
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, fn, params", DISTS, ids=DIST_IDS)
def test_every_prefix_equals_the_whole(name, fn, params, dtype):
    # A compiled loop runs whole groups of blocks in vector code and the rest in scalar code;
    # which elements fall in which depends on the length. Every length must give the same bits
    # (this failed when the compiler was free to fuse multiply-adds in one path only).
    whole = fn(700, *params, seed=21, dtype=dtype)
    for n in range(1, 700, 7):
        np.testing.assert_array_equal(fn(n, *params, seed=21, dtype=dtype), whole[:n])
        np.testing.assert_array_equal(
            fn(700 - n, *params, seed=21, dtype=dtype, offset=n), whole[n:])


def test_shipped_thresholds_pick_the_build(monkeypatch):
    # The measured break-even points (bench/threshold.py): one value below a threshold takes the
    # serial build, the threshold itself the parallel one; inside serial() always the serial.
    from conftest import SHIPPED_PARALLEL_FROM
    from weightinit.kernels import fill as K

    assert set(SHIPPED_PARALLEL_FROM) == {(k, d) for k in ("uniform", "normal",
                                                            "truncated_normal")
                                          for d in ("float32", "float64")}
    monkeypatch.setattr(R, "PARALLEL_FROM", SHIPPED_PARALLEL_FROM)
    builds = []

    class Spy(dict):
        def __getitem__(self, key):
            builds.append(key[2])
            return dict.__getitem__(self, key)

    monkeypatch.setattr(K, "KERNELS", Spy(K.KERNELS))
    for (kind, dtype), n in SHIPPED_PARALLEL_FROM.items():
        for size, want in ((n - 1, False), (n, True)):
            getattr(R, kind)(size, seed=1, dtype=dtype)
            assert builds[-1] is want, (kind, dtype, size)
        with R.serial():
            getattr(R, kind)(n, seed=1, dtype=dtype)
        assert builds[-1] is False


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, fn, params", DISTS, ids=DIST_IDS)
def test_serial_and_parallel_kernels_agree(name, fn, params, dtype, monkeypatch):
    # Force every size through one kernel, then the other (the threshold is read per call).
    sizes_offsets = [(1, 0), (3, 1), (5, 2), (4, 4), (9, 3), (1000, 7), (PAR + 3, 5)]
    monkeypatch.setattr(R, "PARALLEL_FROM", {k: 1 << 62 for k in R.PARALLEL_FROM})
    serial = [fn(n, *params, seed=17, dtype=dtype, offset=o) for n, o in sizes_offsets]
    monkeypatch.setattr(R, "PARALLEL_FROM", {k: 1 for k in R.PARALLEL_FROM})
    parallel = [fn(n, *params, seed=17, dtype=dtype, offset=o) for n, o in sizes_offsets]
    for (n, o), a, b in zip(sizes_offsets, serial, parallel):
        assert a.tobytes() == b.tobytes(), (n, o)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, fn, params", DISTS, ids=DIST_IDS)
def test_chunked_fill_with_out_equals_whole(name, fn, params, dtype):
    # Irregular chunk sizes written with out= into slices of one buffer.
    full = fn(N_FULL, *params, seed=99, dtype=dtype)
    buf = np.full(N_FULL, np.nan, dtype=dtype)
    cuts = [0, 3, 4, 9, 1000, 1000 + PAR + 1, 2 * PAR + 7, N_FULL]
    for a, b in zip(cuts[:-1], cuts[1:]):
        res = fn(b - a, *params, seed=99, dtype=dtype, offset=a, out=buf[a:b])
        assert np.shares_memory(res, buf)
    assert buf.tobytes() == full.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, fn, params", DISTS, ids=DIST_IDS)
def test_shape_is_a_view_of_the_flat_sequence(name, fn, params, dtype):
    # A multi-dimensional draw is the flat sequence in C order.
    flat = fn(6 * 35, *params, seed=8, dtype=dtype)
    np.testing.assert_array_equal(fn((6, 5, 7), *params, seed=8, dtype=dtype), flat.reshape(6, 5, 7))


@pytest.mark.parametrize("dtype", DTYPES)
def test_large_offset_chunks_concatenate(dtype):
    # Beyond any array we could hold: consecutive chunks still line up.
    off = 2**40 + 3
    whole = R.normal(13, seed=4, dtype=dtype, offset=off)
    parts = [R.normal(k, seed=4, dtype=dtype, offset=off + s) for s, k in ((0, 1), (1, 4), (5, 8))]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


# ----------------------------------------------------------------------------- thread count
# One digest routine, run in this process and in subprocesses with a fixed thread count.
_DIGEST = r"""
import hashlib, math
import numpy as np
from weightinit import random as R

def digest():
    h = hashlib.sha256()
    for dtype in (np.float32, np.float64):
        for fn, params in ((R.uniform, (0.0, 1.0)), (R.normal, (0.0, 1.0)),
                           (R.truncated_normal, (0.0, 1.0, -2.0, 2.0)),
                           (R.truncated_normal, (0.0, 1.0, -math.inf, math.inf))):
            h.update(fn((1 << 17) + 5, *params, seed=31337, dtype=dtype, offset=3).tobytes())
    return h.hexdigest()
"""
_THREAD_SCRIPT = _DIGEST + r"""
import json, numba
print(json.dumps({"threads": numba.get_num_threads(), "sha": digest()}))
"""


def _hash_in_process():
    namespace = {}
    exec(_DIGEST, namespace)
    return namespace["digest"]()


def test_bitwise_identical_for_one_and_two_threads(monkeypatch):
    results = {}
    for threads in (1, 2):
        monkeypatch.setenv("NUMBA_NUM_THREADS", str(threads))
        proc = subprocess.run([sys.executable, "-c", _THREAD_SCRIPT], capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        assert info["threads"] == threads
        results[threads] = info["sha"]
    assert results[1] == results[2]
    assert results[1] == _hash_in_process()


def test_python_threads_match_sequential_calls():
    jobs = [(fn, params, seed, n, dtype)
            for _, fn, params in DISTS[::2] for seed in (1, 2) for n in (1000, PAR + 17)
            for dtype in DTYPES]
    sequential = [fn(n, *params, seed=seed, dtype=dtype) for fn, params, seed, n, dtype in jobs]
    with ThreadPoolExecutor(max_workers=4) as ex:
        concurrent = list(ex.map(lambda j: j[0](j[3], *j[1], seed=j[2], dtype=j[4]), jobs * 3))
    for a, b in zip(sequential * 3, concurrent):
        assert a.tobytes() == b.tobytes()


def test_generator_shared_across_threads_gives_each_draw_once():
    n_calls = 24
    sequential = W.Generator(11)
    expected = [sequential.normal((PAR + 1,)).tobytes() for _ in range(n_calls)]
    g = W.Generator(11)
    barrier = threading.Barrier(4)

    def work(_):
        barrier.wait()
        return [g.normal((PAR + 1,)).tobytes() for _ in range(n_calls // 4)]

    with ThreadPoolExecutor(max_workers=4) as ex:
        got = [x for chunk in ex.map(work, range(4)) for x in chunk]
    assert g.draws == n_calls
    assert sorted(got) == sorted(expected)  # every draw 0..n-1 exactly once


# ----------------------------------------------------------------------------- out=
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, fn, params", DISTS, ids=DIST_IDS)
def test_out_fills_in_place_and_returns_it(name, fn, params, dtype):
    out = np.full((7, 9), np.nan, dtype=dtype)
    res = fn((7, 9), *params, seed=3, out=out)  # dtype taken from out
    assert res is out
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, fn((7, 9), *params, seed=3, dtype=dtype))


def test_default_dtype_is_float32():
    assert R.uniform(3, seed=0).dtype == np.float32
    assert R.normal(3, seed=0).dtype == np.float32
    assert R.truncated_normal(3, seed=0).dtype == np.float32


def test_scalar_shape():
    x = R.normal((), seed=1, dtype=np.float64)
    assert x.shape == ()
    assert x == R.normal(1, seed=1, dtype=np.float64)[0]


# ----------------------------------------------------------------------------- Generator
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name, fn, params", DISTS, ids=DIST_IDS)
def test_generator_first_draw_equals_stateless(name, fn, params, dtype):
    g = W.Generator(2**63 + 5)
    method = getattr(g, fn.__name__)
    np.testing.assert_array_equal(method((5, 13), *params, dtype=dtype),
                                  fn((5, 13), *params, seed=2**63 + 5, dtype=dtype))
    assert g.draws == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_generator_draws_follow_the_counter(dtype, uniform_values):
    # Draw d uses counter word 2 = d: check the second and third draws bit for bit.
    g = W.Generator(42)
    draws = [g.uniform(40, dtype=dtype) for _ in range(3)]
    for d, x in enumerate(draws):
        np.testing.assert_array_equal(x, uniform_values(42, 40, dtype, draw=d))
    assert not np.array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[1], draws[2])
    assert g.draws == 3


def test_generator_successive_draws_differ():
    g = W.Generator(0)
    xs = [g.normal(1000) for _ in range(5)] + [g.truncated_normal(1000) for _ in range(3)]
    for i in range(len(xs)):
        for j in range(i):
            assert np.mean(xs[i] == xs[j]) < 0.01
    assert g.draws == 8


def test_generator_spawn_gives_distinct_streams(uniform_values):
    g = W.Generator(9)
    children = g.spawn(3)
    assert [c.stream for c in children] == [1, 2, 3]
    assert all(c.seed == 9 for c in children)
    grand = children[0].spawn(2)
    assert [c.stream for c in grand] == [4, 5]  # ids are unique within the whole tree
    more = g.spawn(1)
    assert more[0].stream == 6
    gens = [g] + children + grand + more
    xs = [gen.uniform(4000) for gen in gens]
    for i in range(len(xs)):
        for j in range(i):
            assert np.mean(xs[i] == xs[j]) < 0.01
    # The stream id sits in the counter's last word: stream << 2 | kind.
    np.testing.assert_array_equal(
        xs[gens.index(grand[1])], uniform_values(9, 4000, np.float32, stream=5))


def test_spawn_is_deterministic():
    a = [c.normal(100) for c in W.Generator(3).spawn(2)]
    b = [c.normal(100) for c in W.Generator(3).spawn(2)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_generator_properties_and_repr():
    g = W.Generator(17)
    assert g.seed == 17 and g.stream == 0 and g.draws == 0
    g.uniform(3)
    assert repr(g) == "Generator(seed=17, stream=0, draws=1)"


@pytest.mark.parametrize("call, exc", [
    (lambda g: g.normal((3, 4), std=-1.0), ValueError),
    (lambda g: g.normal((3, 4), std=math.nan), ValueError),
    (lambda g: g.uniform((3, 4), 1.0, 1.0), ValueError),
    (lambda g: g.truncated_normal((3, 4), 0.0, 1.0, 2.0, 1.0), ValueError),
    (lambda g: g.uniform((3, -4)), ValueError),
    (lambda g: g.uniform((3, 4.0)), TypeError),
    (lambda g: g.normal((3, 4), dtype=np.int32), TypeError),
    (lambda g: g.normal((3, 4), dtype=np.float16), TypeError),
], ids=["neg-std", "nan-std", "low=high", "trunc-low>high", "neg-dim", "float-dim", "int32", "float16"])
def test_rejected_call_does_not_consume_a_draw(call, exc):
    g = W.Generator(5)
    with pytest.raises(exc):
        call(g)
    assert g.draws == 0
    np.testing.assert_array_equal(g.normal((3, 4)), R.normal((3, 4), seed=5))


def test_rejected_out_does_not_consume_a_draw():
    g = W.Generator(5)
    with pytest.raises(ValueError, match="out"):
        g.normal((3, 4), out=np.empty((4, 3), np.float32))
    assert g.draws == 0


def test_rejected_huge_shape_does_not_consume_a_draw():
    g = W.Generator(5)
    with pytest.raises(W.InsufficientMemoryError):
        g.uniform((2**40, 2**10))
    assert g.draws == 0


def test_spawn_rejects_bad_counts():
    g = W.Generator(1)
    with pytest.raises(ValueError, match="`n`"):
        g.spawn(0)
    with pytest.raises(TypeError, match="`n`"):
        g.spawn(1.5)


# ----------------------------------------------------------------------------- ranges
def _ulps_above(x, k, dtype):
    for _ in range(k):
        x = np.nextafter(dtype(x), dtype(np.inf))
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("low, ulps", [(1.0, 1), (1.0, 2), (1.0, 8), (-2.0, 1), (-2.0, 5),
                                       (0.5, 3), (1e-30, 4), (-1.0, 1)])
def test_uniform_never_returns_high(dtype, low, ulps):
    # With a range of a few ulps, low + (high - low) * u rounds to high for a large fraction
    # of u (about 1/(2 * ulps)), so the clamp below high is exercised thousands of times.
    low = dtype(low)
    high = _ulps_above(low, ulps, dtype)
    x = R.uniform(1 << 20, float(low), float(high), seed=ulps, dtype=dtype)
    assert x.dtype == dtype
    assert np.all(x < high)
    assert np.all(x >= low)
    if ulps == 1:
        assert np.all(x == low)  # the only representable value in [low, high)
    else:
        assert x.max() == np.nextafter(high, low)  # the top value is reached, not high


@pytest.mark.parametrize("dtype", DTYPES)
def test_uniform_unit_interval_bounds(dtype):
    x = R.uniform(1 << 20, seed=1, dtype=dtype)
    assert x.min() >= 0.0 and x.max() < 1.0


@pytest.mark.parametrize("dtype, bound", [
    # |z| <= r_max = sqrt(-2 ln u_min): u_min = 2**-24 in float32, 2**-53 in float64.
    (np.float32, math.sqrt(-2 * math.log(2.0**-24))),
    (np.float64, math.sqrt(-2 * math.log(2.0**-53))),
])
def test_normals_finite_and_bounded(dtype, bound):
    x = R.normal(1 << 22, seed=6, dtype=dtype)
    assert np.all(np.isfinite(x))
    assert np.abs(x).max() <= bound * (1 + 1e-6)
    assert np.abs(x).max() > 4.0  # 4M samples reach beyond 4 sigma (P(|z|>4) = 6.3e-5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mean, std, low, high", [
    (0.0, 1.0, -2.0, 2.0), (0.0, 1.0, -math.inf, 0.0), (0.0, 1.0, 0.0, math.inf),
    (0.0, 1.0, 3.0, math.inf), (0.0, 1.0, -math.inf, -3.0), (0.0, 1.0, -math.inf, math.inf),
    (0.0, 1.0, 3.0, 4.0), (0.0, 1.0, -8.0, -7.0), (0.0, 1.0, 8.9, 9.1), (0.0, 1.0, -9.1, -9.0),
    (5.0, 0.1, 5.2, 5.3), (-1.0, 3.0, -1.0, -0.999), (0.0, 1e-3, -1.0, 1.0),
])
def test_truncated_normal_within_bounds(dtype, mean, std, low, high):
    x = R.truncated_normal(1 << 18, mean, std, low, high, seed=12, dtype=dtype)
    assert np.all(np.isfinite(x))
    assert np.all(x >= dtype(low)) and np.all(x <= dtype(high))


# ----------------------------------------------------------------------------- seed=None
@pytest.mark.parametrize("name, fn, params", DISTS[::2], ids=DIST_IDS[::2])
def test_seed_none_differs_per_call(name, fn, params):
    a, b = fn(256, *params), fn(256, *params)
    assert np.mean(a == b) < 0.01


def test_generator_seed_none_is_random_and_reported():
    g1, g2 = W.Generator(), W.Generator()
    assert g1.seed != g2.seed
    assert 0 <= g1.seed < 2**64
    np.testing.assert_array_equal(g1.normal(10), R.normal(10, seed=g1.seed))
