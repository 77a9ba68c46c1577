r"""Layer-sequential unit-variance (LSUV) initialisation for a NumPy MLP.

LSUV (Mishkin & Matas 2016) is a data-driven initialisation: start from orthonormal weights,
then, layer by layer from the input, divide the weights by the standard deviation of that
layer's pre-activation output on a batch of real data until its variance is 1:

.. code-block:: text

    for layer l = 1 .. L:
        repeat at most max_iter times:
            z = h_{l-1} W_l + b_l          # pre-activation output on the batch
            if |Var(z) - 1| < tol: stop
            W_l <- W_l / sqrt(Var(z))
        h_l = phi_l(z)

``Var(z)`` is the variance of all entries of ``z`` (over samples and units, ``ddof=0``), as the
paper's variance of the layer's output blob. Without a bias one step is exact (the variance of
``h W / s`` is ``Var(h W) / s**2``); a non-zero bias, which is not rescaled, can need more steps,
or make ``|Var - 1| < tol`` unreachable when the bias alone varies more than that.

:func:`weightinit.torch.lsuv_` runs the same algorithm on the layers of a PyTorch module.

Reference: D. Mishkin, J. Matas, "All you need is a good init", ICLR 2016 (Algorithm 1; tol 0.1
and at most 10 iterations are the paper's values).
"""

import dataclasses
import math

import numpy as np

from . import _validate as V
from .initializers import orthogonal
from .kernels import activations as KA

__all__ = ["LSUVResult", "lsuv", "layer_seed", "ACTIVATIONS"]

#: Activation names :func:`lsuv` accepts (the simulation's activation functions).
ACTIVATIONS = tuple(KA.CODES)


@dataclasses.dataclass
class LSUVResult:
    """What :func:`lsuv` and :func:`weightinit.torch.lsuv_` return, one entry per layer.

    Attributes
    ----------
    weights : list
        The rescaled weights: NumPy arrays in the input's dtypes for :func:`lsuv`; for
        ``lsuv_`` the module's own weight parameters, rescaled in place.
    scales : list of float
        Product of the factors applied to each layer's weights (weights after = scales[l] *
        weights before rescaling, i.e. after the orthonormal pre-initialisation if any).
    iterations : list of int
        Rescaling steps each layer took (0 when its variance already was within ``tol``).
    variances : list of float
        Variance of each layer's pre-activation output on the batch with the final weights.
    converged : list of bool
        ``|variances[l] - 1| < tol``.
    layers : list
        Layer indices (:func:`lsuv`) or qualified module names (``lsuv_``).
    """

    weights: list
    scales: list
    iterations: list
    variances: list
    converged: list
    layers: list
    tol: float = 0.1

    def __repr__(self):
        rows = ", ".join(f"{name}: scale={s:.6g}, iterations={i}, var={v:.6g}"
                         for name, s, i, v in zip(self.layers, self.scales, self.iterations,
                                                  self.variances))
        return f"LSUVResult({rows})"


def layer_seed(seed, layer):
    """The 64-bit seed of layer ``layer``'s orthonormal pre-initialisation in :func:`lsuv`:
    ``numpy.random.SeedSequence([seed, layer]).generate_state(2, uint32)`` as low, high words."""
    words = np.random.SeedSequence([seed, layer]).generate_state(2, np.uint32)
    return int(words[0]) | (int(words[1]) << 32)


def check_options(tol, max_iter):
    """Validate the two LSUV stopping parameters; return them as (float, int)."""
    tol = V.check_real("tol", tol, positive=True)
    max_iter = V.check_int("max_iter", max_iter, low=1)
    return tol, max_iter


def step(variance, where):
    """The factor 1/sqrt(variance) LSUV multiplies a layer's weights by, after checking the
    variance can be normalised (positive and finite); ``where`` names the layer in errors."""
    if not math.isfinite(variance):
        raise ValueError(f"The pre-activation output of {where} is not finite (variance "
                         f"{variance!r}); LSUV cannot rescale it. Check the input batch.")
    if variance <= 0:
        raise ValueError(
            f"The pre-activation output of {where} has variance 0 (every value equal), so no "
            "rescaling can bring it to 1. Check the input batch and the earlier layers (e.g. "
            "all ReLU units dead).")
    return 1.0 / math.sqrt(variance)


def _activation(name, z, slope):
    """phi(z) by the library's activation kernel (float64, any shape)."""
    flat = np.ascontiguousarray(z, dtype=np.float64).reshape(-1)
    out = np.empty_like(flat)
    KA.apply(KA.CODES[name], flat, float(slope), 0, out)
    return out.reshape(z.shape)


def _check_inputs(weights, activations, x, biases):
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
        raise TypeError("`weights` must be a list of 2-D arrays (one per layer, (in, out) layout "
                        f"for x @ W). Received: {type(weights).__name__}")
    if not weights:
        raise ValueError("`weights` must list at least one layer.")
    ws = []
    for k, w in enumerate(weights):
        a = np.asarray(w)
        if a.ndim != 2 or a.dtype.kind != "f":
            raise ValueError(f"`weights[{k}]` must be a 2-D float array (in, out). Received "
                             f"dtype {a.dtype} and shape {a.shape}")
        if k and a.shape[0] != ws[-1].shape[1]:
            raise ValueError(f"`weights[{k}]` has {a.shape[0]} inputs but layer {k - 1} has "
                             f"{ws[-1].shape[1]} outputs.")
        ws.append(a)
    if isinstance(activations, str):
        activations = [activations] * len(ws)
    activations = list(activations)
    if len(activations) != len(ws):
        raise ValueError(f"`activations` has {len(activations)} entries for {len(ws)} layers; "
                         "give one per layer (or one name for all).")
    for a in activations:
        V.check_choice("activations", a, ACTIVATIONS)
    x = np.asarray(x)
    if x.ndim != 2 or x.dtype.kind not in "fiu" or x.shape[0] < 2:
        raise ValueError("`x` must be a 2-D numeric batch (samples, features) with at least 2 "
                         f"samples. Received dtype {x.dtype} and shape {x.shape}")
    if x.shape[1] != ws[0].shape[0]:
        raise ValueError(f"`x` has {x.shape[1]} features but weights[0] expects "
                         f"{ws[0].shape[0]}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("`x` contains NaN or inf.")
    if biases is None:
        biases = [None] * len(ws)
    biases = list(biases)
    if len(biases) != len(ws):
        raise ValueError(f"`biases` has {len(biases)} entries for {len(ws)} layers.")
    bs = []
    for k, (b, w) in enumerate(zip(biases, ws)):
        if b is None:
            bs.append(None)
            continue
        b = np.asarray(b, dtype=np.float64)
        if b.shape != (w.shape[1],) or not np.all(np.isfinite(b)):
            raise ValueError(f"`biases[{k}]` must be None or a finite vector of shape "
                             f"({w.shape[1]},). Received shape {b.shape}")
        bs.append(b)
    return ws, activations, x, bs


def lsuv(weights, activations, x, tol=0.1, max_iter=10, *, orthonormal=True, seed=0,
         biases=None, slope=0.01):
    r"""LSUV initialisation of an MLP :math:`h_l = \phi_l(h_{l-1} W_l + b_l)`, :math:`h_0 = x`.

    Algorithm 1 of Mishkin & Matas (2016), see the module docstring: optional orthonormal
    pre-initialisation, then per layer :math:`W_l \leftarrow W_l / \sqrt{\operatorname{Var}(z_l)}`
    until :math:`|\operatorname{Var}(z_l) - 1| <` ``tol`` or ``max_iter`` steps. Computed in
    float64; the weights are returned in their input dtypes.

    Parameters
    ----------
    weights : list of 2-D arrays
        One ``(in, out)`` matrix per layer (Keras/JAX layout, ``x @ W``). Not modified. With
        ``orthonormal=True`` only their shapes and dtypes are used.
    activations : str or list of str
        The activation after each layer (one name for all layers): linear, sigmoid, tanh, relu,
        leaky_relu (negative slope ``slope``), elu, selu, gelu, silu, softplus.
    x : array (samples, features)
        The data batch (at least 2 samples); the paper uses one mini-batch of training data.
    tol : float
        Target band: stop when :math:`|\operatorname{Var} - 1| <` ``tol`` (default 0.1).
    max_iter : int
        At most this many rescaling steps per layer (default 10).
    orthonormal : bool
        Replace each weight by ``weightinit.orthogonal(shape, layout="keras",
        seed=layer_seed(seed, l))`` first (the paper's pre-initialisation, Saxe et al. 2014).
    seed : int
        Seed of the orthonormal pre-initialisation (see :func:`layer_seed`).
    biases : list of (1-D array or None), optional
        A bias per layer, added to ``h W``; never rescaled (default: no biases).

    Returns
    -------
    LSUVResult
        ``weights``, per-layer ``scales``, ``iterations``, final ``variances`` and
        ``converged`` flags; ``layers`` = ``[0, 1, ...]``.

    Raises
    ------
    ValueError
        For mismatched shapes, unknown activations, a non-finite batch, or a layer whose output
        has variance 0 or is not finite (nothing to normalise).

    References
    ----------
    D. Mishkin, J. Matas, "All you need is a good init", ICLR 2016.
    """
    ws, acts, x, bs = _check_inputs(weights, activations, x, biases)
    tol, max_iter = check_options(tol, max_iter)
    seed = V.check_int("seed", seed, low=0, high=1 << 64)
    slope = V.check_real("slope", slope)
    h = x.astype(np.float64)
    result = LSUVResult([], [], [], [], [], list(range(len(ws))), tol)
    for layer, (w0, act, b) in enumerate(zip(ws, acts, bs)):
        if orthonormal:
            w = orthogonal(w0.shape, layout="keras", seed=layer_seed(seed, layer),
                           dtype=np.float64)
        else:
            w = w0.astype(np.float64)
        scale, steps = 1.0, 0
        z = h @ w if b is None else h @ w + b
        var = float(z.var())
        while not abs(var - 1.0) < tol and steps < max_iter:
            f = step(var, f"layer {layer}")
            w *= f
            scale *= f
            steps += 1
            z = h @ w if b is None else h @ w + b
            var = float(z.var())
        result.weights.append(w.astype(w0.dtype))
        result.scales.append(scale)
        result.iterations.append(steps)
        result.variances.append(var)
        result.converged.append(abs(var - 1.0) < tol)
        h = _activation(act, z, slope)
    return result


def forward_variances(weights, activations, x, *, biases=None, slope=0.01):
    """Variance of every layer's pre-activation output when ``x`` passes through the MLP
    (float64), e.g. to check LSUV weights on a batch they were not calibrated on."""
    ws, acts, x, bs = _check_inputs(weights, activations, x, biases)
    slope = V.check_real("slope", slope)
    h = x.astype(np.float64)
    out = []
    for w, act, b in zip(ws, acts, bs):
        z = h @ w.astype(np.float64)
        if b is not None:
            z += b
        out.append(float(z.var()))
        h = _activation(act, z, slope)
    return np.array(out)

