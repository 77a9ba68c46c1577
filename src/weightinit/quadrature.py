r"""Gaussian quadrature rules behind the mean-field theory of :mod:`weightinit.theory`.

Gaussian expectations use, by default, a composite Gauss-Legendre rule in :math:`z` (12 nodes per
panel, weighted by the normal density, truncated at :math:`|z| \le 12`, where the tail mass is
below :math:`10^{-32}`). Panel breakpoints are :math:`z = 0` (the kink of ReLU-family
activations), every 2 units in :math:`z` (the scale of the Gaussian) and
:math:`z = \pm 2^k/\sqrt{q}` (the unit scale of the activation in :math:`u = \sqrt{q} z`, so that
saturating activations at large :math:`q` are resolved). Each panel then holds a smooth integrand
and the rule agrees with adaptive ``scipy.integrate.quad`` to about :math:`10^{-14}` relative for
every activation and :math:`10^{-3} \le q \le 10^4`. Plain Gauss-Hermite (``rule="hermite"`` of
:func:`gaussian_expectation`, NumPy's ``hermegauss``) is exact for ReLU and leaky ReLU with an even
node count, but with 128 nodes it is off by about :math:`10^{-2}` for
:math:`\mathbb{E}[\phi'^2]` of ELU/SELU (a kink in :math:`\phi'`) and by about :math:`10^{-2}` for
tanh at :math:`q = 10` (a transition of width :math:`1/\sqrt{q}` in :math:`z`), so it is offered
only for user integrands.

Both expectations are re-exported by :mod:`weightinit.theory`.
"""

import math
import numbers

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from numpy.polynomial.legendre import leggauss

from ._validate import check_choice, check_int, check_real
from .kernels.activations import apply

__all__ = ["gaussian_expectation", "gaussian_expectation_2d"]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# Composite Gauss-Legendre rule (see the module docstring).
_PANEL_NODES = 12
_GL_T, _GL_W = leggauss(_PANEL_NODES)
_Z_MAX = 12.0
_Z_GRID = np.arange(2.0, _Z_MAX + 1.0, 2.0)  # 2, 4, ..., 12
_Z_GRID_SYM = np.concatenate((-_Z_GRID[::-1], [0.0], _Z_GRID))
_U_GRID = 2.0 ** np.arange(-1.0, 64.0)  # activation-scale breakpoints in u = sqrt(q) z


# ----------------------------------------------------------------------------- quadrature rules
def _panels(b):
    """Nodes and weights (times the N(0, 1) density) of Gauss-Legendre panels between sorted ``b``.

    ``b`` has shape (..., k); the result has shape (..., (k - 1) * _PANEL_NODES).
    """
    lo, hi = b[..., :-1], b[..., 1:]
    half = 0.5 * (hi - lo)
    mid = 0.5 * (hi + lo)
    z = mid[..., None] + half[..., None] * _GL_T
    w = half[..., None] * _GL_W * np.exp(-0.5 * z * z) * _INV_SQRT_2PI
    shape = b.shape[:-1] + (-1,)
    return z.reshape(shape), w.reshape(shape)


def _rule_z(sq, extra=None):
    """Panel rule in z for u = sq * z: breakpoints 0, the z grid, +-2**k / sq and ``extra``."""
    parts = [_Z_GRID]
    if sq > 0.0:
        parts.append(_U_GRID[_U_GRID < _Z_MAX * sq] / sq)
    if extra is not None:
        parts.append(extra)
    pos = np.sort(np.concatenate(parts))
    return _panels(np.concatenate((-pos[::-1], [0.0], pos)))


def _rule_z2(sq, c):
    """Panel rule for (z1, z2), u1 = sq z1, u2 = sq (c z1 + s z2), 0 < s = sqrt(1 - c^2) <= 1.

    Returns (z1, w1, z2, w2) with z2, w2 of shape (z1.size, m): for every outer node the inner
    panels break at the z2 grid and where u2 crosses 0 and +-2**k, so the kink of phi(u2) is a
    breakpoint. Extra outer breakpoints at +-(s/|c|) 2**k resolve the width-s/|c| transition of
    the inner expectation near z1 = 0 when c is close to +-1.
    """
    s = math.sqrt((1.0 - c) * (1.0 + c))
    extra = None
    if abs(c) > s:
        d = s / abs(c)
        extra = d * _U_GRID[d * _U_GRID < _Z_MAX]
    z1, w1 = _rule_z(sq, extra)
    ub = _U_GRID[_U_GRID < 1.5 * _Z_MAX * sq] if sq > 0.0 else _U_GRID[:0]
    ub = np.concatenate((-ub[::-1], [0.0], ub))
    moving = np.clip((ub[None, :] - sq * c * z1[:, None]) / (sq * s), -_Z_MAX, _Z_MAX) \
        if sq > 0.0 else np.zeros((z1.size, 1))
    fixed = np.broadcast_to(_Z_GRID_SYM, (z1.size, _Z_GRID_SYM.size))
    b = np.sort(np.concatenate((fixed, moving), axis=1), axis=1)
    z2, w2 = _panels(b)
    return z1, w1, z2, w2


_HERMITE_CACHE = {}


def _rule_hermite(n):
    """Probabilists' Gauss-Hermite nodes and weights normalised to sum 1 (weight N(0, 1))."""
    if n not in _HERMITE_CACHE:
        x, w = hermegauss(n)
        _HERMITE_CACHE[n] = (x, w / math.sqrt(2.0 * math.pi))
    return _HERMITE_CACHE[n]


def _phi(code, u, order, slope):
    """phi (order 0) or phi' (order 1) of the activation ``code`` at ``u`` (any shape)."""
    u = np.ascontiguousarray(u, dtype=np.float64)
    flat = u.reshape(-1)
    out = np.empty_like(flat)
    apply(code, flat, slope, order, out)
    return out.reshape(u.shape)


def _nodes_u(q):
    """(u, w): nodes u = sqrt(q) z and weights of E_{z~N(0,1)}[g(sqrt(q) z)] = sum w g(u)."""
    sq = math.sqrt(q)
    z, w = _rule_z(sq)
    return sq * z, w


def _expect_pair(code, q, c, slope, order):
    """E[phi^(order)(u1) phi^(order)(u2)] for second moment q and correlation c (panel rule)."""
    sq = math.sqrt(q)
    if abs(c) == 1.0:
        u, w = _nodes_u(q)
        f = _phi(code, u, order, slope)
        g = f if c == 1.0 else _phi(code, -u, order, slope)
        return float(w @ (f * g))
    z1, w1, z2, w2 = _rule_z2(sq, c)
    s = math.sqrt((1.0 - c) * (1.0 + c))
    f1 = _phi(code, sq * z1, order, slope)
    f2 = _phi(code, sq * (c * z1[:, None] + s * z2), order, slope)
    return float(w1 @ (f1 * np.einsum("ij,ij->i", w2, f2)))


# ----------------------------------------------------------------------------- argument checks
def _q_array(name, q):
    """``q`` as a float64 array of positive finite values (scalar -> 0-d), or raise."""
    if isinstance(q, numbers.Real) and not isinstance(q, (bool, np.bool_)):
        return np.asarray(check_real(name, q, positive=True), dtype=np.float64)
    try:
        arr = np.asarray(q)
    except Exception:  # noqa: BLE001 - anything that is not array-like
        arr = None
    if arr is None or arr.dtype.kind not in "iuf":
        raise TypeError(f"`{name}` must be a positive real number or an array of them. "
                        f"Received: {name}={q!r}")
    arr = arr.astype(np.float64)
    bad = ~(np.isfinite(arr) & (arr > 0))
    if bad.any():
        raise ValueError(f"`{name}` must be positive and finite (a second moment). Received: "
                         f"{name}={q!r} (offending value {arr[bad].flat[0]!r})")
    return arr


def _scalar_or_array(out, like):
    return float(out) if like.ndim == 0 else out


# ----------------------------------------------------------------------------- expectations
def gaussian_expectation(g, q, *, rule="panel", n_nodes=128):
    r"""Gaussian expectation :math:`\mathbb{E}_{z \sim \mathcal{N}(0,1)}[g(\sqrt{q}\, z)]`.

    Parameters
    ----------
    g : callable
        Vectorised integrand: takes a 1-D float64 array of points :math:`u` and returns an array of
        the same shape.
    q : float or array_like of float
        Positive second moment(s) of :math:`u = \sqrt{q} z`; arrays are evaluated elementwise.
    rule : {"panel", "hermite"}
        ``"panel"`` (default): composite Gauss-Legendre with breakpoints at :math:`z = 0`, every 2
        in :math:`z` and :math:`u = \pm 2^k` (module docstring); about 300 nodes, accurate to
        ~1e-14 for integrands that are smooth apart from a kink at :math:`u = 0`.
        ``"hermite"``: :math:`\sum_i w_i g(\sqrt{q} x_i) / \sqrt{2\pi}` with NumPy's
        ``hermegauss`` (weight :math:`e^{-x^2/2}`) of ``n_nodes`` nodes.
    n_nodes : int
        Even number of Gauss-Hermite nodes (``rule="hermite"`` only). Even, so that no node sits
        on the kink at 0 and the positive and negative halves are mirror images: for piecewise
        polynomials with a break at 0 (ReLU, leaky ReLU and their squares) the rule is then exact.

    Returns
    -------
    float or numpy.ndarray
        A float for scalar ``q``, else an array of ``q``'s shape.

    Raises
    ------
    ValueError
        If ``q`` is not positive and finite, ``rule`` is unknown or ``n_nodes`` is odd.
    TypeError
        If ``g`` is not callable.

    Notes
    -----
    Gauss-Hermite converges slowly for integrands with a kink in a derivative (ELU's
    :math:`\phi'`: error ~1e-2 at 128 nodes, decaying like :math:`1/n`) or a transition narrower
    than the node spacing (tanh at large :math:`q`); the panel rule has neither problem.

    References
    ----------
    .. [1] B. Poole et al., "Exponential expressivity in deep neural networks through transient
       chaos", NeurIPS 2016 (the expectations :math:`\int \mathcal{D}z\, f(\sqrt{q} z)`).

    Examples
    --------
    >>> round(gaussian_expectation(lambda u: u**4, 2.0), 12)   # E[u^4] = 3 q^2
    12.0
    """
    if not callable(g):
        raise TypeError(f"`g` must be a callable taking an array of points. Received: g={g!r}")
    check_choice("rule", rule, ("panel", "hermite"))
    qa = _q_array("q", q)
    if rule == "hermite":
        n = check_int("n_nodes", n_nodes, low=2)
        if n % 2:
            raise ValueError(f"`n_nodes` must be even (no node on the kink at 0). "
                             f"Received: n_nodes={n_nodes!r}")
        x, w = _rule_hermite(n)
    out = np.empty(qa.shape)
    for idx, qv in np.ndenumerate(qa):
        if rule == "hermite":
            u, ww = math.sqrt(qv) * x, w
        else:
            u, ww = _nodes_u(float(qv))
        out[idx] = ww @ np.asarray(g(u), dtype=np.float64)
    return _scalar_or_array(out, qa)


def gaussian_expectation_2d(g, q, c, *, rule="panel", n_nodes=128):
    r"""Expectation over a correlated Gaussian pair, :math:`\mathbb{E}[g(u_1, u_2)]`.

    :math:`u_1 = \sqrt{q}\, z_1` and :math:`u_2 = \sqrt{q}\,(c z_1 + \sqrt{1 - c^2}\, z_2)` with
    independent :math:`z_1, z_2 \sim \mathcal{N}(0, 1)`: both have second moment :math:`q` and
    their correlation is :math:`c` (Poole et al. 2016, eq. 5).

    Parameters
    ----------
    g : callable
        Vectorised integrand ``g(u1, u2)`` on float64 arrays of equal shape.
    q : float
        Positive second moment.
    c : float
        Correlation in [-1, 1].
    rule : {"panel", "hermite"}
        ``"panel"``: the composite rule of :func:`gaussian_expectation` in :math:`z_1`, and for
        every outer node an inner panel rule in :math:`z_2` that breaks where :math:`u_2` crosses
        0 (so a kink of :math:`\phi(u_2)` is a breakpoint) and :math:`\pm 2^k`; about
        :math:`10^5` points. ``"hermite"``: the tensor product of two ``n_nodes``-point
        Gauss-Hermite rules. Kinks and jumps of :math:`g` in :math:`u_2` are then not on the grid:
        with 128 nodes the error for a step function (ReLU's :math:`\phi'`) is up to about 1e-2
        for :math:`c` near 1.
    n_nodes : int
        Even number of Gauss-Hermite nodes per dimension (``rule="hermite"`` only).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``q`` is not positive, ``c`` is outside [-1, 1], or an option is invalid.

    References
    ----------
    .. [1] B. Poole et al., NeurIPS 2016, eq. (5).
    .. [2] S. S. Schoenholz et al., "Deep information propagation", ICLR 2017, eq. (4).
    """
    if not callable(g):
        raise TypeError(f"`g` must be a callable g(u1, u2). Received: g={g!r}")
    check_choice("rule", rule, ("panel", "hermite"))
    qv = float(_q_array("q", q)) if np.ndim(q) == 0 else None
    if qv is None:
        raise TypeError(f"`q` must be a positive real number. Received: q={q!r}")
    cv = _check_c(c)
    sq = math.sqrt(qv)
    s = math.sqrt((1.0 - cv) * (1.0 + cv))
    if rule == "hermite":
        n = check_int("n_nodes", n_nodes, low=2)
        if n % 2:
            raise ValueError(f"`n_nodes` must be even. Received: n_nodes={n_nodes!r}")
        x, w = _rule_hermite(n)
        u1 = np.broadcast_to(sq * x[:, None], (n, n))
        u2 = sq * (cv * x[:, None] + s * x[None, :])
        vals = np.asarray(g(np.ascontiguousarray(u1), u2), dtype=np.float64)
        return float(w @ vals @ w)
    if s == 0.0:
        u, w = _nodes_u(qv)
        return float(w @ np.asarray(g(u, cv * u), dtype=np.float64))
    z1, w1, z2, w2 = _rule_z2(sq, cv)
    u1 = np.ascontiguousarray(np.broadcast_to(sq * z1[:, None], z2.shape))
    u2 = sq * (cv * z1[:, None] + s * z2)
    vals = np.asarray(g(u1, u2), dtype=np.float64)
    return float(w1 @ np.einsum("ij,ij->i", w2, vals))


def _check_c(c):
    cv = check_real("c", c)
    if not -1.0 <= cv <= 1.0:
        raise ValueError(f"`c` must be a correlation in [-1, 1]. Received: c={c!r}")
    return cv
