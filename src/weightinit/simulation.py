r"""Deep-MLP signal propagation: how an initialisation shapes activations and gradients.

The experiment: ``samples`` inputs pass through ``depth`` dense layers
:math:`h^l = \phi(h^{l-1} W^l + b^l)`, :math:`W^l` of shape (fan_in, fan_out) drawn by a scheme,
and each layer's activations are summarised (mean, variance, saturation, dead units, histogram).
The matrix products go to BLAS; one fused Numba pass per layer adds the bias, applies the
activation and accumulates every statistic. Layer ``l``'s weights are regenerated from
``(seed, l)`` into one reused buffer, so memory is O(width**2 + samples * width) for any depth.
"""

import dataclasses
import json
import math
from typing import Optional

import numpy as np

from . import _validate as V
from ._threads import LOCK
from .activations import bias_value
from .initializers import describe, get, normal
from .kernels import activations as KA
from .kernels import mlp as K

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


@dataclasses.dataclass
class SimulationResult:
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
        weights, where mean-field theory does not apply); sigma_b2 : bias variance.
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

    @property
    def depth(self):
        return len(self.mean)

    def theory(self):
        """Mean-field prediction beside the simulation: dict of per-layer arrays ``q`` (predicted
        pre-activation second moment), ``mean``/``var`` (predicted activation moments) and the
        simulated ``q_sim``. Assumes zero-mean i.i.d. weights of variance sigma_w2/fan_in and a
        zero-mean bias; a constant bias b enters as variance b**2, exact for ``q`` of the first
        layer and an approximation after it (the pre-activations then have mean b)."""
        from . import theory

        sw = np.sqrt(self.sigma_w2)
        if not np.all(np.isfinite(sw)):
            raise ValueError(
                f"Mean-field theory needs zero-mean random weights; scheme {self.scheme!r} gives "
                "constant weights.")
        sb2 = self.sigma_b2 + self.bias**2
        q = theory.propagate(self.activation, sw, math.sqrt(sb2), self.input_var, self.depth,
                             slope=self.slope)
        ok = np.isfinite(q) & (q > 0)  # an exploding or dying prediction has no moments
        m1, m2 = np.full(q.shape, math.nan), np.full(q.shape, math.nan)
        if ok.any():
            m1[ok], m2[ok] = theory.activation_moments(self.activation, q[ok], slope=self.slope)
        return {"q": q, "mean": m1, "var": m2 - m1**2, "q_sim": self.q}

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


_UNSET = object()


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
    if scheme is _UNSET:
        scheme = "glorot_normal" if std is None else None
    if (scheme is None) == (std is None):
        raise ValueError(
            "Give exactly one of `scheme` (a scheme name) and `std` (plain N(0, std^2) weights). "
            f"Received scheme={scheme!r}, std={std!r}")
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
             **scheme_params):
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
        True prints a progress bar to stderr; a callable is called as ``progress(done, total)``.

    Returns
    -------
    SimulationResult
    """
    widths, samples, input_dim, x, dtype, scheme, b = _check_args(
        depth, width, widths, samples, input_dim, x, bins, activation, scheme, std, bias,
        bias_std, dtype)
    seed = V.check_int("seed", seed, low=0)
    depth = len(widths)
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
    V.check_memory((max(dims[i] * dims[i + 1] for i in range(depth)) + (3 + n_saved) * samples * big)
                   * item + 64 * samples * big, f"simulation of widths up to {big}",
                   "Use fewer `samples` or narrower layers (`width`/`widths`).")

    # One plan per layer: the weight scheme (validated on the first layer's shape) and the
    # mean-field weight variance sigma_w^2 = Var(W) * fan_in.
    def draw_weights(layer, out):
        n_in, n_out = dims[layer], dims[layer + 1]
        s = stream_seed(seed, layer, _WEIGHT)
        if std is not None:
            return normal((n_in, n_out), 0.0, std, seed=s, dtype=dtype, out=out)
        return get(scheme)((n_in, n_out), seed=s, dtype=dtype, layout="keras", out=out,
                           **scheme_params)

    sigma_w2 = np.empty(depth)
    for layer in range(depth):
        n_in, n_out = dims[layer], dims[layer + 1]
        if std is not None:
            sigma_w2[layer] = std * std * n_in
        else:
            info = describe((n_in, n_out), scheme, layout="keras", **scheme_params)
            sigma_w2[layer] = (math.nan if info["distribution"] in ("constant", "identity")
                               else info["variance"] * n_in)
    if x is None:
        h0 = normal((samples, input_dim), seed=stream_seed(seed, 0, _INPUT), dtype=dtype)
    else:
        h0 = np.ascontiguousarray(x, dtype=dtype)
    input_var = float(np.mean(np.square(h0, dtype=np.float64)))

    wbuf = np.empty(max(dims[i] * dims[i + 1] for i in range(depth)), dtype)
    bufs = [np.empty(samples * big, dtype), np.empty(samples * big, dtype)]
    n_chunks = (samples + K.CHUNK - 1) // K.CHUNK
    part = np.empty((n_chunks, K.N_STATS, big))
    hpart = np.empty((n_chunks, 4, bins), np.int64)
    no_hist = hpart[:, :, :0]
    sat_lo, sat_hi = SATURATION.get(activation, (-math.inf, math.inf))

    stats = {k: np.empty(depth) for k in ("mean", "var", "q", "saturated", "dead", "dead_units",
                                          "nonfinite")}
    hist = np.zeros((depth, bins), np.int64)
    edges = np.empty((depth, bins + 1))
    report = _progress_fn(progress, depth * (2 if backward else 1))

    def layer_forward(layer, h, out, keep_z=False):
        """out <- phi(h W + b) for ``layer`` (0-based); with ``keep_z`` return z = h W + b."""
        n_in, n_out = dims[layer], dims[layer + 1]
        w = draw_weights(layer, wbuf[: n_in * n_out].reshape(n_in, n_out))
        with np.errstate(over="ignore", invalid="ignore"):  # reported as `nonfinite`
            np.matmul(h, w, out=out)
        bvec = np.full(n_out, b, dtype)
        if bias_std > 0:
            bvec += normal(n_out, 0.0, bias_std, seed=stream_seed(seed, layer, _BIAS), dtype=dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            z = out + bvec if keep_z else None
        lo, hi = HIST_RANGE.get(activation, (0.0, 0.0))  # a fixed range: count in the same pass
        with LOCK:
            fwd(out, bvec, kslope, sat_lo, sat_hi, part[:, :, :n_out], lo, hi,
                hpart if (hi > lo and not keep_z) else no_hist)
        return z

    saved = {0: h0} if backward else None
    h = h0
    for layer in range(depth):
        n_out = dims[layer + 1]
        out = bufs[layer % 2][: samples * n_out].reshape(samples, n_out)
        layer_forward(layer, h, out)
        _reduce_layer(part[:, :, :n_out], samples * n_out, layer, stats)
        lo, hi = HIST_RANGE.get(activation, (None, None))
        if lo is None:  # a data-driven range: a second pass once the extremes are known
            lo, hi = float(part[:, K.MIN_A, :n_out].min()), float(part[:, K.MAX_A, :n_out].max())
            if not (math.isfinite(lo) and math.isfinite(hi)):
                lo, hi = 0.0, 1.0
            if hi <= lo:
                lo, hi = lo - 0.5, hi + 0.5
            with LOCK:
                K.histogram(out, lo, hi, hpart)
        hist[layer] = hpart.sum(axis=(0, 1))
        edges[layer] = np.linspace(lo, hi, bins + 1)
        if backward and (layer + 1) % checkpoint == 0 and layer + 1 < depth:
            saved[layer + 1] = out.copy()
        h = out
        report(layer + 1)

    grad_var = grad_norm = None
    if backward:
        grad_var, grad_norm = _backward(
            h, saved, checkpoint, depth, dims, samples, dtype, seed, layer_forward, draw_weights,
            wbuf, bwd, kslope, report)
    mean, var = stats["mean"], stats["var"]
    return SimulationResult(
        activation=activation, scheme=scheme if std is None else f"normal(std={std:g})",
        params=dict(scheme_params) if std is None else {"std": float(std)}, widths=widths,
        samples=samples, input_var=input_var, mean=mean, var=var, std=np.sqrt(var), q=stats["q"],
        saturated=stats["saturated"], dead=stats["dead"], dead_units=stats["dead_units"],
        nonfinite=stats["nonfinite"], hist=hist, bin_edges=edges, sigma_w2=sigma_w2,
        sigma_b2=float(bias_std) ** 2, bias=float(b), slope=slope, seed=seed, dtype=dtype.name,
        grad_var=grad_var, grad_norm=grad_norm)


def _reduce_layer(part, n, layer, stats):
    """Combine the per-chunk, per-unit partials of one layer into its statistics."""
    counts = part[:, K.COUNTS].astype(np.float64)  # per chunk and unit: sat + 128 zero + 128^2 bad
    base = K.COUNT_BASE
    bad_c = np.floor(counts / base**2)
    zero_c = np.floor((counts - bad_c * base**2) / base)
    sat_u = (counts - bad_c * base**2 - zero_c * base).sum(axis=0)
    bad_u, zero_u = bad_c.sum(axis=0), zero_c.sum(axis=0)
    rows = n / part.shape[2]
    bad = bad_u.sum()
    good = n - bad
    s1 = part[:, K.SUM_A].sum(dtype=np.float64)
    s2 = part[:, K.SUM_A2].sum(dtype=np.float64)
    mean = s1 / good if good else math.nan
    stats["mean"][layer] = mean
    stats["var"][layer] = max(s2 / good - mean * mean, 0.0) if good else math.nan
    stats["q"][layer] = part[:, K.SUM_Z2].sum(dtype=np.float64) / n
    stats["saturated"][layer] = sat_u.sum() / n
    stats["dead"][layer] = zero_u.sum() / n
    stats["dead_units"][layer] = float(np.mean(zero_u == rows))
    stats["nonfinite"][layer] = bad / n


def _backward(h_last, saved, checkpoint, depth, dims, samples, dtype, seed, layer_forward,
              draw_weights, wbuf, bwd, slope, report):
    """Back-propagate a N(0, 1) cotangent, recomputing activations segment by segment from the
    checkpoints. grad_var[l] is the second moment of dL/dh^{l+1} (layer l's output)."""
    grad_var = np.empty(depth)
    grad_norm = np.empty(depth)
    g = normal((samples, dims[-1]), seed=stream_seed(seed, depth, _COTANGENT), dtype=dtype)
    done = depth
    for s in sorted(saved, reverse=True):
        end = min(s + checkpoint, depth)
        zs, h = [], saved[s]  # recompute the segment's pre-activations from its checkpoint
        for layer in range(s, end):
            out = np.empty((samples, dims[layer + 1]), dtype)
            zs.append(layer_forward(layer, h, out, keep_z=True))
            h = out
        for layer in range(end - 1, s - 1, -1):
            g64 = np.square(g, dtype=np.float64)
            grad_var[layer] = float(g64.mean())
            grad_norm[layer] = float(np.sqrt(g64.sum(axis=1)).mean())
            with LOCK:
                bwd(g, zs[layer - s], slope)  # g <- g * phi'(z)
            n_in, n_out = dims[layer], dims[layer + 1]
            with np.errstate(over="ignore", invalid="ignore"):
                g = g @ draw_weights(layer, wbuf[: n_in * n_out].reshape(n_in, n_out)).T
            done += 1
            report(done)
    return grad_var, grad_norm


def _progress_fn(progress, total):
    if callable(progress):
        return lambda done: progress(done, total)
    if not progress:
        return lambda done: None
    from ._progress import Progress

    bar = Progress(total, "simulate")

    def report(done):
        bar.update(done)
        if done >= total:
            bar.close()
    return report
