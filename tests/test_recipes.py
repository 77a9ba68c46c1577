"""Recipes: each rule per role against an independent re-implementation of its paper's formula.

Expected standard deviations are written out by hand from the papers / reference files (the
numbers in the comments), never computed by ``weightinit.recipes``.
"""

import math

import numpy as np
import pytest

import weightinit.recipes as R
from weightinit.initializers import delta_orthogonal, zero_init

L, D, H = 12, 768, 3072  # GPT-2 small: 12 layers, width 768, MLP 4*768
SHAPES = {"attn_q": (D, D), "attn_k": (D, D), "attn_v": (D, D), "attn_out": (D, D),
          "mlp_in": (H, D), "mlp_out": (D, H), "embedding": (1000, D), "readout": (1000, D)}


def std_of(recipe, role, layer=0, **kw):
    kw.setdefault("n_layers", L)
    kw.setdefault("width", D)
    r = R.rule(recipe, role, layer=layer, shape=SHAPES.get(role), **kw)
    return r.std, r.truncation, r.distribution


def test_gpt2():
    # nanoGPT: 0.02, c_proj 0.02/sqrt(2*12) = 0.0040824829
    assert std_of("gpt2", "attn_q")[0] == pytest.approx(0.02)
    assert std_of("gpt2", "embedding")[:2] == (pytest.approx(0.02), None)
    assert std_of("gpt2", "attn_out")[0] == pytest.approx(0.0040824829046)
    assert std_of("gpt2", "mlp_out")[0] == pytest.approx(0.0040824829046)
    assert R.rule("gpt2", "norm").value == 1.0 and R.rule("gpt2", "bias").value == 0.0


def test_megatron():
    # scaled_init_method_normal(0.006, 24, multiplier=2): 0.006/sqrt(48) = 0.00086602540
    assert std_of("megatron", "attn_out", sigma=0.006, num_layers=24)[0] == \
        pytest.approx(0.000866025404)
    assert std_of("megatron", "mlp_out", sigma=0.02, multiplier=1.0)[0] == \
        pytest.approx(0.02 / math.sqrt(12))
    assert std_of("megatron", "mlp_in", sigma=0.006)[0] == pytest.approx(0.006)


def test_olmo_mitchell():
    # in 1/sqrt(768) = 0.036084392; attn_out at layer 3: 1/sqrt(2*768*4) = 0.012757759;
    # mlp_out (fan_in 3072) at layer 0: 1/sqrt(2*3072) = 0.012757759
    assert std_of("olmo_mitchell", "attn_q")[:2] == (pytest.approx(0.036084392), 3.0)
    assert std_of("olmo_mitchell", "attn_out", layer=3)[:2] == (pytest.approx(0.012757759), 3.0)
    assert std_of("olmo_mitchell", "mlp_out", layer=0)[0] == pytest.approx(0.012757759)
    assert std_of("olmo_mitchell", "embedding")[0] == pytest.approx(0.036084392)


def test_olmo_full_megatron():
    assert std_of("olmo_full_megatron", "attn_out")[:2] == \
        (pytest.approx(0.0040824829046), 3.0)
    assert std_of("olmo_full_megatron", "attn_q", cutoff_factor=2.5)[:2] == \
        (pytest.approx(0.02), 2.5)
    assert std_of("olmo_full_megatron", "readout")[0] == pytest.approx(0.036084392)


def test_torchtitan_depth_init_and_absolute_trap():
    # depth_init: 0.02/sqrt(2*(5+1)) = 0.0057735027; off: 0.02/sqrt(24) = 0.0040824829
    s, t, _ = std_of("torchtitan", "attn_out", layer=5)
    assert s == pytest.approx(0.0057735027)
    assert t * s == pytest.approx(2.0)  # absolute bounds -2..2 kept: 2/0.0057735 = 346 std
    assert std_of("torchtitan", "mlp_up", layer=5, depth_init=False)[0] == \
        pytest.approx(0.0040824829046)
    assert std_of("torchtitan", "mlp_gate", layer=5)[0] == pytest.approx(0.02)
    assert std_of("torchtitan", "attn_q")[1] == pytest.approx(100.0)
    assert std_of("torchtitan", "embedding")[:2] == (1.0, None)
    assert std_of("torchtitan", "readout")[:2] == (pytest.approx(0.036084392), 3.0)


def test_small_init_and_wang_init():
    # sqrt(2/(5*768)) = 0.022821773; wang 2/(12*sqrt(768)) = 0.0060140653
    assert std_of("small_init", "mlp_out")[0] == pytest.approx(0.022821773)
    assert std_of("wang_init", "attn_q")[0] == pytest.approx(0.022821773)
    assert std_of("wang_init", "mlp_out")[0] == pytest.approx(0.0060140653)


def test_mup():
    # width 1024 from base 256: m = 4; hidden 0.02/2 = 0.01, readout scaled 0.02/4 = 0.005
    kw = dict(width=1024, base_width=256)
    assert std_of("mup", "mlp_in", **kw)[0] == pytest.approx(0.01)
    assert std_of("mup", "embedding", **kw)[0] == pytest.approx(0.02)
    assert std_of("mup", "readout", **kw)[0] == 0.0
    assert std_of("mup", "readout", readout="scaled", **kw)[0] == pytest.approx(0.005)
    assert std_of("mup", "attn_q", **kw)[0] == 0.0
    assert std_of("mup", "attn_q", query_zero=False, **kw)[0] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="base_width"):
        R.rule("mup", "mlp_in", width=128, base_width=256)


def test_deepnorm():
    # decoder M=12: beta = (96)^(-1/4) = 0.31947155; xavier std (768x768) = sqrt(2/1536)
    beta = 96 ** -0.25
    assert beta == pytest.approx(0.31947155)
    assert std_of("deepnorm", "attn_v")[0] == pytest.approx(beta * math.sqrt(2 / 1536))
    assert std_of("deepnorm", "attn_q")[0] == pytest.approx(math.sqrt(2 / 1536))
    assert std_of("deepnorm", "mlp_in")[0] == pytest.approx(beta * math.sqrt(2 / (768 + 3072)))
    (ae, be), (ad, bd) = R.deepnorm_alpha_beta("encoder-decoder", n_encoder=6, n_decoder=6)
    assert ae == pytest.approx(0.81 * (6 ** 5) ** (1 / 16))
    assert be == pytest.approx(0.87 * (6 ** 5) ** (-1 / 16))
    assert (ad, bd) == (pytest.approx(18 ** 0.25), pytest.approx(72 ** -0.25))
    s = std_of("deepnorm", "attn_out", architecture="encoder-decoder", part="encoder",
               n_encoder=6, n_decoder=6)[0]
    assert s == pytest.approx(0.87 * 7776 ** (-1 / 16) * math.sqrt(2 / 1536))


def test_t_fixup():
    # decoder M=12: (108)^(-1/4) = 0.30976; embedding 768^-0.5 * that
    s = 108 ** -0.25
    assert std_of("t_fixup", "embedding")[0] == pytest.approx(s / math.sqrt(768))
    std, _, dist = std_of("t_fixup", "attn_v")
    assert dist == "uniform" and std == pytest.approx(s * math.sqrt(2 / 1536))
    assert std_of("t_fixup", "attn_q")[0] == pytest.approx(math.sqrt(2 / 1536))
    enc = std_of("t_fixup", "mlp_out", part="encoder")[0]
    assert enc == pytest.approx(0.67 * 12 ** -0.25 * math.sqrt(2 / (768 + 3072)))


def test_fixup():
    # conv (64, 64, 3, 3): fan_out 576, L = 16 branches, m = 2: sqrt(2/576) / 4
    r = R.rule("fixup", "conv", n_layers=16, shape=(64, 64, 3, 3))
    assert r.std == pytest.approx(math.sqrt(2 / 576) / 4)
    r3 = R.rule("fixup", "conv", n_layers=16, m=3, shape=(64, 64, 3, 3))
    assert r3.std == pytest.approx(math.sqrt(2 / 576) * 16 ** -0.25)
    assert R.rule("fixup", "conv_out", n_layers=16).std == 0.0
    assert R.rule("fixup", "readout", n_layers=16).std == 0.0
    assert R.rule("fixup", "residual_gate", n_layers=16).value == 1.0


@pytest.mark.parametrize("name", ["rezero", "skipinit"])
def test_rezero_skipinit(name):
    g = R.rule(name, "residual_gate")
    assert g.distribution == "constant" and g.value == 0.0
    assert R.rule(name, "attn_q").distribution == "keep"
    assert np.all(g.sample((1,)) == 0.0)


def test_zero_init_matrix_and_recipe():
    # square and wide: identity; tall (5 x 3): p = 8, H_8[i, j] / sqrt(8)
    assert np.array_equal(zero_init((3, 5)), np.eye(3, 5, dtype=np.float32))
    h = np.array([[1.0]])
    for _ in range(3):
        h = np.block([[h, h], [h, -h]])
    assert np.allclose(zero_init((5, 3), dtype=np.float64), h[:5, :3] / math.sqrt(8))
    w = zero_init((4, 4, 3, 3))
    assert np.array_equal(w[:, :, 1, 1], np.eye(4)) and np.count_nonzero(w) == 4
    assert np.array_equal(R.rule("zero_init", "mlp_in").sample((6, 4)), zero_init((6, 4)))
    assert R.rule("zero_init", "mlp_out").std == 0.0


def test_delta_orthogonal():
    w = delta_orthogonal((16, 8, 3, 3), gain=2.0, seed=3, dtype=np.float64)
    c = w[:, :, 1, 1]
    assert np.allclose(c.T @ c, 4.0 * np.eye(8), atol=1e-12)
    w[:, :, 1, 1] = 0
    assert not w.any()
    k = delta_orthogonal((3, 3, 8, 16), seed=3, layout="jax", dtype=np.float64)[1, 1]
    assert np.allclose(k @ k.T, np.eye(8), atol=1e-12)
    full = delta_orthogonal((16, 8, 3, 3), seed=3)
    assert np.array_equal(delta_orthogonal((16, 8, 3, 3), seed=3, region=(slice(2, 5),)),
                          full[2:5])
    with pytest.raises(ValueError, match="in_channels <= out_channels"):
        delta_orthogonal((4, 8, 3, 3))


@pytest.mark.parametrize("recipe,role,kw", [
    ("gpt2", "attn_out", {}), ("olmo_mitchell", "attn_q", {}),
    ("torchtitan", "readout", {}), ("t_fixup", "attn_v", {}),
])
def test_samples_have_the_rule_std(recipe, role, kw):
    """Sample std of n = 589,824 values vs the rule's exact std (truncation accounted for).

    The relative standard error of a sample std is ~1/sqrt(2n) = 9.2e-4; 5 of them = 4.6e-3.
    For a 3-std truncation the std is std*sqrt(1 - 6 phi(3)/(2 Phi(3) - 1)) = 0.98658 std.
    """
    r = R.rule(recipe, role, layer=2, n_layers=L, width=D, shape=(D, D), **kw)
    w = r.sample((D, D), seed=7, dtype=np.float64)
    expect = r.std
    if r.distribution == "truncated_normal" and r.truncation < 10:
        assert r.truncation == 3.0
        expect *= 0.98658
        assert np.abs(w).max() <= 3.0 * r.std
    assert w.std() == pytest.approx(expect, rel=5 / math.sqrt(2 * w.size))


def test_table_and_bad_input():
    t = R.table("gpt2", n_layers=12, width=768)
    assert t["attn_out"].std == pytest.approx(0.0040824829046)
    with pytest.raises(ValueError, match="recipe"):
        R.rule("gtp2", "attn_q")
    with pytest.raises(ValueError, match="role"):
        R.rule("gpt2", "attention")
    with pytest.raises(ValueError, match="n_layers"):
        R.rule("gpt2", "attn_out")
    with pytest.raises(TypeError, match="sigma"):
        R.rule("gpt2", "attn_q", sigma=0.1)
    with pytest.raises(ValueError, match="layer"):
        R.rule("gpt2", "attn_q", layer=12, n_layers=12)
    with pytest.raises(ValueError, match="shape"):
        R.rule("olmo_mitchell", "attn_q", layer=0)


def test_truncated_normal_bounds_in_std_units():
    from weightinit import describe, truncated_normal

    a = truncated_normal((64, 64), std=0.02, low=-3, high=3, bounds="std", seed=1)
    b = truncated_normal((64, 64), std=0.02, low=-0.06, high=0.06, seed=1)
    assert np.array_equal(a, b) and np.abs(a).max() <= 0.06
    assert describe((4, 4), "truncated_normal", std=0.02)["truncation_std"] == (-100.0, 100.0)
    with pytest.raises(ValueError, match="bounds"):
        truncated_normal((4,), bounds="sigma")


def test_recommend_architecture():
    from weightinit import recommend

    r = recommend("transformer", n_layers=48)
    assert (r.kind, r.scheme, r.params) == ("recipe", "gpt2", {"n_layers": 48})
    assert "0.00204" in r.reason  # 0.02/sqrt(96) = 0.0020412
    assert recommend("post_ln_transformer", n_layers=100).scheme == "deepnorm"
    assert recommend("relu").kind == "scheme"
    with pytest.raises(ValueError, match="n_layers"):
        recommend("transformer")
    with pytest.raises(ValueError, match="n_layers"):
        recommend("relu", n_layers=3)


def test_cli_describe_recipe(capsys):
    from weightinit.cli import main

    assert main(["describe", "--recipe", "gpt2", "--layers", "12", "--width", "768"]) == 0
    out = capsys.readouterr().out
    assert "attn_out: normal" in out and "std 0.00408248" in out
    assert main(["describe", "--recipe", "gpt2", "--layers", "12"]) != 0
    assert "needs `--layers` and `--width`" in capsys.readouterr().err
