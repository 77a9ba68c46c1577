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
* :func:`lsuv_` is LSUV (Mishkin & Matas 2016) on a module's Linear and Conv layers, the same
  algorithm as :func:`weightinit.lsuv`.
"""

import dataclasses
import hashlib
import math

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without torch
    raise ImportError(
        "weightinit.torch needs PyTorch, which is not installed. Install it with: "
        'pip install "weightinit[torch]"') from exc

from . import _validate as V
from .activations import bias_value, recommend
from .initializers import ALIASES, FAN_SCHEMES, get
from .lsuv import LSUVResult, check_options, step
from .random import _check_seed, planning

try:  # DTensor: builds without torch.distributed have none
    from ._dtensor import is_dtensor, local_boxes
except ImportError:  # pragma: no cover
    def is_dtensor(tensor):
        return False
from ._roles import Role, apply_recipe_, roles  # noqa: E402  (parameter roles and recipes)
from ._mup import coord_check, mup_param_groups, plot_coord_check  # noqa: E402  (muP)

__all__ = ["init_", "init_module_", "module_plan", "layer_fans", "parameter_seed", "lsuv_",
           "ParamInit", "LSUVResult", "roles", "apply_recipe_", "Role", "mup_param_groups",
           "coord_check", "plot_coord_check"]

_FLOAT = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV_T = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_EMBEDDING = (nn.Embedding, nn.EmbeddingBag)
_CELLS = {nn.LSTMCell: (4, "tanh"), nn.GRUCell: (3, "tanh")}  # RNNCell: 1 gate, its nonlinearity
_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


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
    sharded = is_dtensor(tensor)
    local = tensor._local_tensor if sharded else tensor
    if local.device.type == "meta":
        raise ValueError("`tensor` is on the meta device and has no data to fill. Materialise "
                         "the module first, e.g. module.to_empty(device='cpu').")
    for bad in ("dtype", "out", "region"):
        if bad in params:
            raise TypeError(f"`{bad}` is taken from `tensor`; do not pass it to init_.")
    if sharded and seed is None:
        raise ValueError("`seed` is required for a DTensor: every rank must pass the same seed "
                         "so that the shards form one tensor (seed=None would draw different "
                         "OS entropy on each rank).")
    params.setdefault("layout", "torch")
    fn = get(scheme)
    shape = tuple(tensor.shape)  # the global shape of a DTensor: its fans and flat indices
    boxes = local_boxes(tensor) if sharded else [(None, None)]
    np_dtype = np.float64 if tensor.dtype == torch.float64 else np.float32
    if local.numel() == 0:  # nothing to fill (PyTorch's init functions do the same)
        if tensor.numel():  # an empty shard of a non-empty DTensor: still check the arguments
            with planning():
                fn(shape, seed=seed, dtype=np_dtype, **params)
        return tensor
    with torch.no_grad():
        for local_box, region in boxes:
            target = local if local_box is None else local[local_box]
            _fill(target, fn, shape, region, seed, np_dtype, params)
    return tensor


def _fill(target, fn, shape, region, seed, np_dtype, params):
    """Write ``fn(shape, ..., region=region)`` into ``target`` (zero copy where it can)."""
    direct = (target.device.type == "cpu" and target.dtype in (torch.float32, torch.float64)
              and target.is_contiguous() and not target.is_conj() and not target.is_neg())
    if direct:
        view = target.detach().numpy()
        direct = view.flags.c_contiguous and view.flags.writeable
    if direct:
        fn(shape, seed=seed, dtype=np_dtype, out=view, region=region, **params)
        torch.autograd.graph.increment_version(target)
    else:
        values = fn(shape, seed=seed, dtype=np_dtype, region=region, **params)
        target.copy_(torch.from_numpy(np.ascontiguousarray(values)))


# ----------------------------------------------------------------------------- seeds and fans
def parameter_seed(seed, name):
    """The 64-bit seed :func:`init_module_` uses for the parameter (or block) ``name``.

    ``int.from_bytes(blake2b(name.encode("utf-8"), digest_size=8,
    key=seed.to_bytes(8, "little")).digest(), "little")``: a keyed hash of the qualified name,
    so a parameter's values depend only on ``(seed, name)``, not on the order modules are
    visited in or on which other layers exist. Gate block ``k`` of a recurrent weight uses the
    name ``f"{name}#{k}"``.
    """
    seed = V.check_int("seed", seed, low=0, high=1 << 64)
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a string. Received: {name!r}")
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8,
                             key=seed.to_bytes(8, "little")).digest()
    return int.from_bytes(digest, "little")


def layer_fans(module):
    r"""The fans ``(fan_in, fan_out)`` a layer really has: the average number of inputs summed
    into one output element, and of output elements one input element feeds.

    * Linear, weight ``(out, in)``: fan_in = in, fan_out = out;
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
    if isinstance(module, _CONV + _CONV_T):
        k = math.prod(module.kernel_size)
        s = math.prod(module.stride)
        g = module.groups
        if isinstance(module, _CONV_T):
            return module.in_channels / g * k / s, module.out_channels / g * k
        return module.in_channels / g * k, module.out_channels / g * k / s
    raise TypeError(f"layer_fans supports Linear, ConvNd and ConvTransposeNd layers. Received: "
                    f"{type(module).__name__}")


# ----------------------------------------------------------------------------- module plan
@dataclasses.dataclass
class ParamInit:
    """One step of :func:`init_module_`: fill rows ``rows`` (all rows if None) of parameter
    ``name`` with ``init_(..., scheme, seed=seed, **params)``; ``layer`` and ``activation`` say
    why (the layer type and the activation assumed to follow it, None if not applicable)."""

    name: str
    scheme: str
    params: dict
    seed: int
    layer: str
    activation: object = None
    rows: tuple = None
    zero_row: int = None  # Embedding padding_idx: this row is set to 0 afterwards


def _activation_of(mod):
    """(name, param) for an activation module, or None."""
    for classes, name in ACTIVATION_MODULES:
        if isinstance(mod, classes):
            if isinstance(mod, nn.LeakyReLU):
                return name, float(mod.negative_slope)
            if isinstance(mod, nn.RReLU):  # the expected slope of the random one
                return name, (float(mod.lower) + float(mod.upper)) / 2.0
            if isinstance(mod, nn.PReLU):
                return name, float(mod.weight.detach().float().mean())
            return name, None
    return None


def _weighted(mod):
    return isinstance(mod, (nn.Linear,) + _CONV + _CONV_T + _EMBEDDING + (nn.RNNBase,
                                                                          nn.RNNCellBase))


def _flatten(seq):
    for m in seq:
        if isinstance(m, nn.Sequential):
            yield from _flatten(m)
        else:
            yield m


def _following_activations(root):
    """id(layer) -> (activation, param) for layers inside nn.Sequential containers: the first
    activation after the layer, skipping TRANSPARENT modules; ("linear", None) if the next
    module is another weighted layer or the layer ends the root Sequential (the network
    output); absent when unknown (another kind of module follows, or a nested container ends)."""
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


def module_plan(module, scheme=None, *, activation=None, seed=0, bias=0.0, embedding_std=1.0,
                **params):
    """What :func:`init_module_` does to ``module``, as a list of :class:`ParamInit` in the
    order of ``module.named_modules()``; nothing is modified. Arguments as for
    :func:`init_module_` (``seed`` must be an int here)."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"`module` must be a torch.nn.Module. Received: {type(module).__name__}")
    seed = V.check_int("seed", seed, low=0, high=1 << 64)
    if scheme is not None:
        get(scheme)
        for bad in ("seed", "dtype", "out", "fans"):
            if bad in params:
                raise TypeError(f"`{bad}` cannot be passed to init_module_ as a scheme "
                                "parameter (it is set per layer).")
    elif params:
        raise TypeError(f"Scheme parameters {sorted(params)} need an explicit `scheme`; "
                        "without one each layer's scheme comes from its activation.")
    default_act = _check_activation(activation) or ("linear", None)
    bias_value(default_act[0], bias, name="bias")
    embedding_std = V.check_real("embedding_std", embedding_std, nonnegative=True)
    following = _following_activations(module)
    plan, seen = [], set()

    def add(name, scheme_, params_, layer, act=None, rows=None, block=None, zero_row=None):
        s = parameter_seed(seed, name if block is None else f"{name}#{block}")
        plan.append(ParamInit(name, scheme_, params_, s, layer, act, rows, zero_row))

    for prefix, mod in module.named_modules():
        own = [(n, p) for n, p in mod.named_parameters(recurse=False) if id(p) not in seen]
        if not own or not _weighted(mod):
            continue
        for _, p in own:
            if isinstance(p, nn.parameter.UninitializedParameter):
                raise ValueError(f"{prefix or 'module'} ({type(mod).__name__}) has uninitialised "
                                 "lazy parameters; run one forward pass first.")
            seen.add(id(p))
        q = (prefix + ".") if prefix else ""
        layer = type(mod).__name__
        if isinstance(mod, (nn.Linear,) + _CONV + _CONV_T):
            act = following.get(id(mod), default_act)
            s, prm = _weight_rule(scheme, params, act, layer_fans(mod))
            add(q + "weight", s, prm, layer, act)
            if mod.bias is not None:
                add(q + "bias", "constant", {"value": bias_value(act[0], bias, name="bias")},
                    layer, act)
        elif isinstance(mod, _EMBEDDING):
            add(q + "weight", "normal", {"std": embedding_std}, layer,
                zero_row=getattr(mod, "padding_idx", None))
        else:  # recurrent layers and cells
            if isinstance(mod, nn.RNNBase):
                gates, hidden = _GATES[mod.mode], mod.hidden_size
                act = ("relu" if mod.mode == "RNN_RELU" else "tanh", None)
                lstm = mod.mode == "LSTM"
            else:
                gates, gate_act = _CELLS.get(type(mod), (1, None))
                if gate_act is None:
                    gate_act = getattr(mod, "nonlinearity", "tanh")
                hidden, act, lstm = mod.hidden_size, (gate_act, None), isinstance(mod, nn.LSTMCell)
            for n, p in own:
                full = q + n
                if n.startswith("weight_ih"):
                    for k in range(gates):
                        fans = (float(p.shape[1]), float(hidden))
                        s, prm = _weight_rule(scheme, params, act, fans)
                        add(full, s, prm, layer, act, (k * hidden, (k + 1) * hidden), k)
                elif n.startswith("weight_hh"):
                    for k in range(gates):
                        add(full, "orthogonal", {}, layer, None, (k * hidden, (k + 1) * hidden), k)
                elif n.startswith("weight_hr"):
                    add(full, "orthogonal", {}, layer)
                elif n.startswith("bias"):
                    add(full, "zeros", {}, layer)
                    if lstm and n.startswith("bias_ih"):  # forget gate (i, f, g, o): bias 1
                        add(full, "ones", {}, layer, rows=(hidden, 2 * hidden))
    return plan


def init_module_(module, scheme=None, *, activation=None, seed=None, bias=0.0,
                 embedding_std=1.0, recipe=None, **params):
    r"""Initialise the layers of ``module`` in place and return it.

    Layers (found with ``module.named_modules()``; each parameter once, other modules and
    parameters, e.g. normalisation layers, keep their values):

    * **Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d** -- weight: ``scheme`` with ``params`` if
      given, else ``weightinit.recommend(a).scheme`` for the activation ``a`` that follows the
      layer (He for the ReLU family, Glorot uniform for tanh/sigmoid/softmax/linear, LeCun
      normal for SELU). Fan-based schemes get the layer's true fans (:func:`layer_fans`),
      which differ from PyTorch's for transposed, grouped-fan_out and strided-fan_out cases.
      Bias: ``bias`` (0; ``"auto"`` = 0.01 for the ReLU family).
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

    The activation after a layer is detected inside ``nn.Sequential`` containers (nested ones
    are flattened): the first activation module after the layer, skipping dropout,
    normalisation, pooling, reshaping and padding modules (:data:`TRANSPARENT`). A layer
    directly followed by another weighted layer, or last in the root ``Sequential`` (the
    network output), counts as ``linear``. Where nothing can be detected (layers called from a
    custom ``forward``), ``activation`` is assumed (a name, ``(name, param)``, or an activation
    module); without it ``linear``, so Glorot uniform, the Keras default.

    Seeds: the parameter (gate block) named ``n`` uses ``parameter_seed(seed, n)``; ``seed``
    None draws one 64-bit seed from the OS first.

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
    **params
        Parameters of ``scheme`` (only with ``scheme``), or of ``recipe``.
    recipe : str, optional
        A recipe of :mod:`weightinit.recipes` applied per parameter role instead of a scheme:
        ``init_module_(model, recipe="gpt2", seed=0, **recipe_params)`` is
        :func:`apply_recipe_` (``roles=``, ``n_layers=``, ``width=`` go there).

    Returns
    -------
    torch.nn.Module
        ``module``. :func:`module_plan` lists what was done.
    """
    seed = _check_seed(seed)
    if recipe is not None:
        if scheme is not None:
            raise ValueError("Give either `scheme` or `recipe`, not both.")
        return apply_recipe_(module, recipe, seed=seed, **params)
    plan = module_plan(module, scheme, activation=activation, seed=seed, bias=bias,
                       embedding_std=embedding_std, **params)
    named = dict(module.named_parameters())
    for step_ in plan:
        p = named[step_.name].detach()
        target = p if step_.rows is None else p[step_.rows[0]:step_.rows[1]]
        init_(target, step_.scheme, seed=step_.seed, **step_.params)
        if step_.zero_row is not None:
            with torch.no_grad():
                p[step_.zero_row].zero_()
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

