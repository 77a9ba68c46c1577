"""muP beyond initialisation: per-parameter learning rates and the coordinate check.

Re-exported by :mod:`weightinit.torch` (``mup_param_groups``, ``coord_check``).
"""

import torch
from torch import nn

from . import _validate as V

_HIDDEN = ("attn_q", "attn_k", "attn_v", "attn_qkv", "attn_out", "mlp_in", "mlp_gate", "mlp_up",
           "mlp_out", "conv", "conv_out")


def mup_param_groups(model, lr, base_width, *, width=None, optimizer="adam", roles=None):
    r"""Optimizer parameter groups with muP learning rates, for ``torch.optim.Adam(W)``/``SGD``.

    With width multiplier :math:`m = d/d_0` (``width`` / ``base_width``; ``width`` defaults to
    the embedding dimension), per Tensor Programs V, Table 3 (the formulation whose readout is
    initialised with variance :math:`\propto 1/\mathrm{fan\_in}^2`, the ``mup`` recipe with
    ``readout="scaled"`` or zero):

    ============================  ==============  ==============
    parameters                    Adam            SGD
    ============================  ==============  ==============
    embedding, biases, norms      lr              lr * m
    hidden weights (attn, mlp)    lr / m          lr
    readout                       lr / m          lr / m
    ============================  ==============  ==============

    Returns a list of dicts ``{"params": [...], "lr": ..., "names": [...]}`` (empty groups
    dropped). Roles come from :func:`weightinit.torch.roles` (``roles=`` overrides); unknown
    parameters are a ``ValueError``.

    Source: Yang et al., "Tensor Programs V" (2022), Table 3; mup ``mup/optim.py``
    (``MuAdam``, ``MuSGD``).
    """
    from ._roles import roles as _roles

    lr = V.check_real("lr", lr, positive=True)
    V.check_choice("optimizer", optimizer, ("adam", "sgd"))
    found = _roles(model, roles)
    unknown = [n for n, r in found.items() if r.role is None]
    if unknown:
        raise ValueError(f"No role inferred for parameters {unknown}; give them with "
                         "roles={'glob': 'role'}.")
    params = dict(model.named_parameters())
    if width is None:
        emb = [params[n] for n, r in found.items() if r.role == "embedding"]
        if not emb:
            raise ValueError("`width` is required: the model has no embedding to read it from.")
        width = emb[0].shape[-1]
    width = V.check_int("width", width, low=1)
    base_width = V.check_int("base_width", base_width, low=1)
    if base_width > width:
        raise ValueError(f"`base_width`={base_width} must not exceed `width`={width}.")
    m = width / base_width
    mult = ({"vector": 1.0, "hidden": 1.0 / m, "readout": 1.0 / m} if optimizer == "adam" else
            {"vector": m, "hidden": 1.0, "readout": 1.0 / m})
    groups = {k: [] for k in mult}
    for name, r in found.items():
        kind = "hidden" if r.role in _HIDDEN else "readout" if r.role == "readout" else "vector"
        groups[kind].append(name)
    return [{"params": [params[n] for n in names], "lr": lr * mult[k], "names": names}
            for k, names in groups.items() if names]


def _default_loss(out, batch):
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), batch[1].reshape(-1))
    return out.float().square().mean()


def coord_check(make_model, widths, batch, steps=3, *, lr=1e-2, optimizer="adam",
                param_groups=None, loss_fn=None):
    r"""Coordinate check (as mup's ``get_coord_data``): mean :math:`|x|` of every submodule's
    output, per width and training step.

    For each width, ``model = make_model(width)`` is trained for ``steps`` steps on the one
    ``batch`` (``(inputs, targets)`` for cross-entropy on the last axis, or ``inputs`` with the
    mean square output as loss; or give ``loss_fn(output, batch)``). Step ``t`` records the
    activations of the forward pass before the ``t``-th update (step 0: at initialisation).
    ``param_groups(model, lr)`` gives the optimizer's groups (e.g. ``lambda m, lr:
    mup_param_groups(m, lr, base_width=64)``); default one group at ``lr``. Under muP the
    curves are flat in width; under the standard parametrisation they grow with width.

    Returns a list of dicts ``{"width", "module", "step", "l1"}``.
    """
    widths = [V.check_int("widths", w, low=1) for w in widths]
    steps = V.check_int("steps", steps, low=1)
    V.check_choice("optimizer", optimizer, ("adam", "sgd"))
    loss_fn = loss_fn or _default_loss
    inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
    records = []
    for w in widths:
        model = make_model(w)
        groups = param_groups(model, lr) if param_groups else [{"params": model.parameters()}]
        opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(groups, lr=lr)
        step = [0]

        def hook(name):
            def record(mod, args, out):
                if isinstance(out, torch.Tensor):
                    records.append({"width": w, "module": name, "step": step[0],
                                    "l1": out.detach().abs().mean().item()})
            return record

        handles = [mod.register_forward_hook(hook(name))
                   for name, mod in model.named_modules() if name]
        try:
            for t in range(steps):
                step[0] = t
                opt.zero_grad()
                loss = loss_fn(model(inputs), batch)
                loss.backward()
                opt.step()
        finally:
            for h in handles:
                h.remove()
    return records


def plot_coord_check(records, path=None, *, modules=None):
    """One panel per step: mean |x| against width (log-log) for each module; saved to ``path``
    if given. Returns the matplotlib figure."""
    import matplotlib
    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = sorted({r["step"] for r in records})
    names = modules or sorted({r["module"] for r in records})
    fig, axes = plt.subplots(1, len(steps), figsize=(4 * len(steps), 3.2), squeeze=False)
    for ax, s in zip(axes[0], steps):
        for n in names:
            pts = sorted((r["width"], r["l1"]) for r in records
                         if r["step"] == s and r["module"] == n)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=n)
        ax.set(xscale="log", yscale="log", xlabel="width", title=f"step {s}")
    axes[0][0].set_ylabel("mean |x|")
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig
