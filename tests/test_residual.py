"""Residual simulation: statistics against a naive NumPy forward pass, gradients against torch
autograd, the norm kernels against finite differences, and bad input."""

import math

import numpy as np
import pytest

import weightinit as wi
from weightinit.simulation import _BIAS, _COTANGENT, _INPUT, _WEIGHT, simulate, stream_seed

from test_simulation import PHI

EPS = 1e-5  # the simulation's normalisation epsilon (PyTorch's default)


def norm_ref(x, kind):
    """LayerNorm / RMSNorm of each row, no gain or bias, written from their definitions."""
    if kind == "layer":
        x = x - x.mean(axis=1, keepdims=True)
    return x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + EPS)


def naive(blocks, width, activation, scheme, seed, samples, bd, alpha, norm, position, bias=0.0,
          bias_std=0.0):
    """The residual network written the obvious way in float64 NumPy (weights from the library's
    streams): per block the output, the branch pre-activation z1, the branch output F.
    ``scheme`` is a scheme name, or a function of the weight matrix's index giving its
    ``(scheme, params)``."""
    phi = PHI[activation][0]
    h = wi.normal((samples, width), seed=stream_seed(seed, 0, _INPUT), dtype=np.float64)
    out, zs, fs, ws, bs = [], [], [], [], []
    for layer in range(blocks):
        w, b = [], []
        for k in range(bd):
            m = layer * bd + k
            name, params = scheme(m) if callable(scheme) else (scheme, {})
            w.append(wi.init((width, width), name, seed=stream_seed(seed, m, _WEIGHT),
                             layout="keras", dtype=np.float64, **params))
            bb = np.full(width, bias)
            if bias_std:
                bb = bb + wi.normal(width, 0.0, bias_std, seed=stream_seed(seed, m, _BIAS),
                                    dtype=np.float64)
            b.append(bb)
        x = norm_ref(h, norm) if norm and position == "pre" else h
        z = x @ w[0] + b[0]
        f = phi(z)
        if bd == 2:
            f = f @ w[1] + b[1]
        u = h + alpha * f
        h = norm_ref(u, norm) if norm and position == "post" else u
        out.append(h)
        zs.append(z)
        fs.append(f)
        ws.append(w)
        bs.append(b)
    return out, zs, fs, ws, bs


CASES = [(None, "pre", 1), (None, "pre", 2), ("layer", "pre", 1), ("layer", "post", 2),
         ("rms", "pre", 2), ("rms", "post", 1)]


def _recipe_matrix(recipe, blocks, bd, width, **params):
    """Weight matrix m's (scheme, params) straight from the recipe's rule table: block m // bd,
    the branch's last layer the output projection ``mlp_out``, the others ``mlp_in``."""
    from weightinit import recipes

    def spec(m):
        role = "mlp_out" if m % bd == bd - 1 else "mlp_in"
        r = recipes.rule(recipe, role, layer=m // bd, n_layers=blocks, width=width,
                         shape=(width, width), **params)
        return r.as_scheme()

    return spec


@pytest.mark.parametrize("recipe, params, bd, norm", [
    ("gpt2", {}, 2, "layer"), ("olmo_mitchell", {}, 2, None), ("mup", {"base_width": 8}, 1, "rms"),
    ("torchtitan", {}, 2, None), ("wang_init", {}, 2, "layer")])
def test_recipe_weights_match_naive_numpy(recipe, params, bd, norm):
    # Recipes draw each branch matrix by its role and block (layer-dependent stds for
    # olmo_mitchell and torchtitan, truncation, a width-dependent muP std): the simulation's
    # statistics equal a naive float64 pass over the weights the rule table gives.
    blocks, width, samples = 4, 40, 70
    r = simulate(blocks, width, architecture="residual", activation="tanh", recipe=recipe,
                 samples=samples, seed=5, dtype=np.float64, branch_depth=bd, norm=norm, **params)
    spec = _recipe_matrix(recipe, blocks, bd, width, **params)
    hs, zs, fs, _, _ = naive(blocks, width, "tanh", spec, 5, samples, bd, 1.0, norm, "pre")
    np.testing.assert_allclose(r.q, [np.mean(h ** 2) for h in hs], rtol=1e-9)
    np.testing.assert_allclose(r.branch_q, [np.mean(z ** 2) for z in zs], rtol=1e-9)
    sw2 = [[wi.describe((width, width), *spec(l * bd + k)[:1], layout="keras",
                        **spec(l * bd + k)[1])["variance"] * width for k in range(bd)]
           for l in range(blocks)]
    np.testing.assert_allclose(r.branch_sigma_w2, sw2, rtol=1e-12)
    np.testing.assert_allclose(r.sigma_w2, np.asarray(sw2)[:, 0], rtol=1e-12)
    assert r.recipe == recipe and r.scheme == f"{recipe} recipe" and r.params == params


@pytest.mark.parametrize("recipe", ["rezero", "skipinit", "zero_init", "fixup"])
def test_recipes_that_start_as_the_identity(recipe):
    # ReZero/SkipInit gate every branch with 0; ZerO (identity, then zero output projection)
    # and Fixup (zero output projection) make every branch output 0: the stream keeps its input.
    r = simulate(5, 32, architecture="residual", activation="relu", recipe=recipe, samples=64,
                 seed=2, dtype=np.float64, branch_depth=2)
    x0 = wi.normal((64, 32), seed=stream_seed(2, 0, _INPUT), dtype=np.float64)
    np.testing.assert_allclose(r.q, np.mean(x0 ** 2), rtol=1e-12)
    np.testing.assert_array_equal(r.branch_ratio, 0.0)
    assert r.branch_scale == (0.0 if recipe in ("rezero", "skipinit") else 1.0)


@pytest.mark.slow
def test_recipe_run_matches_theory_at_width_1024():
    # GPT-2's recipe in a pre-LN network of 2-layer ReLU branches, where the output projection's
    # std is 0.02 / sqrt(2 L) and the first layer's 0.02: per-block q within 0.5 %, the
    # branch/skip ratio within 10 % (measured 0.1 % and 1-3.4 % over seeds; the ratio is a small
    # quantity estimated from one draw of each 1024 x 1024 matrix).
    r = simulate(20, 1024, architecture="residual", activation="relu", recipe="gpt2",
                 samples=1024, branch_depth=2, norm="layer")
    t = r.theory()
    np.testing.assert_allclose(r.q, t["q"], rtol=5e-3)
    np.testing.assert_allclose(r.branch_ratio, t["branch_ratio"], rtol=0.1)


@pytest.mark.parametrize("norm, position, bd", CASES)
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_statistics_match_naive_numpy(activation, norm, position, bd):
    blocks, width, samples, alpha = 4, 40, 70, 0.7  # samples not a multiple of the row chunk
    r = simulate(blocks, width, architecture="residual", activation=activation,
                 scheme="he_normal", samples=samples, seed=3, bias=0.1, bias_std=0.05,
                 dtype=np.float64, branch_depth=bd, branch_scale=alpha, norm=norm,
                 norm_position=position, bins=7)
    hs, zs, fs, _, _ = naive(blocks, width, activation, "he_normal", 3, samples, bd, alpha,
                             norm, position, 0.1, 0.05)
    x0 = wi.normal((samples, width), seed=stream_seed(3, 0, _INPUT), dtype=np.float64)
    skip_q = [np.mean(x0 ** 2)] + [np.mean(h ** 2) for h in hs[:-1]]
    a_act = [PHI[activation][0](z) for z in zs]
    for layer in range(blocks):
        h = hs[layer]
        np.testing.assert_allclose(r.mean[layer], h.mean(), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(r.var[layer], h.var(), rtol=1e-9)
        np.testing.assert_allclose(r.q[layer], np.mean(h ** 2), rtol=1e-9)
        np.testing.assert_allclose(r.branch_q[layer], np.mean(zs[layer] ** 2), rtol=1e-9)
        np.testing.assert_allclose(r.branch_ratio[layer],
                                   alpha ** 2 * np.mean(fs[layer] ** 2) / skip_q[layer],
                                   rtol=1e-9)
        a = a_act[layer]
        assert r.dead[layer] == np.mean(a == 0)
        assert r.dead_units[layer] == np.mean(np.all(a == 0, axis=0))
        assert r.nonfinite[layer] == 0
        edges = r.bin_edges[layer]
        np.testing.assert_allclose(edges[[0, -1]], [h.min(), h.max()], rtol=1e-12)
        # values outside the edges (rounding of the extremes) go to the end bins, as in the MLP
        np.testing.assert_array_equal(
            r.hist[layer], np.histogram(np.clip(h, edges[0], edges[-1]), bins=edges)[0])
    assert r.architecture == "residual" and r.branch_depth == bd and r.branch_scale == alpha


@pytest.mark.parametrize("norm, position, bd", CASES)
def test_gradients_match_torch_autograd(norm, position, bd):
    """grad_var / grad_norm against autograd of the same network in float64 torch (an
    independent differentiation, including through the norms)."""
    torch = pytest.importorskip("torch")
    blocks, width, samples, alpha, seed = 5, 24, 70, 0.8, 11
    r = simulate(blocks, width, architecture="residual", activation="tanh", scheme="he_normal",
                 samples=samples, seed=seed, bias_std=0.1, dtype=np.float64, branch_depth=bd,
                 branch_scale=alpha, norm=norm, norm_position=position, backward=True,
                 checkpoint=2)
    _, _, _, ws, bs = naive(blocks, width, "tanh", "he_normal", seed, samples, bd, alpha, norm,
                            position, 0.0, 0.1)

    def tnorm(x):
        if norm == "layer":
            return torch.nn.functional.layer_norm(x, (width,), eps=EPS)
        return torch.nn.functional.rms_norm(x, (width,), eps=EPS)

    h = torch.tensor(wi.normal((samples, width), seed=stream_seed(seed, 0, _INPUT),
                               dtype=np.float64), requires_grad=True)
    outs = []
    for layer in range(blocks):
        w = [torch.tensor(v) for v in ws[layer]]
        b = [torch.tensor(v) for v in bs[layer]]
        x = tnorm(h) if norm and position == "pre" else h
        f = torch.tanh(x @ w[0] + b[0])
        if bd == 2:
            f = f @ w[1] + b[1]
        u = h + alpha * f
        h = tnorm(u) if norm and position == "post" else u
        h.retain_grad()
        outs.append(h)
    g = torch.tensor(wi.normal((samples, width), seed=stream_seed(seed, blocks, _COTANGENT),
                               dtype=np.float64))
    (h * g).sum().backward()
    for layer in range(blocks):
        grad = outs[layer].grad.numpy()
        np.testing.assert_allclose(r.grad_var[layer], np.mean(grad ** 2), rtol=1e-9)
        np.testing.assert_allclose(r.grad_norm[layer], np.linalg.norm(grad, axis=1).mean(),
                                   rtol=1e-9)


@pytest.mark.parametrize("center", [True, False])
def test_norm_kernels_against_finite_differences(center):
    from weightinit.kernels import norm as KN

    rng = np.random.default_rng(0)
    x = rng.normal(1.5, 2.0, (3, 17))
    g = rng.normal(size=x.shape)
    y, s = np.empty_like(x), np.empty(3)
    KN.forward(x, y, s, center, EPS, 0, 3)
    np.testing.assert_allclose(y, norm_ref(x, "layer" if center else "rms"), rtol=1e-12)
    dx = np.empty_like(x)
    KN.backward(g, y, s, center, dx, 0, 3)
    # central differences of L = sum(g * N(x)): truncation O(h^2) ~ 1e-12, rounding ~ 1e-16/h
    step, fd = 1e-6, np.empty_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += step
        xm[i] -= step
        fd[i] = np.sum(g * (norm_ref(xp, "layer" if center else "rms")
                            - norm_ref(xm, "layer" if center else "rms"))) / (2 * step)
    np.testing.assert_allclose(dx, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_residual_add_kernel_against_numpy(dtype):
    from weightinit.kernels import mlp as K

    rng = np.random.default_rng(1)
    rows, width = 150, 37  # three chunks, the last one partial
    h, f = (rng.standard_normal((rows, width)).astype(dtype) for _ in range(2))
    f[5, 3], f[100, 0] = np.inf, np.nan
    bias, alpha = rng.standard_normal(width).astype(dtype), dtype(0.3)
    n_chunks = -(-rows // K.CHUNK)
    for moment in (False, True):
        out, sums = np.empty_like(h), np.full((n_chunks, 2, width), 7.0)
        K.residual_add(h, f, bias, alpha, out, sums, moment, 0, n_chunks)
        with np.errstate(invalid="ignore"):
            v = f + bias
            np.testing.assert_array_equal(out, h + alpha * v)  # NumPy's rounding, no FMA
        if moment:
            v64 = v.astype(np.float64)
            finite = np.isfinite(v64)
            for c in range(n_chunks):
                sl = slice(c * K.CHUNK, (c + 1) * K.CHUNK)
                np.testing.assert_allclose(sums[c, 0], np.where(finite, v64, 0)[sl].__pow__(2)
                                           .sum(axis=0), rtol=1e-12)
                np.testing.assert_array_equal(sums[c, 1], (~finite[sl]).sum(axis=0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stream_kernel_equals_the_add_then_the_linear_forward_kernel(dtype):
    # The fused kernel of the residual stream (the add and the stream's statistics chunk by
    # chunk) against its two parts called one after the other, bit for bit, with a huge and a
    # non-finite value so that its wild segments are finished too; a sub-range of chunks.
    from weightinit.kernels import mlp as K

    rng = np.random.default_rng(2)
    rows, width = 200, 300  # four chunks (the last partial), two unit tiles
    h, f = (rng.standard_normal((rows, width)).astype(dtype) for _ in range(2))
    f[70, 3], f[130, 290], h[140, 5] = 1e30, np.nan, -np.inf
    bias, alpha = rng.standard_normal(width).astype(dtype), dtype(0.7)
    n_chunks = -(-rows // K.CHUNK)
    fwd_lin = K.KERNELS["linear", np.dtype(dtype).name][0]
    for moment in (False, True):
        got, want = (dict(out=np.full_like(h, 5.0), sums=np.full((n_chunks, 2, width), 7.0),
                          part=np.full((n_chunks, K.N_STATS, width), 9.0)) for _ in range(2))
        K.residual_add(h, f, bias, alpha, want["out"], want["sums"], moment, 1, n_chunks)
        fwd_lin(want["out"], np.zeros(width, dtype), alpha, -np.inf, np.inf, want["part"], 0.0,
                0.0, np.zeros((4, 0), np.int64), 1, n_chunks)
        K.STREAM[np.dtype(dtype).name](h, f, bias, alpha, got["out"], got["sums"], moment,
                                       got["part"], 1, n_chunks)
        for key in got:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
        assert got["part"][1:, K.NONFINITE].sum() == 2  # NaN and -inf; 1e30 is finite
        assert got["part"][1:, K.MAX_A].max() == want["out"][70, 3] > 1e29


def test_results_do_not_depend_on_the_thread_count():
    kw = dict(architecture="residual", activation="relu", scheme="he_normal", samples=200,
              branch_depth=2, norm="layer", backward=True)
    r32 = simulate(6, 64, **kw)
    import numba

    n = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        r1 = simulate(6, 64, **kw)
    finally:
        numba.set_num_threads(n)
    for name in ("q", "var", "branch_ratio", "grad_var", "hist"):
        np.testing.assert_array_equal(getattr(r1, name), getattr(r32, name))


def test_presets_and_user_input_untouched():
    x = np.random.default_rng(1).normal(size=(50, 32))
    copy = x.copy()
    for name, alpha in [("1/sqrt(L)", 1 / math.sqrt(9)), ("1/L", 1 / 9),
                        ("1/sqrt(2L)", 1 / math.sqrt(18)), ("1", 1.0)]:
        r = simulate(9, 32, x=x, architecture="residual", branch_scale=name, backward=True)
        assert r.branch_scale == pytest.approx(alpha, rel=1e-15)
    np.testing.assert_array_equal(x, copy)


def test_exploding_residual_reports_nonfinite():
    r = simulate(60, 32, architecture="residual", activation="relu", std=3.0, samples=16,
                 backward=True)
    assert r.nonfinite[-1] == 1.0 and r.nonfinite[0] == 0.0
    assert np.isnan(r.mean[-1])


@pytest.mark.parametrize("kwargs, match", [
    (dict(architecture="resnet"), "architecture"),
    (dict(architecture="residual", norm="batch"), "norm"),
    (dict(architecture="residual", norm="layer", norm_position="middle"), "norm_position"),
    (dict(architecture="residual", branch_depth=0), "branch_depth"),
    (dict(architecture="residual", branch_depth=3), "branch_depth"),
    (dict(architecture="residual", branch_scale=-1.0), "branch_scale"),
    (dict(architecture="residual", branch_scale=math.nan), "branch_scale"),
    (dict(architecture="residual", branch_scale=math.inf), "branch_scale"),
    (dict(architecture="residual", branch_scale="1/sqrt(depth)"), "branch_scale"),
    (dict(architecture="residual", input_dim=5), "input_dim"),
    (dict(architecture="residual", widths=[8, 9]), "widths"),
    (dict(norm="layer"), "architecture='residual'"),
    (dict(branch_depth=2), "architecture='residual'"),
    (dict(recipe="gpt2"), "architecture='residual'"),
    (dict(architecture="residual", recipe="gpt3"), "recipe"),
])
def test_bad_input(kwargs, match):
    kwargs = {"depth": None if "widths" in kwargs else 2, "width": 8, "samples": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        simulate(**kwargs)
