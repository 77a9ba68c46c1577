"""Parameter roles of PyTorch modules and applying a recipe of :mod:`weightinit.recipes`.

Re-exported by :mod:`weightinit.torch` (``weightinit.torch.roles``, ``weightinit.torch.apply_recipe_``).
A role is inferred from the module type and the naming conventions of nanoGPT, Hugging Face
GPT-2 / Llama, torchtitan and ``nn.Transformer*``; the layer index is the first integer
component of the parameter's qualified name (``transformer.h.3.attn.c_proj.weight`` -> 3).
Parameters no rule recognises get role ``None`` and are listed, never guessed.
"""


from torch import nn

from . import _validate as V
from . import recipes as _recipes
from ._names import GATE, Role, layer_of, override_roles, parameter_seed, role_from_name


_NORMS = tuple(getattr(nn, n) for n in ("LayerNorm", "RMSNorm", "GroupNorm", "BatchNorm1d",
                                         "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d",
                                         "InstanceNorm2d", "LocalResponseNorm") if hasattr(nn, n))
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
         nn.ConvTranspose3d)

def _infer(path, mod, pname, p):
    if GATE.search(pname) and p.numel() == 1:
        return "residual_gate"
    if isinstance(mod, _NORMS):
        return "norm" if pname == "weight" else "bias"
    if isinstance(mod, nn.MultiheadAttention) and pname == "in_proj_weight":
        return "attn_qkv"
    if isinstance(mod, (nn.Embedding, nn.EmbeddingBag)) and pname == "weight":
        return "embedding"
    role = role_from_name(path, pname, p.numel())
    if role is None and isinstance(mod, _CONV):
        return "conv"
    return role


def roles(module, roles=None):
    """The :class:`Role` of every parameter of ``module``: a dict qualified name -> Role.

    ``roles={"glob": "role"}`` overrides the inference for the parameters whose qualified name
    matches the glob (:mod:`fnmatch`); a pattern that matches no parameter, or an unknown role,
    is a ``ValueError``. A readout tied to the embedding appears once (as PyTorch's
    ``named_parameters`` lists it), with the tied names in ``tied``.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module. Received: {type(module).__name__}")
    names = {}
    for path, mod in module.named_modules(remove_duplicate=False):
        for pname, p in mod.named_parameters(recurse=False, remove_duplicate=False):
            names.setdefault(id(p), []).append((f"{path}.{pname}" if path else pname, path,
                                                mod, pname, p))
    out = {}
    for entries in names.values():
        name, path, mod, pname, p = entries[0]
        role = _infer(path, mod, pname, p)
        tied = tuple(e[0] for e in entries[1:])
        out[name] = Role(role, layer_of(name), tied)
    return override_roles(out, roles)


def _torch_shape(mod, p):
    """(out, in, ...) of a weight; Hugging Face ``Conv1D`` stores (in, out)."""
    shape = tuple(p.shape)
    return shape[::-1] if type(mod).__name__ == "Conv1D" and len(shape) == 2 else shape


def recipe_plan(module, recipe, *, seed=0, roles=None, n_layers=None, width=None,
                **recipe_params):
    """The steps of :func:`apply_recipe_` as :class:`weightinit.torch.ParamInit` (nothing is
    modified); a ``keep`` rule is a step of scheme ``"keep"``."""
    from .torch import ParamInit

    V.check_choice("recipe", recipe, _recipes.recipes())
    seed = V.check_int("seed", seed, low=0, high=1 << 64)
    found = globals()["roles"](module, roles)
    unknown = [n for n, r in found.items() if r.role is None]
    if unknown:
        raise ValueError(f"No role inferred for parameters {unknown}; give them with "
                         "roles={'glob': 'role'} (roles: " + ", ".join(_recipes.ROLES) + ").")
    layers = [r.layer for r in found.values() if r.layer is not None]
    if n_layers is None and layers:
        n_layers = max(layers) + 1
    params = dict(module.named_parameters())
    mods = dict(module.named_modules())
    if width is None:
        emb = [params[n] for n, r in found.items() if r.role == "embedding"]
        width = emb[0].shape[-1] if emb else None
    plan = []
    for name, r in found.items():
        p = params[name]
        mod = mods.get(name.rpartition(".")[0], module)
        shape = _torch_shape(mod, p)
        kw = dict(layer=r.layer, n_layers=n_layers, width=width, **recipe_params)
        if r.role == "attn_qkv" and shape[0] % 3 == 0:
            n = shape[0] // 3
            part = (n,) + shape[1:]
            blocks = [(q, _recipes.rule(recipe, q, shape=part, **kw)) for q in
                      ("attn_q", "attn_k", "attn_v")]
        else:
            blocks = [(r.role, _recipes.rule(recipe, r.role,
                                             shape=shape if len(shape) >= 2 else None, **kw))]
        for k, (role, rule) in enumerate(blocks):
            spec = rule.as_scheme() or ("keep", {})
            rows, sub, block = None, shape, None
            if len(blocks) > 1:
                rows, sub, block = (k * n, (k + 1) * n), part, role[-1]
            plan.append(ParamInit(
                name, spec[0], dict(spec[1]),
                parameter_seed(seed, name if block is None else f"{name}#{block}"),
                type(mod).__name__, None, rows, shape=sub, transposed=shape != tuple(p.shape),
                role=role))
    return plan


def apply_recipe_(module, recipe, *, seed=0, roles=None, n_layers=None, width=None,
                  **recipe_params):
    """Initialise ``module`` in place with ``recipe`` (:mod:`weightinit.recipes`) and return it.

    Each parameter gets ``rule(recipe, role, layer=..., n_layers=..., width=..., shape=...)``
    and is drawn with the seed ``weightinit.torch.parameter_seed(seed, name)``. ``n_layers``
    defaults to one more than the largest layer index, ``width`` to the embedding dimension.
    A packed ``attn_qkv`` weight gets the q, k and v rules on its three row blocks (seeds of
    ``name#q``, ``name#k``, ``name#v``). Parameters of unknown role are a ``ValueError`` that
    lists them (name them with ``roles={"glob": "role"}``); rules of kind ``keep`` leave the
    parameter as it is. Works on plain tensors and DTensors alike (each rank fills its shard);
    :func:`weightinit.torch.module_plan` with ``recipe=`` lists the steps.
    """
    from .torch import _run_plan

    _run_plan(dict(module.named_parameters()),
              recipe_plan(module, recipe, seed=seed, roles=roles, n_layers=n_layers,
                          width=width, **recipe_params))
    return module
