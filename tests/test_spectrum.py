"""Jacobian spectra: the exact singular values against an independent NumPy product, closed
forms (orthogonal linear networks, Fuss-Catalan moments), chi1^L, and simulation vs the
free-probability theory."""

import math

import numpy as np
import pytest

import weightinit as W
from weightinit import free_probability as F
from weightinit import theory as T
from weightinit.simulation import _BIAS, _WEIGHT, stream_seed


def test_orthogonal_linear_network_is_an_isometry():
    r = W.jacobian_spectrum(12, 48, activation="linear", scheme="orthogonal", samples=2)
    np.testing.assert_allclose(r.singular_values, 1.0, atol=1e-10)
    assert abs(r.mean_sq - 1.0) < 1e-10 and abs(r.var_sq) < 1e-10
    assert r.hist.sum() == 2 * 48


def test_exact_matches_an_independent_jacobian():
    depth, n, sb = 3, 8, 0.3
    x = np.linspace(-1.0, 1.5, n)[None, :]
    r = W.jacobian_spectrum(depth, n, activation="tanh", std=0.5, sigma_b=sb, x=x, seed=5)
    # Re-derive J = D3 W3^T D2 W2^T D1 W1^T from the same weight and bias streams.
    h = x[0]
    jac = np.eye(n)
    for layer in range(depth):
        w = W.normal((n, n), 0.0, 0.5, seed=stream_seed(5, layer, _WEIGHT), dtype=np.float64)
        b = W.normal(n, 0.0, sb, seed=stream_seed(5, layer, _BIAS), dtype=np.float64)
        z = h @ w + b
        jac = np.diag(1.0 - np.tanh(z) ** 2) @ w.T @ jac
        h = np.tanh(z)
    expected = np.linalg.svd(jac, compute_uv=False)
    np.testing.assert_allclose(r.singular_values[0], expected, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(r.layer_mean_sq[-1], np.sum(jac ** 2) / n, rtol=1e-10)


def test_mean_squared_singular_value_is_chi1_to_the_depth():
    # Linear Gaussian network, Var(W) = sigma_w^2 / n: E[tr(JJ^T)/n] = chi1^L exactly. Each
    # layer multiplies tr(JJ^T) by a factor of relative variance about 2 m2 / (m1^2 n^2) with
    # m2/m1^2 = l + 1 (Fuss-Catalan), so the relative std of one draw is at most about
    # sqrt(sum_l 2 (l + 1)) / n ~ (L + 1) / n; over `seeds` independent draws divide by
    # sqrt(seeds); tolerance 5 of those.
    depth, n, seeds, sw = 8, 96, 4, 1.1
    chi = T.chi1("linear", sw)
    got = np.mean([W.jacobian_spectrum(depth, n, activation="linear", std=sw / math.sqrt(n),
                                       samples=1, seed=s).mean_sq for s in range(seeds)])
    tol = 5 * (depth + 1) / n / math.sqrt(seeds)
    assert abs(got / chi ** depth - 1) < tol


def test_randomised_moments_agree_with_exact():
    # Hutchinson: Var(v^T A v) = 2 tr(A^2) for v ~ N(0, I), so the relative std of m1 over
    # P probes is sqrt(2 m2 / (n P)) / m1; tolerance 5 of those (plus the same for m2, whose
    # estimator |J^T J v|^2 has relative std ~ sqrt(2 m4/m2^2 / (n P))).
    kw = dict(activation="tanh", std=1.2 / math.sqrt(64), samples=2, seed=3)
    exact = W.jacobian_spectrum(6, 64, **kw)
    est = W.jacobian_spectrum(6, 64, method="randomised", probes=200, **kw)
    m1, m2, _, m4 = exact.moments
    p = 200 * 2
    assert abs(est.moments[0] / m1 - 1) < 5 * math.sqrt(2 * m2 / (64 * p)) / m1
    assert abs(est.moments[1] / m2 - 1) < 5 * math.sqrt(2 * m4 / (64 * p)) / m2
    assert est.singular_values is None


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_theory_linear_gaussian_gives_fuss_catalan(depth):
    th = T.jacobian_spectrum(depth, activation="linear", weights="gaussian", sigma_w=1.0,
                             n_moments=6)
    fc = [math.comb((depth + 1) * k, k) / (depth * k + 1) for k in range(1, 7)]
    np.testing.assert_allclose(th.moments, fc, rtol=1e-10)
    sw = 0.9  # moments scale as sigma_w^(2 L k)
    th = T.jacobian_spectrum(depth, activation="linear", sigma_w=sw, n_moments=6)
    np.testing.assert_allclose(th.moments, [f * sw ** (2 * depth * k)
                                            for k, f in enumerate(fc, 1)], rtol=1e-10)


def test_theory_linear_orthogonal_is_a_point_mass():
    th = T.jacobian_spectrum(7, activation="linear", weights="orthogonal", sigma_w=1.05)
    np.testing.assert_allclose(th.moments, [1.05 ** (2 * 7 * k) for k in range(1, 9)],
                               rtol=1e-10)


@pytest.mark.parametrize("activation,sw,sb", [("tanh", 1.3, 0.2), ("relu", 1.4, 0.0)])
def test_theory_mean_is_chi1_to_the_depth(activation, sw, sb):
    for weights in ("gaussian", "orthogonal"):
        th = T.jacobian_spectrum(10, activation=activation, weights=weights, sigma_w=sw,
                                 sigma_b=sb)
        assert th.mean_sq == pytest.approx(T.chi1(activation, sw, sb) ** 10, rel=1e-10)


def test_theory_variance_formula():
    # Pennington et al. 2017 eq. 16-17: (m2 - m1^2)/m1^2 = L (mu2/mu1^2 - 1 + [Gaussian]),
    # mu_k = E[phi'(h)^(2k)] by an independent Gauss-Hermite rule.
    sw, sb = F.edge_of_chaos("tanh", 0.5)
    z, w = np.polynomial.hermite_e.hermegauss(200)
    w = w / w.sum()
    d = (1 - np.tanh(math.sqrt(0.5) * z) ** 2) ** 2
    ratio = (w @ d ** 2) / (w @ d) ** 2
    for weights, extra in (("gaussian", 1.0), ("orthogonal", 0.0)):
        th = T.jacobian_spectrum(20, activation="tanh", weights=weights, sigma_w=sw, sigma_b=sb)
        assert th.var_sq / th.mean_sq ** 2 == pytest.approx(20 * (ratio - 1 + extra), rel=1e-8)


def test_simulated_moments_match_theory_at_criticality():
    # Orthogonal weights, tanh at q* = 0.5 on the critical line: m1 -> 1 and m2 from theory.
    # Finite width n: each D^l's mean square fluctuates with relative variance
    # (mu2/mu1^2 - 1)/n per input, so over L layers and S inputs the relative std of m1 is
    # about sqrt(L (mu2/mu1^2 - 1) / (n S)); tolerance 5 of those plus an O(L/n) finite-width
    # bias.
    sw, sb = F.edge_of_chaos("tanh", 0.5)
    depth, n, samples = 16, 128, 8
    th = T.jacobian_spectrum(depth, activation="tanh", weights="orthogonal", sigma_w=sw,
                             sigma_b=sb)
    r = W.jacobian_spectrum(depth, n, activation="tanh", scheme="orthogonal", gain=sw,
                            sigma_b=sb, samples=samples)
    ratio = th.var_sq / th.mean_sq ** 2 / depth + 1  # mu2/mu1^2
    tol = 5 * math.sqrt(depth * (ratio - 1) / (n * samples)) + depth / n
    assert abs(r.mean_sq / th.mean_sq - 1) < tol


def test_theory_density_one_gaussian_layer_is_marchenko_pastur():
    # L = 1 linear Gaussian: J J^T is Wishart of ratio 1, rho = sqrt(4 lam - lam^2)/(2 pi lam).
    th = T.jacobian_spectrum(1, activation="linear")
    lam = np.array([0.5, 1.0, 2.0, 3.5])
    rho, residual = th.density(lam, eta=1e-9)
    np.testing.assert_allclose(rho, np.sqrt(4 * lam - lam ** 2) / (2 * np.pi * lam), rtol=1e-6)
    assert residual < 1e-10


def test_cli_spectrum_json_and_plot(tmp_path):
    import io
    import json

    from weightinit import cli

    out = io.StringIO()
    js, png = tmp_path / "s.json", tmp_path / "s.png"
    code = cli.main(["spectrum", "--activation", "linear", "--scheme", "orthogonal", "--depth",
                     "4", "--width", "16", "--json", str(js)], stdout=out)
    assert code == 0
    data = json.loads(js.read_text())
    np.testing.assert_allclose(data["simulation"]["singular_values"], 1.0, atol=1e-10)
    assert data["theory"]["mean_sq"] == pytest.approx(1.0)
    assert "mean s^2" in out.getvalue()
    code = cli.main(["spectrum", "--depth", "2", "--width", "16", "--plot", str(png)], stdout=out)
    assert code == 0 and png.stat().st_size > 0
    assert cli.main(["spectrum", "--method", "randomised", "--plot", str(png)], stdout=out) != 0


# --------------------------------------------------------------------------- residual networks
def _residual_reference(depth, n, bd, alpha, norm, pos, sb, seed):
    """Singular values of the residual network's Jacobian by torch autograd (float64), with the
    weights, biases and inputs drawn from the same streams."""
    torch = pytest.importorskip("torch")
    from weightinit.initializers import get, normal
    from weightinit.simulation import _BIAS, _INPUT, _WEIGHT, stream_seed

    def t(a):
        return torch.tensor(a, dtype=torch.float64)

    ws = [t(get("glorot_normal")((n, n), seed=stream_seed(seed, k, _WEIGHT), dtype=np.float64,
                                 layout="keras")) for k in range(depth * bd)]
    bs = [t(normal(n, 0.0, sb, seed=stream_seed(seed, k, _BIAS), dtype=np.float64))
          for k in range(depth * bd)]

    def nrm(v):
        if norm == "layer":
            v = v - v.mean()
        return v / torch.sqrt((v * v).mean() + 1e-5)

    def f(h):
        for block in range(depth):
            x = nrm(h) if norm and pos == "pre" else h
            k = block * bd
            branch = torch.tanh(x @ ws[k] + bs[k])
            if bd == 2:
                branch = branch @ ws[k + 1] + bs[k + 1]
            h = h + alpha * branch
            if norm and pos == "post":
                h = nrm(h)
        return h

    x0 = normal((2, n), seed=stream_seed(seed, 0, _INPUT), dtype=np.float64)
    return np.array([np.linalg.svd(torch.autograd.functional.jacobian(f, t(x)).numpy(),
                                   compute_uv=False) for x in x0])


@pytest.mark.parametrize("norm, pos", [(None, "pre"), ("layer", "pre"), ("layer", "post"),
                                       ("rms", "pre"), ("rms", "post")])
@pytest.mark.parametrize("bd", [1, 2])
def test_residual_jacobian_equals_autograd(norm, pos, bd):
    r = W.jacobian_spectrum(3, 7, architecture="residual", branch_depth=bd, branch_scale=0.7,
                          norm=norm, norm_position=pos, sigma_b=0.1, samples=2, seed=1)
    want = _residual_reference(3, 7, bd, 0.7, norm, pos, 0.1, seed=1)
    np.testing.assert_allclose(r.singular_values, want, rtol=1e-12, atol=1e-13)
    assert (r.architecture, r.branch_depth, r.norm) == ("residual", bd, norm)
    assert r.layer_mean_sq.shape == (3,)


@pytest.mark.parametrize("norm, pos, tol", [(None, "pre", 0.03), ("layer", "pre", 0.08),
                                            ("layer", "post", 0.03)])
def test_residual_mean_squared_singular_value_matches_mean_field(norm, pos, tol):
    # tr(J J^T)/n against theory.propagate_residual's grad_input, width 512, 20 blocks, two
    # inputs; measured 0.8 %, 4.7 % and 0.02 % (pre-LN is the most sensitive to the two
    # inputs' own mean square in its first blocks), tolerances a bit over these
    from weightinit.theory import propagate_residual

    r = W.jacobian_spectrum(20, 512, architecture="residual", branch_depth=2, norm=norm,
                          norm_position=pos, samples=2)
    th = propagate_residual("tanh", 1.0, 0.0, r.q_input, 20, branch_depth=2, norm=norm,
                            norm_position=pos)
    assert r.mean_sq == pytest.approx(th["grad_input"], rel=tol)
    assert r.mean_field_mean_sq() == th["grad_input"]
    with pytest.raises(ValueError, match="mean_field_mean_sq"):
        r.theory()
    with pytest.raises(ValueError, match="architecture='residual'"):
        W.jacobian_spectrum(3, 8).mean_field_mean_sq()


@pytest.mark.parametrize("kw, match", [
    (dict(architecture="residual", method="randomised"), "method='exact'"),
    (dict(norm="layer"), "architecture='residual'"),
    (dict(architecture="residual", norm="batch"), "norm"),
    (dict(architecture="residual", branch_scale=-0.5), "branch_scale"),
    (dict(architecture="residual", branch_depth=0), "branch_depth"),
    (dict(architecture="transformer"), "architecture"),
])
def test_residual_bad_input(kw, match):
    with pytest.raises(ValueError, match=match):
        W.jacobian_spectrum(3, 8, **kw)


def test_cli_spectrum_residual(tmp_path):
    import io
    import json

    from weightinit import cli
    from weightinit.theory import propagate_residual

    out, js = io.StringIO(), tmp_path / "r.json"
    argv = ["spectrum", "--architecture", "residual", "--norm", "layer", "--norm-position",
            "post", "--branch-depth", "2", "--branch-scale", "1/sqrt(L)", "--depth", "4",
            "--width", "16", "--json", str(js)]
    assert cli.main(argv, stdout=out) == 0
    data = json.loads(js.read_text())
    ref = W.jacobian_spectrum(4, 16, architecture="residual", norm="layer",
                              norm_position="post", branch_depth=2, branch_scale="1/sqrt(L)")
    np.testing.assert_array_equal(data["simulation"]["singular_values"], ref.singular_values)
    want = propagate_residual("tanh", 1.0, 0.0, ref.q_input, 4, branch_scale=0.5,
                              branch_depth=2, norm="layer", norm_position="post")["grad_input"]
    assert data["mean_field_mean_sq"] == pytest.approx(want, rel=1e-12)
    assert "mean-field mean s^2" in out.getvalue() and "4 residual blocks" in out.getvalue()
    assert cli.main(["spectrum", "--norm", "rms"], stdout=out) == 2


def test_recipes_in_residual_spectra():
    # GPT-2 with one-layer branches: every branch matrix is an output projection of std
    # 0.02 / sqrt(2 L), so the spectrum equals the plain std= run bit for bit. ReZero's zero
    # gate makes J the identity. OLMo's per-layer stds enter the mean-field prediction.
    L, n = 6, 48
    kw = dict(activation="tanh", samples=2, architecture="residual", seed=3)
    a = W.jacobian_spectrum(L, n, recipe="gpt2", **kw)
    b = W.jacobian_spectrum(L, n, std=0.02 / np.sqrt(2 * L), **kw)
    np.testing.assert_array_equal(a.singular_values, b.singular_values)
    assert a.recipe == "gpt2" and a.scheme == "gpt2 recipe"
    r = W.jacobian_spectrum(L, n, recipe="rezero", branch_depth=2, **kw)
    np.testing.assert_allclose(r.singular_values, 1.0, rtol=1e-12)
    o = W.jacobian_spectrum(L, 256, recipe="olmo_mitchell", branch_depth=2, norm="layer",
                             **dict(kw, samples=4))
    assert o.branch_sigma_w.shape == (L, 2) and o.branch_sigma_w[0, 1] > o.branch_sigma_w[5, 1]
    # One draw of the weights at width 256: measured -1.9 % to +0.9 % from mean field over seeds
    # 3-5 (finite width, the same size as the 1/sqrt(width) fluctuation of tr(JJ^T)/n of a
    # six-block product); 5 % leaves room without hiding a wrong sigma_w (the scalar one of
    # block 0 would be off by 30 %).
    np.testing.assert_allclose(o.mean_sq, o.mean_field_mean_sq(), rtol=0.05)
    with pytest.raises(ValueError, match="architecture='residual'"):
        W.jacobian_spectrum(3, 8, recipe="gpt2")


def test_cli_spectrum_recipes(tmp_path):
    import io

    from weightinit import cli

    out = io.StringIO()
    common = ["--architecture", "residual", "--branch-depth", "2", "--depth", "3", "--width", "16"]
    assert cli.main(["spectrum", "--recipe", "mup", "-p", "base_width=8"] + common, stdout=out) == 0
    ref = W.jacobian_spectrum(3, 16, architecture="residual", branch_depth=2, recipe="mup",
                              base_width=8)
    text = out.getvalue()
    assert "mup recipe" in text and f"{ref.mean_field_mean_sq():.6g}" in text
    out = io.StringIO()
    assert cli.main(["spectrum", "--recipe", "fixup"] + common, stdout=out) == 0
    assert "mean-field: not available (fixup recipe gives constant" in out.getvalue()
    assert cli.main(["spectrum", "--recipe", "gpt2"], stdout=out) == 2
