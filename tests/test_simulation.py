"""Simulation: kernels against a naive NumPy forward/backward pass, and bad input."""

import math

import numpy as np
import pytest

import weightinit as wi
from weightinit.simulation import (HIST_RANGE, SATURATION, _BIAS, _COTANGENT, _INPUT, _WEIGHT,
                                 simulate, stream_seed)

SELU_L, SELU_A = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717
# Independent float64 references of every activation and its derivative (NumPy/math only).
_erf = np.vectorize(math.erf)
PHI = {
    "linear": (lambda z: z, lambda z: np.ones_like(z)),
    "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2),
    "tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
    "relu": (lambda z: np.maximum(z, 0), lambda z: (z > 0) * 1.0),
    "leaky_relu": (lambda z: np.where(z > 0, z, 0.01 * z), lambda z: np.where(z > 0, 1, 0.01)),
    "elu": (lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
            lambda z: np.where(z > 0, 1, np.exp(np.minimum(z, 0)))),
    "selu": (lambda z: SELU_L * np.where(z > 0, z, SELU_A * np.expm1(np.minimum(z, 0))),
             lambda z: SELU_L * np.where(z > 0, 1, SELU_A * np.exp(np.minimum(z, 0)))),
    "gelu": (lambda z: 0.5 * z * (1 + _erf(z / math.sqrt(2))),
             lambda z: 0.5 * (1 + _erf(z / math.sqrt(2))) + z * np.exp(-z * z / 2) / math.sqrt(2 * math.pi)),
    "silu": (lambda z: z / (1 + np.exp(-z)),
             lambda z: 1 / (1 + np.exp(-z)) * (1 + z * (1 - 1 / (1 + np.exp(-z))))),
    "softplus": (lambda z: np.logaddexp(0, z), lambda z: 1 / (1 + np.exp(-z))),
}


def naive(depth, width, activation, scheme, seed, samples, bias=0.0, bias_std=0.0, params=None,
          backward=False, dtype=np.float64):
    """The experiment written the obvious way: weights from the library (same streams), the
    rest in float64 NumPy."""
    params = params or {}
    phi, dphi = PHI[activation]
    h = wi.normal((samples, width), seed=stream_seed(seed, 0, _INPUT), dtype=dtype).astype(np.float64)
    ws, zs, out = [], [], []
    for layer in range(depth):
        w = wi.init((width, width), scheme, seed=stream_seed(seed, layer, _WEIGHT), layout="keras",
                    dtype=dtype, **params).astype(np.float64)
        b = np.full(width, bias)
        if bias_std:
            b = b + wi.normal(width, 0.0, bias_std, seed=stream_seed(seed, layer, _BIAS), dtype=dtype)
        z = h @ w + b
        h = phi(z)
        ws.append(w)
        zs.append(z)
        out.append(h)
    grads = []
    if backward:
        g = wi.normal((samples, width), seed=stream_seed(seed, depth, _COTANGENT), dtype=dtype).astype(np.float64)
        for layer in range(depth - 1, -1, -1):
            grads.append(g)
            g = (g * dphi(zs[layer])) @ ws[layer].T
        grads.reverse()
    return zs, out, grads


@pytest.mark.parametrize("width", [48, 300])  # 300: two unit tiles of the kernel, one partial
@pytest.mark.parametrize("activation", sorted(PHI))
def test_statistics_match_naive_numpy(activation, width):
    depth, samples = 4, 70  # samples not a multiple of the kernel's row chunk
    r = simulate(depth, width, activation=activation, scheme="he_normal", samples=samples, seed=5,
                 bias=0.1, bias_std=0.05, dtype=np.float64, backward=True, checkpoint=3)
    zs, hs, grads = naive(depth, width, activation, "he_normal", 5, samples, 0.1, 0.05,
                          backward=True)
    lo, hi = SATURATION.get(activation, (-np.inf, np.inf))
    for layer in range(depth):
        a = hs[layer]
        np.testing.assert_allclose(r.mean[layer], a.mean(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(r.var[layer], a.var(), rtol=1e-9)
        np.testing.assert_allclose(r.q[layer], np.mean(zs[layer] ** 2), rtol=1e-9)
        assert r.saturated[layer] == np.mean((a < lo) | (a > hi))
        assert r.dead[layer] == np.mean(a == 0)
        assert r.dead_units[layer] == np.mean(np.all(a == 0, axis=0))
        assert r.nonfinite[layer] == 0
        edges = r.bin_edges[layer]
        if activation in HIST_RANGE:
            assert (edges[0], edges[-1]) == HIST_RANGE[activation]
        else:
            np.testing.assert_allclose((edges[0], edges[-1]), (a.min(), a.max()), rtol=1e-12)
        counts, _ = np.histogram(a, bins=edges)
        # A value within rounding of a bin edge may land on either side: at most a few moves.
        assert np.abs(counts - r.hist[layer]).sum() <= 4
        assert r.hist[layer].sum() == a.size
        np.testing.assert_allclose(r.grad_var[layer], np.mean(grads[layer] ** 2), rtol=1e-9)
        np.testing.assert_allclose(
            r.grad_norm[layer], np.mean(np.linalg.norm(grads[layer], axis=1)), rtol=1e-9)


def test_float32_close_to_float64_reference():
    r = simulate(6, 64, activation="tanh", samples=100, seed=2)
    _, hs, _ = naive(6, 64, "tanh", "glorot_normal", 2, 100, dtype=np.float32)
    np.testing.assert_allclose(r.var, [a.var() for a in hs], rtol=1e-4)


def test_float32_statistics_keep_the_spread_of_a_collapsed_layer():
    # N(0, 1e-4) weights collapse sigmoid units onto 0.5: var ~ (0.25 * 1e-4 * sqrt(n))**2 ~ 4e-8,
    # while E[a^2] ~ 0.25. float32 sums of a^2 (relative error ~1e-7 per chunk) would leave an
    # error ~ 0.25e-7 on var, about 60%; the kernel sums d = a - (the unit's first value in the
    # chunk) instead. Against the float64 computation of the same weights: the float32 rounding
    # of a (ulp 6e-8 near 0.5) adds at most ulp^2/12 ~ 3e-16 to var, far inside rtol 1e-3.
    r = simulate(4, 64, activation="sigmoid", std=1e-4, samples=300, seed=3)
    _, hs, _ = naive(4, 64, "sigmoid", "normal", 3, 300, params=dict(std=1e-4), dtype=np.float32)
    np.testing.assert_allclose(r.var, [a.var() for a in hs], rtol=1e-3)
    np.testing.assert_allclose(r.mean, [a.mean() for a in hs], rtol=1e-6)


@pytest.mark.parametrize("samples", [50, 200, 1000])  # a team of one, and of two with 2 / 2 chunks
@pytest.mark.parametrize("activation", ["tanh", "relu"])  # fixed and data-driven histogram range
def test_results_do_not_depend_on_the_thread_count(samples, activation):
    import numba

    def run():
        return simulate(5, 96, activation=activation, samples=samples, seed=9, bias_std=0.1,
                        backward=True, checkpoint=2)

    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = run()
        numba.set_num_threads(before)
        many = run()
    finally:
        numba.set_num_threads(before)
    for field in ("mean", "var", "q", "saturated", "dead", "dead_units", "hist", "bin_edges",
                  "grad_var", "grad_norm"):
        assert np.array_equal(getattr(one, field), getattr(many, field)), field


def test_blas_calls_are_the_same_blocks_with_one_blas_thread_whatever_the_team(monkeypatch):
    # BLAS kernels may round a row differently depending on where it falls in a call (OpenBLAS's
    # on AMD Zen 5 does; on Zen 4 it does not), so the thread-count test above can only fail on
    # some CPUs. This one fails on any: every product must be the same row blocks, each one call
    # on one BLAS thread, for a team of one and a team of two (1000 samples: four 256-row
    # blocks).
    import numba
    from threadpoolctl import threadpool_info

    if numba.get_num_threads() < 2:
        pytest.skip("needs two Numba threads")
    real, calls = np.matmul, []

    def recording(a, b, out=None):
        root = a
        while isinstance(root.base, np.ndarray):
            root = root.base
        blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        calls.append(((a.ctypes.data - root.ctypes.data) // a.strides[0], a.shape, b.shape,
                      tuple(blas)))
        return real(a, b, out=out)

    def blocks(threads):
        calls.clear()
        before = numba.get_num_threads()
        numba.set_num_threads(threads)
        monkeypatch.setattr(np, "matmul", recording)
        try:
            simulate(3, 40, activation="relu", samples=1000, seed=1, backward=True)
        finally:
            monkeypatch.setattr(np, "matmul", real)
            numba.set_num_threads(before)
        return sorted(calls)

    one, two = blocks(1), blocks(2)
    assert one == two
    assert {c[0] for c in one} == {0, 256, 512, 768}
    assert {c[1][0] for c in one} == {256, 232}
    assert all(set(c[3]) == {1} for c in one)


def test_an_error_in_a_team_thread_is_raised_and_nothing_hangs(monkeypatch):
    import numba

    from weightinit import simulation as S
    from weightinit.kernels import mlp as K

    if numba.get_num_threads() < 2:
        pytest.skip("needs two threads")
    fwd, bwd = K.KERNELS["tanh", "float32"]
    calls = []

    def failing(*args):
        calls.append(args[-2])  # c0: the first chunk of the calling thread
        if args[-2] > 0 and len(calls) > 4:
            raise ZeroDivisionError("injected")
        return fwd(*args)

    monkeypatch.setitem(S.K.KERNELS, ("tanh", "float32"), (failing, bwd))
    with pytest.raises(ZeroDivisionError, match="injected"):
        simulate(20, 64, activation="tanh", samples=256, seed=1)
    monkeypatch.undo()
    assert simulate(2, 64, activation="tanh", samples=256, seed=1).var.shape == (2,)


def test_classic_sigmoid_experiment():
    """N(0, 1) weights saturate sigmoid units at 0 and 1; N(0, 0.01) collapse them onto 0.5."""
    wide = simulate(5, 100, activation="sigmoid", std=1.0, samples=1000)
    narrow = simulate(5, 100, activation="sigmoid", std=0.01, samples=1000)
    assert wide.hist.shape == (5, 30) and np.all(wide.bin_edges[:, [0, -1]] == [0.0, 1.0])
    assert np.all(wide.saturated > 0.5)  # most activations below 0.1 or above 0.9
    end_bins = (wide.hist[:, 0] + wide.hist[:, -1]) / wide.hist.sum(axis=1)
    assert np.all(end_bins > 0.3)
    assert np.all(narrow.std < 0.05) and np.all(np.abs(narrow.mean - 0.5) < 0.01)
    assert np.all(narrow.saturated == 0)


def test_zero_init_never_breaks_symmetry():
    r = simulate(3, 32, activation="relu", scheme="zeros", samples=50)
    assert np.all(r.dead == 1.0) and np.all(r.dead_units == 1.0) and np.all(r.var == 0)
    r = simulate(3, 32, activation="relu", scheme="zeros", samples=50, backward=True)
    assert np.all(r.grad_var[:-1] == 0)  # nothing flows back through zero weights
    r = simulate(3, 32, activation="tanh", scheme="constant", value=0.1, samples=50)
    # every unit of a layer computes the same function: no spread across units within a sample
    assert np.all(r.hist.max(axis=1) <= 50 * 32)
    np.testing.assert_allclose(r.sigma_w2, math.nan)


def test_he_keeps_relu_variance_and_glorot_shrinks_it():
    depth, n = 30, 1024
    he = simulate(depth, n, activation="relu", scheme="he_normal", samples=256, seed=1)
    xavier = simulate(depth, n, activation="relu", scheme="glorot_normal", samples=256, seed=1)
    # Mean field: He keeps q^l = q^{l-1}; Glorot (fan_avg = fan_in for square layers) halves it.
    # At finite width each ReLU layer multiplies q by (2/n) sum_i relu(z_i)^2 / q, whose
    # relative variance is (E[4 relu(z)^4]/q^2 - 1)/n = 5/n, so log(q_L / q_1) has standard
    # deviation <= sqrt(5 (L - 1) / n) = 0.38; allow 5 of them.
    tol = 5 * math.sqrt(5 * (depth - 1) / n)
    assert abs(math.log(he.q[-1] / he.q[0])) < tol
    assert abs(math.log(xavier.q[-1] / xavier.q[0] / 0.5 ** (depth - 1))) < tol


def test_deterministic_and_seed_dependent():
    a = simulate(3, 40, activation="tanh", samples=30, seed=4)
    b = simulate(3, 40, activation="tanh", samples=30, seed=4)
    c = simulate(3, 40, activation="tanh", samples=30, seed=5)
    assert np.array_equal(a.var, b.var) and np.array_equal(a.hist, b.hist)
    assert not np.array_equal(a.var, c.var)


def test_widths_input_and_scheme_params():
    r = simulate(widths=[30, 20, 10], activation="tanh", samples=25, input_dim=7,
                 scheme="variance_scaling", scale=2.25, distribution="normal")
    assert r.widths == [30, 20, 10] and r.hist.shape == (3, 30)
    np.testing.assert_allclose(r.sigma_w2, 2.25)
    x = np.linspace(-1, 1, 60).reshape(6, 10)
    r = simulate(2, 8, x=x, activation="linear", scheme="orthogonal")
    assert r.samples == 6 and math.isclose(r.input_var, np.mean(x**2), rel_tol=1e-6)


def test_exploding_network_reports_nonfinite():
    r = simulate(40, 64, activation="linear", std=100.0, samples=16, dtype=np.float32)
    assert r.nonfinite[-1] == 1.0 and np.isnan(r.mean[-1])
    assert r.nonfinite[0] == 0.0


def test_json_export_and_theory():
    r = simulate(4, 128, activation="tanh", samples=64, bias_std=0.1)
    d = r.to_dict()
    assert d["activation"] == "tanh" and len(d["var"]) == 4
    import json

    assert json.loads(r.to_json())["hist"] == r.hist.tolist()
    t = r.theory()
    assert t["q"].shape == (4,)


def test_progress_callable():
    seen = []
    simulate(3, 16, samples=8, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_progress_true_draws_a_tqdm_bar_only_on_a_terminal(monkeypatch):
    import io
    import sys

    class Tty(io.StringIO):
        def isatty(self):
            return True

    for stream, shown in ((io.StringIO(), False), (Tty(), True)):
        monkeypatch.setattr(sys, "stderr", stream)
        simulate(3, 16, samples=8, progress=True)
        text = stream.getvalue()
        assert ("simulate: 100%" in text and "3/3" in text) if shown else text == "", text


@pytest.mark.parametrize("kwargs, match", [
    (dict(depth=0, width=10), "depth"),
    (dict(depth=2, width=-1), "width"),
    (dict(depth=2, width=10, samples=0), "samples"),
    (dict(depth=2, width=10, activation="swish-ish"), "activation"),
    (dict(depth=2, width=10, scheme="nope"), "scheme"),
    (dict(depth=2, width=10, scheme="he_normal", std=1.0), "exactly one"),
    (dict(depth=2, width=10, scheme=None), "exactly one"),
    (dict(depth=2, width=10, std=-1.0), "std"),
    (dict(depth=2, width=10, bins=0), "bins"),
    (dict(widths=[10, 0]), "widths"),
    (dict(depth=3, widths=[10, 10]), "depth"),
    (dict(depth=2, width=10, bias_std=float("nan")), "bias_std"),
    (dict(depth=2, width=10, bias="sometimes"), "bias"),
    (dict(depth=2, width=10, dtype=np.int32), "dtype"),
    (dict(depth=2, width=10, x=np.ones(5)), "x"),
])
def test_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        simulate(**kwargs)


def test_too_large_fails_before_allocating():
    with pytest.raises(MemoryError, match="GiB"):
        simulate(2, 2**20, samples=2**20)


@pytest.mark.parametrize("activation", sorted(PHI))
def test_float32_kernels_compute_activations_to_float32_accuracy(activation):
    # float32 runs evaluate phi and phi' in float32. Against the float64 functions (themselves
    # checked against NumPy above): relative error within a few float32 ulps (2**-24 = 6e-8),
    # or absolute error below 1e-6 where the result is near 0 (cancellation in phi' of gelu,
    # underflow of erfc/exp far in the tails).
    from weightinit.kernels import activations as KA
    from weightinit.kernels import mlp as K

    # The last row holds values beyond the fast path's bound (K.TAME), so both paths are checked.
    big = np.geomspace(1e17, 1e37, 32)
    z = np.concatenate([np.linspace(-60, 60, 4001), np.linspace(-1e-3, 1e-3, 95), -big, big])
    z = z.astype(np.float32).reshape(-1, 64)
    fwd, bwd = K.KERNELS[activation, "float32"]
    slope = np.float32(0.01)
    n_chunks = (z.shape[0] + K.CHUNK - 1) // K.CHUNK
    part = np.empty((n_chunks, K.N_STATS, z.shape[1]))
    a = z.copy()
    fwd(a, np.zeros(z.shape[1], np.float32), slope, -np.inf, np.inf, part, 0.0, 0.0,
        np.empty((4, 0), np.int64), 0, n_chunks)
    g = np.ones_like(z)
    bwd(g, z, slope, 0, z.shape[0])
    code = KA.CODES[activation]
    for got, order in ((a, 0), (g, 1)):
        ref = np.empty(z.size)
        KA.apply(code, z.ravel().astype(np.float64), 0.01, order, ref)
        assert got.dtype == np.float32
        err = np.abs(got.ravel().astype(np.float64) - ref)
        assert np.all((err <= 3e-7 * np.abs(ref)) | (err < 1e-6)), (order, err.max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation,bins", [("tanh", 20), ("tanh", 0), ("linear", 0)])
def test_forward_kernel_with_wild_segments_against_numpy(activation, bins, dtype):
    # Huge, infinite and NaN pre-activations scattered over chunks and unit tiles, next to tame
    # ones in the same rows: the kernel leaves those segments for its float64 finisher. Every
    # partial statistic and the histogram are checked against NumPy over the finite values.
    from weightinit.kernels import mlp as K

    rng = np.random.default_rng(3)
    rows, width, lo, hi = 150, 300, -1.0, 1.0  # 3 chunks (one partial), 2 tiles of units
    z = rng.standard_normal((rows, width))
    for value in (1e20, -1e30, np.inf, -np.inf, np.nan):
        z.flat[rng.choice(z.size, 40, replace=False)] = value
    z = z.astype(dtype)
    n_chunks = -(-rows // K.CHUNK)
    part = np.empty((n_chunks, K.N_STATS, width))
    h = np.zeros((4, bins), np.int64)
    a = z.copy()
    fwd = K.KERNELS[activation, np.dtype(dtype).name][0]
    fwd(a, np.zeros(width, dtype), dtype(0.01), -0.5, 0.5, part, lo, hi, h, 0, n_chunks)
    ref = np.tanh(z.astype(np.float64)) if activation == "tanh" else z.astype(np.float64)
    fin = np.isfinite(ref)
    np.testing.assert_array_equal(np.isfinite(a), fin)
    np.testing.assert_allclose(a[fin], ref[fin], rtol=1e-6 if dtype == np.float32 else 1e-15)
    # Partials per unit, summed over chunks, against float64 sums of the kernel's own finite
    # outputs (checked above). The fast path sums a chunk's 64 rows in the data's dtype: each
    # addition rounds by at most eps/2 relative to the running sum of magnitudes, so the error
    # per unit is below 64 * eps * (sum of |terms|); the finisher's float64 sums add far less.
    tot = part.sum(axis=0)
    eps = np.finfo(dtype).eps
    af = np.where(fin, a.astype(np.float64), 0.0)
    zf = z.astype(np.float64)
    zf = np.where(np.isfinite(zf), zf, 0.0)
    for k, terms in ((K.SUM_A, af), (K.SUM_A2, af**2), (K.SUM_Z2, zf**2)):
        err = np.abs(tot[k] - terms.sum(axis=0))
        assert np.all(err <= 64 * eps * np.abs(terms).sum(axis=0)), k
    np.testing.assert_array_equal(tot[K.NONFINITE], (~fin).sum(axis=0))
    np.testing.assert_array_equal(tot[K.SATURATED], (fin & (np.abs(ref) > 0.5)).sum(axis=0))
    np.testing.assert_array_equal(tot[K.ZERO], (fin & (ref == 0)).sum(axis=0))
    if bins:  # a histogram of fixed range
        counts, _ = np.histogram(np.clip(a[fin], lo, hi), bins=bins, range=(lo, hi))
        assert h.sum() == fin.sum()
        assert np.abs(h.sum(axis=0) - counts).sum() <= 4  # values within rounding of an edge
    else:  # no bins: the extremes, for a histogram whose range is known after the pass
        np.testing.assert_array_equal(part[:, K.MIN_A].min(axis=0),
                                      np.where(fin, a, np.inf).min(axis=0))
        np.testing.assert_array_equal(part[:, K.MAX_A].max(axis=0),
                                      np.where(fin, a, -np.inf).max(axis=0))


def test_concurrent_simulations_agree_and_restore_blas_threads():
    # Several simulations at once in user threads: each result equals the sequential one, and
    # BLAS's thread count is back to what it was when the last one ends (overlapping limits
    # restored in the wrong order would leave it at 1).
    import threading

    from threadpoolctl import threadpool_info

    def blas_threads():
        return {i["filepath"]: i["num_threads"] for i in threadpool_info()
                if i["user_api"] == "blas"}

    before = blas_threads()
    args = [dict(activation=a, samples=s, seed=k) for k, (a, s) in
            enumerate([("tanh", 300), ("relu", 200), ("sigmoid", 500), ("tanh", 130)])]
    expected = [simulate(6, 80, **kw) for kw in args]
    got = [None] * len(args)

    def run(i):
        got[i] = simulate(6, 80, **args[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e, g in zip(expected, got):
        assert np.array_equal(e.var, g.var) and np.array_equal(e.hist, g.hist)
    after = blas_threads()
    assert {path: after[path] for path in before} == before
