"""Parameter names, framework-free: the seed of a named parameter and the role a qualified name
implies (the naming conventions of nanoGPT, Hugging Face GPT-2/Llama, torchtitan,
``nn.Transformer*`` and their Flax ports). Used by ``weightinit.torch`` and ``weightinit.jax``.
"""

import hashlib
import re
from typing import NamedTuple

from . import _validate as V


class Role(NamedTuple):
    """Role of one parameter: ``role`` (a name of :data:`weightinit.recipes.ROLES` or ``None``
    when unknown), ``layer`` (block index or ``None``) and ``tied`` (other names sharing it)."""

    role: str
    layer: int
    tied: tuple = ()


def parameter_seed(seed, name):
    """The 64-bit seed of the parameter (or block) ``name``.

    ``int.from_bytes(blake2b(name.encode("utf-8"), digest_size=8,
    key=seed.to_bytes(8, "little")).digest(), "little")``: a keyed hash of the qualified name,
    so a parameter's values depend only on ``(seed, name)``, not on the order modules are
    visited in or on which other layers exist. Gate block ``k`` of a recurrent weight uses the
    name ``f"{name}#{k}"``, the q/k/v blocks of a packed attention weight ``name#q``, ``#k``,
    ``#v``.
    """
    seed = V.check_int("seed", seed, low=0, high=1 << 64)
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string. Received: {name!r}")
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8,
                             key=seed.to_bytes(8, "little")).digest()
    return int.from_bytes(digest, "little")


_ATTN = r"(attn|attention|self_attn|self_attention|multihead_attn|cross_attn|encdec_attn)"
# (regex on the dot-joined module path, role), first match wins. Single letters (q, k, v, o)
# count only directly under an attention module.
NAME_RULES = [
    (r"(^|\.)(c_attn|qkv|wqkv|query_key_value|in_proj)$", "attn_qkv"),
    (rf"(^|\.)(q_proj|wq|query|{_ATTN}\.q)$", "attn_q"),
    (rf"(^|\.)(k_proj|wk|key|{_ATTN}\.k)$", "attn_k"),
    (rf"(^|\.)(v_proj|wv|value|{_ATTN}\.v)$", "attn_v"),
    (rf"(^|\.){_ATTN}\.(c_proj|o_proj|out_proj|dense|wo|o)$", "attn_out"),
    (r"(^|\.)(o_proj|wo|out_proj)$", "attn_out"),
    (r"(^|\.)(gate_proj|w1)$", "mlp_gate"),
    (r"(^|\.)(up_proj|w3)$", "mlp_up"),
    (r"(^|\.)(c_fc|fc1|linear1|dense_h_to_4h|fc_in)$", "mlp_in"),
    (r"(^|\.)(mlp|feed_forward|ffn)\.c_proj$", "mlp_out"),
    (r"(^|\.)(down_proj|w2|fc2|linear2|dense_4h_to_h|fc_out)$", "mlp_out"),
    (r"(^|\.)(lm_head|output|head|embed_out)$", "readout"),
    (r"(^|\.)(wte|wpe|tok_embeddings|embed_tokens|embed_positions|embedding|embeddings)$",
     "embedding"),
]
#: Module names of normalisation layers: ln_1, ln_f, norm, norm1, attention_norm, ffn_norm,
#: input_layernorm, final_layer_norm, rms_norm, norm_f... (not any name containing "norm").
NORM_PATH = re.compile(r"(^|\.)(ln(_\w+|\d*)|(\w+_)?(layer|rms|batch|group)?_?norm(\d+|_\w+)?)$")
#: Parameter names of scalar residual gates (ReZero, SkipInit).
GATE = re.compile(r"(^|\.)(resweight|res_weight|residual_gate|skip_gain|skipinit_gain|"
                  r"rezero_alpha)$")


def override_roles(found, roles):
    """``found`` (name -> Role) with ``roles={"glob": "role"}`` applied (:mod:`fnmatch` on the
    names); an unknown role or a pattern matching nothing is a ValueError."""
    import fnmatch

    from . import recipes

    overrides = dict(roles or {})
    for role in overrides.values():
        V.check_choice("roles", role, list(recipes.ROLES))
    for pattern, role in overrides.items():
        hits = [n for n in found if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ValueError(f"`roles` pattern {pattern!r} matches no parameter; parameter names "
                             f"look like {list(found)[:3]}.")
        for n in hits:
            found[n] = found[n]._replace(role=role)
    return found


def layer_of(name):
    """The block index of a qualified name: its first integer component
    (``transformer.h.3.attn.c_proj.weight`` -> 3), or None."""
    m = re.search(r"(?:^|\.)(\d+)(?:\.|$)", name)
    return int(m.group(1)) if m else None


def role_from_name(path, pname, numel):
    """The role the names imply for parameter ``pname`` (``weight``, ``bias``, ``kernel``,
    ``scale``, ``embedding``...) of the module at dot-joined ``path``, or None.
    Module types, where a framework has them, take precedence (the caller checks them)."""
    if GATE.search(pname) and numel == 1:
        return "residual_gate"
    if NORM_PATH.search(path):
        return "norm" if pname in ("weight", "scale") else "bias"
    if pname == "bias" or pname.endswith("_bias"):
        return "bias"
    if pname == "embedding":
        return "embedding"
    for pattern, role in NAME_RULES:
        if re.search(pattern, path):
            return role
    return None
