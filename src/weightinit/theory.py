r"""Mean-field signal propagation in deep random networks (Poole 2016, Schoenholz 2017).

A fully connected layer computes :math:`h^l = W^l \phi(h^{l-1}) + b^l` with
:math:`W^l_{ij} \sim \mathcal{N}(0, \sigma_w^2 / n_{l-1})` and :math:`b^l_i \sim \mathcal{N}(0,
\sigma_b^2)`. For wide layers the pre-activations are Gaussian with second moment :math:`q^l` and
two inputs have correlation :math:`c^l`, evolving by

.. math::

    q^l = \sigma_w^2\, \mathbb{E}_{z}\big[\phi(\sqrt{q^{l-1}}\, z)^2\big] + \sigma_b^2,
    \qquad
    c^l = \frac{\sigma_w^2\, \mathbb{E}\big[\phi(u_1)\phi(u_2)\big] + \sigma_b^2}{q^l},

with :math:`z \sim \mathcal{N}(0, 1)`, :math:`u_1 = \sqrt{q} z_1` and
:math:`u_2 = \sqrt{q}(c z_1 + \sqrt{1 - c^2} z_2)`. The fixed point :math:`q^*` and the slope
:math:`\chi_1 = \sigma_w^2 \mathbb{E}[\phi'(\sqrt{q^*} z)^2]` of the correlation map at
:math:`c = 1` separate the ordered phase (:math:`\chi_1 < 1`, inputs become perfectly correlated)
from the chaotic phase (:math:`\chi_1 > 1`); :math:`\chi_1 = 1` is the edge of chaos, where the
correlation depth scale :math:`\xi_c = -1/\ln \chi_c` diverges.

Activations are the Numba scalar functions of :mod:`weightinit.kernels.activations` (one definition
in the codebase), evaluated on quadrature nodes with its ``apply`` helper.

Gaussian expectations are computed with the quadrature rules of :mod:`weightinit.quadrature`
(composite Gauss-Legendre panels in :math:`z`, see there); :func:`gaussian_expectation` and
:func:`gaussian_expectation_2d` are re-exported here.

References
----------
.. [1] B. Poole, S. Lahiri, M. Raghu, J. Sohl-Dickstein, S. Ganguli, "Exponential expressivity in
   deep neural networks through transient chaos", NeurIPS 2016, arXiv:1606.05340.
.. [2] S. S. Schoenholz, J. Gilmer, S. Ganguli, J. Sohl-Dickstein, "Deep information
   propagation", ICLR 2017, arXiv:1611.01232.
"""

import itertools
import math
import numbers

import numpy as np

from ._validate import check_choice, check_int, check_per_layer, check_real
from .kernels.activations import CODES
from .quadrature import (_INV_SQRT_2PI, _check_c, _expect_pair, _nodes_u, _phi, _q_array,
                         _scalar_or_array, gaussian_expectation, gaussian_expectation_2d)

__all__ = [
    "TRUNC2_STD", "activation_moments", "c_map", "chi1", "critical_sigma_w", "depth_scales",
    "fixed_point", "gaussian_expectation", "gaussian_expectation_2d", "phase_diagram",
    "propagate", "q_map", "truncated_normal_std",
]

_EPS = np.finfo(np.float64).eps

#: Above this second moment the iteration counts as divergent (``fixed_point`` returns inf).
_Q_MAX = 1e100
#: Below this second moment a decaying iteration counts as having reached q* = 0.
_Q_ZERO = 1e-280
#: q -> 0+ and q -> inf limits of chi1 and of the map's slope are evaluated at these q; the
#: corrections are O(sqrt(q)) and O(1/sqrt(q)), far below float64 resolution.
_Q_TINY = 1e-200
_Q_HUGE = 1e200


# ----------------------------------------------------------------------------- argument checks
def _code(activation):
    return CODES[check_choice("activation", activation, CODES)]


def _sigmas(sigma_w, sigma_b, slope):
    sw = check_real("sigma_w", sigma_w, nonnegative=True)
    sb = check_real("sigma_b", sigma_b, nonnegative=True)
    return sw * sw, sb * sb, check_real("slope", slope)


def _grid(name, values):
    """A 1-D array of non-negative finite reals (a sigma grid), or raise."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "iuf" or arr.ndim != 1 or arr.size == 0:
        raise TypeError(f"`{name}` must be a non-empty 1-D sequence of real numbers. "
                        f"Received: {name}={values!r}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr) & (arr >= 0)):
        raise ValueError(f"`{name}` must contain non-negative finite values. "
                         f"Received: {name}={values!r}")
    return arr


# ----------------------------------------------------------------------------- the q map
def _qmap(code, q, sw2, sb2, slope):
    """sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 for one q >= 0 (no checks)."""
    if q == 0.0:
        return sw2 * float(_phi(code, np.zeros(1), 0, slope)[0]) ** 2 + sb2
    u, w = _nodes_u(q)
    f = _phi(code, u, 0, slope)
    return sw2 * float(w @ (f * f)) + sb2


def _chi1_at(code, q, sw2, slope):
    """sigma_w^2 E[phi'(sqrt(q) z)^2], with the q -> 0+ and q -> inf limits at the ends."""
    q = min(max(q, _Q_TINY), _Q_HUGE)
    u, w = _nodes_u(q)
    d = _phi(code, u, 1, slope)
    return sw2 * float(w @ (d * d))


def _qmap_slope(code, q, sw2, slope):
    r"""d q_map / d q = sigma_w^2 E[phi(u) phi'(u) u] / q (Stein's lemma form of Schoenholz's
    sigma_w^2 E[phi'^2 + phi phi''], needing no phi'')."""
    q = min(max(q, _Q_TINY), _Q_HUGE)
    u, w = _nodes_u(q)
    return sw2 * float(w @ (_phi(code, u, 0, slope) * _phi(code, u, 1, slope) * u)) / q


def q_map(q, activation, sigma_w, sigma_b=0.0, *, slope=0.01):
    r"""Length map: the next layer's pre-activation second moment.

    .. math::

        q^{l} = \sigma_w^2\, \mathbb{E}_{z \sim \mathcal{N}(0,1)}
                \big[\phi(\sqrt{q^{l-1}}\, z)^2\big] + \sigma_b^2

    for weights :math:`\mathcal{N}(0, \sigma_w^2 / n_{\mathrm{in}})` and biases
    :math:`\mathcal{N}(0, \sigma_b^2)` (Poole et al. 2016, eq. 3).

    Parameters
    ----------
    q : float or array_like of float
        Positive pre-activation second moment(s) :math:`q^{l-1}`.
    activation : str
        One of ``weightinit.kernels.activations.CODES``: linear, sigmoid, tanh, relu,
        leaky_relu, elu, selu, gelu, silu, softplus.
    sigma_w, sigma_b : float
        Non-negative weight and bias scales.
    slope : float
        Negative slope of leaky_relu (ignored by the others).

    Returns
    -------
    float or numpy.ndarray
        A float for scalar ``q``, else an array of ``q``'s shape.

    Raises
    ------
    ValueError
        Unknown activation, negative or NaN sigma, or non-positive ``q``.

    References
    ----------
    .. [1] B. Poole et al., "Exponential expressivity in deep neural networks through transient
       chaos", NeurIPS 2016, eq. (3).

    Examples
    --------
    >>> round(q_map(3.0, "relu", 2**0.5), 12)   # He: sigma_w^2 / 2 = 1 keeps q
    3.0
    """
    code = _code(activation)
    sw2, sb2, slope = _sigmas(sigma_w, sigma_b, slope)
    qa = _q_array("q", q)
    out = np.empty(qa.shape)
    for idx, qv in np.ndenumerate(qa):
        out[idx] = _qmap(code, float(qv), sw2, sb2, slope)
    return _scalar_or_array(out, qa)


def activation_moments(activation, q, *, slope=0.01):
    r"""Mean and second moment of the activation of a Gaussian pre-activation.

    .. math::

        \big(\mathbb{E}[\phi(\sqrt{q} z)],\ \mathbb{E}[\phi(\sqrt{q} z)^2]\big),
        \qquad z \sim \mathcal{N}(0, 1).

    With :func:`propagate` this predicts the per-layer mean and variance
    (:math:`\mathbb{E}[\phi^2] - \mathbb{E}[\phi]^2`) of the activations of a simulated wide
    network (Poole et al. 2016).

    Parameters
    ----------
    activation : str
        Activation name (see :func:`q_map`).
    q : float or array_like of float
        Positive pre-activation second moment(s).
    slope : float
        Negative slope of leaky_relu.

    Returns
    -------
    tuple
        ``(mean, second_moment)``: floats for scalar ``q``, else arrays of ``q``'s shape.

    Raises
    ------
    ValueError
        Unknown activation or non-positive ``q``.

    Examples
    --------
    >>> m, m2 = activation_moments("relu", 1.0)
    >>> round(m, 12) == round((2 * 3.141592653589793) ** -0.5, 12), round(m2, 12)
    (True, 0.5)
    """
    code = _code(activation)
    slope = check_real("slope", slope)
    qa = _q_array("q", q)
    m1, m2 = np.empty(qa.shape), np.empty(qa.shape)
    for idx, qv in np.ndenumerate(qa):
        u, w = _nodes_u(float(qv))
        f = _phi(code, u, 0, slope)
        m1[idx], m2[idx] = w @ f, w @ (f * f)
    return _scalar_or_array(m1, qa), _scalar_or_array(m2, qa)


# ----------------------------------------------------------------------------- the fixed point
def _brentq(f, a, b, fa, fb, *, xtol=1e-300, rtol=4 * _EPS, maxiter=500):
    """Brent's method (Brent 1973, "Algorithms for minimization without derivatives", ch. 4) on a
    bracket with fa * fb <= 0: inverse quadratic / secant steps, bisection as a safeguard."""
    xpre, xcur, fpre, fcur = a, b, fa, fb
    if fpre == 0.0:
        return float(xpre)
    if fcur == 0.0:
        return float(xcur)
    xblk = fblk = spre = scur = 0.0
    for _ in range(maxiter):
        if fpre != 0.0 and fcur != 0.0 and (fpre < 0.0) != (fcur < 0.0):
            xblk, fblk = xpre, fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = 0.5 * (xtol + rtol * abs(xcur))
        sbis = 0.5 * (xblk - xcur)
        if fcur == 0.0 or abs(sbis) < delta:
            return float(xcur)
        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:
                stry = -fcur * (xcur - xpre) / (fcur - fpre)
            else:
                dpre = (fpre - fcur) / (xpre - xcur)
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            if 2.0 * abs(stry) < min(abs(spre), 3.0 * abs(sbis) - delta):
                spre, scur = scur, stry
            else:
                spre = scur = sbis
        else:
            spre = scur = sbis
        xpre, fpre = xcur, fcur
        xcur += scur if abs(scur) > delta else (delta if sbis > 0 else -delta)
        fcur = f(xcur)
    return float(xcur)


def _fixed_point(code, sw2, sb2, slope, q0, tol, max_iter):
    """q* reached from q0 (no checks). See :func:`fixed_point`."""
    def f(q):
        return _qmap(code, q, sw2, sb2, slope)

    q, prev = q0, None
    for k in range(max_iter):
        qn = f(q)
        if not (qn <= _Q_MAX or qn <= q):  # growing past 1e100 (a huge q0 may still shrink)
            return math.inf
        step = qn - q
        if abs(step) <= tol * max(qn, q):
            return qn
        if qn < _Q_ZERO and sb2 == 0.0:
            return 0.0
        # Slow (contraction ratio above 1/2): hand over to the bracketed solve.
        if prev is not None and k >= 3 and abs(step) > 0.5 * abs(prev):
            q = qn
            break
        q, prev = qn, step

    # q_map is increasing in q, so the iteration from q moves monotonically towards the nearest
    # fixed point in the direction of h(q) = q_map(q) - q (or diverges). Bracket it by doubling
    # or halving (32 times, then by factors of 2**16, so reaching 1e100 or 1e-280 costs under
    # 100 map evaluations), then solve h = 0 with Brent's method. A sign change only counts when
    # |h| > tol * q, so rounding noise in a marginal map (slope 1 within 1e-16) is not taken for
    # a fixed point.
    def h(x):
        return f(x) - x

    hq = h(q)
    if abs(hq) <= tol * q:
        return q
    if hq > 0.0:
        lo, hlo = q, hq
        for j in itertools.count():
            hi = lo * (2.0 if j < 32 else 65536.0)
            if hi > _Q_MAX:
                return math.inf
            hhi = h(hi)
            if hhi < -tol * hi:
                break
            lo, hlo = hi, hhi
    else:
        hi, hhi = q, hq
        for j in itertools.count():
            lo = hi * (0.5 if j < 32 else 1.0 / 65536.0)
            if lo <= sb2:
                lo = sb2
                hlo = h(lo)
                break
            if lo < _Q_ZERO:
                return 0.0
            hlo = h(lo)
            if hlo > tol * lo:
                break
            hi, hhi = lo, hlo
    return _brentq(h, lo, hi, hlo, hhi, rtol=max(tol, 4 * _EPS))


def fixed_point(activation, sigma_w, sigma_b=0.0, *, q0=1.0, tol=1e-12, max_iter=10000,
                slope=0.01):
    r"""Fixed point :math:`q^* = \sigma_w^2 \mathbb{E}[\phi(\sqrt{q^*} z)^2] + \sigma_b^2`.

    Found by iterating :func:`q_map` from ``q0`` (Poole et al. 2016, Fig. 1): the map is
    increasing in :math:`q`, so the iterates move monotonically to the fixed point nearest
    ``q0`` in their direction. When the contraction is slow (ratio of successive steps above 1/2)
    or ``max_iter`` steps have not converged, the remaining distance is bracketed by doubling or
    halving and solved with Brent's method, so near-critical maps converge in a few dozen map
    evaluations.

    Parameters
    ----------
    activation : str
        Activation name (see :func:`q_map`).
    sigma_w, sigma_b : float
        Non-negative weight and bias scales.
    q0 : float
        Positive starting second moment.
    tol : float
        Relative tolerance: stop when :math:`|q^{k+1} - q^k| \le \mathrm{tol} \cdot q`.
    max_iter : int
        Maximum number of plain iterations before the bracketed solve takes over.
    slope : float
        Negative slope of leaky_relu.

    Returns
    -------
    float
        :math:`q^*`. ``math.inf`` when the iterates diverge (exceed 1e100 or no fixed point lies
        above), e.g. ReLU with :math:`\sigma_w > \sqrt{2}`, or :math:`\sigma_w = \sqrt{2}`,
        :math:`\sigma_b > 0` (:math:`q^l = q^{l-1} + \sigma_b^2` grows linearly). ``0.0`` when the
        signal dies: :math:`\sigma_b = 0`, :math:`\phi(0) = 0` and the map contracts to 0 (tanh
        with :math:`\sigma_w \le 1`, ReLU with :math:`\sigma_w < \sqrt{2}`).

    Notes
    -----
    Marginal case: for ReLU with :math:`\sigma_w = \sqrt{2}`, :math:`\sigma_b = 0` (and linear
    with :math:`\sigma_w = 1`, :math:`\sigma_b = 0`) the map is the identity, every :math:`q` is
    a fixed point, and ``q0`` is returned.

    Raises
    ------
    ValueError
        Unknown activation, negative or NaN sigma, non-positive ``q0`` or ``tol``.

    References
    ----------
    .. [1] B. Poole et al., NeurIPS 2016, eq. (3) and Fig. 1.
    .. [2] S. S. Schoenholz et al., ICLR 2017, section 3.

    Examples
    --------
    >>> q = fixed_point("tanh", 1.5, 0.05)
    >>> abs(q - q_map(q, "tanh", 1.5, 0.05)) < 1e-12
    True
    """
    code = _code(activation)
    sw2, sb2, slope = _sigmas(sigma_w, sigma_b, slope)
    q0 = check_real("q0", q0, positive=True)
    tol = check_real("tol", tol, positive=True)
    max_iter = check_int("max_iter", max_iter, low=1)
    return _fixed_point(code, sw2, sb2, slope, q0, tol, max_iter)


def _chi1(code, sw2, sb2, slope):
    q = _fixed_point(code, sw2, sb2, slope, 1.0, 1e-12, 10000)
    return q, _chi1_at(code, q, sw2, slope)


def chi1(activation, sigma_w, sigma_b=0.0, *, slope=0.01):
    r"""Slope of the correlation map at :math:`c = 1`: the order-to-chaos parameter.

    .. math::

        \chi_1 = \sigma_w^2\, \mathbb{E}_{z \sim \mathcal{N}(0,1)}
                 \big[\phi'(\sqrt{q^*}\, z)^2\big]

    at the fixed point :math:`q^*` of :func:`fixed_point` (from :math:`q_0 = 1`). Ordered phase
    :math:`\chi_1 < 1`, chaotic :math:`\chi_1 > 1`; it is also the mean squared singular value
    of the layer Jacobian, so :math:`\chi_1 = 1` means gradients neither vanish nor explode
    (Schoenholz et al. 2017, eq. 6).

    Parameters
    ----------
    activation : str
        Activation name (see :func:`q_map`).
    sigma_w, sigma_b : float
        Non-negative weight and bias scales.
    slope : float
        Negative slope of leaky_relu.

    Returns
    -------
    float
        :math:`\chi_1`. If :math:`q^* = 0` (the signal dies) the limit :math:`q \to 0^+` is
        returned (:math:`\sigma_w^2 / 2` for ReLU, :math:`\sigma_w^2 \phi'(0)^2` for smooth
        :math:`\phi`); if :math:`q` diverges, the limit :math:`q \to \infty` (the growth factor
        :math:`\sigma_w^2 / 2` for ReLU), which is then at least 1.

    Raises
    ------
    ValueError
        Unknown activation, negative or NaN sigma.

    References
    ----------
    .. [1] B. Poole et al., NeurIPS 2016, eq. (7).
    .. [2] S. S. Schoenholz et al., ICLR 2017, eq. (6).

    Examples
    --------
    >>> round(chi1("relu", 1.2, 0.1), 12)   # sigma_w^2 / 2 for any finite q*
    0.72
    """
    code = _code(activation)
    sw2, sb2, slope = _sigmas(sigma_w, sigma_b, slope)
    return _chi1(code, sw2, sb2, slope)[1]


def critical_sigma_w(activation, sigma_b=0.0, *, slope=0.01):
    r"""Weight scale on the edge of chaos: the :math:`\sigma_w` with :math:`\chi_1 = 1`.

    :math:`\chi_1(\sigma_w)` is 0 at :math:`\sigma_w = 0`; the bracket is grown by doubling
    :math:`\sigma_w` from 1 until :math:`\chi_1 > 1` (up to 1024), then :math:`\chi_1 - 1 = 0`
    is solved by Brent's method (pure Python; SciPy is not a run-time dependency).

    Known values at :math:`\sigma_b = 0`: ReLU :math:`\sqrt{2}` (He et al. 2015), linear 1,
    tanh 1. For ReLU and linear the value does not depend on :math:`\sigma_b`: :math:`\chi_1`
    is :math:`\sigma_w^2/2` (resp. :math:`\sigma_w^2`) at every :math:`q`.

    Parameters
    ----------
    activation : str
        Activation name (see :func:`q_map`).
    sigma_b : float
        Non-negative bias scale.
    slope : float
        Negative slope of leaky_relu.

    Returns
    -------
    float
        The critical :math:`\sigma_w` (relative accuracy about 1e-14 where :math:`\chi_1` crosses
        1 with non-zero slope; for tanh at :math:`\sigma_b = 0`, where :math:`\chi_1 - 1` is
        quadratic on the chaotic side, about 1e-9).

    Raises
    ------
    ValueError
        If :math:`\chi_1 \le 1` for every :math:`\sigma_w \le 1024` (no critical point), or on
        bad arguments.

    References
    ----------
    .. [1] B. Poole et al., NeurIPS 2016, Fig. 2 (the order-to-chaos transition).
    .. [2] S. S. Schoenholz et al., ICLR 2017, Fig. 1.

    Examples
    --------
    >>> round(critical_sigma_w("relu"), 12) == round(2**0.5, 12)
    True
    """
    code = _code(activation)
    sb = check_real("sigma_b", sigma_b, nonnegative=True)
    slope = check_real("slope", slope)
    sb2 = sb * sb

    def g(sw):
        return _chi1(code, sw * sw, sb2, slope)[1] - 1.0

    lo, glo = 0.0, -1.0
    hi = 1.0
    while True:
        ghi = g(hi)
        if ghi >= 0.0:
            break
        lo, glo = hi, ghi
        hi *= 2.0
        if hi > 1024.0:
            raise ValueError(
                f"No critical sigma_w for activation={activation!r}, sigma_b={sigma_b!r}: chi1 "
                f"stays below 1 for every sigma_w <= 1024 (chi1(1024) = {ghi + 1.0:.6g}), so the "
                "network is in the ordered phase throughout.")
    return _brentq(g, lo, hi, glo, ghi, xtol=1e-15, rtol=4 * _EPS)


# ----------------------------------------------------------------------------- correlations
def _cmap(code, c, q, sw2, sb2, slope):
    """(sigma_w^2 E[phi(u1) phi(u2)] + sigma_b^2) / q_map(q) (no checks; q = 0 means 0+)."""
    q = max(q, _Q_TINY)
    denom = _qmap(code, q, sw2, sb2, slope)
    if denom == 0.0:
        raise ValueError("The correlation is undefined: sigma_w and sigma_b are both 0, so every "
                         "pre-activation is 0.")
    return (sw2 * _expect_pair(code, q, c, slope, 0) + sb2) / denom


def c_map(c, activation, sigma_w, sigma_b=0.0, q=None, *, slope=0.01):
    r"""Correlation map between the pre-activations of two inputs.

    .. math::

        c^{l} = \frac{\sigma_w^2\, \mathbb{E}\big[\phi(u_1)\phi(u_2)\big] + \sigma_b^2}{q^{l}},
        \quad u_1 = \sqrt{q}\, z_1,\ u_2 = \sqrt{q}\big(c^{l-1} z_1 + \sqrt{1 - (c^{l-1})^2}\,
        z_2\big),

    with :math:`q^l = ` ``q_map(q)`` (Poole et al. 2016, eq. 5), for two inputs whose
    pre-activations both have second moment ``q``. At ``q = q*`` (the default) the denominator is
    :math:`q^*` and this is the map whose slope at :math:`c = 1` is :math:`\chi_1`.

    Parameters
    ----------
    c : float or array_like of float
        Correlation(s) :math:`c^{l-1}` in [-1, 1].
    activation : str
        Activation name (see :func:`q_map`).
    sigma_w, sigma_b : float
        Non-negative weight and bias scales.
    q : float, optional
        Positive second moment of both inputs' pre-activations; default the fixed point
        :math:`q^*` (which must be finite).
    slope : float
        Negative slope of leaky_relu.

    Returns
    -------
    float or numpy.ndarray
        :math:`c^l`; a float for scalar ``c``, else an array of ``c``'s shape.

    Raises
    ------
    ValueError
        Bad arguments, ``c`` outside [-1, 1], or ``q`` omitted when :math:`q^*` is infinite.

    References
    ----------
    .. [1] B. Poole et al., NeurIPS 2016, eq. (5).
    .. [2] S. S. Schoenholz et al., ICLR 2017, eq. (4).

    Examples
    --------
    >>> round(c_map(1.0, "tanh", 1.5, 0.05), 12)
    1.0
    """
    code = _code(activation)
    sw2, sb2, slope = _sigmas(sigma_w, sigma_b, slope)
    if q is None:
        qv = _fixed_point(code, sw2, sb2, slope, 1.0, 1e-12, 10000)
        if math.isinf(qv):
            raise ValueError(
                f"q_map has no finite fixed point for activation={activation!r}, "
                f"sigma_w={sigma_w!r}, sigma_b={sigma_b!r} (q diverges); pass `q` explicitly.")
    else:
        qv = check_real("q", q, positive=True)
    ca = np.asarray(c) if not isinstance(c, numbers.Real) else None
    if ca is None or ca.ndim == 0:
        return _cmap(code, _check_c(c if ca is None else ca.item()), qv, sw2, sb2, slope)
    if ca.dtype.kind not in "iuf":
        raise TypeError(f"`c` must be a real number or an array of them. Received: c={c!r}")
    ca = ca.astype(np.float64)
    if not np.all((ca >= -1.0) & (ca <= 1.0)):
        raise ValueError(f"`c` must be a correlation in [-1, 1]. Received: c={c!r}")
    out = np.empty(ca.shape)
    for idx, cv in np.ndenumerate(ca):
        out[idx] = _cmap(code, float(cv), qv, sw2, sb2, slope)
    return out


def _c_star(code, q, sw2, sb2, slope, chi):
    """Stable fixed point of the correlation map at q (1 in the ordered phase).

    On [0, 1] the map is increasing and convex (its Hermite expansion has non-negative
    coefficients), with c_map(1) = 1 and c_map(0) >= 0. If its slope chi1 at 1 exceeds 1, it has
    exactly one other fixed point in [0, 1), which attracts; otherwise c = 1 attracts.
    """
    if not chi > 1.0:
        return 1.0

    def g(c):
        return _cmap(code, c, q, sw2, sb2, slope) - c

    lo, glo = 0.0, g(0.0)
    if glo <= 0.0:
        return 0.0
    for k in range(1, 53):
        hi = 1.0 - 2.0 ** -k
        ghi = g(hi)
        if ghi < 0.0:
            return _brentq(g, lo, hi, glo, ghi, xtol=1e-15, rtol=4 * _EPS)
        lo, glo = hi, ghi
    return 1.0  # chi1 exceeds 1 by less than the quadrature's rounding: critical


def depth_scales(activation, sigma_w, sigma_b=0.0, *, slope=0.01):
    r"""Fixed points and depth scales of signal propagation (Schoenholz et al. 2017).

    * ``q_star``: fixed point of :func:`q_map` (from :math:`q_0 = 1`);
    * ``c_star``: stable fixed point of :func:`c_map` at :math:`q^*` (1 in the ordered phase);
    * ``chi1``: :math:`\sigma_w^2 \mathbb{E}[\phi'(\sqrt{q^*} z)^2]`;
    * ``chi_c``: slope of the correlation map at :math:`c^*`,
      :math:`\sigma_w^2 \mathbb{E}[\phi'(u_1)\phi'(u_2)]` (equal to ``chi1`` when
      :math:`c^* = 1`);
    * ``xi_q``: :math:`-1/\ln(\partial q^{l}/\partial q^{l-1}|_{q^*})`, where the slope
      :math:`\sigma_w^2 \mathbb{E}[\phi'^2 + \phi\phi'']
      = \sigma_w^2 \mathbb{E}[\phi(u)\phi'(u)u]/q^*`
      (Stein's lemma; no second derivative needed); deviations
      :math:`|q^l - q^*| \sim e^{-l/\xi_q}`;
    * ``xi_c``: :math:`-1/\ln \chi_c`; :math:`|c^l - c^*| \sim e^{-l/\xi_c}`, infinite at the
      edge of chaos (:math:`\chi_c \ge 1`).

    Parameters
    ----------
    activation : str
        Activation name (see :func:`q_map`).
    sigma_w, sigma_b : float
        Non-negative weight and bias scales.
    slope : float
        Negative slope of leaky_relu.

    Returns
    -------
    dict
        Keys ``q_star``, ``c_star``, ``chi1``, ``chi_c``, ``xi_q``, ``xi_c`` (floats; ``xi_*`` may
        be ``math.inf``). When :math:`q^* = 0` the derivatives are the :math:`q \to 0^+` limits.

    Raises
    ------
    ValueError
        If :math:`q` diverges (no fixed point, so no depth scales), or on bad arguments.

    References
    ----------
    .. [1] S. S. Schoenholz, J. Gilmer, S. Ganguli, J. Sohl-Dickstein, "Deep information
       propagation", ICLR 2017, eqs. (5)-(9).
    .. [2] B. Poole et al., NeurIPS 2016.

    Examples
    --------
    >>> d = depth_scales("relu", 1.2, 0.1)          # ordered: c* = 1, chi_c = chi1
    >>> d["c_star"], round(d["chi1"], 12), round(d["xi_c"], 6)
    (1.0, 0.72, 3.044102)
    """
    code = _code(activation)
    sw2, sb2, slope = _sigmas(sigma_w, sigma_b, slope)
    q, chi = _chi1(code, sw2, sb2, slope)
    if math.isinf(q):
        raise ValueError(
            f"q diverges for activation={activation!r}, sigma_w={sigma_w!r}, "
            f"sigma_b={sigma_b!r} (chi1 = {chi:.6g}): there is no fixed point q* and no depth "
            "scale. Use a smaller sigma_w.")
    c = _c_star(code, q, sw2, sb2, slope, chi)
    chi_c = chi if c == 1.0 else sw2 * _expect_pair(code, max(q, _Q_TINY), c, slope, 1)
    dq = _qmap_slope(code, q, sw2, slope)

    def scale(r):
        if r >= 1.0:
            return math.inf
        if r <= 0.0:
            return 0.0
        return -1.0 / math.log(r)

    return {"q_star": q, "c_star": c, "chi1": chi, "chi_c": chi_c, "xi_q": scale(dq),
            "xi_c": scale(chi_c)}


# ----------------------------------------------------------------------------- depth profiles
def propagate(activation, sigma_w, sigma_b, q_input, depth, *, slope=0.01):
    r"""Predicted pre-activation second moment :math:`q^l` for layers :math:`l = 1, \dots, L`.

    .. math::

        q^1 = \sigma_{w,1}^2\, q_{\mathrm{in}} + \sigma_b^2, \qquad
        q^l = \sigma_{w,l}^2\, \mathbb{E}\big[\phi(\sqrt{q^{l-1}} z)^2\big] + \sigma_b^2,

    where :math:`q_{\mathrm{in}} = \frac{1}{n_0}\sum_i x_i^2` is the input's mean square: the
    input is not passed through :math:`\phi` (Poole et al. 2016, eq. 3). Combine with
    :func:`activation_moments` to predict per-layer activation means and variances.

    Parameters
    ----------
    activation : str
        Activation name (see :func:`q_map`).
    sigma_w : float or array_like of float
        Non-negative weight scale, one for all layers or one per layer (length ``depth``).
    sigma_b : float
        Non-negative bias scale (all layers).
    q_input : float
        Positive mean square of the input.
    depth : int
        Number of layers, at least 1.
    slope : float
        Negative slope of leaky_relu.

    Returns
    -------
    numpy.ndarray
        float64 array of length ``depth``: :math:`q^1, \dots, q^L`. Entries are ``inf`` after
        :math:`q` overflows float64.

    Raises
    ------
    ValueError
        Bad arguments, or a per-layer ``sigma_w`` whose length is not ``depth``.

    References
    ----------
    .. [1] B. Poole et al., NeurIPS 2016, eq. (3).

    Examples
    --------
    >>> propagate("relu", 2**0.5, 0.0, 1.0, 3).round(12)
    array([2., 2., 2.])
    """
    code = _code(activation)
    depth = check_int("depth", depth, low=1)
    sws = check_per_layer("sigma_w", sigma_w, depth)
    sb = check_real("sigma_b", sigma_b, nonnegative=True)
    q_in = check_real("q_input", q_input, positive=True)
    slope = check_real("slope", slope)
    sb2 = sb * sb
    out = np.empty(depth)
    q = sws[0] ** 2 * q_in + sb2
    out[0] = q
    for layer in range(1, depth):
        if q <= 1e300:
            q = _qmap(code, q, sws[layer] ** 2, sb2, slope)
            if not math.isfinite(q):
                q = math.inf
        else:
            q = math.inf
        out[layer] = q
    return out


def phase_diagram(activation, sigma_w_grid, sigma_b_grid, *, slope=0.01):
    r""":math:`\chi_1` on a grid of :math:`(\sigma_b, \sigma_w)`, for order/chaos phase plots.

    Entry ``[i, j]`` is ``chi1(activation, sigma_w_grid[j], sigma_b_grid[i])``: rows are
    :math:`\sigma_b`, columns :math:`\sigma_w`. The contour :math:`\chi_1 = 1` is the edge of
    chaos between the ordered (:math:`\chi_1 < 1`) and chaotic (:math:`\chi_1 > 1`) phases
    (Poole et al. 2016, Fig. 2; Schoenholz et al. 2017, Fig. 1). Where :math:`q` diverges the
    :math:`q \to \infty` limit of :math:`\chi_1` is reported (see :func:`chi1`).

    Parameters
    ----------
    activation : str
        Activation name (see :func:`q_map`).
    sigma_w_grid, sigma_b_grid : array_like of float
        Non-empty 1-D grids of non-negative values.
    slope : float
        Negative slope of leaky_relu.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(len(sigma_b_grid), len(sigma_w_grid))``.

    Raises
    ------
    ValueError
        Unknown activation, or grids with negative or non-finite values.

    References
    ----------
    .. [1] B. Poole et al., NeurIPS 2016, Fig. 2.
    .. [2] S. S. Schoenholz et al., ICLR 2017, Fig. 1.
    """
    code = _code(activation)
    sws = _grid("sigma_w_grid", sigma_w_grid)
    sbs = _grid("sigma_b_grid", sigma_b_grid)
    slope = check_real("slope", slope)
    out = np.empty((sbs.size, sws.size))
    for i, sb in enumerate(sbs):
        for j, sw in enumerate(sws):
            out[i, j] = _chi1(code, sw * sw, sb * sb, slope)[1]
    return out


# ----------------------------------------------------------------------------- truncation constant
def _std_normal_pdf(x):
    return 0.0 if math.isinf(x) else math.exp(-0.5 * x * x) * _INV_SQRT_2PI


def truncated_normal_std(a=-2.0, b=2.0):
    r"""Standard deviation of :math:`\mathcal{N}(0, 1)` truncated to :math:`[a, b]`.

    .. math::

        \sqrt{1 + \frac{a\varphi(a) - b\varphi(b)}{Z}
                - \Big(\frac{\varphi(a) - \varphi(b)}{Z}\Big)^2},
        \qquad Z = \Phi(b) - \Phi(a),

    with :math:`\varphi` and :math:`\Phi` the standard normal density and distribution function
    (Johnson, Kotz & Balakrishnan 1994, "Continuous Univariate Distributions", vol. 1, 13.10).
    :math:`Z` uses ``math.erf`` (``math.erfc`` for intervals in one tail, to avoid cancellation).
    For ``[-2, 2]`` this is the constant 0.87962566103423978 by which Keras and JAX divide the
    standard deviation of their "truncated_normal" variance scaling (:data:`TRUNC2_STD`).

    Parameters
    ----------
    a, b : float
        Truncation bounds in standard units, ``a < b``; ``-inf`` and ``inf`` are allowed.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If a bound is NaN or ``a >= b``.

    Notes
    -----
    Far in one tail (e.g. ``a = 30``) the variance is a small difference of order-1 terms and
    loses relative accuracy.

    Examples
    --------
    >>> truncated_normal_std() == 0.87962566103423978
    True
    """
    a = check_real("a", a, finite=False)
    b = check_real("b", b, finite=False)
    if not a < b:
        raise ValueError(f"`a` must be below `b`. Received: a={a!r}, b={b!r}")
    r = math.sqrt(0.5)
    if a >= 0.0:
        z = 0.5 * (math.erfc(a * r) - math.erfc(b * r))
    elif b <= 0.0:
        z = 0.5 * (math.erfc(-b * r) - math.erfc(-a * r))
    else:
        z = 0.5 * (math.erf(b * r) - math.erf(a * r))
    pa, pb = _std_normal_pdf(a), _std_normal_pdf(b)
    apa = 0.0 if math.isinf(a) else a * pa
    bpb = 0.0 if math.isinf(b) else b * pb
    mean = (pa - pb) / z
    return math.sqrt(1.0 + (apa - bpb) / z - mean * mean)


#: Standard deviation of N(0, 1) truncated to [-2, 2], sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)); equal
#: to Keras's and JAX's 0.87962566103423978 (tests/test_theory.py checks it).
TRUNC2_STD = truncated_normal_std(-2.0, 2.0)


# Free-probability Jacobian spectrum (Pennington, Schoenholz & Ganguli 2017, 2018).
from .free_probability import jacobian_spectrum  # noqa: E402
# Residual networks with and without normalisation.
from .residual_theory import propagate_residual  # noqa: E402

__all__ += ["jacobian_spectrum", "propagate_residual"]
