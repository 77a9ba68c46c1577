r"""Mean-field signal propagation through residual networks, with and without normalisation:
the prediction that :meth:`weightinit.SimulationResult.theory` gives for
``simulate(..., architecture="residual")`` runs (re-exported as
:func:`weightinit.theory.propagate_residual`).

Block :math:`l` maps the residual stream :math:`h_l` to :math:`u = h_l + \alpha F(x)` with
:math:`x = N(h_l)` (pre-norm) or :math:`x = h_l`, and :math:`h_{l+1} = N(u)` (post-norm) or
:math:`u`; the branch is :math:`F = \phi(z)`, :math:`z = x W_1 + b_1` (one layer) or
:math:`F = \phi(z) W_2 + b_2` (two layers), with weights of variance :math:`\sigma_w^2/n` and
biases of variance :math:`\sigma_b^2`. For wide layers the branch pre-activation is Gaussian and
independent of the skip path unit by unit, so with :math:`q_l = \mathbb{E}[h_l^2]` and
:math:`m_l = \mathbb{E}[h_l]` (over samples and units):

.. math::

    q_z &= \sigma_w^2\, \mathbb{E}[x^2] + \sigma_b^2, \qquad
    \mu_F = \mathbb{E}[\phi(\sqrt{q_z} z)] \ \text{(one layer; 0 for two)},\\
    \mathbb{E}[F^2] &= \mathbb{E}[\phi(\sqrt{q_z} z)^2] \ \text{(one layer)}, \quad
    \sigma_w^2\, \mathbb{E}[\phi(\sqrt{q_z} z)^2] + \sigma_b^2 \ \text{(two layers)},\\
    q_u &= q_l + 2\alpha\, m_l\, \mu_F + \alpha^2\, \mathbb{E}[F^2], \qquad
    m_u = m_l + \alpha\, \mu_F.

Normalisation over a row's :math:`n` units self-averages to the population moments: RMSNorm
:math:`N(v) = v / \sqrt{\overline{v^2} + \epsilon}` gives second moment
:math:`q / (q + \epsilon)` and mean :math:`m / \sqrt{q + \epsilon}`; LayerNorm (mean removed
first) gives :math:`s / (s + \epsilon)` with :math:`s = q - m^2` and mean 0. Hence the three
regimes (Xiong et al. 2020; De & Smith 2020): without normalisation every block adds
:math:`\alpha^2 \mathbb{E}[F^2]`, which for ReLU-like branches is proportional to :math:`q_l`, so
:math:`q` grows geometrically as :math:`(1 + \alpha^2 \sigma_w^2/2)^L` (bounded in depth only
with :math:`\alpha \propto 1/\sqrt{L}`); pre-norm feeds every branch a unit-scale input, so each
block adds the same amount and :math:`q` grows linearly in depth; post-norm resets :math:`q` to
about 1 after every block, and the branch/skip ratio :math:`\alpha^2\mathbb{E}[F^2]/q_l` stays the
same at every depth.

Backward, under the gradient-independence assumption (Schoenholz et al. 2017; Yang & Schoenholz
2017), the cotangent's second moment :math:`r` at a block's output maps to its input as

.. math::

    r_u = \nu_{\mathrm{post}}\, r, \qquad
    r_{\mathrm{in}} = r_u \big(1 + \alpha^2 \chi\, \nu_{\mathrm{pre}}\big), \qquad
    \chi = \sigma_w^2\, \mathbb{E}[\phi'(\sqrt{q_z} z)^2] \ (\times \sigma_w^2 \text{ for two
    layers}),

where a normalisation's Jacobian scales the cotangent by :math:`\nu = 1/(q + \epsilon)` (RMS) or
:math:`1/(s + \epsilon)` (LayerNorm) at its input, and :math:`\nu = 1` without it.

References
----------
.. [1] R. Xiong et al., "On layer normalization in the transformer architecture", ICML 2020,
   arXiv:2002.04745 (pre-LN vs post-LN gradient scales).
.. [2] S. De and S. L. Smith, "Batch normalization biases residual blocks towards the identity
   function in deep networks", NeurIPS 2020, arXiv:2002.10444 (variance growth of residual
   streams, linear under pre-normalisation).
.. [3] G. Yang and S. S. Schoenholz, "Mean field residual networks: on the edge of chaos",
   NeurIPS 2017, arXiv:1712.08969 (the unnormalised recursions).
.. [4] S. S. Schoenholz et al., "Deep information propagation", ICLR 2017, arXiv:1611.01232
   (gradient independence).
"""

import math

import numpy as np

from ._validate import check_choice, check_int, check_per_layer, check_real
from .kernels.activations import CODES
from .quadrature import _nodes_u, _phi

__all__ = ["propagate_residual"]

#: LayerNorm/RMSNorm epsilon of the simulation (PyTorch's default).
NORM_EPS = 1e-5
_Q_LIMIT = 1e300


def _moments(code, q, slope):
    """(E[phi], E[phi^2], E[phi'^2]) of phi(sqrt(q) z), z ~ N(0, 1)."""
    if q == 0.0:
        u, w = np.zeros(1), np.ones(1)
    else:
        u, w = _nodes_u(q)
    f, d = _phi(code, u, 0, slope), _phi(code, u, 1, slope)
    return float(w @ f), float(w @ (f * f)), float(w @ (d * d))


def _normalised(norm, q, m, eps):
    """Second moment, mean and Jacobian scale nu of N(v) for v of second moment q and mean m."""
    if norm == "rms":
        return q / (q + eps), m / math.sqrt(q + eps), 1.0 / (q + eps)
    s = max(q - m * m, 0.0)
    return s / (s + eps), 0.0, 1.0 / (s + eps)


def propagate_residual(activation, sigma_w, sigma_b, q_input, blocks, *, branch_scale=1.0,
                       branch_depth=1, norm=None, norm_position="pre", mean_input=0.0,
                       eps=NORM_EPS, slope=0.01):
    r"""Predicted per-block statistics of a wide residual network (see the module docstring).

    Parameters
    ----------
    activation : str
        The branch's activation (as for :func:`weightinit.theory.q_map`).
    sigma_w : float or array_like of float
        Weight scale :math:`\sigma_w` (Var(W) = sigma_w**2 / width): one for all branch layers,
        one per block, or an array (blocks, branch_depth) with one per branch layer (e.g. a
        recipe's smaller output projection).
    sigma_b : float
        Bias scale :math:`\sigma_b` of every branch layer.
    q_input, mean_input : float
        Mean square (positive) and mean of the input :math:`h_0`.
    blocks : int
        Number of residual blocks :math:`L`.
    branch_scale : float
        :math:`\alpha`, the branch multiplier (resolve presets such as ``"1/sqrt(L)"`` first).
    branch_depth : int
        Layers in the branch, 1 or 2: the first with the activation, the second linear.
    norm : None, "layer" or "rms"
        Normalisation (without gain and bias), at ``norm_position`` "pre" or "post".
    eps : float
        The normalisation's epsilon.
    slope : float
        Negative slope of leaky_relu.

    Returns
    -------
    dict of float64 arrays of length ``blocks`` (entry l: block l's output, l = 0..L-1)
        ``q`` and ``mean`` (second moment and mean of the residual stream), ``var``
        (:math:`q - m^2`), ``branch_q`` (the branch's first pre-activation second moment
        :math:`q_z`), ``branch_ratio`` (:math:`\alpha^2 \mathbb{E}[F^2] / q_l`, branch against
        skip) and ``grad_var`` (second moment of dL/dh at the block's output for a cotangent of
        second moment 1 at the last block). Entries are inf/NaN after the stream overflows.
        Also ``grad_input`` (float): the same at the input, which is the mean squared singular
        value :math:`\mathrm{tr}(JJ^\top)/n` of the input-output Jacobian
        (:func:`weightinit.jacobian_spectrum` with ``architecture="residual"``).

    Examples
    --------
    >>> r = propagate_residual("linear", 1.0, 0.0, 1.0, 3)
    >>> r["q"].tolist()  # q doubles: q_{l+1} = q_l + sigma_w**2 q_l
    [2.0, 4.0, 8.0]
    """
    code = CODES[check_choice("activation", activation, CODES)]
    blocks = check_int("blocks", blocks, low=1)
    bd = check_int("branch_depth", branch_depth, low=1, high=3)
    if np.ndim(sigma_w) == 2:
        arr = np.asarray(sigma_w, dtype=np.float64)
        if arr.shape != (blocks, bd):
            raise ValueError(f"A 2-D `sigma_w` has one row per block and one column per branch "
                             f"layer: shape ({blocks}, {bd}). Received shape {arr.shape}")
        flat = check_per_layer("sigma_w", arr.reshape(-1), blocks * bd, unit="branch layer")
        sws = [flat[i * bd:(i + 1) * bd] for i in range(blocks)]
    else:
        sws = [[v] * bd for v in check_per_layer("sigma_w", sigma_w, blocks, unit="block")]
    sb2 = check_real("sigma_b", sigma_b, nonnegative=True) ** 2
    q = check_real("q_input", q_input, positive=True)
    m = check_real("mean_input", mean_input)
    alpha = check_real("branch_scale", branch_scale, nonnegative=True)
    if norm is not None:
        check_choice("norm", norm, ("layer", "rms"))
    check_choice("norm_position", norm_position, ("pre", "post"))
    eps = check_real("eps", eps, nonnegative=True)
    slope = check_real("slope", slope)
    pre = norm is not None and norm_position == "pre"
    post = norm is not None and norm_position == "post"

    out = {k: np.full(blocks, math.nan) for k in ("q", "mean", "branch_q", "branch_ratio")}
    gain = np.full(blocks, math.nan)  # r_in / r_out of each block
    for layer in range(blocks):
        if not (math.isfinite(q) and q <= _Q_LIMIT):
            out["q"][layer:] = math.inf
            break
        sw2 = sws[layer][0] ** 2
        qx, nu_pre = (_normalised(norm, q, m, eps)[::2] if pre else (q, 1.0))
        qz = sw2 * qx + sb2
        if not qz <= _Q_LIMIT:
            out["q"][layer:] = math.inf
            break
        mu, m2, d2 = _moments(code, qz, slope)
        f2, chi = m2, sw2 * d2
        for later in sws[layer][1:]:  # linear layers after the activation: zero mean
            mu, f2, chi = 0.0, later * later * f2 + sb2, later * later * chi
        qu = q + 2.0 * alpha * m * mu + alpha * alpha * f2
        mu_u = m + alpha * mu
        out["branch_q"][layer] = qz
        out["branch_ratio"][layer] = alpha * alpha * f2 / q
        nu_post = 1.0
        if post and math.isfinite(qu):
            qu, mu_u, nu_post = _normalised(norm, qu, mu_u, eps)
        gain[layer] = nu_post * (1.0 + alpha * alpha * chi * nu_pre)
        q, m = qu, mu_u
        out["q"][layer], out["mean"][layer] = q, m
    grad = np.full(blocks, math.nan)
    r = 1.0
    for layer in range(blocks - 1, -1, -1):
        grad[layer] = r
        r = r * gain[layer]
    out["var"] = out["q"] - out["mean"] ** 2
    out["grad_var"] = grad
    out["grad_input"] = float(r)
    return out
