r"""Initialisation recipes for residual networks and transformers: one rule per parameter role.

A recipe maps a parameter's *role* (what the parameter does in the network), its layer index,
the depth and width of the network and the parameter's shape to a distribution: an
:class:`RoleInit` ``(distribution, std, truncation)`` where ``truncation`` is the cut-off in
units of ``std`` (``None``: untruncated). Sampling goes through the variance-scaling core and
:func:`weightinit.init`, so every element depends only on ``(seed, flat index)``.

Roles (:data:`ROLES`): ``embedding``, ``attn_q``, ``attn_k``, ``attn_v``, ``attn_qkv`` (packed),
``attn_out``, ``mlp_in`` (``mlp_gate`` / ``mlp_up`` for gated MLPs fall back to ``mlp_in``),
``mlp_out``, ``readout``, ``norm``, ``bias``, ``conv``, ``conv_out`` (last convolution of a
residual branch), ``residual_gate``. Layer indices ``layer`` count from 0.

=====================  ==========================================================  ==========
recipe                 rule (L = n_layers, d = width, l = layer index)             truncation
=====================  ==========================================================  ==========
gpt2                   N(0, 0.02); attn_out, mlp_out: 0.02 / sqrt(2 L)              none
megatron               N(0, sigma); attn_out, mlp_out: sigma / sqrt(multiplier L)   none
olmo_mitchell          1/sqrt(fan_in); attn_out, mlp_out: 1/sqrt(2 fan_in (l+1))    3 std
olmo_full_megatron     init_std; attn_out, mlp_out: init_std/sqrt(2 L);             cutoff
                       readout 1/sqrt(d)
torchtitan             0.02; attn_out, mlp_out, mlp_up: 0.02/sqrt(2(l+1)) (depth)   2/std
                       or 0.02/sqrt(2 L); embedding N(0, 1); readout d^-1/2 (3 std)  (absolute)
small_init             sqrt(2 / (5 d)) everywhere                                   none
wang_init              small_init; attn_out, mlp_out: 2 / (L sqrt(d))               none
mup                    sigma; hidden: sigma/sqrt(d/d0); readout 0 or sigma d0/d;    none
                       attn_q 0
deepnorm               Xavier normal; attn_v, attn_out, mlp_*: gain beta            none
t_fixup                Xavier uniform; embedding N(0, d^-1/2) * s; attn_v,          none
                       attn_out, mlp_*: * s (s = 0.67 N^-1/4 or (9M)^-1/4)
fixup                  He (fan_out) * L^(-1/(2m-2)); branch outputs, readout 0      none
rezero / skipinit      residual_gate 0; other roles unchanged                       --
zero_init              ZerO: identity / Hadamard, deterministic; branch outputs 0    --
=====================  ==========================================================  ==========

Every recipe sets ``norm`` weights to 1 and ``bias`` to 0 unless stated otherwise.
"""

import math
from dataclasses import dataclass

from . import _validate as V
from .fans import compute_fans

ROLES = ("embedding", "attn_q", "attn_k", "attn_v", "attn_qkv", "attn_out", "mlp_in", "mlp_gate",
         "mlp_up", "mlp_out", "readout", "norm", "bias", "conv", "conv_out", "residual_gate")
_SUB_ROLES = {"mlp_gate": "mlp_in", "mlp_up": "mlp_in"}
_BRANCH_OUT = ("attn_out", "mlp_out")
_HIDDEN = ("attn_q", "attn_k", "attn_v", "attn_qkv", "attn_out", "mlp_in", "mlp_out")


@dataclass(frozen=True)
class RoleInit:
    """How one parameter is initialised.

    ``distribution`` is ``"normal"``, ``"truncated_normal"``, ``"uniform"`` (``U(-a, a)`` with
    ``a = sqrt(3) std``), ``"constant"`` (every element ``value``), ``"zero_init"`` (ZerO's
    deterministic identity/Hadamard matrix) or ``"keep"`` (the recipe leaves the parameter to
    its framework's default). ``std`` is the standard deviation of the *untruncated* normal;
    ``truncation`` is the cut-off in units of ``std`` (values lie in ``[-t std, t std]``) or
    ``None``.
    """

    distribution: str
    std: float = 0.0
    truncation: float = None
    value: float = 0.0

    @property
    def bounds(self):
        """Absolute truncation bounds ``(low, high)`` or ``None``."""
        if self.truncation is None:
            return None
        return (-self.truncation * self.std, self.truncation * self.std)

    def as_scheme(self):
        """``(scheme, params)`` such that ``weightinit.init(shape, scheme, seed=..., **params)``
        draws this distribution (``"zero_init"`` is :func:`weightinit.zero_init`); ``None`` for
        ``keep``."""
        d = self.distribution
        if d == "keep":
            return None
        if d == "constant":
            return "constant", {"value": self.value}
        if d == "zero_init":
            return "zero_init", {}
        if self.std == 0.0:
            return "zeros", {}
        if d == "uniform":
            a = math.sqrt(3.0) * self.std
            return "uniform", {"low": -a, "high": a}
        if d == "truncated_normal":
            t = self.truncation
            return "truncated_normal", {"std": self.std, "low": -t, "high": t, "bounds": "std"}
        return "normal", {"std": self.std}

    def sample(self, shape, *, seed=None, dtype=None, out=None, region=None):
        """Draw the parameter through :func:`weightinit.init` (``distribution="keep"`` raises)."""
        from .initializers import init, zero_init

        spec = self.as_scheme()
        if spec is None:
            raise ValueError("This role is left to the framework's default initialisation by "
                             "the recipe (distribution 'keep'); there is nothing to sample.")
        kw = dict(dtype=dtype, out=out, region=region)
        if spec[0] == "zero_init":
            return zero_init(shape, **kw)
        return init(shape, spec[0], seed=seed, **spec[1], **kw)


_ONE = RoleInit("constant", value=1.0)
_ZERO = RoleInit("constant", value=0.0)
_KEEP = RoleInit("keep")


def _normal(std, truncation=None):
    return RoleInit("normal" if truncation is None else "truncated_normal", float(std),
                    None if truncation is None else float(truncation))


def _fans(shape, role):
    if shape is None:
        raise ValueError(f"`shape` is required for role {role!r} in this recipe (its std "
                         "depends on the fans).")
    shape = V.check_shape(shape)
    if len(shape) < 2:
        raise ValueError(f"`shape` of role {role!r} must have at least 2 dimensions. "
                         f"Received: shape={shape}")
    return compute_fans(shape, "torch")


def _need(name, value, low=1):
    if value is None:
        raise ValueError(f"`{name}` is required by this recipe and could not be inferred; "
                         f"pass {name}=...")
    return V.check_int(name, value, low=low)


def _need_real(name, value):
    if value is None:
        raise ValueError(f"`{name}` is required by this recipe; pass {name}=...")
    return V.check_real(name, value, positive=True)


def _common(role):
    """norm weights 1, biases 0 (shared by every recipe)."""
    if role == "norm":
        return _ONE
    if role == "bias":
        return _ZERO
    if role == "residual_gate":  # only the residual-gate recipes (fixup, rezero) place it
        return _KEEP
    return None


def gpt2(role, *, layer=None, n_layers=None, width=None, shape=None, std=0.02):
    r"""GPT-2 / nanoGPT: :math:`\mathcal{N}(0, 0.02^2)` for every weight and embedding, residual
    output projections (``attn_out``, ``mlp_out``: ``c_proj``) :math:`\mathcal{N}(0,
    (0.02/\sqrt{2L})^2)`, untruncated; norms 1, biases 0; the tied readout is the embedding.

    Source: Radford et al., "Language Models are Unsupervised Multitask Learners" (2019), sec.
    2.3; nanoGPT ``model.py`` (``GPT._init_weights`` and the ``c_proj.weight`` loop).
    """
    c = _common(role)
    if c is not None:
        return c
    std = V.check_real("std", std, positive=True)
    if role in _BRANCH_OUT:
        return _normal(std / math.sqrt(2 * _need("n_layers", n_layers)))
    return _normal(std)


def megatron(role, *, layer=None, n_layers=None, width=None, shape=None, sigma=0.02,
             num_layers=None, multiplier=2.0):
    r"""Megatron-LM: ``init_method_normal(sigma)`` :math:`\mathcal{N}(0, \sigma^2)` for every
    weight, ``scaled_init_method_normal(sigma, num_layers, multiplier=2)``
    :math:`\sigma/\sqrt{\mathrm{multiplier}\cdot L}` for ``attn_out`` and ``mlp_out`` (the
    row-parallel output layers); untruncated. ``num_layers`` defaults to ``n_layers``.

    Source: Shoeybi et al., "Megatron-LM" (2019); Megatron-LM ``megatron/core/utils.py``
    (``init_method_normal``, ``scaled_init_method_normal``).
    """
    c = _common(role)
    if c is not None:
        return c
    sigma = V.check_real("sigma", sigma, positive=True)
    if role in _BRANCH_OUT:
        L = _need("num_layers", num_layers if num_layers is not None else n_layers)
        return _normal(sigma / math.sqrt(V.check_real("multiplier", multiplier, positive=True)
                                         * L))
    return _normal(sigma)


def olmo_mitchell(role, *, layer=None, n_layers=None, width=None, shape=None):
    r"""OLMo "mitchell": every weight :math:`1/\sqrt{n}` with :math:`n` its fan-in (``d_model``
    for attention and ``mlp_in``, the hidden size for ``mlp_out``), output projections
    (``attn_out``, ``mlp_out``) :math:`1/\sqrt{2 n (l+1)}`, embedding and untied readout
    :math:`1/\sqrt{d}`; all truncated at 3 std.

    Source: Groeneveld et al., "OLMo" (2024); OLMo ``olmo/model.py``
    (``OLMoSequentialBlock.reset_parameters``, ``InitFnType.mitchell``) and
    ``olmo/initialization.py`` (``init_normal``).
    """
    c = _common(role)
    if c is not None:
        return c
    if role in ("embedding", "readout"):
        return _normal(1.0 / math.sqrt(_need("width", width)), 3.0)
    fan_in = _fans(shape, role)[0]
    if role in _BRANCH_OUT:
        return _normal(1.0 / math.sqrt(2.0 * fan_in * (_need("layer", layer, low=0) + 1)), 3.0)
    return _normal(1.0 / math.sqrt(fan_in), 3.0)


def olmo_full_megatron(role, *, layer=None, n_layers=None, width=None, shape=None,
                       init_std=0.02, cutoff_factor=3.0):
    r"""OLMo "full_megatron": every weight and the embedding :math:`\mathcal{N}(0,
    \mathrm{init\_std}^2)`, output projections :math:`\mathrm{init\_std}/\sqrt{2L}`, untied
    readout :math:`1/\sqrt{d}`; all truncated at ``cutoff_factor`` std (default 3).

    Source: OLMo ``olmo/model.py`` (``InitFnType.full_megatron``).
    """
    c = _common(role)
    if c is not None:
        return c
    init_std = V.check_real("init_std", init_std, positive=True)
    t = V.check_real("cutoff_factor", cutoff_factor, positive=True)
    if role == "readout":
        return _normal(1.0 / math.sqrt(_need("width", width)), t)
    if role in _BRANCH_OUT:
        return _normal(init_std / math.sqrt(2.0 * _need("n_layers", n_layers)), t)
    return _normal(init_std, t)


def torchtitan(role, *, layer=None, n_layers=None, width=None, shape=None, depth_init=True,
               std=0.02):
    r"""torchtitan Llama: ``attn_q/k/v`` and ``mlp_gate`` (``w1``) 0.02; ``attn_out`` (``wo``),
    ``mlp_out`` (``w2``) and ``mlp_up`` (``w3``) ``init_std`` =
    :math:`0.02/\sqrt{2(l+1)}` (``depth_init=True``) or :math:`0.02/\sqrt{2L}`; token embedding
    :math:`\mathcal{N}(0, 1)`; readout :math:`d^{-1/2}` truncated at 3 std.

    The block weights use ``trunc_normal_(std=...)`` with PyTorch's default *absolute* bounds
    -2..2, i.e. :math:`2/\mathrm{std}` = 100 std for 0.02: effectively untruncated. This rule
    reproduces that exactly (``truncation = 2/std``); it is the trap that
    ``truncated_normal(..., bounds="std")`` avoids.

    Source: torchtitan ``torchtitan/models/llama/model.py`` (``Attention.init_weights``,
    ``FeedForward.init_weights``, ``Transformer.init_weights``).
    """
    c = _common(role)
    if c is not None:
        return c
    std = V.check_real("std", std, positive=True)
    if role == "embedding":
        return _normal(1.0)
    if role == "readout":
        return _normal(_need("width", width) ** -0.5, 3.0)
    if role in ("attn_out", "mlp_out", "mlp_up"):
        if depth_init:
            s = std / math.sqrt(2.0 * (_need("layer", layer, low=0) + 1))
        else:
            s = std / math.sqrt(2.0 * _need("n_layers", n_layers))
    else:
        s = std
    return _normal(s, 2.0 / s)


def small_init(role, *, layer=None, n_layers=None, width=None, shape=None):
    r"""GPT-NeoX ``small_init``: every weight and embedding :math:`\mathcal{N}(0, 2/(5d))`, i.e.
    std :math:`\sqrt{2/(5d)}`, untruncated.

    Source: Nguyen & Salazar, "Transformers without Tears" (2019); gpt-neox
    ``megatron/model/init_functions.py`` (``small_init_init_method``).
    """
    c = _common(role)
    if c is not None:
        return c
    return _normal(math.sqrt(2.0 / (5.0 * _need("width", width))))


def wang_init(role, *, layer=None, n_layers=None, width=None, shape=None):
    r"""GPT-NeoX-20B: ``small_init`` for all weights and ``wang_init`` std :math:`2/(L\sqrt{d})`
    for the output projections (``attn_out``, ``mlp_out``), untruncated.

    Source: Wang, "Mesh-Transformer-JAX" (2021); Black et al., "GPT-NeoX-20B" (2022); gpt-neox
    ``megatron/model/init_functions.py`` (``wang_init_method``).
    """
    if role in _BRANCH_OUT:
        return _normal(2.0 / _need("n_layers", n_layers) / math.sqrt(_need("width", width)))
    return small_init(role, width=width)


def mup(role, *, layer=None, n_layers=None, width=None, shape=None, base_width=None, std=0.02,
        readout="zero", query_zero=True):
    r"""muP (maximal update parametrisation) initialisation, with width multiplier
    :math:`m = d/d_0` (``base_width`` = :math:`d_0`): embedding :math:`\sigma` (constant in
    width), hidden weights :math:`\sigma/\sqrt{m}` (variance :math:`\propto 1/\mathrm{fan\_in}`),
    readout zero (``readout="zero"``) or :math:`\sigma/m` (``"scaled"``: variance
    :math:`\propto 1/\mathrm{fan\_in}^2`), query zero when ``query_zero``; untruncated. At
    ``width == base_width`` it is N(0, sigma) everywhere, i.e. the standard parametrisation.

    Source: Yang et al., "Tensor Programs V" (2022), Table 3 and sec. D.2 (zero readout and
    query); mup ``mup/init.py`` and ``mup/layer.py`` (``MuReadout``), mutransformers
    ``models/gpt2/modeling_gpt2.py`` (``_init_weights``).
    """
    c = _common(role)
    if c is not None:
        return c
    d = _need("width", width)
    d0 = _need("base_width", base_width)
    if d0 > d:
        raise ValueError(f"`base_width`={d0} must not exceed `width`={d}: muP scales up from "
                         "the base model.")
    V.check_choice("readout", readout, ("zero", "scaled"))
    std = V.check_real("std", std, positive=True)
    m = d / d0
    if role == "embedding":
        return _normal(std)
    if role == "readout":
        return _normal(0.0) if readout == "zero" else _normal(std / m)
    if role == "attn_q" and query_zero:
        return _normal(0.0)
    return _normal(std / math.sqrt(m))


def deepnorm_alpha_beta(architecture, n_layers=None, *, n_encoder=None, n_decoder=None):
    r"""DeepNorm's residual scale :math:`\alpha` and init gain :math:`\beta`.

    ``"encoder"`` (N layers): :math:`\alpha = (2N)^{1/4}`, :math:`\beta = (8N)^{-1/4}`;
    ``"decoder"`` (M layers): :math:`\alpha = (2M)^{1/4}`, :math:`\beta = (8M)^{-1/4}`;
    ``"encoder-decoder"``: returns ``((alpha_enc, beta_enc), (alpha_dec, beta_dec))`` with
    :math:`\alpha_e = 0.81 (N^4 M)^{1/16}`, :math:`\beta_e = 0.87 (N^4 M)^{-1/16}`,
    :math:`\alpha_d = (3M)^{1/4}`, :math:`\beta_d = (12M)^{-1/4}`.

    Source: Wang et al., "DeepNet: Scaling Transformers to 1,000 Layers" (2022), Table 1 / Fig.
    2; torchscale ``torchscale/architecture/encoder.py``, ``decoder.py``.
    """
    V.check_choice("architecture", architecture, ("encoder", "decoder", "encoder-decoder"))
    if architecture != "encoder-decoder":
        n = _need("n_layers", n_layers)
        return (2.0 * n) ** 0.25, (8.0 * n) ** -0.25
    n = _need("n_encoder", n_encoder)
    m = _need("n_decoder", n_decoder)
    return ((0.81 * (n ** 4 * m) ** (1 / 16), 0.87 * (n ** 4 * m) ** (-1 / 16)),
            ((3.0 * m) ** 0.25, (12.0 * m) ** -0.25))


def deepnorm(role, *, layer=None, n_layers=None, width=None, shape=None,
             architecture="decoder", part=None, n_encoder=None, n_decoder=None):
    r"""DeepNorm: Xavier normal for every weight, with gain :math:`\beta`
    (:func:`deepnorm_alpha_beta`) for ``attn_v``, ``attn_out``, ``mlp_in`` and ``mlp_out`` and gain
    1 for ``attn_q``/``attn_k``; std :math:`g\sqrt{2/(\mathrm{fan\_in}+\mathrm{fan\_out})}`.
    For ``architecture="encoder-decoder"`` give ``part`` (``"encoder"``/``"decoder"``),
    ``n_encoder`` and ``n_decoder``. The residual is scaled by :math:`\alpha` in the forward
    pass (not an initialisation). Embeddings and readout are left unchanged (``keep``).

    Source: Wang et al., "DeepNet" (2022), Fig. 2 pseudocode; torchscale
    ``torchscale/architecture/decoder.py`` (``deepnorm`` branch of ``__init__``).
    """
    c = _common(role)
    if c is not None:
        return c
    if role in ("embedding", "readout"):
        return _KEEP
    if architecture == "encoder-decoder":
        V.check_choice("part", part, ("encoder", "decoder"))
        enc, dec = deepnorm_alpha_beta(architecture, n_encoder=n_encoder, n_decoder=n_decoder)
        beta = (enc if part == "encoder" else dec)[1]
    else:
        beta = deepnorm_alpha_beta(architecture, n_layers)[1]
    fan_in, fan_out = _fans(shape, role)
    gain = 1.0 if role in ("attn_q", "attn_k") else beta
    return _normal(gain * math.sqrt(2.0 / (fan_in + fan_out)))


def t_fixup(role, *, layer=None, n_layers=None, width=None, shape=None, part="decoder"):
    r"""T-Fixup (no layer norm, no warm-up): Xavier uniform for every weight, embeddings
    :math:`\mathcal{N}(0, d^{-1})` (std :math:`d^{-1/2}`); then ``attn_v``, ``attn_out``,
    ``mlp_in``, ``mlp_out`` and the embedding scaled by :math:`s = 0.67 N^{-1/4}` (encoder, N
    layers) or :math:`s = (9M)^{-1/4}` (decoder, M layers).

    Source: Huang et al., "Improving Transformer Optimization Through Better Initialization",
    ICML 2020, sec. 3.2; layer6ai-labs/T-Fixup ``fairseq/modules/transformer_layer.py`` and
    ``fairseq/models/transformer.py``.
    """
    c = _common(role)
    if c is not None:
        return c
    V.check_choice("part", part, ("encoder", "decoder"))
    n = _need("n_layers", n_layers)
    s = 0.67 * n ** -0.25 if part == "encoder" else (9.0 * n) ** -0.25
    if role == "embedding":
        return _normal(s * _need("width", width) ** -0.5)
    fan_in, fan_out = _fans(shape, role)
    g = s if role in ("attn_v", "attn_out", "mlp_in", "mlp_out") else 1.0
    return RoleInit("uniform", g * math.sqrt(2.0 / (fan_in + fan_out)))


def fixup(role, *, layer=None, n_layers=None, width=None, shape=None, m=2):
    r"""Fixup for ResNets with L residual branches of m layers: inner layers (``conv``, ``mlp_in``
    and attention inputs) He normal with fan-out, :math:`\sqrt{2/\mathrm{fan\_out}}`, scaled by
    :math:`L^{-1/(2m-2)}`; the last layer of each branch (``conv_out``, ``attn_out``,
    ``mlp_out``) and the ``readout`` (weights and bias) 0; scalar multipliers
    (``residual_gate``) 1, scalar biases 0.

    Source: Zhang, Dauphin, Ma, "Fixup Initialization" (ICLR 2019), sec. 3; hongyi-zhang/Fixup
    ``cifar/models/fixup_resnet_cifar.py`` (``FixupResNet.__init__``).
    """
    if role == "residual_gate":
        return _ONE
    c = _common(role)
    if c is not None:
        return c
    L = _need("n_layers", n_layers)
    m = _need("m", m, low=2)
    if role in ("conv_out", "attn_out", "mlp_out", "readout"):
        return _normal(0.0)
    if role == "embedding":
        return _KEEP
    return _normal(math.sqrt(2.0 / _fans(shape, role)[1]) * L ** (-1.0 / (2 * m - 2)))


def rezero(role, *, layer=None, n_layers=None, width=None, shape=None):
    r"""ReZero: every residual branch is multiplied by a scalar ``residual_gate`` initialised to
    0; all other parameters keep their default initialisation.

    Source: Bachlechner et al., "ReZero is All You Need" (2020); majumderb/rezero
    ``rezero/transformer/rztx.py`` (``self.resweight = nn.Parameter(torch.zeros((1,)))``).
    """
    return _ZERO if role == "residual_gate" else _KEEP


def skipinit(role, *, layer=None, n_layers=None, width=None, shape=None):
    r"""SkipInit: the residual branch's scalar multiplier (``residual_gate``) initialised to 0,
    everything else unchanged (as :func:`rezero`).

    Source: De & Smith, "Batch Normalization Biases Residual Blocks Towards the Identity
    Function in Deep Networks", NeurIPS 2020, sec. 4.
    """
    return _ZERO if role == "residual_gate" else _KEEP


def zero_init(role, *, layer=None, n_layers=None, width=None, shape=None):
    r"""ZerO: deterministic initialisation with only zeros and ones (scheme ``zero_init``):
    identity for square and wide matrices, a normalised Hadamard transform
    :math:`I_{P\times p}\,H_p/\sqrt{p}\;I_{p\times Q}` (:math:`p = 2^{\lceil\log_2 P\rceil}`) when
    the output P exceeds the input Q; convolutions get it at the kernel centre; the last layer of
    each residual branch (``attn_out``, ``mlp_out``, ``conv_out``) 0.

    Source: Zhao et al., "ZerO Initialization: Initializing Neural Networks with only Zeros and
    Ones", TMLR 2022, Algorithm 1; jiaweizzhao/ZerO-initialization ``example_mnist.ipynb``
    (``ZerO_Init_on_matrix``, normalisation :math:`2^{-\lceil\log_2 P\rceil/2}`).
    """
    c = _common(role)
    if c is not None:
        return c
    if role in ("attn_out", "mlp_out", "conv_out"):
        return _normal(0.0)
    return RoleInit("zero_init")


RECIPES = {
    "gpt2": gpt2, "megatron": megatron, "olmo_mitchell": olmo_mitchell,
    "olmo_full_megatron": olmo_full_megatron, "torchtitan": torchtitan,
    "small_init": small_init, "wang_init": wang_init, "mup": mup, "deepnorm": deepnorm,
    "t_fixup": t_fixup, "fixup": fixup, "rezero": rezero, "skipinit": skipinit,
    "zero_init": zero_init,
}


def recipes():
    """Names of all recipes, in table order."""
    return list(RECIPES)


def rule(recipe, role, *, layer=None, n_layers=None, width=None, shape=None, **params):
    """The :class:`RoleInit` that ``recipe`` gives a parameter of ``role``.

    ``layer`` (0-based), ``n_layers``, ``width`` (model dimension) and ``shape`` (PyTorch layout
    ``(out, in, *kernel)``) are used where the recipe needs them; ``params`` are the recipe's own
    parameters (e.g. ``sigma=`` for ``megatron``, ``base_width=`` for ``mup``).
    """
    V.check_choice("recipe", recipe, list(RECIPES))
    V.check_choice("role", role, list(ROLES))
    fn = RECIPES[recipe]
    import inspect

    allowed = [p for p in inspect.signature(fn).parameters
               if p not in ("role", "layer", "n_layers", "width", "shape")]
    for k in params:
        if k not in allowed:
            raise TypeError(f"Recipe {recipe!r} has no parameter `{k}`; its parameters are "
                            f"{allowed}.")
    if layer is not None:
        layer = V.check_int("layer", layer, low=0)
        if n_layers is not None and layer >= V.check_int("n_layers", n_layers, low=1):
            raise ValueError(f"`layer`={layer} must be < `n_layers`={n_layers}.")
    result = fn(role, layer=layer, n_layers=n_layers, width=width, shape=shape, **params)
    if role in _SUB_ROLES and recipe != "torchtitan":
        result = fn(_SUB_ROLES[role], layer=layer, n_layers=n_layers, width=width, shape=shape,
                    **params)
    return result


def table(recipe, *, n_layers, width, mlp_ratio=4, layer=0, **params):
    """Every role's :class:`RoleInit` for a GPT-style model of ``n_layers`` blocks of width
    ``width`` (MLP hidden size ``mlp_ratio * width``), for block ``layer``: a dict role -> rule
    (roles a recipe cannot place, e.g. ``conv`` in a transformer, are omitted)."""
    d = _need("width", width)
    h = _need("mlp_ratio", mlp_ratio) * d
    shapes = {"embedding": (50257, d), "attn_q": (d, d), "attn_k": (d, d), "attn_v": (d, d),
              "attn_qkv": (3 * d, d), "attn_out": (d, d), "mlp_in": (h, d), "mlp_gate": (h, d), "mlp_up": (h, d), "mlp_out": (d, h),
              "readout": (50257, d), "norm": (d,), "bias": (d,), "residual_gate": (1,)}
    return {role: rule(recipe, role, layer=layer, n_layers=n_layers, width=d, shape=shape,
                       **params) for role, shape in shapes.items()}

