r"""Singular values of the input-output Jacobian of a deep random MLP (dynamical isometry).

The network is the one :func:`weightinit.simulate` runs: square layers
:math:`x^l = \phi(x^{l-1} W^l + b^l)`, :math:`W^l` of shape (width, width) drawn by a scheme
from the stream ``stream_seed(seed, l, weight)`` (the same weights ``simulate`` draws for the
same seed, here in float64), biases :math:`\mathcal{N}(0, \sigma_b^2)` from the bias stream.
In column-vector form the Jacobian at an input :math:`x^0` is

.. math::

    J = \frac{\partial x^L}{\partial x^0} = D^L W^{L\top} \cdots D^1 W^{1\top}, \qquad
    D^l = \mathrm{diag}(\phi'(h^l)),

(Pennington, Schoenholz & Ganguli 2017, eq. 2). ``method="exact"`` accumulates
:math:`M_l = M_{l-1} W^l D^l` (:math:`M_l = J_l^\top`, :math:`M_1 = W^1 D^1`) with one
float64 BLAS product per layer and sample and takes the singular values with
``numpy.linalg.svd``: cost ``samples * ((depth - 1) * 2 width^3 + SVD)`` flops, memory
``samples + 3`` width x width float64 matrices, whatever the depth.
``method="randomised"`` never forms :math:`J`: it estimates the first two moments of
:math:`JJ^\top` by Hutchinson's estimator with ``probes`` Gaussian vectors :math:`v`,
:math:`m_1 = \mathbb{E}|Jv|^2 / n` and :math:`m_2 = \mathbb{E}|J^\top J v|^2 / n`
(Hutchinson 1990), at cost ``samples * depth * 4 width^2 probes`` flops (the weights are drawn twice).

``architecture="residual"`` takes the network of ``simulate(..., architecture="residual")``:
block :math:`l` maps :math:`h \mapsto u = h + \alpha F(x)` with :math:`x = N(h)` (pre-norm) or
:math:`h`, then :math:`N(u)` (post-norm) or :math:`u`, so (row vectors, :math:`M = J^\top`)

.. math::

    M \leftarrow \big(M + \alpha\, M J_{N}^{\mathrm{pre}} W_1 D_1 [W_2]\big)
    J_{N}^{\mathrm{post}}, \qquad
    J_N = \frac{1}{s}\Big(I - \frac{\mathbf{1}\mathbf{1}^\top}{n}\,[\text{LayerNorm}]
    - \frac{y y^\top}{n}\Big),

with :math:`y = N(v)` and :math:`s` the row's scale at the normalisation's input :math:`v`
(applied as a rank-two update, :math:`O(n^2)`), exact, ``branch_depth`` products of
:math:`n^3` per block and sample. Its mean squared singular value is predicted by
:func:`weightinit.theory.propagate_residual` (``grad_input``); there is no free-probability
density for it here.
"""

import dataclasses
import math
from typing import Optional

import numpy as np

from . import _residual as R
from . import _validate as V
from .initializers import get, normal
from .kernels.activations import CODES
from .quadrature import _phi
from .simulation import (_BIAS, _COTANGENT, _INPUT, _WEIGHT, JSONFields, _mean_field_sigma_w2,
                         _weight_specs, stream_seed)

__all__ = ["JacobianSpectrum", "jacobian_spectrum"]

ARCHITECTURES = ("mlp", "residual")
METHODS = ("exact", "randomised")
_UNSET = V.UNSET
_PROBE = _COTANGENT  # the probe vectors of the randomised estimate


@dataclasses.dataclass
class JacobianSpectrum(JSONFields):
    """Spectrum of the input-output Jacobian J of a deep MLP (see :mod:`weightinit.spectrum`).

    Attributes
    ----------
    singular_values : (samples, width) array, descending per sample (``method="exact"``;
        None for ``"randomised"``).
    hist, bin_edges : histogram of all singular values (``bins`` bins over [0, max]).
    mean_sq, var_sq : mean and variance of the squared singular values :math:`\\lambda = s^2`
        (eigenvalues of :math:`JJ^\\top`) pooled over samples: :math:`m_1` and
        :math:`m_2 - m_1^2` with :math:`m_k = \\mathrm{tr}((JJ^\\top)^k) / n`.
    moments : :math:`m_1, m_2, \\dots` pooled over samples (4 exact, 2 randomised).
    layer_mean_sq : (depth,) :math:`\\mathrm{tr}(J_l J_l^\\top)/n` after each layer l (exact).
    q_input : second moment of the inputs; sigma_w, sigma_b : the weight scale
        :math:`\\sqrt{\\mathrm{Var}(W)\\,n}` and the bias std. With a ``recipe``,
        ``branch_sigma_w`` (blocks, branch_depth) holds each branch layer's scale.
    """

    depth: int
    width: int
    activation: str
    scheme: str
    params: dict
    samples: int
    seed: int
    method: str
    sigma_w: float
    sigma_b: float
    q_input: float
    mean_sq: float
    var_sq: float
    moments: np.ndarray
    hist: np.ndarray
    bin_edges: np.ndarray
    singular_values: Optional[np.ndarray] = None
    layer_mean_sq: Optional[np.ndarray] = None
    slope: float = 0.01
    architecture: str = "mlp"
    branch_depth: int = 1
    branch_scale: float = 1.0
    norm: Optional[str] = None
    norm_position: Optional[str] = None
    recipe: Optional[str] = None
    branch_sigma_w: Optional[np.ndarray] = None

    def mean_field_mean_sq(self):
        """Mean-field :math:`\\mathrm{tr}(JJ^\\top)/n` of this residual network at its inputs'
        mean square: :func:`weightinit.theory.propagate_residual`'s ``grad_input`` (the
        product of the per-block backward gains)."""
        from .residual_theory import propagate_residual

        if self.architecture != "residual":
            raise ValueError("mean_field_mean_sq() is for architecture='residual'; an MLP's "
                             "prediction is theory().mean_sq (chi1^L).")
        sigma_w = self.sigma_w if self.branch_sigma_w is None else self.branch_sigma_w
        if not np.all(np.isfinite(sigma_w)):
            raise ValueError(f"{self.scheme} gives constant (zero or identity) weights to some "
                             "branch layers; mean-field theory needs random weights.")
        return propagate_residual(
            self.activation, sigma_w, self.sigma_b, self.q_input, self.depth,
            branch_scale=self.branch_scale, branch_depth=self.branch_depth, norm=self.norm,
            norm_position=self.norm_position or "pre", slope=self.slope)["grad_input"]

    def theory(self, **kw):
        """The free-probability prediction for this network
        (:func:`weightinit.theory.jacobian_spectrum`; orthogonal weights for the ``orthogonal``
        scheme, Gaussian otherwise)."""
        from .free_probability import jacobian_spectrum as theory_spectrum

        if self.architecture != "mlp":
            raise ValueError(
                "The free-probability prediction covers the plain MLP only. For a residual "
                "network, mean_field_mean_sq() gives the mean-field mean squared singular "
                "value (weightinit.theory.propagate_residual's grad_input).")
        weights = "orthogonal" if self.scheme == "orthogonal" else "gaussian"
        return theory_spectrum(self.depth, activation=self.activation, weights=weights,
                               sigma_w=self.sigma_w, sigma_b=self.sigma_b, slope=self.slope,
                               **kw)



def jacobian_spectrum(depth, width, *, activation="tanh", scheme=_UNSET, std=None, sigma_b=0.0,
                      samples=4, x=None, seed=0, bins=50, architecture="mlp", method="exact",
                      probes=16, slope=0.01, branch_depth=1, branch_scale=1.0, norm=None,
                      norm_position="pre", recipe=None, **scheme_params):
    r"""Singular values of the input-output Jacobian :math:`J = D^L W^{L\top} \cdots D^1
    W^{1\top}` of a deep square MLP at ``samples`` inputs (see :mod:`weightinit.spectrum`).

    Parameters
    ----------
    depth, width : int
        Number of layers :math:`L` and units per layer :math:`n` (input dimension = width).
    activation : str
        As in :func:`weightinit.simulate`.
    scheme : str, optional
        Weight scheme (``weightinit.schemes()``, e.g. ``"orthogonal"`` with ``gain=``), its
        parameters as extra keywords; default ``"glorot_normal"``. Or ``std``: plain
        :math:`\mathcal{N}(0, \mathrm{std}^2)` weights. Give exactly one.
    sigma_b : float
        Bias standard deviation (Gaussian biases, one draw per layer).
    samples : int
        Number of random inputs :math:`x^0 \sim \mathcal{N}(0, q_0 I)` with
        :math:`q_0 = (q^* - \sigma_b^2)/\sigma_w^2`, so that every layer's pre-activations
        have second moment :math:`q^*` (:func:`weightinit.theory.fixed_point`; :math:`q_0 = 1`
        where :math:`q^*` is 0 or infinite, and for residual networks); or give ``x`` of shape
        (samples, width).
    seed : int
        Weights, biases and inputs derive from it (weights as in ``simulate``).
    bins : int
        Histogram bins of the singular values.
    architecture : {"mlp", "residual"}
        ``"residual"``: ``depth`` residual blocks as in :func:`weightinit.simulate`, with
        ``branch_depth``, ``branch_scale``, ``norm`` and ``norm_position`` as there (exact
        method only).
    recipe : str, optional
        Residual networks only: a transformer recipe draws the branch weights by role, as in
        :func:`weightinit.simulate` (its parameters as extra keywords).
    method : {"exact", "randomised"}
        Exact SVD of the accumulated product, or Hutchinson estimates of :math:`m_1, m_2`
        with ``probes`` Gaussian probe vectors per sample.

    Returns
    -------
    JacobianSpectrum

    References
    ----------
    J. Pennington, S. S. Schoenholz, S. Ganguli, "Resurrecting the sigmoid in deep learning
    through dynamical isometry", NeurIPS 2017, arXiv:1711.04735 (eq. 2, Fig. 3).
    M. F. Hutchinson, "A stochastic estimator of the trace of the influence matrix", 1990.
    """
    from . import theory

    depth = V.check_int("depth", depth, low=1)
    n = V.check_int("width", width, low=1)
    V.check_choice("activation", activation, CODES)
    V.check_choice("architecture", architecture, ARCHITECTURES)
    V.check_choice("method", method, METHODS)
    bins = V.check_int("bins", bins, low=1)
    probes = V.check_int("probes", probes, low=1)
    seed = V.check_int("seed", seed, low=0)
    sb = V.check_real("sigma_b", sigma_b, nonnegative=True)
    slope = V.check_real("slope", slope)
    scheme = V.scheme_or_std(scheme, std)
    if x is not None:
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise TypeError(f"`x` must be a 2-D array of real numbers. Received dtype {x.dtype}")
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != n:
            raise ValueError(f"`x` must have shape (samples, width={n}): the Jacobian is square. "
                             f"Received shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("`x` contains NaN or inf.")
        samples = x.shape[0]
    else:
        samples = V.check_int("samples", samples, low=1)
    bd, alpha = R.check_residual(architecture, branch_depth, branch_scale, norm, norm_position,
                                 [n] * depth, n, x)
    residual = architecture == "residual"
    if residual and method != "exact":
        raise ValueError("architecture='residual' supports method='exact' only.")
    shape = (n, n)
    layer_spec = recipe_params = None
    if recipe is not None:
        layer_spec, gate = R.recipe_layers(recipe, scheme_params, architecture, depth, bd, n)
        alpha *= gate
        recipe_params, scheme_params = dict(scheme_params), {}
    if std is not None:
        std = V.check_real("std", std, nonnegative=True)
        sw2 = std * std * n
        name, params = "normal", {"std": std}
    else:
        sw2 = _mean_field_sigma_w2(shape, scheme, scheme_params)
        if math.isnan(sw2):
            raise ValueError(f"`scheme`={scheme!r} gives constant weights: use a random scheme.")
        name, params = scheme, dict(scheme_params)
    V.check_memory(((samples + 3) * n * n if method == "exact" else
                    3 * n * n + samples * n * (depth + 2 * probes)) * 8,
                   f"Jacobian spectrum of width {n}", "Use a smaller `width` or `depth`.")
    sw = math.sqrt(sw2)
    code = CODES[activation]

    spec = _weight_specs(std, scheme, scheme_params, layer_spec)

    def draw(layer):
        s = stream_seed(seed, layer, _WEIGHT)
        sp = spec(layer)
        if sp is None:
            return normal(shape, 0.0, std, seed=s, dtype=np.float64)
        return get(sp[0])(shape, seed=s, dtype=np.float64, layout="keras", **sp[1])

    branch_sw = None
    if recipe is not None:
        branch_sw = np.sqrt([[sw2 if spec(b * bd + k) is None
                              else _mean_field_sigma_w2(shape, *spec(b * bd + k))
                              for k in range(bd)] for b in range(depth)])
        sw = float(branch_sw[0, 0])
        name, params = f"{recipe} recipe", recipe_params

    if x is None and residual:
        h = normal((samples, n), seed=stream_seed(seed, 0, _INPUT), dtype=np.float64)
    elif x is None:
        q_star = theory.fixed_point(activation, sw, sb, slope=slope)
        q_in = (q_star - sb * sb) / sw2 if 0.0 < q_star < math.inf and sw2 > 0 else 1.0
        q_in = q_in if q_in > 0 else 1.0
        h = normal((samples, n), 0.0, math.sqrt(q_in), seed=stream_seed(seed, 0, _INPUT),
                   dtype=np.float64)
    else:
        h = np.array(x, dtype=np.float64)
    q_in = float(np.mean(h * h))

    exact = method == "exact"
    if residual:
        def bias(k):
            return (normal(n, 0.0, sb, seed=stream_seed(seed, k, _BIAS), dtype=np.float64)
                    if sb > 0 else 0.0)

        mats, layer_sq = _residual_mats(h, depth, bd, alpha, norm, norm_position, draw, bias,
                                        code, slope)
        return _result(mats, layer_sq, bins, depth=depth, width=n, activation=activation,
                       scheme=name, params=params, samples=samples, seed=seed, method=method,
                       sigma_w=sw, sigma_b=sb, q_input=q_in, slope=slope,
                       architecture=architecture, branch_depth=bd, branch_scale=alpha,
                       norm=norm, norm_position=norm_position if norm is not None else None,
                       recipe=recipe, branch_sigma_w=branch_sw)
    mats = np.empty((samples, n, n)) if exact else None  # M_l = J_l^T per sample
    tmp = np.empty(shape)
    layer_sq = np.zeros(depth) if exact else None
    rng = np.random.default_rng(stream_seed(seed, 0, _PROBE))
    probe = None if exact else rng.standard_normal((samples, n, probes))
    derivs = None if exact else np.empty((samples, depth, n))
    for layer in range(depth):  # forward: D^l, and J_l (exact) or J_l v (randomised)
        w = draw(layer)
        z = h @ w
        if sb > 0:
            z += normal(n, 0.0, sb, seed=stream_seed(seed, layer, _BIAS), dtype=np.float64)
        d = _phi(code, z, 1, slope)
        h = _phi(code, z, 0, slope)
        for s in range(samples):
            if not exact:
                derivs[s, layer] = d[s]
                probe[s] = d[s][:, None] * (w.T @ probe[s])
            elif layer == 0:
                np.multiply(w, d[s], out=mats[s])
            else:
                np.matmul(mats[s], w, out=tmp)
                np.multiply(tmp, d[s], out=mats[s])
        if exact:
            layer_sq[layer] = np.vdot(mats, mats) / (n * samples)
    if exact:
        return _result(mats, layer_sq, bins, depth=depth, width=n, activation=activation,
                       scheme=name, params=params, samples=samples, seed=seed, method=method,
                       sigma_w=sw, sigma_b=sb, q_input=q_in, slope=slope)
    else:
        m1 = np.sum(probe * probe) / (n * probes * samples)
        for layer in range(depth - 1, -1, -1):  # J^T (J v), the weights drawn again
            w = draw(layer)
            for s in range(samples):
                probe[s] = w @ (derivs[s, layer][:, None] * probe[s])
        m2 = np.sum(probe * probe) / (n * probes * samples)
        moments = np.array([m1, m2])
    return JacobianSpectrum(
        depth=depth, width=n, activation=activation, scheme=name, params=params,
        samples=samples, seed=seed, method=method, sigma_w=sw, sigma_b=sb, q_input=q_in,
        mean_sq=float(moments[0]), var_sq=float(moments[1] - moments[0] ** 2), moments=moments,
        hist=np.zeros(bins, np.int64), bin_edges=np.linspace(0.0, 1.0, bins + 1),
        layer_mean_sq=None, slope=slope)


def _result(mats, layer_sq, bins, **fields):
    """The JacobianSpectrum of the accumulated J^T matrices: SVD, moments, histogram."""
    sv = np.linalg.svd(mats, compute_uv=False)
    lam = sv * sv
    moments = np.array([np.mean(lam ** k) for k in range(1, 5)])
    top = float(sv.max()) if np.isfinite(sv).all() and sv.max() > 0 else 1.0
    hist, edges = np.histogram(sv, bins=bins, range=(0.0, top))
    return JacobianSpectrum(mean_sq=float(moments[0]), var_sq=float(moments[1] - moments[0] ** 2),
                            moments=moments, hist=hist, bin_edges=edges, singular_values=sv,
                            layer_mean_sq=layer_sq, **fields)


def _normalise_rows(v, center):
    """Rows of v normalised (LayerNorm with ``center``, else RMSNorm; no gain or bias) and
    their scales s."""
    c = v - v.mean(axis=1, keepdims=True) if center else v
    s = np.sqrt(np.mean(c * c, axis=1) + R.NORM_EPS)
    return c / s[:, None], s


def _times_norm_jacobian(m, y, s, center):
    """m J_N for the normalisation at a row with output y and scale s (J_N symmetric)."""
    n = y.size
    out = m - np.outer(m @ y, y) / n
    if center:
        out -= m.sum(axis=1, keepdims=True) / n
    out /= s
    return out


def _residual_mats(h, blocks, bd, alpha, norm, position, draw, bias, code, slope):
    """J^T of the residual network at each row of h (see the module docstring), and the mean
    squared singular value after each block."""
    samples, n = h.shape
    center = norm == "layer"
    pre, post = norm is not None and position == "pre", norm is not None and position == "post"
    mats = np.broadcast_to(np.eye(n), (samples, n, n)).copy()
    layer_sq = np.empty(blocks)
    for block in range(blocks):
        ws = [draw(block * bd + k) for k in range(bd)]
        bs = [bias(block * bd + k) for k in range(bd)]
        x, s_pre = _normalise_rows(h, center) if pre else (h, None)
        z = x @ ws[0] + bs[0]
        d = _phi(code, z, 1, slope)
        f = _phi(code, z, 0, slope)
        if bd == 2:
            f = f @ ws[1] + bs[1]
        u = h + alpha * f
        h, s_post = _normalise_rows(u, center) if post else (u, None)
        for i in range(samples):
            m = mats[i]
            t = (_times_norm_jacobian(m, x[i], s_pre[i], center) if pre else m) @ ws[0]
            t *= d[i]
            if bd == 2:
                t = t @ ws[1]
            t *= alpha
            t += m
            mats[i] = _times_norm_jacobian(t, h[i], s_post[i], center) if post else t
        layer_sq[block] = np.vdot(mats, mats) / (n * samples)
    return mats, layer_sq
