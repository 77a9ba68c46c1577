"""Figures of docs/recipes.md: muP coordinate check on a small GPT (standard vs muP), std with depth.

``weightinit figures`` writes ``recipes_coord_check.png`` and ``recipes_depth.png`` and the numbers
quoted in the docs (``numbers.json``, key ``recipes``).
"""

import torch
from torch import nn

from .. import torch as wt


class _Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.Module()
        self.attn.c_attn, self.attn.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Module()
        self.mlp.c_fc, self.mlp.c_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.mlp.act = nn.GELU()

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn.c_proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp.c_proj(self.mlp.act(self.mlp.c_fc(self.ln_2(x))))


class TinyGPT(nn.Module):
    """nanoGPT-shaped pre-LN GPT (untied readout) for the coordinate check."""

    def __init__(self, width, n_layers=2, vocab=128, context=32, head_dim=16):
        super().__init__()
        self.transformer = nn.Module()
        self.transformer.wte = nn.Embedding(vocab, width)
        self.transformer.wpe = nn.Embedding(context, width)
        self.transformer.h = nn.ModuleList(_Block(width, width // head_dim)
                                           for _ in range(n_layers))
        self.transformer.ln_f = nn.LayerNorm(width)
        self.lm_head = nn.Linear(width, vocab, bias=False)

    def forward(self, idx):
        pos = torch.arange(idx.shape[1])
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def coord_data(widths=(64, 128, 256, 512), base_width=64, steps=4, lr=1e-2, seed=0):
    """(standard, mup) coord-check records for TinyGPT: standard = ``gpt2`` recipe and one Adam
    learning rate; muP = ``mup`` recipe (readout scaled) and :func:`mup_param_groups`."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 128, (8, 32), generator=g)
    batch = (x, torch.roll(x, -1, 1))

    def standard(w):
        return wt.init_module_(TinyGPT(w), recipe="gpt2", seed=seed)

    def mup(w):
        return wt.init_module_(TinyGPT(w), recipe="mup", seed=seed, base_width=base_width,
                               readout="scaled")

    sp = wt.coord_check(standard, widths, batch, steps, lr=lr)
    mu = wt.coord_check(mup, widths, batch, steps, lr=lr,
                        param_groups=lambda m, lr: wt.mup_param_groups(m, lr, base_width))
    return sp, mu


DEPTH_RECIPES = {"gpt2": {}, "olmo_mitchell": {}, "torchtitan": {}, "wang_init": {},
                 "mup": {"base_width": 64, "readout": "scaled"}}


def depth_profile(n_layers=24, width=128, seed=0):
    """Per-block std of the residual stream and of its gradient at initialisation, for a
    pre-LN TinyGPT under each recipe of :data:`DEPTH_RECIPES` (and PyTorch's defaults)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 128, (8, 32), generator=g)
    y = torch.roll(x, -1, 1)
    out = {}
    for name in ("pytorch default", *DEPTH_RECIPES):
        torch.manual_seed(seed)
        model = TinyGPT(width, n_layers=n_layers)
        if name != "pytorch default":
            kw = dict(DEPTH_RECIPES[name])
            if "base_width" in kw:  # muP's base model: 64 wide (the model itself if narrower)
                kw["base_width"] = min(kw["base_width"], width)
            wt.init_module_(model, recipe=name, seed=seed, **kw)
        acts = []

        def keep(mod, args, o):
            o.retain_grad()
            acts.append(o)

        for block in model.transformer.h:
            block.register_forward_hook(keep)
        logits = model(x)
        nn.functional.cross_entropy(logits.reshape(-1, 128), y.reshape(-1)).backward()
        out[name] = ([a.std().item() for a in acts], [a.grad.std().item() for a in acts])
    return out


def fig_recipes(ctx):
    """docs/recipes.md: the muP coordinate check and the per-block std with depth."""
    import matplotlib.pyplot as plt

    from . import sig, sig_list

    sz = ctx.sizes
    widths = tuple(sz["recipes_widths"])
    prof = depth_profile(n_layers=sz["recipes_depth"], width=sz["recipes_depth_width"])
    sp, mu = coord_data(widths=widths, base_width=widths[0])
    mods = ["transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_proj", "lm_head"]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    last = max(r["step"] for r in sp)
    coord = []
    for ax, recs, title in ((axes[0], sp, "standard (gpt2, one lr)"), (axes[1], mu, "muP")):
        for n in mods:
            pts = sorted((r["width"], r["l1"]) for r in recs
                         if r["module"] == n and r["step"] == last)
            ax.plot(*zip(*pts), marker="o", label=n)
            coord.append({"parametrisation": title, "module": n, "step": last,
                          "widths": [w for w, _ in pts], "mean_abs": [sig(v) for _, v in pts]})
        ax.set(xscale="log", yscale="log", xlabel="width", title=f"{title}, step {last}")
    axes[0].set_ylabel("mean |x|")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    files = [ctx.save("recipes_coord_check.png", fig)]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    depth = []
    for name, (act, grad) in prof.items():
        axes[0].plot(act, label=name)
        axes[1].plot(grad, label=name)
        depth.append({"recipe": name, "act_std": sig_list(act), "grad_std": sig_list(grad)})
    axes[0].set(yscale="log", xlabel="block", ylabel="std of residual stream")
    axes[1].set(yscale="log", xlabel="block", ylabel="std of its gradient")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    files.append(ctx.save("recipes_depth.png", fig))
    return {"files": files,
            "description": "muP coordinate check (mean |x| of three modules after the last "
            "Adam step, per width) for a 2-block TinyGPT under the gpt2 recipe with one lr and "
            "under muP; and the std of the residual stream after each block of a pre-LN "
            "TinyGPT, and of its gradient, at initialisation under each recipe.",
            "settings": {"widths": list(widths), "base_width": widths[0], "lr": 1e-2,
                         "depth": sz["recipes_depth"], "depth_width": sz["recipes_depth_width"],
                         "seed": 0},
            "coord_check": coord, "depth_profile": depth}
