"""Recipes on Flax parameter pytrees: weightinit.jax.roles and recipe_init (linen and NNX).

Expected std per role written out from the GPT-2 paper's rule (Radford et al. 2019; nanoGPT
``model.py``): N(0, 0.02) everywhere, residual output projections 0.02 / sqrt(2 L), biases 0,
norm scales 1, independent of the code under test. A sample std of n normal values has
relative standard error ~ 1/sqrt(2 n); the tests allow 5 of them.
"""

import math

import numpy as np
import pytest

jax = pytest.importorskip("jax")
nn = pytest.importorskip("flax.linen")
import jax.numpy as jnp  # noqa: E402

import weightinit as W  # noqa: E402
import weightinit.jax as wj  # noqa: E402
from weightinit._names import parameter_seed  # noqa: E402

D, L, V = 64, 3, 96


class Attn(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(D, name="c_proj")(nn.Dense(3 * D, name="c_attn")(x)[..., :D])


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.gelu(nn.Dense(4 * D, name="c_fc")(x))
        return nn.Dense(D, name="c_proj")(h) + nn.Dense(D, name="gate_out")(x)


class Block(nn.Module):  # nanoGPT-JAX naming, and one unknown name (gate_out)
    @nn.compact
    def __call__(self, x):
        x = x + Attn(name="attn")(nn.LayerNorm(name="ln_1")(x))
        return x + MLP(name="mlp")(nn.LayerNorm(name="ln_2")(x))


class GPT(nn.Module):
    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(V, D, name="wte")(tokens)
        for i in range(L):
            x = Block(name=f"h_{i}")(x)
        return nn.Dense(V, use_bias=False, name="lm_head")(nn.LayerNorm(name="ln_f")(x))




def params():
    return GPT().init(jax.random.key(0), jnp.zeros((1, 4), jnp.int32))


def rel_tol(n):
    return 5.0 / math.sqrt(2 * n)


def test_roles_from_flax_paths():
    found = wj.roles(params())
    assert found["params/wte/embedding"].role == "embedding"
    assert found["params/h_1/attn/c_attn/kernel"] == ("attn_qkv", 1, ())
    assert found["params/h_2/attn/c_proj/kernel"].role == "attn_out"
    assert found["params/h_0/mlp/c_fc/kernel"].role == "mlp_in"
    assert found["params/h_0/ln_2/scale"].role == "norm"
    assert found["params/h_0/ln_2/bias"].role == "bias"
    assert found["params/lm_head/kernel"].role == "readout"
    assert found["params/h_1/mlp/c_proj/kernel"].role == "mlp_out"
    assert found["params/h_0/mlp/gate_out/kernel"].role is None  # not a known name: not guessed
    over = wj.roles(params(), roles={"*/gate_out/kernel": "mlp_out"})
    assert over["params/h_0/mlp/gate_out/kernel"].role == "mlp_out"
    with pytest.raises(ValueError, match="matches no parameter"):
        wj.roles(params(), roles={"nothing/*": "mlp_out"})
    with pytest.raises(ValueError, match="roles"):
        wj.roles(params(), roles={"*": "not_a_role"})


def test_gpt2_recipe_std_per_role_and_seeds():
    with pytest.raises(ValueError, match="gate_out"):
        wj.recipe_init(params(), "gpt2", seed=0)
    p = wj.recipe_init(params(), "gpt2", seed=0, roles={"*/gate_out/kernel": "mlp_out"})
    flat = {"/".join(str(k.key) for k in path): np.asarray(v)
            for path, v in jax.tree_util.tree_flatten_with_path(p)[0]}
    assert all(isinstance(v, jax.Array) for v in jax.tree_util.tree_leaves(p))
    resid = 0.02 / math.sqrt(2 * L)
    for name, v in flat.items():
        if name.endswith("bias"):
            np.testing.assert_array_equal(v, 0.0)
        elif name.endswith("scale"):
            np.testing.assert_array_equal(v, 1.0)
        else:
            want = resid if "c_proj" in name or "gate_out" in name else 0.02
            assert v.std() == pytest.approx(want, rel=rel_tol(v.size)), name
    # the packed qkv kernel (in, 3E): three column blocks, seeds path#q, #k, #v
    k = flat["params/h_1/attn/c_attn/kernel"]
    for b, q in enumerate("qkv"):
        block = W.init((D, D), "normal", std=0.02, layout="jax",
                       seed=parameter_seed(0, f"params/h_1/attn/c_attn/kernel#{q}"))
        np.testing.assert_array_equal(k[:, b * D:(b + 1) * D], block)
    w = W.init((D, 4 * D), "normal", std=0.02, seed=parameter_seed(0, "params/h_0/mlp/c_fc/kernel"),
               layout="jax")
    np.testing.assert_array_equal(flat["params/h_0/mlp/c_fc/kernel"], w)


def test_fans_follow_the_flax_kernel_layout():
    """olmo_mitchell: std 1/sqrt(d_in) for an input projection; a Flax kernel (in, out) has
    d_in = shape[0]."""
    p = {"params": {"h_0": {"c_fc": {"kernel": jnp.zeros((64, 1024))}},
                    "wte": {"embedding": jnp.zeros((96, 64))}}}
    out = wj.recipe_init(p, "olmo_mitchell", seed=1)
    v = np.asarray(out["params"]["h_0"]["c_fc"]["kernel"])
    # truncated at 3 sigma: the std of N(0, s^2) cut at +-3s is s * 0.98658
    assert v.std() == pytest.approx(0.98658 / math.sqrt(64), rel=rel_tol(v.size))
    assert np.abs(v).max() <= 3 / math.sqrt(64)


def test_nnx_state_round_trip_and_bad_input():
    nnx = pytest.importorskip("flax.nnx")

    class Tiny(nnx.Module):
        def __init__(self, rngs):
            self.wte = nnx.Embed(V, D, rngs=rngs)
            self.lm_head = nnx.Linear(D, V, use_bias=False, rngs=rngs)
            self.ln_f = nnx.LayerNorm(D, rngs=rngs)

    model = Tiny(nnx.Rngs(0))
    new = wj.recipe_init(nnx.state(model, nnx.Param), "gpt2", seed=3)
    nnx.update(model, new)
    assert float(jnp.std(model.lm_head.kernel[...])) == pytest.approx(
        0.02, rel=rel_tol(D * V))
    np.testing.assert_array_equal(np.asarray(model.ln_f.scale[...]), 1.0)
    with pytest.raises(TypeError, match="pytree of arrays"):
        wj.recipe_init({"a": "text"}, "gpt2")
    with pytest.raises(ValueError, match="recipe"):
        wj.recipe_init(params(), "gpt3")
