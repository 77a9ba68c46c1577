"""Role inference on real torch modules and recipes applied to them.

Expected std per role are hand-written from the papers (GPT-2: 0.02, c_proj 0.02/sqrt(2L)).
"""

import math

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import weightinit.torch as wt  # noqa: E402


class Block(nn.Module):  # nanoGPT naming
    def __init__(self, d):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = nn.Module()
        self.attn.c_attn = nn.Linear(d, 3 * d)
        self.attn.c_proj = nn.Linear(d, d)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(d, 4 * d)
        self.mlp.c_proj = nn.Linear(4 * d, d)


class GPT(nn.Module):
    def __init__(self, d=256, n=4, vocab=512):
        super().__init__()
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(vocab, d)
        self.transformer.wpe = nn.Embedding(64, d)
        self.transformer.h = nn.ModuleList(Block(d) for _ in range(n))
        self.transformer.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied


def test_nanogpt_roles():
    r = wt.roles(GPT())
    assert r["transformer.h.2.attn.c_attn.weight"] == wt.Role("attn_qkv", 2, ())
    assert r["transformer.h.2.attn.c_proj.weight"].role == "attn_out"
    assert r["transformer.h.1.mlp.c_fc.weight"].role == "mlp_in"
    assert r["transformer.h.1.mlp.c_proj.weight"].role == "mlp_out"
    assert r["transformer.h.1.mlp.c_proj.bias"].role == "bias"
    assert r["transformer.ln_f.weight"].role == "norm"
    assert r["transformer.wte.weight"] == wt.Role("embedding", None, ("lm_head.weight",))
    assert all(v.role is not None for v in r.values())


def test_llama_and_torch_transformer_roles():
    m = nn.Module()
    m.layers = nn.ModuleList([nn.Module()])
    a = m.layers[0]
    a.self_attn = nn.Module()
    for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
        setattr(a.self_attn, n, nn.Linear(8, 8, bias=False))
    a.mlp = nn.Module()
    a.mlp.gate_proj, a.mlp.up_proj = nn.Linear(8, 16), nn.Linear(8, 16)
    a.mlp.down_proj = nn.Linear(16, 8)
    m.lm_head = nn.Linear(8, 10)
    r = wt.roles(m)
    got = {k: v.role for k, v in r.items() if k.endswith("weight")}
    assert got == {"layers.0.self_attn.q_proj.weight": "attn_q",
                   "layers.0.self_attn.k_proj.weight": "attn_k",
                   "layers.0.self_attn.v_proj.weight": "attn_v",
                   "layers.0.self_attn.o_proj.weight": "attn_out",
                   "layers.0.mlp.gate_proj.weight": "mlp_gate",
                   "layers.0.mlp.up_proj.weight": "mlp_up",
                   "layers.0.mlp.down_proj.weight": "mlp_out", "lm_head.weight": "readout"}
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, 32), 2, enable_nested_tensor=False)
    r = {k: v.role for k, v in wt.roles(enc).items()}
    assert r["layers.1.self_attn.in_proj_weight"] == "attn_qkv"
    assert r["layers.1.self_attn.in_proj_bias"] == "bias"
    assert r["layers.1.self_attn.out_proj.weight"] == "attn_out"
    assert r["layers.1.linear1.weight"] == "mlp_in" and r["layers.1.linear2.weight"] == "mlp_out"
    assert r["layers.1.norm2.weight"] == "norm"


def test_unknown_listed_and_overrides():
    m = nn.Module()
    m.mystery = nn.Linear(4, 4)
    with pytest.raises(ValueError, match="mystery.weight"):
        wt.apply_recipe_(m, "gpt2", n_layers=1)
    assert wt.roles(m, roles={"mystery.weight": "mlp_in"})["mystery.weight"].role == "mlp_in"
    with pytest.raises(ValueError, match="matches no parameter"):
        wt.roles(m, roles={"nothing.*": "mlp_in"})
    with pytest.raises(ValueError, match="roles"):
        wt.roles(m, roles={"mystery.weight": "attention"})


def test_gpt2_recipe_on_nanogpt():
    """n = 256 x 256 = 65,536 values per attn_out: relative SE of the std 1/sqrt(2n) = 2.8e-3,
    tolerance 5 SE = 1.4e-2 (mlp_in: 262,144 values, same tolerance is looser)."""
    torch.manual_seed(0)
    m = wt.apply_recipe_(GPT(), "gpt2", seed=1)
    h = m.transformer.h
    tol = 5 / math.sqrt(2 * 256 * 256)
    assert h[3].attn.c_proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(8), rel=tol)
    assert h[0].mlp.c_proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(8), rel=tol)
    assert h[0].mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=tol)
    assert m.transformer.wte.weight.std().item() == pytest.approx(0.02, rel=tol)
    assert torch.all(h[0].mlp.c_fc.bias == 0) and torch.all(h[0].ln_1.weight == 1)
    again = wt.apply_recipe_(GPT(), "gpt2", seed=1)
    assert torch.equal(again.transformer.h[2].attn.c_attn.weight, h[2].attn.c_attn.weight)


def test_mup_query_zero_on_packed_qkv():
    m = wt.apply_recipe_(GPT(d=256), "mup", seed=0, base_width=64)
    w = m.transformer.h[0].attn.c_attn.weight
    assert torch.all(w[:256] == 0)  # query block zero
    # hidden std 0.02/sqrt(256/64) = 0.01; 65,536 values: 5 SE = 1.4e-2 relative
    assert w[256:512].std().item() == pytest.approx(0.01, rel=5 / math.sqrt(2 * 256 * 256))


def test_init_module_recipe_is_apply_recipe():
    a = wt.init_module_(GPT(d=64, n=2), recipe="megatron", seed=3, sigma=0.01)
    b = wt.apply_recipe_(GPT(d=64, n=2), "megatron", seed=3, sigma=0.01)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), n
    with pytest.raises(ValueError, match="recipe"):
        wt.init_module_(GPT(d=64, n=2), recipe="gpt3", seed=0)
    with pytest.raises(ValueError, match="not both"):
        wt.init_module_(GPT(d=64, n=2), "he_normal", recipe="gpt2", seed=0)


def test_mup_param_groups_table3():
    m = GPT(d=256, n=2)
    m.lm_head = nn.Linear(256, 512, bias=False)  # untied readout
    groups = {tuple(g["names"])[0]: g["lr"] for g in wt.mup_param_groups(m, 0.1, 64)}
    # m = 256/64 = 4. Adam: vector-like 0.1, hidden 0.1/4, readout 0.1/4
    assert groups["transformer.wte.weight"] == pytest.approx(0.1)
    assert groups["transformer.h.0.attn.c_attn.weight"] == pytest.approx(0.025)
    assert groups["lm_head.weight"] == pytest.approx(0.025)
    sgd = {tuple(g["names"])[0]: g["lr"]
           for g in wt.mup_param_groups(m, 0.1, 64, optimizer="sgd")}
    # SGD: vector-like 0.1*4, hidden 0.1, readout 0.1/4
    assert sgd["transformer.wte.weight"] == pytest.approx(0.4)
    assert sgd["transformer.h.0.attn.c_attn.weight"] == pytest.approx(0.1)
    assert sgd["lm_head.weight"] == pytest.approx(0.025)
    with pytest.raises(ValueError, match="base_width"):
        wt.mup_param_groups(m, 0.1, 512)


def test_coord_check_records_every_module_step_width():
    from weightinit.doc_figures.recipes import TinyGPT

    x = torch.randint(0, 128, (2, 8))
    rec = wt.coord_check(lambda w: TinyGPT(w, n_layers=1), [32, 64], (x, x), steps=2)
    keys = {(r["width"], r["module"], r["step"]) for r in rec}
    assert (64, "lm_head", 1) in keys and (32, "transformer.h.0.mlp.c_fc", 0) in keys
    # step 0 is the forward pass at init: lm_head output mean |x| of default init equals a
    # direct forward pass
    torch.manual_seed(0)
    model = TinyGPT(32, n_layers=1)
    torch.manual_seed(0)
    rec = wt.coord_check(lambda w: TinyGPT(w, n_layers=1), [32], (x, x), steps=1)
    direct = model(x).abs().mean().item()
    got = [r["l1"] for r in rec if r["module"] == "lm_head" and r["step"] == 0][0]
    assert got == pytest.approx(direct, rel=1e-6)


def test_loose_names_are_reported_not_guessed():
    """Only whole, known module names give a role: 'enorm_proj' is not a norm, a module 'q'
    outside an attention block is not a query, 'q_bias_scale' is not a bias."""
    m = nn.Module()
    m.enorm_proj = nn.Linear(4, 4, bias=False)
    m.q = nn.Linear(4, 4, bias=False)
    m.attn = nn.Module()
    m.attn.q = nn.Linear(4, 4, bias=False)
    m.attn.o = nn.Linear(4, 4, bias=False)
    m.final_layer_norm = nn.Module()
    m.final_layer_norm.weight = nn.Parameter(torch.ones(4))
    m.q_bias_scale = nn.Parameter(torch.ones(4))
    found = {n: r.role for n, r in wt.roles(m).items()}
    assert found == {"enorm_proj.weight": None, "q.weight": None, "attn.q.weight": "attn_q",
                     "attn.o.weight": "attn_out", "final_layer_norm.weight": "norm",
                     "q_bias_scale": None}
