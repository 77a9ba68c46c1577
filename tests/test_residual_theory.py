"""Mean-field theory of residual networks (weightinit.theory.propagate_residual and
SimulationResult.theory() for residual runs): closed forms, then the simulation against it."""

import math

import numpy as np
import pytest

import weightinit as wi
from weightinit.theory import propagate_residual

EPS = 1e-5


def test_linear_unnormalised_is_geometric():
    # h' = h + alpha h W: q' = (1 + alpha^2 sigma_w^2) q; the cotangent grows by the same factor
    a, sw, L = 0.5, 1.3, 6
    r = propagate_residual("linear", sw, 0.0, 2.0, L, branch_scale=a)
    g = 1 + a * a * sw * sw
    np.testing.assert_allclose(r["q"], 2.0 * g ** np.arange(1, L + 1), rtol=1e-12)
    np.testing.assert_allclose(r["grad_var"], g ** np.arange(L - 1, -1, -1), rtol=1e-12)
    np.testing.assert_allclose(r["branch_ratio"], a * a * sw * sw, rtol=1e-12)
    np.testing.assert_allclose(r["mean"], 0.0, atol=1e-15)


def test_two_layer_linear_branch():
    # F = (x W1 + b1) W2 + b2: E[F^2] = sw^2 (sw^2 q + sb^2) + sb^2, chi = sw^4
    sw, sb, L = 0.9, 0.3, 4
    r = propagate_residual("linear", sw, sb, 1.0, L, branch_depth=2)
    q, want = 1.0, []
    for _ in range(L):
        q = q + sw**2 * (sw**2 * q + sb**2) + sb**2
        want.append(q)
    np.testing.assert_allclose(r["q"], want, rtol=1e-12)
    np.testing.assert_allclose(r["grad_var"], (1 + sw**4) ** np.arange(L - 1, -1, -1),
                               rtol=1e-12)


def test_relu_branch_mean_enters_the_stream():
    # one ReLU layer, He weights: q_z = 2 q, mu = sqrt(q_z / 2 pi), E[F^2] = q_z / 2;
    # q' = q + 2 alpha m mu + alpha^2 q_z / 2 and m' = m + alpha mu (independent of the code)
    a, L = 0.7, 5
    r = propagate_residual("relu", math.sqrt(2), 0.0, 1.0, L, branch_scale=a)
    q, m = 1.0, 0.0
    for layer in range(L):
        qz = 2 * q
        mu = math.sqrt(qz / (2 * math.pi))
        q, m = q + 2 * a * m * mu + a * a * qz / 2, m + a * mu
        assert r["q"][layer] == pytest.approx(q, rel=1e-12)
        assert r["mean"][layer] == pytest.approx(m, rel=1e-12)
        assert r["branch_q"][layer] == pytest.approx(qz, rel=1e-12)
    np.testing.assert_allclose(r["var"], r["q"] - r["mean"] ** 2)


def test_pre_norm_grows_linearly_and_post_norm_is_fixed():
    L = 100
    pre = propagate_residual("linear", 1.0, 0.0, 1.0, L, norm="layer", norm_position="pre")
    # every branch sees a unit input: q_l = 1 + l (1 - eps/(q + eps) corrections)
    np.testing.assert_allclose(pre["q"], 1.0 + np.arange(1, L + 1), rtol=1e-4)
    # the branch/skip ratio falls as 1/l
    np.testing.assert_allclose(pre["branch_ratio"], 1.0 / np.arange(1, L + 1), rtol=1e-4)
    for norm in ("layer", "rms"):
        post = propagate_residual("tanh", 1.0, 0.0, 1.0, L, norm=norm, norm_position="post")
        np.testing.assert_allclose(post["q"], 1.0, rtol=1e-4)
        # the same ratio at every depth after the first block
        assert np.ptp(post["branch_ratio"][1:]) < 1e-9
    # post-LN backward: each block multiplies r by (1 + chi) / (q_u + eps), q_u = 1 + E[F^2]
    post = propagate_residual("linear", 1.0, 0.0, 1.0, 3, norm="layer", norm_position="post")
    qu = 1.0 / (1.0 + EPS) + 1.0 / (1.0 + EPS)
    assert post["grad_var"][0] == pytest.approx(((1 + 1 / (1 + EPS)) / (qu + EPS)) ** 2,
                                                rel=1e-9)


def test_rms_keeps_the_mean_layer_norm_removes_it():
    kw = dict(norm_position="post", branch_scale=1.0)
    rms = propagate_residual("relu", 1.4, 0.0, 1.0, 5, norm="rms", **kw)
    ln = propagate_residual("relu", 1.4, 0.0, 1.0, 5, norm="layer", **kw)
    assert np.all(rms["mean"] > 0.1)
    np.testing.assert_array_equal(ln["mean"], 0.0)
    np.testing.assert_allclose(ln["var"], ln["q"])


def test_exploding_prediction_is_inf_not_an_error():
    r = propagate_residual("linear", 1e60, 0.0, 1.0, 8)
    assert np.isinf(r["q"][-1]) and np.all(np.isfinite(r["q"][:2]))


@pytest.mark.parametrize("kw, match", [
    (dict(branch_depth=3), "branch_depth"), (dict(norm="batch"), "norm"),
    (dict(norm_position="middle"), "norm_position"), (dict(branch_scale=-1.0), "branch_scale"),
    (dict(branch_scale=math.nan), "branch_scale"), (dict(sigma_w=[1.0, 1.0]), "sigma_w"),
    (dict(q_input=0.0), "q_input"), (dict(activation="swishy"), "activation"),
])
def test_bad_input(kw, match):
    args = dict(activation="tanh", sigma_w=1.0, sigma_b=0.0, q_input=1.0, blocks=4)
    args.update(kw)
    with pytest.raises(ValueError, match=match):
        propagate_residual(**args)


# --------------------------------------------------------------------------- simulation vs theory
# Width 1024, 256 samples, 20 blocks. The tolerances are the 2 % for the stream's q and
# 3 % / 4 % for the branch/skip ratio and the backward second moment. Sampling error is far below
# them (each block's q averages 256 x 1024 values, relative standard error about
# sqrt(2 / 262144) = 0.3 % for independent Gaussians); what remains is the O(1/sqrt(width))
# finite-width deviation of one weight draw, measured at 0.2-0.8 % for q, up to 1.5 % for the ratio
# and up to 3.2 % for the gradient (post-norm, branch_scale 1) with this seed. ReLU branches
# without mean removal are left out here: their samples collapse onto a common direction and
# the deviation grows with depth (docs/simulation.md, finite width).
CASES = [("tanh", n, p, bd, bs) for n, p in ((None, "pre"), ("layer", "pre"), ("layer", "post"),
                                             ("rms", "pre"), ("rms", "post"))
         for bd in (1, 2) for bs in (1.0, "1/sqrt(L)")]
CASES += [("relu", "layer", "pre", 1, 1.0), ("relu", "layer", "pre", 1, "1/sqrt(L)"),
          ("relu", "layer", "post", 1, 1.0)]


@pytest.mark.parametrize("act, norm, pos, bd, bs", CASES)
def test_simulation_matches_theory_at_width_1024(act, norm, pos, bd, bs):
    r = wi.simulate(20, 1024, activation=act, samples=256, seed=3, backward=True,
                    scheme="he_normal" if act == "relu" else "glorot_normal",
                    architecture="residual", branch_depth=bd, branch_scale=bs, norm=norm,
                    norm_position=pos)
    th = r.theory()
    np.testing.assert_allclose(th["q"], r.q, rtol=0.02)
    np.testing.assert_array_equal(th["q_sim"], r.q)
    np.testing.assert_allclose(th["branch_ratio"], r.branch_ratio, rtol=0.03)
    np.testing.assert_allclose(th["grad_var"], r.grad_var, rtol=0.04)
    assert th["grad_var"][-1] == r.grad_var[-1]  # scaled to the simulated cotangent


def test_theory_of_a_forward_only_run_has_unit_cotangent():
    r = wi.simulate(4, 64, samples=64, architecture="residual", norm="layer")
    th = r.theory()
    assert th["grad_var"][-1] == 1.0 and r.grad_var is None
    assert set(th) >= {"q", "mean", "var", "branch_q", "branch_ratio", "grad_var", "q_sim"}


def test_theory_refuses_constant_weights_of_a_residual_run():
    r = wi.simulate(3, 32, samples=32, architecture="residual", scheme="constant", value=0.01)
    with pytest.raises(ValueError, match="constant"):
        r.theory()


@pytest.mark.slow
@pytest.mark.parametrize("norm, pos", [(None, "pre"), ("layer", "pre"), ("layer", "post")])
def test_simulation_matches_theory_over_100_blocks(norm, pos):
    # the figure's setting (docs/simulation.md): 100 blocks, width 1024, tanh, two-layer branch
    r = wi.simulate(100, 1024, activation="tanh", samples=512, seed=0, backward=True,
                    architecture="residual", branch_depth=2, branch_scale=1.0, norm=norm,
                    norm_position=pos)
    th = r.theory()
    np.testing.assert_allclose(th["q"], r.q, rtol=0.02)
    np.testing.assert_allclose(th["grad_var"], r.grad_var, rtol=0.06)


def test_per_branch_layer_sigma_w():
    # One sigma_w per block and branch layer (a recipe's smaller output projection). Linear
    # branches without norm: q_{l+1} = q_l (1 + alpha^2 s1^2 s2^2), so the product is what counts.
    from weightinit.residual_theory import propagate_residual

    sw = np.array([[1.0, 0.5], [2.0, 0.1], [0.3, 3.0]])
    r = propagate_residual("linear", sw, 0.0, 1.0, 3, branch_depth=2, branch_scale=0.7)
    expect = np.cumprod(1.0 + 0.49 * (sw[:, 0] * sw[:, 1]) ** 2)
    np.testing.assert_allclose(r["q"], expect, rtol=1e-12)
    np.testing.assert_allclose(r["branch_q"], [1.0, expect[0] * 4.0, expect[1] * 0.09],
                               rtol=1e-12)
    same = propagate_residual("tanh", np.full((3, 2), 1.3), 0.1, 1.0, 3, branch_depth=2,
                              norm="layer")
    one = propagate_residual("tanh", 1.3, 0.1, 1.0, 3, branch_depth=2, norm="layer")
    for k in ("q", "branch_ratio", "grad_var"):
        np.testing.assert_allclose(same[k], one[k], rtol=1e-14)
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        propagate_residual("tanh", np.ones((3, 1)), 0.0, 1.0, 3, branch_depth=2)
