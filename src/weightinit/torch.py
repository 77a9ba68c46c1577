r"""PyTorch adapter: fill tensors and whole modules with weightinit schemes, and LSUV.

``import weightinit`` never imports PyTorch; this module does (install it with
``pip install "weightinit[torch]"``).

* :func:`init_` fills one tensor in place with a scheme, under PyTorch's fan conventions
  (``layout="torch"``: ``(out, in, *kernel)``). Its values are exactly
  ``weightinit.init(tuple(tensor.shape), scheme, seed=seed, layout="torch", **params)``
  (float32, or float64 for float64 tensors), converted to the tensor's dtype.
* :func:`init_module_` initialises every Linear, Conv, ConvTranspose, Embedding and recurrent
  layer of a module, choosing the scheme per layer from the activation that follows it, with
  the fans the layer really has (see :func:`layer_fans`), and per-parameter seeds that depend
  only on the seed and the parameter's name (:func:`parameter_seed`).
* :func:`materialize_` allocates a module built on the ``meta`` device (plain, FSDP2 or
  tensor parallel) and fills it by the rules of :func:`init_module_`, bitwise equal to
  ``init_module_`` of the same model built normally; :func:`module_plan` lists every step.
* :func:`lsuv_` is LSUV (Mishkin & Matas 2016) on a module's Linear and Conv layers, the same
  algorithm as :func:`weightinit.lsuv`.
"""

import ctypes
import dataclasses
import fnmatch
import itertools
import math
import sys
import warnings

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without torch
    raise ImportError(
        "weightinit.torch needs PyTorch, which is not installed. Install it with: "
        'pip install "weightinit[torch]"') from exc

from . import _validate as V
from ._names import parameter_seed
from .activations import bias_value, recommend
from .fans import compute_fans
from .initializers import ALIASES, FAN_SCHEMES, REGISTRY, describe, get, zero_init
from .lsuv import LSUVResult, check_options, step
from .random import _check_seed, planning

try:  # DTensor: builds without torch.distributed have none
    from ._dtensor import is_dtensor, local_boxes
except ImportError:  # pragma: no cover
    def is_dtensor(tensor):
        return False
from ._roles import Role, apply_recipe_, recipe_plan, roles  # noqa: E402  (roles and recipes)
from ._mup import coord_check, mup_param_groups, plot_coord_check  # noqa: E402  (muP)

__all__ = ["init_", "init_module_", "materialize_", "module_plan", "layer_fans", "parameter_seed", "lsuv_",
           "ParamInit", "LSUVResult", "roles", "apply_recipe_", "Role", "mup_param_groups",
           "coord_check", "plot_coord_check"]

_FLOAT = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_EMBEDDING = (nn.Embedding, nn.EmbeddingBag)
_CELLS = {nn.LSTMCell: (4, "tanh"), nn.GRUCell: (3, "tanh")}  # RNNCell: 1 gate, its nonlinearity
_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}
#: Structured initialisers that :func:`init_` and the plans accept besides ``weightinit.schemes()``.
_STRUCTURED = {"zero_init": zero_init}


def _classes(*names):
    return tuple(getattr(nn, n) for n in names if hasattr(nn, n))


#: Modules that pass the activation decision through (they do not change which nonlinearity
#: follows a layer): dropout, normalisation, pooling, reshaping, padding, resampling.
TRANSPARENT = _classes(
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LazyBatchNorm1d",
    "LazyBatchNorm2d", "LazyBatchNorm3d", "LayerNorm", "GroupNorm", "InstanceNorm1d",
    "InstanceNorm2d", "InstanceNorm3d", "LocalResponseNorm", "RMSNorm", "Identity", "Flatten",
    "Unflatten", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "Upsample", "PixelShuffle", "PixelUnshuffle",
    "ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d",
    "ReflectionPad1d", "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d",
    "ReplicationPad2d", "ReplicationPad3d", "ChannelShuffle")

#: Activation modules and the weightinit activation name they map to. Hardtanh/Hardsigmoid/
#: Hardswish/Mish take their smooth counterpart's recommendation.
ACTIVATION_MODULES = [
    (_classes("ReLU", "ReLU6"), "relu"), (_classes("LeakyReLU", "RReLU"), "leaky_relu"),
    (_classes("PReLU"), "prelu"), (_classes("ELU", "CELU"), "elu"), (_classes("GELU"), "gelu"),
    (_classes("SiLU", "Hardswish", "Mish"), "silu"), (_classes("Softplus"), "softplus"),
    (_classes("SELU"), "selu"), (_classes("Tanh", "Hardtanh"), "tanh"),
    (_classes("Sigmoid", "Hardsigmoid"), "sigmoid"),
    (_classes("Softmax", "LogSoftmax", "Softmax2d"), "softmax"),
]


# ----------------------------------------------------------------------------- one tensor
def init_(tensor, scheme, *, seed=None, **params):
    r"""Fill ``tensor`` in place with ``scheme`` and return it (PyTorch's ``*_`` convention).

    The values are those of ``weightinit.init(tuple(tensor.shape), scheme, seed=seed,
    layout="torch", **params)`` in float32 (float64 for a float64 tensor), so fans follow
    PyTorch's ``(out, in, *kernel)`` convention (``torch.nn.init._calculate_fan_in_and_fan_out``)
    unless ``params`` give ``layout``/``in_axis``/``out_axis``/``fans``.

    A ``torch.distributed.tensor.DTensor`` (plain DTensor, FSDP2 ``fully_shard`` or tensor
    parallel parameters) is filled on each rank with exactly its elements of the global tensor:
    ``full_tensor()`` of the result is bitwise ``init_`` of a plain tensor of the global shape
    with the same seed, for any mesh and world size. Placements ``Shard(d)`` (uneven and empty
    shards included), ``Replicate`` and FSDP2's ``_StridedShard`` on meshes of any dimension;
    fans come from the global shape. Each rank computes only its own elements (see
    ``weightinit._dtensor``), with no communication. ``seed`` is then required and must be the
    same on every rank (not checked: that would need a collective per tensor).

    How the values get there:

    * float32/float64, C-contiguous CPU tensor: generated straight into its memory (zero copy:
      ``out=`` is a NumPy view of the tensor; autograd's version counter is bumped as an
      in-place op would);
    * any other floating tensor (float16, bfloat16, non-contiguous, other device): generated
      in float32 (float64) on the host and copied with ``tensor.copy_``, which rounds to the
      target dtype (round to nearest even) and moves the data to the tensor's device.

    Parameters
    ----------
    tensor : torch.Tensor
        A strided floating tensor (float16, bfloat16, float32, float64) with data (not on the
        ``meta`` device). Runs under ``torch.no_grad()``, so parameters can be passed directly.
    scheme : str
        Any name of ``weightinit.schemes(aliases=True)``.
    seed : int in [0, 2**64) or None
        None draws fresh OS entropy.
    **params
        The scheme's parameters (``gain``, ``mode``, ``nonlinearity``, ``a``, ``std``...).

    Raises
    ------
    TypeError
        For a non-tensor, a non-floating dtype, a sparse tensor, or ``dtype``/``out`` in params.
    ValueError
        For a meta tensor, bad scheme parameters (as ``weightinit.init`` raises them), a DTensor
        with a ``Partial`` placement or without a seed.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"`tensor` must be a torch.Tensor. Received: {type(tensor).__name__}")
    if tensor.dtype not in _FLOAT:
        raise TypeError(
            f"`tensor` must have a floating dtype (float16, bfloat16, float32, float64). "
            f"Received dtype {tensor.dtype}")
    if tensor.layout != torch.strided:
        raise TypeError(f"`tensor` must be a dense (strided) tensor. Received layout "
                        f"{tensor.layout}")
    for bad in ("dtype", "out", "region"):
        if bad in params:
            raise TypeError(f"`{bad}` is taken from `tensor`; do not pass it to init_.")
    return _init(tensor, scheme, seed, params)


def _init(tensor, scheme, seed, params, rows=None):
    """:func:`init_` of ``tensor`` (checked), or of its row block ``rows = (start, stop)``
    (dimension 0) as if that block were a tensor of its own: for a DTensor only the rows of the
    block this rank holds are written."""
    sharded = is_dtensor(tensor)
    local = tensor._local_tensor if sharded else tensor
    if local.device.type == "meta":
        raise ValueError("`tensor` is on the meta device and has no data to fill. Materialise "
                         "the module first: weightinit.torch.materialize_(module, device='cpu', "
                         "seed=...) allocates and initialises it tensor by tensor.")
    if sharded and seed is None:
        raise ValueError("`seed` is required for a DTensor: every rank must pass the same seed "
                         "so that the shards form one tensor (seed=None would draw different "
                         "OS entropy on each rank).")
    params = {"layout": "torch", **params}
    fn = _STRUCTURED.get(scheme) or get(scheme)
    shape = tuple(tensor.shape)  # the global shape of a DTensor: its fans and flat indices
    if rows is not None:
        shape = (rows[1] - rows[0],) + shape[1:]
    if sharded:
        boxes = local_boxes(tensor, rows=rows)
    else:
        boxes = [(None if rows is None else (slice(*rows),), None)]
    np_dtype = np.float64 if tensor.dtype == torch.float64 else np.float32
    if local.numel() == 0 or not boxes:  # nothing to fill here (as PyTorch's init functions)
        if math.prod(shape):  # an empty shard of a non-empty tensor: still check the arguments
            with planning():
                fn(shape, seed=seed, dtype=np_dtype, **params)
        return tensor
    with torch.no_grad():
        for local_box, region in boxes:
            target = local if local_box is None else local[local_box]
            _fill(target, fn, shape, region, seed, np_dtype, params)
    return tensor


#: Largest number of elements generated at once for a tensor that cannot be written in place
#: (half precision, another device): bounds the host buffer to 64 MiB of float32.
_CHUNK = 1 << 24
_ELEMENTWISE = ("uniform", "normal", "truncated_normal", "constant")


def _fill(target, fn, shape, region, seed, np_dtype, params):
    """Write ``fn(shape, ..., region=region)`` into ``target`` (zero copy where it can; else
    through a host buffer of at most ``_CHUNK`` elements for elementwise schemes)."""
    direct = (target.device.type == "cpu" and target.dtype in (torch.float32, torch.float64)
              and target.is_contiguous() and not target.is_conj() and not target.is_neg())
    if direct:
        view = target.detach().numpy()
        direct = view.flags.c_contiguous and view.flags.writeable
    if direct:
        fn(shape, seed=seed, dtype=np_dtype, out=view, region=region, **params)
        torch.autograd.graph.increment_version(target)
        return
    if target.dim() == 0 or target.numel() <= _CHUNK or not _elementwise(fn, shape, seed,
                                                                          np_dtype, params):
        values = fn(shape, seed=seed, dtype=np_dtype, region=region, **params)
        target.copy_(torch.from_numpy(np.ascontiguousarray(values)))
        return
    box = region or tuple(slice(0, n) for n in shape)
    rows = max(1, _CHUNK // (target.numel() // target.shape[0]))
    for a in range(0, target.shape[0], rows):  # values depend on the index only: row blocks
        part = target[a:a + rows]
        sub = (slice(box[0].start + a, box[0].start + a + part.shape[0]),) + tuple(box[1:])
        values = fn(shape, seed=seed, dtype=np_dtype, region=sub, **params)
        part.copy_(torch.from_numpy(np.ascontiguousarray(values)))


def _elementwise(fn, shape, seed, np_dtype, params):
    with planning():
        plan = fn(shape, seed=seed, dtype=np_dtype, **params)
    return getattr(plan, "kind", None) in _ELEMENTWISE


# ----------------------------------------------------------------------------- seeds and fans
def layer_fans(module):
    r"""The fans ``(fan_in, fan_out)`` a layer really has: the average number of inputs summed
    into one output element, and of output elements one input element feeds.

    * Linear, weight ``(out, in)``: fan_in = in, fan_out = out;
    * Bilinear, weight ``(out, in1, in2)``: fan_in = in1 * in2 (each output
      :math:`y_k = x_1^\top W_k x_2` sums that many products), fan_out = out (PyTorch's 3-D rule
      would give ``out * in2``);
    * ConvNd, weight ``(out, in/g, *k)``: fan_in = (in/g) * prod(k),
      fan_out = (out/g) * prod(k) / prod(s);
    * ConvTransposeNd, weight ``(in, out/g, *k)``: fan_in = (in/g) * prod(k) / prod(s),
      fan_out = (out/g) * prod(k);

    with ``g`` = groups, ``k`` = kernel size, ``s`` = stride. A transposed convolution of stride
    ``s`` spreads each input element over ``prod(k)`` outputs on a grid ``s`` times finer, so an
    output element receives on average ``prod(k) / prod(s)`` taps from each of the ``in/g``
    input channels of its group (exactly that many in the interior when ``s`` divides ``k``);
    dually a strided convolution's input element reaches ``prod(k) / prod(s)`` output positions
    of each of ``out/g`` channels.
    Padding only changes border elements. PyTorch (``_calculate_fan_in_and_fan_out``) instead
    reads ``fan_in = shape[1] * prod(k)`` and ``fan_out = shape[0] * prod(k)``, which for
    ConvTranspose swaps the roles (fan_in becomes ``(out/g) * prod(k)``) and ignores groups and
    stride in fan_out; Keras does the same for ``Conv2DTranspose``.
    """
    w = module.weight
    if isinstance(module, nn.Linear):
        return float(w.shape[1]), float(w.shape[0])
    if isinstance(module, nn.Bilinear):  # y_k = x1^T W_k x2: each output sums in1 * in2 terms
        return float(w.shape[1] * w.shape[2]), float(w.shape[0])
    if isinstance(module, _CONV + _CONV_T):
        k = math.prod(module.kernel_size)
        s = math.prod(module.stride)
        g = module.groups
        if isinstance(module, _CONV_T):
            return module.in_channels / g * k / s, module.out_channels / g * k
        return module.in_channels / g * k, module.out_channels / g * k / s
    raise TypeError(f"layer_fans supports Linear, Bilinear, ConvNd and ConvTransposeNd layers. Received: "
                    f"{type(module).__name__}")


# ----------------------------------------------------------------------------- module plan
@dataclasses.dataclass
class ParamInit:
    """One step of :func:`init_module_`: fill rows ``rows`` (all rows if None) of parameter
    ``name`` with ``init_(..., scheme, seed=seed, **params)``; ``layer`` and ``activation`` say
    why (the layer type and the activation assumed to follow it, None if not applicable), and
    ``role`` the parameter's role when the step comes from a recipe.

    ``shape`` is the shape filled (the row block's for ``rows``; the global shape of a
    DTensor; PyTorch's ``(out, in)`` order for a ``transposed`` Hugging Face ``Conv1D``
    weight, filled through its transpose), ``fans`` and ``std`` what the step gives it (``std``
    of the distribution, per :func:`weightinit.describe`). ``scheme`` is None for a parameter
    no rule covers and ``"keep"`` for one a recipe leaves to the framework: :func:`init_module_`
    leaves both as they are (and warns about the first), :func:`materialize_` calls their
    module's ``reset_parameters()``."""

    name: str
    scheme: str
    params: dict
    seed: int
    layer: str
    activation: object = None
    rows: tuple = None
    zero_row: int = None  # Embedding padding_idx: this row is set to 0 afterwards
    shape: tuple = None
    transposed: bool = False
    role: str = None

    @property
    def covered(self):
        """True if the step fills the parameter (a rule covers it)."""
        return self.scheme not in (None, "keep")

    @property
    def fans(self):
        """``(fan_in, fan_out)`` used by the scheme (None for a vector or an uncovered one)."""
        if not self.covered or self.shape is None:
            return None
        if self.params.get("fans") is not None:
            return tuple(float(f) for f in self.params["fans"])
        if len(self.shape) < 2:
            return None
        return compute_fans(self.shape, layout=self.params.get("layout", "torch"))

    @property
    def std(self):
        """Standard deviation of the values (0 for constants; None if uncovered or
        structured, e.g. ``zero_init``)."""
        if self.shape is None or ALIASES.get(self.scheme, self.scheme) not in REGISTRY:
            return None
        return describe(self.shape, self.scheme, **{"layout": "torch", **self.params})["std"]


def _activation_of(mod):
    """(name, param) for an activation module, or None."""
    for classes, name in ACTIVATION_MODULES:
        if isinstance(mod, classes):
            if isinstance(mod, nn.LeakyReLU):
                return name, float(mod.negative_slope)
            if isinstance(mod, nn.RReLU):  # the expected slope of the random one
                return name, (float(mod.lower) + float(mod.upper)) / 2.0
            if isinstance(mod, nn.PReLU):  # its slope (the initial one while on meta)
                w = mod.weight
                meta = (w._local_tensor if is_dtensor(w) else w).is_meta
                return name, float(mod.init) if meta else float(w.detach().float().mean())
            return name, None
    return None


def _function_activation(fn):
    """(name, param) for the ``activation`` of an ``nn.TransformerEncoderLayer`` (a module, a
    function such as ``F.gelu``, or a string), or None."""
    if isinstance(fn, nn.Module):
        return _activation_of(fn)
    name = fn if isinstance(fn, str) else getattr(fn, "__name__", None)
    try:
        recommend(name)
    except (TypeError, ValueError):
        return None
    return name, None


def _weighted(mod):
    return isinstance(mod, (nn.Linear, nn.Bilinear) + _CONV + _CONV_T + _EMBEDDING
                      + (nn.RNNBase, nn.RNNCellBase))


def _flatten(seq):
    for m in seq:
        if isinstance(m, nn.Sequential):
            yield from _flatten(m)
        else:
            yield m


def _following_activations(root):
    """id(layer) -> (activation, param): inside nn.Sequential containers the first activation
    after the layer, skipping TRANSPARENT modules; ("linear", None) if the next module is
    another weighted layer or the layer ends the root Sequential (the network output); absent
    when unknown (another kind of module follows, or a nested container ends). Inside
    attention and transformer layers: ``out_proj`` and ``linear2`` are linear (they feed a
    residual sum), ``linear1`` takes the layer's ``activation``."""
    found = {}

    def walk(m, is_root):
        if isinstance(m, nn.Sequential):
            leaves = list(_flatten(m))
            for i, leaf in enumerate(leaves):
                if _weighted(leaf):
                    act = "end"
                    for nxt in leaves[i + 1:]:
                        if isinstance(nxt, TRANSPARENT):
                            continue
                        a = _activation_of(nxt)
                        act = a if a is not None else (("linear", None) if _weighted(nxt)
                                                       else None)
                        break
                    if act == "end":
                        act = ("linear", None) if is_root else None
                    if act is not None:
                        found[id(leaf)] = act
            for leaf in leaves:
                walk(leaf, False)
        else:
            for child in m.children():
                walk(child, False)

    walk(root, True)
    for m in root.modules():
        if isinstance(m, nn.MultiheadAttention):
            found[id(m.out_proj)] = ("linear", None)
        elif isinstance(m, (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)):
            act = _function_activation(m.activation)
            if act is not None:
                found[id(m.linear1)] = act
            found[id(m.linear2)] = ("linear", None)
    return found


def _check_activation(activation):
    if activation is None:
        return None
    if isinstance(activation, nn.Module):
        a = _activation_of(activation)
        if a is None:
            raise ValueError(f"`activation`: no recommendation for {type(activation).__name__}. "
                             "Pass an activation name such as 'relu', 'tanh' or 'selu'.")
        return a
    if isinstance(activation, tuple) and len(activation) == 2:
        recommend(*activation)
        return activation
    recommend(activation)
    return activation, None


def _weight_rule(scheme, params, act, fans):
    """(scheme, params) for a feed-forward weight followed by activation ``act``."""
    if scheme is None:
        rec = recommend(*act)
        scheme, params = rec.scheme, dict(rec.params)
    else:
        params = dict(params)
    if ALIASES.get(scheme, scheme) in FAN_SCHEMES and fans is not None:
        params["fans"] = fans
    return scheme, params


_NORMS = _classes("LayerNorm", "RMSNorm", "GroupNorm", "BatchNorm1d", "BatchNorm2d",
                  "BatchNorm3d", "SyncBatchNorm", "InstanceNorm1d", "InstanceNorm2d",
                  "InstanceNorm3d", "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d",
                  "LazyInstanceNorm1d", "LazyInstanceNorm2d", "LazyInstanceNorm3d")
_LINEAR = ("linear", None)


def _layer_steps(mod, own, add, scheme, params, act, bias, embedding_std):
    """Add the steps of one module's own parameters ``own`` (name -> tensor) through
    ``add(name, scheme, params, activation=None, rows=None, block=None, zero_row=None)``."""
    b = {"value": bias_value(act[0], bias, name="bias")} if act is not None else None
    if isinstance(mod, (nn.Linear, nn.Bilinear) + _CONV + _CONV_T):
        add("weight", *_weight_rule(scheme, params, act, layer_fans(mod)), act)
        if "bias" in own:
            add("bias", "constant", b, act)
    elif isinstance(mod, _EMBEDDING):
        add("weight", "normal", {"std": embedding_std},
            zero_row=getattr(mod, "padding_idx", None))
    elif isinstance(mod, _NORMS):  # the identity transform: gain 1, shift 0
        for n in own:
            add(n, "ones" if n == "weight" else "zeros", {})
    elif isinstance(mod, nn.PReLU):
        add("weight", "constant", {"value": float(mod.init)})
    elif isinstance(mod, nn.MultiheadAttention):
        e = mod.embed_dim
        lb = {"value": bias_value("linear", bias, name="bias")}
        for n, p in own.items():
            if n == "in_proj_weight":  # packed (3E, E): q, k, v blocks, each its own (E, E)
                for k, block in enumerate("qkv"):
                    fans = (float(p.shape[1]), float(e))
                    add(n, *_weight_rule(scheme, params, _LINEAR, fans), _LINEAR,
                        (k * e, (k + 1) * e), block)
            elif n in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                fans = (float(p.shape[1]), float(p.shape[0]))
                add(n, *_weight_rule(scheme, params, _LINEAR, fans), _LINEAR)
            elif n == "in_proj_bias":
                add(n, "constant", lb, _LINEAR)
            elif n in ("bias_k", "bias_v"):  # PyTorch: xavier_normal_ of (1, 1, E), std 1/sqrt(E)
                add(n, "normal", {"std": 1.0 / math.sqrt(e)})
    elif isinstance(mod, (nn.RNNBase, nn.RNNCellBase)):
        if isinstance(mod, nn.RNNBase):
            gates, hidden = _GATES[mod.mode], mod.hidden_size
            gact = ("relu" if mod.mode == "RNN_RELU" else "tanh", None)
            lstm = mod.mode == "LSTM"
        else:
            gates, gate_act = _CELLS.get(type(mod), (1, None))
            if gate_act is None:
                gate_act = getattr(mod, "nonlinearity", "tanh")
            hidden, gact, lstm = mod.hidden_size, (gate_act, None), isinstance(mod, nn.LSTMCell)
        for n, p in own.items():
            if n.startswith("weight_ih"):
                for k in range(gates):
                    fans = (float(p.shape[1]), float(hidden))
                    add(n, *_weight_rule(scheme, params, gact, fans), gact,
                        (k * hidden, (k + 1) * hidden), k)
            elif n.startswith("weight_hh"):
                for k in range(gates):
                    add(n, "orthogonal", {}, None, (k * hidden, (k + 1) * hidden), k)
            elif n.startswith("weight_hr"):
                add(n, "orthogonal", {})
            elif n.startswith("bias"):
                add(n, "zeros", {})
                if lstm and n.startswith("bias_ih"):  # forget gate (i, f, g, o): bias 1
                    add(n, "ones", {}, rows=(hidden, 2 * hidden))


def module_plan(module, scheme=None, *, activation=None, seed=0, bias=0.0, embedding_std=1.0,
                recipe=None, roles=None, n_layers=None, width=None, **params):
    """What :func:`init_module_` does to ``module``: a list of :class:`ParamInit`, one per
    parameter (or gate/q-k-v block), in the order of ``module.named_modules()``, with scheme,
    parameters, fans, std and seed; nothing is modified (works on the meta device). Arguments
    as for :func:`init_module_` (``seed`` must be an int here); with ``recipe`` the steps of
    :func:`apply_recipe_`. Parameters no rule covers have ``scheme`` None."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module. Received: {type(module).__name__}")
    seed = V.check_int("seed", seed, low=0, high=1 << 64)
    if recipe is not None:
        if scheme is not None:
            raise ValueError("Give either `scheme` or `recipe`, not both.")
        return recipe_plan(module, recipe, seed=seed, roles=roles, n_layers=n_layers,
                           width=width, **params)
    for name_, value in (("roles", roles), ("n_layers", n_layers), ("width", width)):
        if value is not None:
            raise TypeError(f"`{name_}` applies to recipes only; pass recipe=... with it.")
    if scheme is not None:
        get(scheme)
        for bad in ("seed", "dtype", "out", "fans"):
            if bad in params:
                raise TypeError(f"`{bad}` cannot be passed to init_module_ as a scheme "
                                "parameter (it is set per layer).")
    elif params:
        raise TypeError(f"Scheme parameters {sorted(params)} need an explicit `scheme`; "
                        "without one each layer's scheme comes from its activation.")
    default_act = _check_activation(activation) or _LINEAR
    bias_value(default_act[0], bias, name="bias")
    embedding_std = V.check_real("embedding_std", embedding_std, nonnegative=True)
    following = _following_activations(module)
    plan, seen = [], set()
    for prefix, mod in module.named_modules():
        own = {n: p for n, p in mod.named_parameters(recurse=False) if id(p) not in seen}
        if not own:
            continue
        for p in own.values():
            if isinstance(p, nn.parameter.UninitializedParameter):
                raise ValueError(f"{prefix or 'module'} ({type(mod).__name__}) has uninitialised "
                                 "lazy parameters; run one forward pass first.")
            seen.add(id(p))
        q = (prefix + ".") if prefix else ""
        layer = type(mod).__name__
        steps = []

        def add(n, scheme_, params_, act=None, rows=None, block=None, zero_row=None):
            shape = tuple(own[n].shape)
            if rows is not None:
                shape = (rows[1] - rows[0],) + shape[1:]
            s = parameter_seed(seed, q + n if block is None else f"{q}{n}#{block}")
            steps.append(ParamInit(q + n, scheme_, params_, s, layer, act, rows, zero_row,
                                   shape))

        act = following.get(id(mod), default_act) if _weighted(mod) else None
        _layer_steps(mod, own, add, scheme, params, act, bias, embedding_std)
        done = {st.name for st in steps}
        plan += steps + [ParamInit(q + n, None, {}, parameter_seed(seed, q + n), layer,
                                   shape=tuple(p.shape))
                         for n, p in own.items() if q + n not in done]
    return plan


def _report_uncovered(plan, strict, what):
    missing = [st.name for st in plan if st.scheme is None]
    if not missing:
        return
    msg = (f"No weightinit rule covers parameters {missing}; {what}. Name them in a recipe's "
           "roles=..., or initialise them yourself with weightinit.torch.init_.")
    if strict:
        raise ValueError(msg + " (strict=True)")
    warnings.warn(msg, UserWarning, stacklevel=3)


def _run_plan(named, plan):
    """Execute the covered steps of ``plan`` on the parameters ``named`` (name -> tensor)."""
    for st in plan:
        if not st.covered:
            continue
        p = named[st.name].detach()
        if st.transposed:
            p = p.T
        _init(p, st.scheme, st.seed, dict(st.params), rows=st.rows)
        if st.zero_row is not None:
            z = st.zero_row % p.shape[0]
            _init(p, "zeros", 0, {}, rows=(z, z + 1))


def _module_seed(module, seed):
    """The int seed: ``seed`` None draws one from the OS, which only a single process may do."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module. Received: {type(module).__name__}")
    if seed is None and any(is_dtensor(t) for t in itertools.chain(module.parameters(),
                                                                   module.buffers())):
        raise ValueError("`seed` is required for a module with DTensor parameters: every rank "
                         "must pass the same seed (seed=None would draw different OS entropy "
                         "on each rank).")
    return _check_seed(seed)


def init_module_(module, scheme=None, *, activation=None, seed=None, bias=0.0,
                 embedding_std=1.0, recipe=None, strict=False, **params):
    r"""Initialise the parameters of ``module`` in place and return it.

    Layers (found with ``module.named_modules()``; each parameter once):

    * **Linear, Bilinear, Conv1d/2d/3d, ConvTranspose1d/2d/3d** -- weight: ``scheme`` with
      ``params`` if given, else ``weightinit.recommend(a).scheme`` for the activation ``a``
      that follows the layer (He for the ReLU family, Glorot uniform for
      tanh/sigmoid/softmax/linear, LeCun normal for SELU). Fan-based schemes get the layer's
      true fans (:func:`layer_fans`), which differ from PyTorch's for transposed,
      grouped-fan_out, strided-fan_out and bilinear cases. Bias: ``bias`` (0; ``"auto"`` =
      0.01 for the ReLU family).
    * **MultiheadAttention** -- the packed ``in_proj_weight`` ``(3E, E)`` is three ``(E, E)``
      blocks q, k, v, each with its own fans ``(E, E)`` and seed (``name#q``, ``#k``, ``#v``;
      PyTorch instead draws Xavier over the packed matrix, fans ``(E, 3E)``); separate
      ``q/k/v_proj_weight`` (``kdim``/``vdim``) from their own shapes; as linear layers
      (``scheme`` or Glorot uniform); ``in_proj_bias`` = ``bias``; ``bias_k``/``bias_v``
      :math:`\mathcal{N}(0, 1/E)` (PyTorch's ``xavier_normal_`` of ``(1, 1, E)``);
      ``out_proj`` is a Linear followed by ``linear`` (it feeds the residual sum).
    * **TransformerEncoderLayer / TransformerDecoderLayer** -- their attentions as above,
      ``linear1`` followed by the layer's ``activation`` (relu, gelu, or a module),
      ``linear2`` by ``linear``; their norms as below.
    * **LayerNorm, RMSNorm, GroupNorm, BatchNorm*, SyncBatchNorm, InstanceNorm*** (affine) --
      weight 1, bias 0. **PReLU** -- its ``init`` slope.
    * **Embedding, EmbeddingBag** -- :math:`\mathcal{N}(0, \mathrm{embedding\_std}^2)` (std 1:
      PyTorch's default, unit-variance inputs for the next layer); the ``padding_idx`` row is
      zero, as PyTorch does.
    * **RNN, LSTM, GRU and their cells** -- input weights ``weight_ih``: per gate block
      ``(hidden, in)`` the input scheme (``scheme`` or the recommendation for the cell's tanh,
      relu for ``nonlinearity="relu"``), fans (in, hidden); recurrent weights ``weight_hh``:
      each ``(hidden, hidden)`` gate block orthogonal (Saxe et al. 2014), ``weight_hr``
      (LSTM projections) orthogonal; biases 0 except the LSTM forget gate (gate order
      i, f, g, o), whose ``bias_ih`` block is 1 and ``bias_hh`` block 0, so their sum is 1
      (Gers et al. 2000; Jozefowicz et al. 2015).

    Any other parameter (of a custom module, a residual gate...) is left as it is and
    reported: a ``UserWarning`` naming every such parameter, or with ``strict=True`` a
    ``ValueError`` before anything is modified.

    The activation after a layer is detected inside ``nn.Sequential`` containers (nested ones
    are flattened): the first activation module after the layer, skipping dropout,
    normalisation, pooling, reshaping and padding modules (:data:`TRANSPARENT`). A layer
    directly followed by another weighted layer, or last in the root ``Sequential`` (the
    network output), counts as ``linear``. Where nothing can be detected (layers called from a
    custom ``forward``), ``activation`` is assumed (a name, ``(name, param)``, or an activation
    module); without it ``linear``, so Glorot uniform, the Keras default.

    Seeds: the parameter (gate block) named ``n`` uses ``parameter_seed(seed, n)``; ``seed``
    None draws one 64-bit seed from the OS first (a single process only: a module with DTensor
    parameters needs the same int seed on every rank). DTensor parameters (FSDP2, tensor
    parallel) are filled shard by shard, bitwise equal to the single-process module.

    Parameters
    ----------
    module : torch.nn.Module
    scheme : str, optional
        One scheme for every feed-forward and input weight (recurrent weights stay orthogonal).
    activation : str, tuple or nn.Module, optional
        The activation assumed where none is detected.
    seed : int or None
    bias : float or "auto"
    embedding_std : float
    recipe : str, optional
        A recipe of :mod:`weightinit.recipes` applied per parameter role instead of a scheme:
        ``init_module_(model, recipe="gpt2", seed=0, **recipe_params)`` is
        :func:`apply_recipe_` (``roles=``, ``n_layers=``, ``width=`` go there).
    strict : bool
        Raise instead of warning when a parameter is not covered.
    **params
        Parameters of ``scheme`` (only with ``scheme``), or of ``recipe``.

    Returns
    -------
    torch.nn.Module
        ``module``. :func:`module_plan` lists what was done.
    """
    seed = _module_seed(module, seed)
    if recipe is not None and scheme is not None:
        raise ValueError("Give either `scheme` or `recipe`, not both.")
    plan = module_plan(module, scheme, activation=activation, seed=seed, bias=bias,
                       embedding_std=embedding_std, recipe=recipe, **params)
    _report_uncovered(plan, strict, "init_module_ leaves them as they are")
    _run_plan(dict(module.named_parameters()), plan)
    return module


# ----------------------------------------------------------------------------- meta device
def _is_meta(t):
    return (t._local_tensor if is_dtensor(t) else t).is_meta


_HUGE_PAGE = 2 << 20
_libc = []


def _advise_huge_pages(t):
    """Ask Linux for transparent huge pages on the 2 MiB-aligned interior of a fresh CPU
    tensor before its first write (``madvise(MADV_HUGEPAGE)``, what PyTorch's
    ``THP_MEM_ALLOC_ENABLE=1`` does for its allocations): the first-touch page faults of a
    large parameter then cost 512 times fewer kernel entries, which doubles the fill speed of
    fresh memory here. Only advice: ignored where unsupported (other systems, THP disabled)."""
    nbytes = t.numel() * t.element_size()
    if t.device.type != "cpu" or nbytes < 2 * _HUGE_PAGE or not sys.platform.startswith("linux"):
        return
    if not _libc:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            _libc.append(libc)
        except (OSError, AttributeError):  # pragma: no cover - no libc madvise
            _libc.append(None)
    if _libc[0] is not None:
        start = -(-t.data_ptr() // _HUGE_PAGE) * _HUGE_PAGE
        stop = (t.data_ptr() + nbytes) // _HUGE_PAGE * _HUGE_PAGE
        if stop > start:
            _libc[0].madvise(start, stop - start, 14)  # MADV_HUGEPAGE


def _empty_like(t, device):
    """A tensor like meta tensor ``t`` on ``device`` (uninitialised). A DTensor keeps its
    identity (its contents are swapped in, as ``nn.Module.to_empty`` does), so FSDP2 and the
    optimiser keep their references; a plain parameter becomes a new ``nn.Parameter``."""
    new = torch.empty_like(t, device=device)
    _advise_huge_pages(new._local_tensor if is_dtensor(new) else new)
    if isinstance(t, nn.Parameter):
        new = nn.Parameter(new, requires_grad=t.requires_grad)
    if is_dtensor(t):
        torch.utils.swap_tensors(t, new)
        return t
    return new


_RESETS = ("reset_parameters", "_reset_parameters")


def _reset_method(mod):
    return next((getattr(mod, m) for m in _RESETS if callable(getattr(mod, m, None))), None)


def _mark_unset(t):
    """Fill buffer ``t`` with a value no reset writes (NaN; the most negative integer)."""
    local = t._local_tensor if is_dtensor(t) else t
    if local.dtype.is_floating_point or local.dtype.is_complex:
        local.fill_(float("nan"))
    elif local.dtype != torch.bool:
        local.fill_(torch.iinfo(local.dtype).min)


def _still_unset(t):
    local = t._local_tensor if is_dtensor(t) else t
    if local.dtype.is_floating_point or local.dtype.is_complex:
        return bool(torch.isnan(local).any())
    if local.dtype == torch.bool:
        return False
    return bool((local == torch.iinfo(local.dtype).min).any())


def _buffer_rules(buffers):
    if buffers is None:
        return {}
    if not isinstance(buffers, dict) or not all(isinstance(k, str) for k in buffers):
        raise TypeError("`buffers` must be a dict {'glob on buffer names': value}, the value a "
                        "number, a tensor or a callable(module) returning one.")
    return dict(buffers)


def materialize_(module, device="cpu", *, seed=0, scheme=None, activation=None, bias=0.0,
                 embedding_std=1.0, recipe=None, buffers=None, strict=False, **params):
    r"""Allocate a module built on the ``meta`` device on ``device`` and initialise it, one
    module at a time; return it.

    The parameters get exactly the values of :func:`init_module_` (same ``seed``, ``scheme``,
    ``activation``, ``bias``, ``embedding_std``, ``recipe`` and ``params``) of the same model
    built normally, bitwise, plain or sharded: DTensor parameters (``fully_shard``,
    ``parallelize_module``) are allocated as their local shards only and each rank fills its
    elements of the global tensor, with no communication, for any mesh. Peak memory is the
    final parameters plus one host buffer of at most 2**24 elements (for dtypes generated
    through a copy, e.g. bfloat16); nothing of the full size of a sharded parameter is made.

    In ``module.named_modules()`` order, for each module: its own meta parameters and buffers
    are allocated (tied parameters stay tied: one tensor), then

    1. parameters no rule covers (and those a recipe ``keep``\ s) are set by the module's own
       ``reset_parameters()`` (or ``_reset_parameters()``), with a ``UserWarning`` naming them
       (``strict=True``: ``ValueError`` instead); a module without one is a ``ValueError``;
    2. buffers are set by ``buffers={"glob": value}`` (matched on qualified names with
       :mod:`fnmatch`; ``value`` a number, a tensor, or ``callable(module)`` returning one,
       e.g. a rotary table), else by the module's ``reset_running_stats()`` (BatchNorm:
       running mean 0, variance 1, count 0) or its reset method. A buffer left unset is a
       ``ValueError``: they are filled with NaN (integers: their minimum) first and checked;
    3. the covered parameters are filled as :func:`init_module_` fills them.

    Everything is checked before anything is allocated: the plan, and that every parameter and
    buffer has a way to be set.

    Parameters
    ----------
    module : torch.nn.Module
        Parameters and buffers on ``meta`` (others are kept as they are).
    device : str or torch.device
        Where to allocate (not ``meta``).
    seed : int
        The same on every rank. Further arguments as for :func:`init_module_`.
    buffers : dict, optional
        ``{"glob": value}`` for buffers the module cannot recompute itself.
    strict : bool
        Raise instead of resetting parameters no rule covers.

    Returns
    -------
    torch.nn.Module
        ``module``, on ``device``.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module. Received: {type(module).__name__}")
    try:
        device = torch.device(device)
    except (TypeError, RuntimeError) as exc:
        raise ValueError(f"`device` must be a torch device such as 'cpu'. Received: "
                         f"{device!r}") from exc
    if device.type == "meta":
        raise ValueError("`device` is where the module is materialised; it cannot be 'meta'.")
    seed = _module_seed(module, seed)
    if recipe is not None and scheme is not None:
        raise ValueError("Give either `scheme` or `recipe`, not both.")
    rules = _buffer_rules(buffers)
    plan = module_plan(module, scheme, activation=activation, seed=seed, bias=bias,
                       embedding_std=embedding_std, recipe=recipe, **params)
    _report_uncovered(plan, strict, "materialize_ sets them with their module's "
                                    "reset_parameters()")
    reset_names = {st.name for st in plan if not st.covered}
    # --- check every module can be completed, before allocating anything
    todo, problems, seen = [], [], set()
    for prefix, mod in module.named_modules():
        q = (prefix + ".") if prefix else ""
        new = [n for n, p in mod._parameters.items() if p is not None and id(p) not in seen]
        seen.update(id(mod._parameters[n]) for n in new)
        resets = [q + n for n in new if q + n in reset_names and _is_meta(mod._parameters[n])]
        bufs = {}
        for n, b in mod._buffers.items():
            if b is None or not _is_meta(b):
                continue
            hits = [v for g, v in rules.items() if fnmatch.fnmatchcase(q + n, g)]
            if hits:
                bufs[n] = hits[0]
            elif callable(getattr(mod, "reset_running_stats", None)) or _reset_method(mod):
                bufs[n] = None
            else:
                problems.append(f"buffer {q + n} of {type(mod).__name__} (no reset method): "
                                f"pass buffers={{{q + n!r}: value or callable(module)}}")
        if (resets or None in bufs.values()) and _reset_method(mod) is None \
                and not (not resets and callable(getattr(mod, "reset_running_stats", None))):
            problems += [f"parameter {n} of {type(mod).__name__}: no rule covers it and the "
                         "module has no reset_parameters(); give it a role with recipe roles=, "
                         "or add reset_parameters() to the module" for n in resets]
        todo.append((q, mod, new, resets, bufs))
    if problems:
        raise ValueError("materialize_ cannot set: " + "; ".join(problems))
    # --- allocate and fill, module by module
    steps = {}
    for st in plan:
        steps.setdefault(st.name, []).append(st)
    memo = {}
    for q, mod, new, resets, bufs in todo:
        for store in (mod._parameters, mod._buffers):
            for n, t in store.items():
                if t is None:
                    continue
                if id(t) in memo:
                    store[n] = memo[id(t)]
                elif _is_meta(t):
                    store[n] = memo[id(t)] = _empty_like(t, device)
        with torch.no_grad():
            for n, rule in bufs.items():
                _mark_unset(mod._buffers[n])
            stats = getattr(mod, "reset_running_stats", None)
            if resets or (None in bufs.values() and not callable(stats)):
                _reset_method(mod)()  # BatchNorm's resets its running stats too
            elif None in bufs.values():
                stats()
            for n, rule in bufs.items():
                if rule is not None:
                    value = rule(mod) if callable(rule) else rule
                    mod._buffers[n].copy_(torch.as_tensor(value))
                if _still_unset(mod._buffers[n]):
                    raise ValueError(f"Buffer {q + n} of {type(mod).__name__} was not set by the "
                                     "module's reset method; pass buffers={"
                                     f"{q + n!r}: value or callable(module)}}.")
        _run_plan({q + n: mod._parameters[n] for n in new},
                  [st for n in new for st in steps.get(q + n, ())])
    return module


# ----------------------------------------------------------------------------- LSUV
class _Captured(Exception):
    """Raised by the LSUV hook to stop the forward pass once the layer's output is seen."""


def lsuv_(module, x, tol=0.1, max_iter=10, *, orthonormal=True, seed=0):
    r"""LSUV initialisation of the Linear, Conv and ConvTranspose layers of ``module``.

    The algorithm of :func:`weightinit.lsuv` (Mishkin & Matas 2016): if ``orthonormal``, each
    layer's weight becomes ``weightinit.orthogonal`` of its shape (``layout="torch"``, seed
    ``parameter_seed(seed, name + ".weight")``); then, layer by layer in
    ``module.named_modules()`` order, a forward pass of ``module(x)`` (stopped by a hook as soon
    as the layer has produced its output) measures the variance of that output (all entries,
    ``correction=0``, in float64) and the weight is divided by its square root until
    :math:`|\operatorname{Var} - 1| <` ``tol`` or ``max_iter`` steps. Biases are never changed
    (zero them first for the paper's setting). The module runs in eval mode during LSUV
    (dropout off) and its training flags are restored afterwards. A layer called several times
    in one forward pass is measured at its first call.

    Parameters
    ----------
    module : torch.nn.Module
    x : torch.Tensor or tuple of tensors
        A data batch; ``module(x)`` (``module(*x)`` for a tuple) must run.
    tol, max_iter, orthonormal, seed
        As for :func:`weightinit.lsuv`.

    Returns
    -------
    LSUVResult
        ``layers`` = qualified module names, ``weights`` = their weight parameters (rescaled in
        place), ``scales``, ``iterations``, ``variances``, ``converged``.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module. Received: {type(module).__name__}")
    tol, max_iter = check_options(tol, max_iter)
    seed = V.check_int("seed", seed, low=0, high=1 << 64)
    args = tuple(x) if isinstance(x, (tuple, list)) else (x,)
    layers = [(n, m) for n, m in module.named_modules()
              if isinstance(m, (nn.Linear,) + _CONV + _CONV_T)]
    if not layers:
        raise ValueError("`module` has no Linear, Conv or ConvTranspose layer for LSUV.")
    flags = {m: m.training for m in module.modules()}
    result = LSUVResult([], [], [], [], [], [n for n, _ in layers], tol)
    try:
        module.eval()
        if orthonormal:
            for name, m in layers:
                init_(m.weight, "orthogonal", seed=parameter_seed(seed, f"{name}.weight"))
        for name, m in layers:
            captured = {}

            def hook(_mod, _inp, out, captured=captured):
                captured["out"] = out
                raise _Captured

            def variance():
                captured.clear()
                handle = m.register_forward_hook(hook)
                try:
                    with torch.no_grad():
                        module(*args)
                except _Captured:
                    pass
                finally:
                    handle.remove()
                if "out" not in captured:
                    raise ValueError(f"Layer {name!r} was not called by module(x); LSUV needs a "
                                     "forward pass through every layer it scales.")
                return float(captured["out"].detach().to(torch.float64).var(correction=0))

            scale, steps = 1.0, 0
            var = variance()
            while not abs(var - 1.0) < tol and steps < max_iter:
                f = step(var, f"layer {name!r}")
                with torch.no_grad():
                    m.weight.mul_(f)
                scale *= f
                steps += 1
                var = variance()
            result.weights.append(m.weight)
            result.scales.append(scale)
            result.iterations.append(steps)
            result.variances.append(var)
            result.converged.append(abs(var - 1.0) < tol)
    finally:
        for m, flag in flags.items():
            m.training = flag
    return result

