r"""Deep-MLP signal propagation: how an initialisation shapes activations and gradients.

The experiment: ``samples`` inputs pass through ``depth`` dense layers
:math:`h^l = \phi(h^{l-1} W^l + b^l)`, :math:`W^l` of shape (fan_in, fan_out) drawn by a scheme,
and each layer's activations are summarised (mean, variance, saturation, dead units, histogram).
The matrix products go to BLAS; one fused Numba pass per layer adds the bias, applies the
activation and accumulates every statistic. Layer ``l``'s weights are regenerated from
``(seed, l)`` into three rotating buffers (layer l + 2's are drawn while layer l finishes), so
memory is O(width**2 + samples * width) for any depth. A team of threads (one per Numba thread)
splits the samples: each thread multiplies, activates and summarises its own rows and draws its
share of later weights (see :class:`_Team`).
"""

import dataclasses
import functools
import json
import math
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Optional

import numba
import numpy as np

from . import _residual
from . import _validate as V
from . import random as R
from .activations import bias_value
from .initializers import describe, get, normal
from .kernels import activations as KA
from .kernels import mlp as K
from .random import planning, serial

ACTIVATIONS = tuple(KA.CODES)
#: Flat regions counted as saturated: sigmoid outside [0.1, 0.9], tanh with |a| > 0.9.
SATURATION = {"sigmoid": (0.1, 0.9), "tanh": (-0.9, 0.9)}
#: Fixed histogram ranges; other activations use each layer's data range.
HIST_RANGE = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}
_INPUT, _WEIGHT, _BIAS, _COTANGENT = 0, 1, 2, 3


def stream_seed(seed, layer, role):
    """The 64-bit seed of one random stream of a simulation: input, weights, bias or cotangent."""
    words = np.random.SeedSequence([seed, layer, role]).generate_state(2, np.uint32)
    return int(words[0]) | (int(words[1]) << 32)


class JSONFields:
    """``to_dict``/``to_json`` for a dataclass of arrays and numbers (results of this package)."""

    def to_dict(self):
        """Plain-Python dict (lists, floats; NaN/inf as None) suitable for JSON."""
        def conv(v):
            if isinstance(v, np.ndarray):
                return conv(v.tolist())
            if isinstance(v, list):
                return [conv(x) for x in v]
            if isinstance(v, float) and not math.isfinite(v):
                return None
            return v

        return {f.name: conv(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def to_json(self, **kw):
        return json.dumps(self.to_dict(), **kw)


@dataclasses.dataclass
class SimulationResult(JSONFields):
    """Per-layer statistics of one simulated network (index l = layer l + 1, after activation).

    Attributes
    ----------
    mean, var, std : activation mean, variance and standard deviation over samples and units.
    q : mean squared pre-activation (the mean-field length :math:`q^l`).
    saturated : share of activations in the flat region (sigmoid, tanh; 0 for others).
    dead : share of activations exactly 0; dead_units : share of units 0 for every sample.
    nonfinite : share of NaN/inf activations (excluded from the other statistics).
    hist : (depth, bins) counts; bin_edges : (depth, bins + 1).
    grad_var, grad_norm : with ``backward=True``, second moment of the cotangent with respect to
        each layer's activations and its mean per-sample L2 norm (None otherwise).
    sigma_w2 : per-layer Var(W) * fan_in, the mean-field weight variance (NaN for constant
        weights, where mean-field theory does not apply); sigma_b2 : bias variance. For
        residual runs, per block, of the branch's first layer; ``branch_sigma_w2`` (blocks,
        branch_depth) has every branch layer's.
    recipe : the transformer recipe of a residual run (``simulate(..., recipe=...)``) or None.
    """

    activation: str
    scheme: str
    params: dict
    widths: list
    samples: int
    input_var: float
    mean: np.ndarray
    var: np.ndarray
    std: np.ndarray
    q: np.ndarray
    saturated: np.ndarray
    dead: np.ndarray
    dead_units: np.ndarray
    nonfinite: np.ndarray
    hist: np.ndarray
    bin_edges: np.ndarray
    sigma_w2: np.ndarray
    sigma_b2: float
    bias: float
    slope: float = 0.01
    seed: int = 0
    dtype: str = "float32"
    grad_var: Optional[np.ndarray] = None
    grad_norm: Optional[np.ndarray] = None
    architecture: str = "mlp"
    branch_depth: int = 1
    branch_scale: float = 1.0
    norm: Optional[str] = None
    norm_position: Optional[str] = None
    branch_q: Optional[np.ndarray] = None
    branch_ratio: Optional[np.ndarray] = None
    recipe: Optional[str] = None
    branch_sigma_w2: Optional[np.ndarray] = None

    @property
    def depth(self):
        return len(self.mean)

    @property
    def residual_label(self):
        """A residual run's block in words (``pre-LN, alpha 0.141, 2-layer branch``); "" for
        an MLP."""
        if getattr(self, "architecture", "mlp") != "residual":
            return ""
        norm = {"layer": "LN", "rms": "RMSNorm"}.get(self.norm)
        parts = [f"{self.norm_position}-{norm}" if norm else "no norm",
                 f"alpha {self.branch_scale:.3g}"]
        if self.branch_depth > 1:
            parts.append(f"{self.branch_depth}-layer branch")
        return ", ".join(parts)

    def theory(self):
        """Mean-field prediction beside the simulation: dict of per-layer arrays.

        MLP runs: ``q`` (predicted pre-activation second moment, :func:`weightinit.theory.
        propagate`), ``mean``/``var`` (predicted activation moments) and the simulated ``q_sim``.
        Residual runs (:func:`weightinit.theory.propagate_residual`): ``q``, ``mean`` and ``var``
        of the residual stream after each block, ``branch_q``, ``branch_ratio`` and
        ``grad_var`` (the backward second moment, scaled to the simulation's at the last block
        when it ran with ``backward=True``), and ``q_sim``.

        Assumes zero-mean i.i.d. weights of variance sigma_w2/fan_in and a zero-mean bias; a
        constant bias b enters as variance b**2, exact for ``q`` of the first layer and an
        approximation after it (the pre-activations then have mean b)."""
        from . import theory

        residual = getattr(self, "architecture", "mlp") == "residual"
        per_layer = getattr(self, "branch_sigma_w2", None)
        sw = np.sqrt(per_layer if residual and per_layer is not None else self.sigma_w2)
        if not np.all(np.isfinite(sw)):
            raise ValueError(
                f"Mean-field theory needs zero-mean random weights; scheme {self.scheme!r} gives "
                "constant weights.")
        sb2 = self.sigma_b2 + self.bias**2
        if residual:
            out = theory.propagate_residual(
                self.activation, sw, math.sqrt(sb2), self.input_var, self.depth,
                branch_scale=self.branch_scale, branch_depth=self.branch_depth, norm=self.norm,
                norm_position=self.norm_position or "pre", eps=_residual.NORM_EPS,
                slope=self.slope)
            if self.grad_var is not None:
                out["grad_var"] = out["grad_var"] * self.grad_var[-1]
            out["q_sim"] = self.q
            return out
        q = theory.propagate(self.activation, sw, math.sqrt(sb2), self.input_var, self.depth,
                             slope=self.slope)
        ok = np.isfinite(q) & (q > 0)  # an exploding or dying prediction has no moments
        m1, m2 = np.full(q.shape, math.nan), np.full(q.shape, math.nan)
        if ok.any():
            m1[ok], m2[ok] = theory.activation_moments(self.activation, q[ok], slope=self.slope)
        return {"q": q, "mean": m1, "var": m2 - m1**2, "q_sim": self.q}

    def to_dataframe(self, run=0):
        """Long-format :class:`pandas.DataFrame`: one row per layer, with every statistic.

        Columns: ``run`` (the label given, to tell runs apart after ``pandas.concat``),
        ``layer`` (1-based), ``width``, ``sigma_w2``, the per-layer statistics ``mean``, ``var``,
        ``std``, ``q``, ``saturated``, ``dead``, ``dead_units``, ``nonfinite``, ``grad_var`` and
        ``grad_norm`` (NaN without ``backward=True``), ``branch_q`` and ``branch_ratio`` (NaN for
        an MLP), ``hist`` and ``bin_edges`` (one array per row), then the run's settings
        ``activation``, ``scheme``, ``params`` (JSON text), ``samples``, ``input_var``, ``bias``,
        ``sigma_b2``, ``slope``, ``seed``, ``dtype``, ``architecture``, ``branch_depth``,
        ``branch_scale``, ``norm`` and ``norm_position`` (None for an MLP).
        Several runs: ``pandas.concat([r.to_dataframe(run=i) for i, r in enumerate(runs)])``.
        Needs pandas (``pip install "weightinit[pandas]"``).
        """
        pd = V.import_optional("pandas", "pandas", "SimulationResult.to_dataframe()")
        depth = self.depth
        nan = np.full(depth, np.nan)
        columns = {"run": [run] * depth, "layer": np.arange(1, depth + 1),
                   "width": np.asarray(self.widths, dtype=np.int64),
                   "sigma_w2": np.asarray(self.sigma_w2, dtype=np.float64)}
        for name in ("mean", "var", "std", "q", "saturated", "dead", "dead_units", "nonfinite"):
            columns[name] = np.asarray(getattr(self, name), dtype=np.float64)
        for name in ("grad_var", "grad_norm", "branch_q", "branch_ratio"):
            value = getattr(self, name, None)
            columns[name] = nan if value is None else np.asarray(value, dtype=np.float64)
        columns["hist"] = list(self.hist)
        columns["bin_edges"] = list(self.bin_edges)
        settings = {"activation": self.activation, "scheme": self.scheme,
                    "params": json.dumps(self.params, sort_keys=True), "samples": self.samples,
                    "input_var": self.input_var, "bias": self.bias, "sigma_b2": self.sigma_b2,
                    "slope": self.slope, "seed": self.seed, "dtype": self.dtype,
                    "architecture": self.architecture, "branch_depth": self.branch_depth,
                    "branch_scale": self.branch_scale, "norm": self.norm,
                    "norm_position": self.norm_position}
        columns.update({k: [v] * depth for k, v in settings.items()})
        return pd.DataFrame(columns)


_UNSET = V.UNSET


def _check_args(depth, width, widths, samples, input_dim, x, bins, activation, scheme, std,
                bias, bias_std, dtype):
    if widths is not None:
        if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
            raise TypeError(
                f"`widths` must be a sequence of layer widths. Received: widths={widths!r}")
        widths = list(widths)
        if not widths:
            raise ValueError("`widths` must list at least one layer width.")
        for w in widths:
            V.check_int("widths", w, low=1)
        if depth is not None and V.check_int("depth", depth, low=1) != len(widths):
            raise ValueError(f"`depth`={depth} disagrees with len(widths)={len(widths)}.")
        widths = [int(w) for w in widths]
    else:
        depth = V.check_int("depth", depth, low=1)
        width = V.check_int("width", width, low=1)
        widths = [width] * depth
    V.check_choice("activation", activation, ACTIVATIONS)
    V.check_int("bins", bins, low=1)
    dtype = V.check_dtype(dtype)
    if x is not None:
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError("`x` must be a 2-D array of real numbers (samples, features). "
                            f"Received an array of dtype {x.dtype}")
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"`x` must be a 2-D array (samples, features). Received shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("`x` contains NaN or inf.")
        samples, input_dim = x.shape
    else:
        samples = V.check_int("samples", samples, low=1)
        input_dim = widths[0] if input_dim is None else V.check_int("input_dim", input_dim, low=1)
    scheme = V.scheme_or_std(scheme, std)
    if std is not None:
        V.check_real("std", std, nonnegative=True)
    else:
        get(scheme)
    b = bias_value(activation, bias, name="bias")
    V.check_real("bias_std", bias_std, nonnegative=True)
    return widths, samples, input_dim, x, dtype, scheme, b


def simulate(depth=None, width=None, *, activation="tanh", scheme=_UNSET, std=None, samples=1000,
             input_dim=None, x=None, bias=0.0, bias_std=0.0, seed=0, dtype=np.float32, bins=30,
             backward=False, widths=None, progress=False, slope=0.01, checkpoint=None,
             architecture="mlp", branch_depth=1, branch_scale=1.0, norm=None,
             norm_position="pre", recipe=None, **scheme_params):
    r"""Propagate Gaussian inputs through a deep MLP and record per-layer statistics.

    Parameters
    ----------
    depth, width : int
        Number of layers and units per layer (or give ``widths``, one entry per layer).
    activation : str
        One of linear, sigmoid, tanh, relu, leaky_relu (negative slope ``slope``), elu, selu,
        gelu, silu, softplus.
    scheme : str, optional
        Any scheme name (``weightinit.schemes()``), its parameters passed as extra keywords
        (e.g. ``scheme="variance_scaling", scale=2.25``). Default ``"glorot_normal"``.
    std : float, optional
        Instead of a scheme: plain :math:`W \sim \mathcal{N}(0, \mathrm{std}^2)`, as in the
        classic experiment. Give exactly one of ``scheme`` and ``std``.
    samples, input_dim : int
        The input is ``samples`` draws of N(0, I) with ``input_dim`` features (default: the
        first width), unless ``x`` (samples, features) is given.
    bias : float or "auto"
        Constant added to every unit ("auto": 0.01 for the ReLU family, else 0).
    bias_std : float
        Also add a Gaussian bias N(0, bias_std^2) per unit (as mean-field theory assumes).
    seed : int
        Everything (input, weights of layer l, biases, cotangent) derives from it.
    bins : int
        Histogram bins: over [0, 1] for sigmoid, [-1, 1] for tanh, each layer's range otherwise.
    backward : bool
        Also back-propagate a N(0, 1) cotangent from the output and record ``grad_var`` and
        ``grad_norm`` per layer. Memory: activations are checkpointed every ``checkpoint``
        layers (default ~sqrt(depth)) and recomputed, so the pass keeps about
        (depth / checkpoint + checkpoint) activation matrices of samples x width.
    progress : bool or callable
        True shows a tqdm progress bar (on stderr when it is a terminal, as a widget in a
        notebook, nowhere otherwise); a callable is called as ``progress(done, total)``
        (during the forward pass, from whichever simulation thread finishes a layer last).
    architecture, branch_depth, branch_scale, norm, norm_position
        ``architecture="residual"``: ``depth`` blocks :math:`h_{l+1} = h_l + \alpha F(h_l)`
        with a ``branch_depth``-layer branch F, :math:`\alpha` = ``branch_scale`` (a number
        or ``"1/sqrt(L)"``, ``"1/sqrt(2L)"``, ``"1/L"``), and LayerNorm/RMSNorm (``norm``)
        before (``"pre"``) or after (``"post"``) the addition (``docs/simulation.md``).
    recipe : str, optional
        Residual networks only: a transformer recipe of :mod:`weightinit.recipes` (``"gpt2"``,
        ``"megatron"``, ``"olmo_mitchell"``, ``"fixup"``, ``"rezero"``, ...) draws every
        branch weight, its parameters passed as extra keywords (e.g. ``base_width=`` for
        ``mup``). Each block is a transformer block with model width ``width`` and
        ``depth`` layers: the last layer of a branch is ``mlp_out`` (the projection into the
        residual stream), the others ``mlp_in``; the recipe's ``residual_gate`` (ReZero and
        SkipInit: 0) multiplies ``branch_scale``; ZerO's identity is the identity matrix.
        Roles the recipe leaves to the framework (``"keep"``) take ``scheme`` or ``std``
        (default ``"glorot_normal"``).

    Threads: the samples are split between ``numba.get_num_threads()`` threads in runs of
    256-row blocks (64 below 512 samples), each multiplied by one BLAS call on one BLAS thread
    (``threadpoolctl``) whatever the number of threads, so the results do not depend on it.

    Returns
    -------
    SimulationResult
    """
    widths, samples, input_dim, x, dtype, scheme, b = _check_args(
        depth, width, widths, samples, input_dim, x, bins, activation, scheme, std, bias,
        bias_std, dtype)
    seed = V.check_int("seed", seed, low=0)
    depth = len(widths)
    bd, alpha = _residual.check_residual(architecture, branch_depth, branch_scale, norm,
                                         norm_position, widths, input_dim, x)
    layer_spec = None
    if recipe is not None:
        layer_spec, gate = _residual.recipe_layers(recipe, scheme_params, architecture, depth,
                                                   bd, widths[0])
        alpha *= gate
        recipe_params, scheme_params = dict(scheme_params), {}
    if architecture == "residual":
        result = _simulate_residual(depth, widths[0], samples, bd, alpha, norm, norm_position,
                                    activation, dtype, seed, bins, backward, checkpoint,
                                    progress, b, bias_std, slope, x, std, scheme, scheme_params,
                                    layer_spec)
        if recipe is not None:
            result = dataclasses.replace(result, scheme=f"{recipe} recipe", params=recipe_params,
                                         recipe=recipe)
        return result
    dims = [input_dim] + widths
    big = max(dims)
    fwd, bwd = K.KERNELS[activation, dtype.name]
    slope = V.check_real("slope", slope)
    kslope = dtype.type(slope)  # the kernels compute in the simulation's dtype
    if backward:
        checkpoint = max(1, round(math.sqrt(depth))) if checkpoint is None else V.check_int(
            "checkpoint", checkpoint, low=1)
        n_saved = depth // checkpoint + checkpoint + 2
    else:
        n_saved = 0
    item = dtype.itemsize
    V.check_memory((3 * max(dims[i] * dims[i + 1] for i in range(depth))
                    + (3 + n_saved) * samples * big) * item + 64 * samples * big,
                   f"simulation of widths up to {big}",
                   "Use fewer `samples` or narrower layers (`width`/`widths`).")

    draw_weights, plans, sigma_w2 = _layer_weights(dims, seed, dtype, std, scheme, scheme_params)
    h0, input_var = _input(x, samples, input_dim, seed, dtype)

    team = _Team(samples)
    # The order in which layers' weights are used: forward, then (backward) each checkpointed
    # segment recomputed forwards and back-propagated.
    starts = list(range(0, depth, checkpoint)) if backward else []
    order = list(range(depth))
    for s in reversed(starts):
        end = min(s + checkpoint, depth)
        order += list(range(s, end)) + list(range(end - 1, s - 1, -1))

    def bias_vector(layer):
        bvec = np.full(dims[layer + 1], b, dtype)
        if bias_std > 0:
            with serial():
                bvec += normal(dims[layer + 1], 0.0, bias_std,
                               seed=stream_seed(seed, layer, _BIAS), dtype=dtype)
        return bvec

    weights = _Weights(order, dims, dtype, plans, draw_weights,
                       [stream_seed(seed, layer, _WEIGHT) for layer in range(depth)], bias_vector,
                       team)
    bufs = [np.empty(samples * big, dtype), np.empty(samples * big, dtype)]
    # Statistics and histograms by layer parity: the last thread to finish layer l reduces its
    # while the others already compute layer l + 1's.
    parts = np.empty((2, team.n_chunks, K.N_STATS, big))
    hists = np.empty((2, team.size, 4, bins), np.int64)
    sat_lo, sat_hi = SATURATION.get(activation, (-math.inf, math.inf))
    fixed = activation in HIST_RANGE  # histogram range known in advance: counted in the pass
    fixed_range = HIST_RANGE.get(activation, (0.0, 0.0))

    stats = {k: np.empty(depth) for k in ("mean", "var", "q", "saturated", "dead", "dead_units",
                                          "nonfinite")}
    hist = np.zeros((depth, bins), np.int64)
    edges = np.empty((depth, bins + 1))
    report = _progress_fn(progress, depth * (2 if backward else 1))

    def layer_rows(use, t, h, out, part, hist_t, z=None):
        """Thread t's rows of out <- phi(h W + b) for weight use ``use`` (with ``z``: also
        z = h W + b), its statistics into ``part`` and (fixed ranges, no ``z``) its histogram into
        ``hist_t``."""
        layer = order[use]
        (r0, r1), (c0, c1) = team.rows[t], team.chunks[t]
        bvec = weights.bias(use)
        with np.errstate(over="ignore", invalid="ignore"):  # reported as `nonfinite`
            team.matmul(h, weights.view(use), out, t)
            if z is not None:
                np.add(out[r0:r1], bvec, out=z[r0:r1])
        hist_t[:] = 0
        fwd(out, bvec, kslope, sat_lo, sat_hi, part[:, :, : dims[layer + 1]], *fixed_range,
            hist_t[:, : bins if fixed and z is None else 0], c0, c1)

    def activations(layer):
        n = samples * dims[layer + 1]
        return bufs[layer % 2][:n].reshape(samples, dims[layer + 1])

    def compute(layer, t):
        par = layer % 2
        layer_rows(layer, t, h0 if layer == 0 else activations(layer - 1), activations(layer),
                   parts[par], hists[par, t])

    ranges = np.empty((depth, 2))
    hist_lock = threading.Lock()

    def count(layer, t):  # a data-driven histogram range: known once every thread is done
        h_t = hists[layer % 2, t]
        h_t[:] = 0
        K.histogram(activations(layer), *ranges[layer].tolist(), h_t, *team.rows[t])
        with hist_lock:
            hist[layer] += h_t.sum(axis=0)

    def finish(layer):
        par = layer % 2
        part = parts[par, :, :, : dims[layer + 1]]
        _reduce_layer(part, samples, layer, stats)
        ranges[layer] = fixed_range if fixed else _data_range(part)
        if fixed:
            hist[layer] = hists[par].sum(axis=(0, 1))
        edges[layer] = np.linspace(*ranges[layer].tolist(), bins + 1)
        if backward and layer + 1 in starts:
            saved[layer + 1] = activations(layer).copy()
        report(layer + 1)

    saved = {0: h0} if backward else None
    with team:
        team.run(lambda t: (weights.draw(0, t), weights.draw(1, t)))
        team.run_layers(depth, compute, weights.draw, finish, None if fixed else count)
        grad_var = grad_norm = None
        if backward:
            grad_var, grad_norm = _backward(
                saved, checkpoint, depth, dims, samples, dtype, seed, layer_rows, parts, hists,
                weights, bwd, kslope, team, report)
    mean, var = stats["mean"], stats["var"]
    return SimulationResult(
        activation=activation, scheme=scheme if std is None else f"normal(std={std:g})",
        params=dict(scheme_params) if std is None else {"std": float(std)}, widths=widths,
        samples=samples, input_var=input_var, mean=mean, var=var, std=np.sqrt(var), q=stats["q"],
        saturated=stats["saturated"], dead=stats["dead"], dead_units=stats["dead_units"],
        nonfinite=stats["nonfinite"], hist=hist, bin_edges=edges, sigma_w2=sigma_w2,
        sigma_b2=float(bias_std) ** 2, bias=float(b), slope=slope, seed=seed, dtype=dtype.name,
        grad_var=grad_var, grad_norm=grad_norm)


def _weight_specs(std, scheme, scheme_params, layer_spec=None):
    """``spec(layer)``: weight matrix ``layer``'s ``(scheme, params)`` (``layer_spec(layer)``,
    a recipe's, where it gives one; else ``scheme``), or None for plain N(0, std^2) weights."""
    def spec(layer):
        own = layer_spec(layer) if layer_spec is not None else None
        if own is not None:
            return own
        return None if std is not None else (scheme, scheme_params)

    return spec


def _mean_field_sigma_w2(shape, scheme, params):
    """sigma_w^2 = Var(W) * fan_in of ``scheme`` on ``shape`` (Keras layout: fan_in = shape[0]);
    NaN for constant and identity weights, where mean-field theory does not apply."""
    info = describe(shape, scheme, layout="keras", **params)
    if info["distribution"] in ("constant", "identity"):
        return math.nan
    return info["variance"] * shape[0]


def _layer_weights(dims, seed, dtype, std, scheme, scheme_params, layer_spec=None):
    """Per weight matrix ``layer`` (shape (dims[layer], dims[layer + 1])): ``draw_weights(layer,
    out)``, its element-wise plan (None for orthogonal and identity) and the mean-field weight
    variance sigma_w^2 = Var(W) * fan_in (NaN for constant weights). ``layer_spec(layer)``, if
    given, is that layer's ``(scheme, params)`` (a recipe's), or None for ``std``/``scheme``. The
    scheme is validated on the first matrix's shape."""
    spec = _weight_specs(std, scheme, scheme_params, layer_spec)

    def draw_weights(layer, out):
        n_in, n_out = dims[layer], dims[layer + 1]
        s = stream_seed(seed, layer, _WEIGHT)
        sp = spec(layer)
        if sp is None:
            return normal((n_in, n_out), 0.0, std, seed=s, dtype=dtype, out=out)
        return get(sp[0])((n_in, n_out), seed=s, dtype=dtype, layout="keras", out=out, **sp[1])

    depth = len(dims) - 1
    sigma_w2 = np.empty(depth)
    plans = []
    known = {}  # the plan and sigma_w^2 depend only on the layer's shape and scheme
    for layer in range(depth):
        n_in, n_out = dims[layer], dims[layer + 1]
        sp = spec(layer)
        key = (n_in, n_out, None if sp is None else (sp[0], tuple(sorted(sp[1].items()))))
        if key not in known:
            with planning():
                plan = draw_weights(layer, None)
            s2 = std * std * n_in if sp is None else _mean_field_sigma_w2((n_in, n_out), *sp)
            known[key] = (plan if getattr(plan, "kind", None) in _ELEMENTWISE else None, s2)
        plan, sigma_w2[layer] = known[key]
        plans.append(plan)
    return draw_weights, plans, sigma_w2


def _input(x, samples, input_dim, seed, dtype):
    """The input (samples, input_dim): ``x`` or N(0, I) draws from the input stream; and its
    mean square."""
    if x is None:
        with serial():  # the team's kernel: no second (parallel) compilation on a first run
            h0 = normal((samples, input_dim), seed=stream_seed(seed, 0, _INPUT), dtype=dtype)
    else:
        h0 = np.ascontiguousarray(x, dtype=dtype)
    return h0, float(np.mean(np.square(h0, dtype=np.float64)))


def _simulate_residual(blocks, width, samples, bd, alpha, norm, position, activation, dtype,
                       seed, bins, backward, checkpoint, progress, b, bias_std, slope, x, std,
                       scheme, scheme_params, layer_spec):
    slope = V.check_real("slope", slope)
    r = _residual.simulate_residual(
        blocks=blocks, width=width, samples=samples, bd=bd, alpha=alpha, norm=norm,
        position=position, activation=activation, dtype=dtype, seed=seed, bins=bins,
        backward=backward, checkpoint=checkpoint, progress=progress, b=b, bias_std=bias_std,
        slope=slope, x=x, std=std, scheme=scheme, scheme_params=scheme_params,
        layer_spec=layer_spec)
    st = r["stats"]
    return SimulationResult(
        activation=activation, scheme=scheme if std is None else f"normal(std={std:g})",
        params=dict(scheme_params) if std is None else {"std": float(std)},
        widths=[width] * blocks, samples=samples, input_var=r["input_var"], mean=st["mean"],
        var=st["var"], std=np.sqrt(st["var"]), q=st["q"], saturated=st["saturated"],
        dead=st["dead"], dead_units=st["dead_units"], nonfinite=st["nonfinite"], hist=r["hist"],
        bin_edges=r["edges"], sigma_w2=r["sigma_w2"], sigma_b2=float(bias_std) ** 2,
        bias=float(b), slope=slope, seed=seed, dtype=dtype.name, grad_var=r["grad_var"],
        grad_norm=r["grad_norm"], architecture="residual", branch_depth=bd, branch_scale=alpha,
        norm=norm, norm_position=position if norm is not None else None,
        branch_q=st["branch_q"], branch_ratio=st["branch_ratio"],
        branch_sigma_w2=r["branch_sigma_w2"])


_ELEMENTWISE = ("uniform", "normal", "truncated_normal", "constant")


def _data_range(part):
    """A layer's histogram range from its partial extremes: [min, max] of the finite values,
    [0, 1] if there are none, widened by 1/2 on each side if all values are equal."""
    lo, hi = float(part[:, K.MIN_A].min()), float(part[:, K.MAX_A].max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0
    return (lo - 0.5, hi + 0.5) if hi <= lo else (lo, hi)


def _draw_share(plan, seed, w, t, size):
    """Thread ``t``'s share (of ``size`` equal runs of flat indices) of the weights ``plan``
    describes, drawn with the serial kernels: the values are those of the whole draw."""
    flat = w.reshape(-1)
    a, b = t * flat.size // size, (t + 1) * flat.size // size
    with serial():
        R._fill_run(plan, seed, flat[a:b], a)


class _Weights:
    """The layers' weights and biases in the order the simulation uses them, each drawn two
    steps ahead: while the team computes with use i's weights, each thread, once done with its
    rows, draws its share of use i + 2's (and thread 0 its bias) into the third buffer. Memory:
    three matrices of the largest layer."""

    def __init__(self, order, dims, dtype, plans, draw_whole, seeds, bias_of, team):
        self.order, self.dims, self.plans, self.seeds = order, dims, plans, seeds
        self.draw_whole, self.bias_of, self.team = draw_whole, bias_of, team
        size = max(dims[i] * dims[i + 1] for i in range(len(dims) - 1))
        self.bufs = [np.empty(size, dtype) for _ in range(3)]
        self.biases = [None] * 3

    def bias(self, use):
        return self.biases[use % 3]

    def view(self, use):
        layer = self.order[use]
        n_in, n_out = self.dims[layer], self.dims[layer + 1]
        return self.bufs[use % 3][: n_in * n_out].reshape(n_in, n_out)

    def draw(self, use, t):
        """Thread ``t``'s share of use ``use``'s weights (nothing after the last use). Schemes
        that are not element-wise (orthogonal, identity), and a team of one, draw the whole
        matrix on thread 0 with the library's own threads."""
        if use >= len(self.order):
            return
        layer, w = self.order[use], self.view(use)
        plan = self.plans[layer]
        if t == 0:
            self.biases[use % 3] = self.bias_of(layer)
        if plan is not None and self.team.size > 1:
            _draw_share(plan, self.seeds[layer], w, t, self.team.size)
        elif t == 0:
            self.draw_whole(layer, w)


#: Callables run once, in order, before the next pass of a simulation's pipeline (by then its
#: inputs and first weights are drawn), then dropped: ``weightinit simulate`` puts here its wait
#: for a helper process that compiles the simulation's kernels while this process compiles the
#: generators, and before it the compilation of its other runs' kernels
#: (:func:`weightinit._warmup.compile_ahead`).
BEFORE_FIRST_PASS = []


class _Team:
    """The threads of one simulation, each owning a run of whole row blocks (samples).

    Every thread does the matrix products of its own rows and then runs the serial kernels on
    them, and draws an equal share of each weight matrix, so the cores never hand work between
    BLAS's thread pool and Numba's: measured on 2 cores, that hand-over cost about a third of a
    layer's time. Each thread's product is a row of separate single-threaded BLAS calls on
    fixed blocks of ``gemm_rows`` rows (:func:`_gemm_rows`), whatever the team: BLAS kernels
    round a row differently depending on where it falls among the rows of a call (OpenBLAS's
    on AMD Zen 5 does), so calls that depend on the team would make the results depend on it.
    With the blocks fixed and BLAS held to one thread (``threadpoolctl``) while any team works,
    and each chunk's statistics computed by one thread, the results do not depend on the team
    size. A team has at most one thread per block.
    """

    def __init__(self, samples):
        threads = numba.get_num_threads()
        self.n_chunks = -(-samples // K.CHUNK)
        self.gemm_rows = _gemm_rows(samples)
        per_block = self.gemm_rows // K.CHUNK
        n_blocks = -(-self.n_chunks // per_block)
        self.size = size = max(1, min(threads, n_blocks))
        bounds = [min(self.n_chunks, t * n_blocks // size * per_block) for t in range(size + 1)]
        self.chunks = list(zip(bounds, bounds[1:]))
        self.rows = [(c0 * K.CHUNK, min(samples, c1 * K.CHUNK)) for c0, c1 in self.chunks]
        self._pool = None

    def matmul(self, a, b, out, t):
        """Thread t's rows of ``out <- a @ b``, one BLAS call per block of ``gemm_rows``."""
        r0, r1 = self.rows[t]
        g = self.gemm_rows
        for s in range(r0, r1, g):
            e = min(r1, s + g)
            np.matmul(a[s:e], b, out=out[s:e])

    def __enter__(self):
        _BLAS.hold()
        if self.size > 1:
            self._pool = ThreadPoolExecutor(self.size - 1, thread_name_prefix="weightinit")
        return self

    def __exit__(self, *exc):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        _BLAS.release()

    def run(self, step):
        """``step(t)`` for every thread t (t = 0 on the calling thread); returns when all are
        done, raising the first error."""
        if self._pool is None:
            step(0)
            return
        futures = [self._pool.submit(step, t) for t in range(1, self.size)]
        try:
            step(0)
        finally:
            wait(futures)
        for f in futures:
            f.result()

    def run_layers(self, n, compute, draw, finish, count=None, counted=None, first=0):
        """A pass, each thread at its own pace: for layer (weight use) l = first..first + n - 1,
        thread t waits until every share of layer l's weights is drawn and runs ``compute(l, t)``
        on its rows; the last thread to finish layer l runs ``finish(l)``; then each thread, once
        ``finish(l - 1)`` is done, runs ``count(l - 1, t)`` if given (and ``counted(l - 1)``, if
        that is given: a histogram whose range is known only when every thread is done) and
        draws its share of layer l + 2's weights with ``draw(l + 2, t)`` into the buffer of
        layer l - 1. The last layer is counted at the end.

        There is no barrier: a thread waits only for what the others did a layer earlier, so a
        thread may run up to a layer ahead and uneven progress evens out instead of costing
        every layer its slowest thread. Three weight buffers (layers l, l + 1 and l + 2) and two
        of statistics suffice: a thread starts layer l + 2, writing layer l's statistics buffer,
        only after every share of its weights is drawn, which each thread does after
        ``finish(l)``. ``count(l, t)`` reads thread t's rows of layer l's output, which thread t
        itself writes over only at layer l + 2. The weights of layers ``first`` and ``first + 1``
        must be drawn before (a previous pass leaves them drawn). The first error stops every
        thread and is raised.
        """
        todo = BEFORE_FIRST_PASS[:]  # taken first: a callable may run a simulation itself
        BEFORE_FIRST_PASS.clear()
        for before in todo:
            before()
        cond = threading.Condition()
        drawn, done, ready = [self.size] * 2 + [0] * n, [0] * n, [False] * n
        failed = []

        def wait_for(test):
            with cond:
                cond.wait_for(lambda: test() or failed)
                if failed:
                    raise _Stopped

        def add(counts, i):
            with cond:
                counts[i] += 1
                cond.notify_all()
                return counts[i] == self.size

        def finished(i, t):
            wait_for(lambda: ready[i])
            if count is not None and (counted is None or counted(first + i)):
                count(first + i, t)

        def loop(t):
            try:
                for i in range(n):
                    layer = first + i
                    wait_for(lambda: drawn[i] == self.size)
                    compute(layer, t)
                    if add(done, i):
                        finish(layer)
                        with cond:
                            ready[i] = True
                            cond.notify_all()
                    if i:
                        finished(i - 1, t)
                    draw(layer + 2, t)
                    add(drawn, i + 2)
                finished(n - 1, t)
            except _Stopped:
                pass
            except BaseException:
                with cond:
                    failed.append(True)
                    cond.notify_all()
                raise

        self.run(loop)


def _gemm_rows(samples):
    """The rows of each BLAS call in a simulation of ``samples`` rows: 256 from 512 samples on,
    else one chunk (64), so that small runs still split over threads. Measured on 2 cores (AMD
    Zen 5, OpenBLAS), two threads each multiplying 512 rows by a 1024 x 1024 matrix took 10.5 ms
    in 256-row calls and 12.7 ms in one 512-row call (the bare two-thread product: 10.3 ms)."""
    return 4 * K.CHUNK if samples >= 8 * K.CHUNK else K.CHUNK


class _BlasLimit:
    """BLAS's thread limit while any simulation team runs: set by the first team to start,
    restored when the last one ends (limits set and restored by overlapping calls in other
    threads would otherwise restore each other's values). threadpoolctl's view of the loaded
    libraries is found once: that takes about 1 ms, a limit through it microseconds."""

    def __init__(self):
        self._lock = threading.Lock()
        self._users = 0
        self._limits = None

    def hold(self):
        """BLAS on one thread until the matching :meth:`release` (the teams' products are
        single-threaded BLAS calls, see :class:`_Team`)."""
        with self._lock:
            if self._users == 0:
                self._limits = _blas_controller().limit(limits=1, user_api="blas")
            self._users += 1

    def release(self):
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self._limits.restore_original_limits()
                self._limits = None


@functools.lru_cache(maxsize=None)
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


_BLAS = _BlasLimit()


class _Stopped(Exception):
    """Raised in a team thread when another one failed."""


def _reduce_layer(part, samples, layer, stats):
    """Combine the per-chunk, per-unit partials of one layer into its statistics."""
    totals = np.empty(7)
    K.reduce_partials(part, samples, totals)
    s1, s2, sz2, sat, zero, bad, dead_units = totals.tolist()
    n = samples * part.shape[2]
    good = n - bad
    mean = s1 / good if good else math.nan
    stats["mean"][layer] = mean
    stats["var"][layer] = max(s2 / good - mean * mean, 0.0) if good else math.nan
    stats["q"][layer] = sz2 / n
    stats["saturated"][layer] = sat / n
    stats["dead"][layer] = zero / n
    stats["dead_units"][layer] = dead_units / part.shape[2]
    stats["nonfinite"][layer] = bad / n


def _backward(saved, checkpoint, depth, dims, samples, dtype, seed, layer_rows, parts, hists,
              weights, bwd, slope, team, report):
    """Back-propagate a N(0, 1) cotangent, recomputing activations segment by segment from the
    checkpoints (the last segment first), in one pass of the team's pipeline (``run_layers``)
    over the weight uses after the forward pass: each segment's layers forwards again, then
    back through them. grad_var[l] is the second moment of dL/dh^{l+1} (layer l's output),
    grad_norm[l] its mean per-sample L2 norm; both summed per chunk of rows, so they do not
    depend on the team.

    Every step is row-wise, so a thread only ever touches its own rows of each array and may
    run a step ahead of the others. Each array is made by the first thread that needs it and
    let go by ``finish`` of the last step that reads it (all threads are done with it then), so
    about one segment's activations (and, at a segment's end, the next one's first layer) and
    at most three cotangents are alive at once."""
    grad_var = np.empty(depth)
    grad_norm = np.empty(depth)
    steps = []  # (recompute?, layer, segment start) per weight use from `depth` on
    for s in sorted(saved, reverse=True):
        end = min(s + checkpoint, depth)
        steps += [(True, layer, s) for layer in range(s, end)]
        steps += [(False, layer, s) for layer in range(end - 1, s - 1, -1)]
    grads = {depth: normal((samples, dims[-1]), seed=stream_seed(seed, depth, _COTANGENT),
                           dtype=dtype)}  # cotangents: grads[l] = dL/dh^l (layer l's input)
    acts = {}  # (out, z) of each recomputed layer, by (segment, layer)
    sums = np.empty((2, 2, team.n_chunks))  # by step parity
    lock = threading.Lock()

    def compute(use, t):
        again, layer, s = steps[use - depth]
        shape = (samples, dims[layer + 1])
        if again:
            out, z = _made(acts, (s, layer), lock, lambda: (np.empty(shape, dtype),
                                                            np.empty(shape, dtype)))
            h = saved[s] if layer == s else acts[s, layer - 1][0]
            layer_rows(use, t, h, out, parts[0], hists[0, t], z)
            return
        (r0, r1), (c0, c1) = team.rows[t], team.chunks[t]
        g, z = grads[layer + 1], acts[s, layer][1]
        g_in = _made(grads, layer, lock, lambda: np.empty((samples, dims[layer]), dtype))
        K.cotangent_sums(g, sums[use % 2], c0, c1)
        bwd(g, z, slope, r0, r1)  # g <- g * phi'(z)
        with np.errstate(over="ignore", invalid="ignore"):
            team.matmul(g, weights.view(use).T, g_in, t)

    def finish(use):
        again, layer, s = steps[use - depth]
        if again:
            return
        del grads[layer + 1]
        _backward_step_done(sums[use % 2], layer, s, samples, dims[layer + 1], grad_var,
                            grad_norm, acts, lock)
        report(2 * depth - layer)

    team.run_layers(len(steps), compute, weights.draw, finish, first=depth)
    return grad_var, grad_norm


def _made(store, key, lock, make):
    """``store[key]``, made with ``make()`` by the first thread that asks (under ``lock``)."""
    with lock:
        if key not in store:
            store[key] = make()
        return store[key]


def _backward_step_done(part, layer, s, samples, width, grad_var, grad_norm, store, lock):
    """After the backward step through layer (or block) ``layer`` of the segment starting at
    ``s``: its cotangent's second moment and mean row norm from the per-chunk sums ``part``
    (2, n_chunks), and at the segment's first layer (its last step: every thread is done with
    it) the segment's arrays dropped from ``store`` (keys ``(s, layer)``; a thread may already
    be recomputing the next segment)."""
    grad_var[layer] = part[0].sum() / (samples * width)
    grad_norm[layer] = part[1].sum() / samples
    if layer == s:
        with lock:
            for key in [k for k in store if k[0] == s]:
                del store[key]


def _progress_fn(progress, total):
    if callable(progress):
        return lambda done: progress(done, total)
    if not progress:
        return lambda done: None
    from tqdm.auto import tqdm  # a widget in a notebook, text on a terminal, off elsewhere

    bar = tqdm(total=total, desc="simulate", disable=None)

    def report(done):
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
    return report
