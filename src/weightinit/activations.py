"""Activation knowledge: gains, the recommended scheme per activation, and the bias rule."""

import math
from typing import NamedTuple

from . import _validate as V

#: SELU constants (Klambauer et al. 2017, "Self-Normalizing Neural Networks").
SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717

_UNIT_GAIN = ("linear", "identity", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
              "conv_transpose2d", "conv_transpose3d", "sigmoid")
NONLINEARITIES = _UNIT_GAIN + ("tanh", "relu", "leaky_relu", "selu")

#: Activations of the ReLU family (He initialisation; optional small positive bias).
RELU_FAMILY = ("relu", "leaky_relu", "prelu", "elu", "gelu", "silu", "swish", "softplus")
#: Saturating or linear activations (Glorot initialisation).
GLOROT_FAMILY = ("sigmoid", "tanh", "softmax", "linear", "identity")
RECURRENT = ("recurrent", "rnn", "lstm", "gru")
ACTIVATIONS = RELU_FAMILY + GLOROT_FAMILY + ("selu",) + RECURRENT

#: Bias used for ReLU-family layers when asked (``value="auto"``): keeps units active at start.
RELU_BIAS = 0.01


def calculate_gain(nonlinearity, param=None):
    r"""Recommended gain for a nonlinearity, as ``torch.nn.init.calculate_gain``.

    ====================================  =====================================
    nonlinearity                          gain
    ====================================  =====================================
    linear, identity, conv*, sigmoid      1
    tanh                                  5/3
    relu                                  :math:`\sqrt{2}`
    leaky_relu (slope ``param``=0.01)     :math:`\sqrt{2 / (1 + \mathrm{param}^2)}`
    selu                                  3/4
    ====================================  =====================================

    The gain multiplies the standard deviation; the variance scale is ``gain**2``.
    """
    V.check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else V.check_real("param", param)
        return math.sqrt(2.0 / (1.0 + slope**2))
    if param is not None:
        raise ValueError(
            f"`param` is only used with nonlinearity='leaky_relu'. Received: param={param!r} "
            f"with nonlinearity={nonlinearity!r}")
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "selu":
        return 0.75
    return 1.0


def bias_value(activation, value=0.0, *, name="value"):
    """The constant bias for a layer: ``value``, or with ``value="auto"`` the rule 0.01 for
    ReLU-family activations and 0 otherwise (``name``: the argument named in errors)."""
    V.check_choice("activation", activation, ACTIVATIONS)
    if isinstance(value, str):
        V.check_choice(name, value, ("auto",))
        return RELU_BIAS if activation in RELU_FAMILY else 0.0
    return V.check_real(name, value)


class Recommendation(NamedTuple):
    """What :func:`recommend` returns; ``init(shape, r.scheme, **r.params)`` applies it."""

    scheme: str
    gain: float
    bias: float
    reason: str
    params: dict
    #: ``"scheme"`` (``scheme`` names a scheme of :func:`weightinit.init`) or ``"recipe"``
    #: (``scheme`` names a recipe of :mod:`weightinit.recipes`, for an architecture).
    kind: str = "scheme"


#: Architectures :func:`recommend` maps to a recipe of :mod:`weightinit.recipes`.
ARCHITECTURES = ("transformer", "pre_ln_transformer", "post_ln_transformer", "resnet")


def _recommend_architecture(arch, n_layers):
    if n_layers is None:
        raise ValueError(f"`n_layers` is required to recommend a recipe for {arch!r}, e.g. "
                         f"recommend({arch!r}, n_layers=48).")
    n = V.check_int("n_layers", n_layers, low=1)
    if arch in ("transformer", "pre_ln_transformer"):
        return Recommendation(
            "gpt2", 1.0, 0.0,
            f"Pre-LN transformer with {n} blocks: each of the 2L = {2 * n} residual branches adds "
            f"its output's variance to the residual stream; N(0, 0.02) with the attention and MLP "
            f"output projections at 0.02/sqrt(2L) = {0.02 / math.sqrt(2 * n):.3g} (GPT-2, "
            "Megatron) keeps the stream's variance growth bounded in depth.",
            {"n_layers": n}, "recipe")
    if arch == "post_ln_transformer":
        return Recommendation(
            "deepnorm", 1.0, 0.0,
            f"Post-LN transformer with {n} blocks: post-LN diverges early in deep models; "
            f"DeepNorm scales the residual by alpha = (2L)^(1/4) = {(2 * n) ** 0.25:.3g} and the "
            f"value/output/MLP weights by beta = (8L)^(-1/4) = {(8 * n) ** -0.25:.3g} (decoder), "
            "bounding the model update (Wang et al. 2022, trained to 1,000 layers).",
            {"n_layers": n, "architecture": "decoder"}, "recipe")
    return Recommendation(
        "fixup", 1.0, 0.0,
        f"ResNet without normalisation, {n} residual branches: Fixup zeroes each branch's last "
        f"layer and scales the others by L^(-1/(2m-2)) (= {n ** -0.5:.3g} for m = 2), so the "
        "output's change per SGD step is independent of depth (Zhang et al. 2019).",
        {"n_layers": n}, "recipe")


def recommend(activation, param=None, *, bias=0.0, n_layers=None):
    """Recommended initialisation for a layer followed by ``activation``, or a recipe for an
    architecture (``"transformer"``/``"pre_ln_transformer"`` -> ``gpt2``,
    ``"post_ln_transformer"`` -> ``deepnorm``, ``"resnet"`` (without normalisation) -> ``fixup``;
    these need ``n_layers`` and return ``kind="recipe"``).

    sigmoid/tanh/softmax/linear -> Glorot (Glorot & Bengio 2010); relu/leaky_relu/prelu/elu/
    gelu/silu -> He (He et al. 2015); selu -> LeCun normal (Klambauer et al. 2017);
    recurrent/rnn/lstm/gru -> orthogonal (Saxe et al. 2014). ``param`` is the negative slope of
    leaky_relu/prelu; ``bias="auto"`` applies the 0.01 rule for the ReLU family.
    """
    if activation in ARCHITECTURES:
        return _recommend_architecture(activation, n_layers)
    if n_layers is not None:
        raise ValueError("`n_layers` is only used with an architecture "
                         f"({', '.join(ARCHITECTURES)}). Received: n_layers={n_layers!r}")
    V.check_choice("activation", activation, ACTIVATIONS)
    b = bias_value(activation, bias, name="bias")
    if activation in ("leaky_relu", "prelu"):
        slope = (0.01 if activation == "leaky_relu" else 0.25) if param is None else param
        gain = calculate_gain("leaky_relu", slope)
        return Recommendation(
            "he_normal", gain, b,
            f"{activation} keeps (1 + a^2)/2 of the pre-activation's second moment (a = {slope:g}):"
            " He with Var = 2 / ((1 + a^2) fan_in) preserves it.",
            {"nonlinearity": "leaky_relu", "a": slope})
    if param is not None:
        raise ValueError(f"`param` is only used with leaky_relu or prelu. Received: param={param!r}")
    if activation in RELU_FAMILY:
        return Recommendation(
            "he_normal", math.sqrt(2.0), b,
            "ReLU keeps half the pre-activation's second moment, so He's Var = 2/fan_in holds "
            "the forward variance constant with depth" + (
                "" if activation == "relu" else
                f"; for {activation}, a ReLU-like unit, it is the standard approximation") + ".",
            {})
    if activation == "selu":
        return Recommendation(
            "lecun_normal", 1.0, b,
            "SELU self-normalises towards mean 0, variance 1 when Var(W) = 1/fan_in (LeCun).", {})
    if activation in RECURRENT:
        return Recommendation(
            "orthogonal", 1.0, b,
            "Orthogonal recurrent weights keep every singular value at 1, so repeated products "
            "neither vanish nor explode.", {})
    return Recommendation(
        "glorot_uniform", 1.0, b,
        f"{activation} is near-linear around 0: Glorot's Var = 2/(fan_in + fan_out) balances the "
        "forward and backward variance.", {})
