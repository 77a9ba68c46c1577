"""Every parameter covered (MultiheadAttention, transformer layers, norms, Bilinear, PReLU),
uncovered ones reported, and weightinit.torch.materialize_ from the meta device: bitwise equal to
init_module_ of the same model built normally (the sharded cases are in test_distributed.py)."""

import math
import os
import sys
import warnings

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import weightinit as W  # noqa: E402
import weightinit.torch as wt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    bad = [k for k in sa if sa[k].dtype != sb[k].dtype or not torch.equal(sa[k], sb[k])]
    assert not bad, bad


def on_meta(build):
    with torch.device("meta"):
        return build()


def encoder():
    layer = nn.TransformerEncoderLayer(16, 4, 40, dropout=0.0, activation="gelu",
                                       batch_first=True)
    return nn.TransformerEncoder(layer, 3, enable_nested_tensor=False)


# ----------------------------------------------------------------------------- coverage
def test_transformer_encoder_every_parameter_covered_without_warning():
    model = encoder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wt.init_module_(model, seed=0)
    plan = wt.module_plan(model, seed=0)
    assert all(st.covered for st in plan)
    assert {st.name for st in plan} == {n for n, _ in model.named_parameters()}
    steps = [st for st in plan if st.name == "layers.1.self_attn.in_proj_weight"]
    # three (E, E) blocks q, k, v, each with fans (E, E) and its own seed
    assert [st.rows for st in steps] == [(0, 16), (16, 32), (32, 48)]
    assert all(st.fans == (16.0, 16.0) and st.shape == (16, 16) for st in steps)
    assert len({st.seed for st in steps}) == 3
    assert steps[0].seed == wt.parameter_seed(0, "layers.1.self_attn.in_proj_weight#q")
    # Glorot uniform per block: bound sqrt(6 / (E + E)), std = bound / sqrt(3)
    assert steps[0].std == pytest.approx(math.sqrt(6 / 32) / math.sqrt(3))
    w = model.layers[1].self_attn.in_proj_weight.detach()
    for k, q in enumerate("qkv"):
        block = W.init((16, 16), "glorot_uniform", seed=wt.parameter_seed(
            0, f"layers.1.self_attn.in_proj_weight#{q}"), layout="torch")
        assert torch.equal(w[16 * k:16 * (k + 1)], torch.from_numpy(block))
    by = {st.name: st for st in plan}
    assert by["layers.0.linear1.weight"].activation == ("gelu", None)
    assert by["layers.0.linear2.weight"].activation == ("linear", None)
    assert by["layers.0.self_attn.out_proj.weight"].activation == ("linear", None)
    assert by["layers.0.self_attn.in_proj_bias"].scheme == "constant"
    assert torch.equal(model.layers[2].norm2.weight, torch.ones(16))
    assert torch.equal(model.layers[2].norm2.bias, torch.zeros(16))


def test_separate_qkv_weights_bias_kv_bilinear_prelu_and_norms():
    mha = nn.MultiheadAttention(8, 2, kdim=6, vdim=5, add_bias_kv=True)
    plan = {st.name: st for st in wt.module_plan(mha, seed=1)}
    assert plan["k_proj_weight"].fans == (6.0, 8.0)
    assert plan["v_proj_weight"].fans == (5.0, 8.0)
    assert plan["bias_k"].scheme == "normal" and plan["bias_k"].std == pytest.approx(8 ** -0.5)
    bil = nn.Bilinear(3, 4, 5)
    assert wt.layer_fans(bil) == (12.0, 5.0)
    assert wt.module_plan(bil, seed=0)[0].fans == (12.0, 5.0)
    net = nn.Sequential(nn.Linear(4, 6), nn.PReLU(init=0.1), nn.GroupNorm(2, 6),
                        nn.BatchNorm1d(6), nn.RMSNorm(6), nn.Linear(6, 2))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(7.0)
    wt.init_module_(net, seed=0)
    assert torch.equal(net[1].weight, torch.full((1,), 0.1))
    for norm in net[2:5]:
        assert torch.equal(norm.weight, torch.ones(6))
    assert torch.equal(net[2].bias, torch.zeros(6))
    # the PReLU slope 0.1 chooses He with leaky slope 0.1 for the first Linear
    assert wt.module_plan(net, seed=0)[0].activation == ("prelu", pytest.approx(0.1))


class Gated(nn.Module):
    """A custom module with a parameter no rule covers (and no reset_parameters)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)
        self.alpha = nn.Parameter(torch.full((3,), 0.5))


def test_uncovered_parameter_warns_or_raises_with_its_name():
    model = Gated()
    with pytest.warns(UserWarning, match=r"\['alpha'\]"):
        wt.init_module_(model, seed=0)
    assert torch.equal(model.alpha, torch.full((3,), 0.5))  # left as it is
    before = model.proj.weight.clone()
    with pytest.raises(ValueError, match="alpha.*strict"):
        wt.init_module_(model, seed=1, strict=True)
    assert torch.equal(model.proj.weight, before)  # nothing modified before the error
    plan = wt.module_plan(model, seed=0)
    assert [st.name for st in plan if st.scheme is None] == ["alpha"]
    assert plan[0].name == "alpha" and plan[0].fans is None and plan[0].std is None


# ----------------------------------------------------------------------------- materialize_
@pytest.mark.parametrize("build", [
    lambda: models.Llama(vocab=50, dim=32, hidden=40),
    lambda: nn.Transformer(16, 2, 2, 1, 24, dropout=0.0, batch_first=True),
    encoder,
    lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(64, 8), nn.LSTM(8, 6)),
], ids=["llama", "transformer", "encoder", "conv-bn-lstm"])
def test_materialize_equals_init_module_of_the_normal_model(build):
    plain = wt.init_module_(build(), seed=3, activation="relu")
    model = wt.materialize_(on_meta(build), "cpu", seed=3, activation="relu")
    same_state(model, plain)
    assert all(t.device.type == "cpu" for t in model.state_dict().values())


def test_materialize_with_a_recipe_and_half_precision():
    plain = wt.init_module_(models.llama(), seed=4, recipe="gpt2")
    same_state(wt.materialize_(on_meta(models.Llama), seed=4, recipe="gpt2"), plain)
    plain = wt.init_module_(models.llama().to(torch.bfloat16), seed=4)
    meta = on_meta(lambda: models.Llama().to(torch.bfloat16))
    same_state(wt.materialize_(meta, seed=4), plain)


def test_materialize_keeps_ties_and_batchnorm_buffers():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4, padding_idx=0)
            self.bn = nn.BatchNorm1d(4)
            self.head = nn.Linear(4, 10, bias=False)
            self.head.weight = self.emb.weight

    model = wt.materialize_(on_meta(Tied), seed=1)
    assert model.head.weight is model.emb.weight
    assert torch.equal(model.emb.weight[0], torch.zeros(4))
    assert torch.equal(model.bn.running_var, torch.ones(4))
    assert torch.equal(model.bn.running_mean, torch.zeros(4))
    assert model.bn.num_batches_tracked.item() == 0
    same_state(model, wt.init_module_(Tied(), seed=1))


class Rotary(nn.Module):
    """A computed buffer (a rotary table) with no reset method."""

    def __init__(self, dim=8, n=16):
        super().__init__()
        self.lin = nn.Linear(dim, dim)
        self.register_buffer("inv_freq", self.table(dim), persistent=False)

    @staticmethod
    def table(dim):
        return 1.0 / 10000 ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim)


def test_materialize_computed_buffers_need_a_rule():
    with pytest.raises(ValueError, match=r"inv_freq.*buffers="):
        wt.materialize_(on_meta(Rotary), seed=0)
    model = wt.materialize_(on_meta(Rotary), seed=0,
                            buffers={"*inv_freq": lambda m: Rotary.table(8)})
    assert torch.equal(model.inv_freq, Rotary.table(8))
    model = wt.materialize_(on_meta(Rotary), seed=0, buffers={"inv_freq": 0.5})
    assert torch.equal(model.inv_freq, torch.full((4,), 0.5))


def test_materialize_uncovered_parameters_use_reset_parameters_or_fail():
    class WithReset(Gated):
        def reset_parameters(self):
            nn.init.constant_(self.alpha, 2.0)

    with pytest.warns(UserWarning, match="alpha.*reset_parameters"):
        model = wt.materialize_(on_meta(WithReset), seed=0)
    assert torch.equal(model.alpha, torch.full((3,), 2.0))
    with pytest.warns(UserWarning, match="alpha"):
        same_state(model.proj, wt.init_module_(WithReset(), seed=0).proj)
    with pytest.raises(ValueError, match="alpha.*strict"):
        wt.materialize_(on_meta(WithReset), seed=0, strict=True)
    meta = on_meta(Gated)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="parameter alpha.*no reset_parameters"):
            wt.materialize_(meta, seed=0)
    assert all(p.is_meta for p in meta.parameters())  # checked before allocating anything


def test_materialize_bad_input():
    with pytest.raises(ValueError, match="meta"):
        wt.materialize_(on_meta(models.Llama), device="meta")
    with pytest.raises(ValueError, match="device"):
        wt.materialize_(on_meta(models.Llama), device="nowhere")
    with pytest.raises(TypeError, match="buffers"):
        wt.materialize_(on_meta(models.Llama), buffers=[1])
    with pytest.raises(TypeError, match="nn.Module"):
        wt.materialize_([1])
    with pytest.raises(ValueError, match="scheme.*recipe"):
        wt.materialize_(on_meta(models.Llama), scheme="he_normal", recipe="gpt2")
    with pytest.raises(ValueError, match="materialize_"):  # init_ on meta points the way
        wt.init_(torch.empty(3, 3, device="meta"), "he_normal", seed=0)


def test_half_precision_large_tensor_filled_in_chunks(monkeypatch):
    """Tensors written through a host buffer are filled in row blocks of <= _CHUNK elements,
    with the values of the whole tensor."""
    monkeypatch.setattr(wt, "_CHUNK", 64)
    t = torch.empty(37, 9, dtype=torch.bfloat16)
    wt.init_(t, "he_normal", seed=5)
    ref = torch.from_numpy(W.init((37, 9), "he_normal", seed=5, layout="torch"))
    assert torch.equal(t, ref.to(torch.bfloat16))
