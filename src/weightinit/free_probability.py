r"""Free-probability theory of the input-output Jacobian spectrum of a deep random network.

A depth-:math:`L` network :math:`h^l = W^l x^{l-1} + b^l`, :math:`x^l = \phi(h^l)` has the
input-output Jacobian :math:`J = \partial x^L / \partial x^0 = D^L W^L \cdots D^1 W^1` with
:math:`D^l = \mathrm{diag}(\phi'(h^l))`. For wide layers at the fixed point :math:`q^*` of the
length map, the matrices :math:`W^l W^{l\top}` and :math:`(D^l)^2` are asymptotically free, so the
S-transform of :math:`J J^\top` is the product of theirs (Pennington, Schoenholz & Ganguli 2017,
eq. 11; 2018, eq. 4):

.. math::

    S_{JJ^\top}(z) = \prod_{l=1}^{L} S_{W^l W^{l\top}}(z)\, S_{(D^l)^2}(z).

Conventions (Pennington et al. 2017, section 3): for a spectral distribution with moments
:math:`m_k`, the moment generating function is :math:`\psi(z) = \sum_{k \ge 1} m_k z^k
= \mathbb{E}[z\lambda / (1 - z\lambda)]`, :math:`\chi = \psi^{-1}` its functional inverse and
:math:`S(z) = \chi(z)\,(1 + z) / z`. With this,

* Gaussian weights of variance :math:`\sigma_w^2 / n` (square layers): :math:`W W^\top` follows
  the Marchenko-Pastur law of ratio 1 scaled by :math:`\sigma_w^2`,
  :math:`S_{WW^\top}(z) = \sigma_w^{-2} (1 + z)^{-1}`;
* orthogonal weights :math:`\sigma_w Q`: :math:`W W^\top = \sigma_w^2 I`,
  :math:`S_{WW^\top}(z) = \sigma_w^{-2}`;
* :math:`D^2` has the distribution of :math:`\phi'(h)^2`, :math:`h \sim \mathcal{N}(0, q^*)`,
  with moments :math:`\mu_k = \mathbb{E}[\phi'(h)^{2k}]` (Gaussian quadrature of
  :mod:`weightinit.quadrature`), and :math:`S_{D^2}` follows from the series of
  :math:`\psi_{D^2}`.

Moments of :math:`JJ^\top` are computed with truncated power series in float64 (series reversion
by Lagrange inversion, :math:`[z^n]\chi = \frac{1}{n}[w^{n-1}] (w/\psi(w))^n`): :math:`m_1 =
1/S(0) = \chi_1^L` and, writing :math:`S(z) = S(0)(1 + s_1 z + O(z^2))`,
:math:`m_2 = m_1^2 (1 - s_1)`, so that

.. math::

    \frac{m_2 - m_1^2}{m_1^2} = L\Big(\frac{\mu_2}{\mu_1^2} - 1 + [\text{Gaussian}]\Big)

(Pennington et al. 2017, eq. 16-17; the bracket is 1 for Gaussian weights, 0 for orthogonal).

The density of the squared singular values :math:`\lambda` comes from the Stieltjes transform
:math:`G(z) = \mathbb{E}[1/(z - \lambda)]`, with :math:`\psi(1/z) = z G(z) - 1`: the relation
:math:`\chi_{JJ^\top}(\psi) = 1/z` reads :math:`z\,\psi\,S_{JJ^\top}(\psi) = 1 + \psi`. With
:math:`t = \chi_{D^2}(\psi)`, i.e. :math:`\psi = \psi_{D^2}(t) = \mathbb{E}[t d / (1 - t d)]`,
:math:`d = \phi'(h)^2`, one gets :math:`S_{WW^\top} S_{D^2} = A(t)` with
:math:`A = t / (\sigma_w^2 \psi)` (Gaussian) or :math:`A = t (1 + \psi) / (\sigma_w^2 \psi)`
(orthogonal), and the single equation in :math:`t`

.. math::

    F(t) = \frac{z\, \psi\, A^L}{1 + \psi} = 1,

solved by Newton's method (:math:`F` as :math:`\exp` of a sum of logarithms, so
:math:`A^L` never overflows). The physical branch (:math:`\mathrm{Im}\, G < 0` in the upper
half plane) is followed by continuation in :math:`\eta` for :math:`z = \lambda + i\eta`: from
:math:`\eta` far above the spectrum, where :math:`\psi \approx m_1 / z`, down to a small
:math:`\eta`, then :math:`\rho(\lambda) = -\mathrm{Im}\, G(\lambda + i\eta) / \pi`. The result
is the density convolved with a Cauchy kernel of half-width :math:`\eta` (default
:math:`10^{-6} m_1`); the Newton residual is reported. A point mass at 0 (ReLU:
:math:`P(\phi' = 0) = 1/2`, the largest kernel share of the factors) is reported separately as
``atom`` and its Cauchy peak removed from the density.

References
----------
.. [1] J. Pennington, S. S. Schoenholz, S. Ganguli, "Resurrecting the sigmoid in deep learning
   through dynamical isometry: theory and practice", NeurIPS 2017, arXiv:1711.04735.
.. [2] J. Pennington, S. S. Schoenholz, S. Ganguli, "The emergence of spectral universality in
   deep networks", AISTATS 2018, arXiv:1802.09979.
.. [3] J. A. Mingo, R. Speicher, "Free Probability and Random Matrices", Springer 2017, ch. 2
   (S-transform); T. Banica et al., "Fuss-Catalan numbers in noncommutative probability",
   Documenta Math. 15 (2010) (moments of products of Wishart matrices).
"""

import dataclasses
import math

import numpy as np

from ._validate import check_choice, check_int, check_real
from .kernels.activations import CODES
from .quadrature import _nodes_u, _phi

__all__ = ["JacobianSpectrumTheory", "d2_distribution", "edge_of_chaos", "jacobian_spectrum"]

WEIGHTS = ("gaussian", "orthogonal")
#: Positively homogeneous activations: the law of phi'(h) is the same for every q > 0.
_HOMOGENEOUS = ("linear", "relu", "leaky_relu")


# ----------------------------------------------------------------------------- power series
def _mul(a, b):
    """Product of two truncated power series (coefficient arrays of equal length)."""
    return np.convolve(a, b)[: a.size]


def _recip(a):
    """1 / a as a truncated series (a[0] != 0)."""
    out = np.zeros_like(a)
    out[0] = 1.0 / a[0]
    for n in range(1, a.size):
        out[n] = -(a[1: n + 1] @ out[n - 1:: -1][:n]) / a[0]
    return out


def _power(a, n):
    """a ** n (integer n >= 0) by repeated squaring, truncated."""
    out = np.zeros_like(a)
    out[0] = 1.0
    base = a.copy()
    while n:
        if n & 1:
            out = _mul(out, base)
        n >>= 1
        if n:
            base = _mul(base, base)
    return out


def _reverse(f):
    """Functional inverse g of f(w) = sum_{k>=1} f[k] w^k (f[0] = 0, f[1] != 0), by Lagrange
    inversion: [z^n] g = (1/n) [w^{n-1}] (w / f(w))^n."""
    h = _recip(f[1:])  # w / f(w), length K
    g = np.zeros_like(f)
    p = np.zeros_like(h)
    p[0] = 1.0
    for n in range(1, f.size):
        p = _mul(p, h)
        g[n] = p[n - 1] / n
    return g


# ----------------------------------------------------------------------------- D^2 and checks
def _code(activation):
    return CODES[check_choice("activation", activation, CODES)]


def d2_distribution(activation, q, *, slope=0.01):
    r"""The distribution of :math:`d = \phi'(h)^2`, :math:`h \sim \mathcal{N}(0, q)`, as
    quadrature nodes and weights: ``(d, w)`` with :math:`\mathbb{E}[g(d)] \approx \sum_i w_i
    g(d_i)` (the panel rule of :mod:`weightinit.quadrature`; ``q = 0`` gives the point mass at
    :math:`\phi'(0)^2`)."""
    code = _code(activation)
    q = check_real("q", q, nonnegative=True)
    slope = check_real("slope", slope)
    if q == 0.0:
        return _phi(code, np.zeros(1), 1, slope) ** 2, np.ones(1)
    u, w = _nodes_u(q)
    return _phi(code, u, 1, slope) ** 2, w


def edge_of_chaos(activation, q_star, *, slope=0.01):
    r"""The point :math:`(\sigma_w, \sigma_b)` of the critical line :math:`\chi_1 = 1` whose fixed
    point is ``q_star`` (Pennington et al. 2017, section 2.2):

    .. math::

        \sigma_w^2 = \frac{1}{\mathbb{E}[\phi'(\sqrt{q^*} z)^2]}, \qquad
        \sigma_b^2 = q^* - \sigma_w^2\, \mathbb{E}[\phi(\sqrt{q^*} z)^2].

    Raises ValueError when :math:`\sigma_b^2` would be negative (no critical point with this
    :math:`q^*`, e.g. ReLU for any :math:`q^* > 0`, where :math:`\sigma_b = 0` leaves every
    :math:`q` fixed)."""
    code = _code(activation)
    q = check_real("q_star", q_star, positive=True)
    slope = check_real("slope", slope)
    u, w = _nodes_u(q)
    d = _phi(code, u, 1, slope)
    f = _phi(code, u, 0, slope)
    mu1 = float(w @ (d * d))
    if not mu1 > 0:
        raise ValueError(f"E[phi'(h)^2] = 0 for activation={activation!r} at q_star={q!r}: no "
                         "critical sigma_w.")
    sw2 = 1.0 / mu1
    sb2 = q - sw2 * float(w @ (f * f))
    if sb2 < -1e-12 * q:
        raise ValueError(
            f"No critical point with q_star={q!r} for activation={activation!r}: it would need "
            f"sigma_b^2 = {sb2:.6g} < 0. Use a smaller `q_star`.")
    return math.sqrt(sw2), math.sqrt(max(sb2, 0.0))


# ----------------------------------------------------------------------------- the result
@dataclasses.dataclass
class JacobianSpectrumTheory:
    """Free-probability prediction for the spectrum of :math:`J J^\\top` (see the module).

    Attributes
    ----------
    depth, activation, weights, sigma_w, sigma_b, slope : the network.
    q : pre-activation second moment at which :math:`D^2` is taken (:math:`q^*` by default).
    chi1 : :math:`\\sigma_w^2 \\mu_1`, the mean squared singular value of one layer.
    moments : ``moments[k - 1]`` = :math:`m_k = \\mathrm{tr}((JJ^\\top)^k)/n`, k = 1..n_moments.
    mean_sq, var_sq : :math:`m_1 = \\chi_1^L` and :math:`m_2 - m_1^2`: mean and variance of the
        squared singular values.
    atom : mass of the squared singular values at exactly 0 (ReLU: 1/2).
    """

    depth: int
    activation: str
    weights: str
    sigma_w: float
    sigma_b: float
    q: float
    chi1: float
    moments: np.ndarray
    mean_sq: float
    var_sq: float
    atom: float
    slope: float = 0.01

    def _rule(self):
        return d2_distribution(self.activation, self.q, slope=self.slope)

    def stieltjes(self, z, *, steps=None):
        """:math:`G(z) = \\mathbb{E}[1/(z - \\lambda)]` for complex ``z`` with positive imaginary
        part, and the largest Newton residual :math:`|F - 1|` (see the module): ``(G, residual)``.
        """
        z = np.asarray(z, dtype=np.complex128)
        if z.size and not np.all(z.imag > 0):
            raise ValueError("`z` must lie in the upper half plane (Im z > 0).")
        d, w = self._rule()
        keep = w > 0
        d, w = d[keep], w[keep]
        mu1 = float(w @ d)
        m1 = self.mean_sq
        sw2 = self.sigma_w ** 2
        L = self.depth
        gauss = self.weights == "gaussian"
        flat = z.reshape(-1)
        scale = max(m1, float(np.max(np.abs(flat.real))) if flat.size else m1, 1e-300)
        eta0 = 1e3 * scale
        # Continuation from eta0 down to each point's own imaginary part, 60 steps per decade.
        n_steps = steps or int(60 * max(1.0, math.log10(eta0 / float(np.min(flat.imag))))) + 1
        ratios = np.linspace(0.0, 1.0, n_steps)
        target = flat.imag
        t = None
        worst = 0.0
        for r in ratios:
            eta = eta0 ** (1.0 - r) * target ** r
            zz = flat.real + 1j * eta
            if t is None:
                t = m1 / (mu1 * zz)  # psi ~ m1 / z, psi_D(t) ~ mu1 t
            t, res = _newton(t, zz, d, w, sw2, L, gauss)
            worst = res if r == 1.0 else worst
        psi = _psi_d(t, d, w)[0]
        return ((1.0 + psi) / flat).reshape(z.shape), worst

    def density(self, lam, *, eta=None):
        """Density :math:`\\rho(\\lambda)` of the squared singular values at the points ``lam``
        (continuous part: the atom at 0 is removed, see ``atom``), computed at
        :math:`\\lambda + i\\eta` with ``eta`` (default :math:`10^{-6} m_1`): the exact density
        convolved with a Cauchy kernel of half-width ``eta``. Returns ``(rho, residual)``."""
        lam = np.asarray(lam, dtype=np.float64)
        if not np.all(np.isfinite(lam)):
            raise ValueError("`lam` must be finite.")
        eta = 1e-6 * self.mean_sq if eta is None else check_real("eta", eta, positive=True)
        z = lam + 1j * eta
        g, res = self.stieltjes(z)
        rho = -g.imag / math.pi - self.atom * eta / (math.pi * (lam * lam + eta * eta))
        return np.maximum(rho, 0.0), res

    def singular_value_density(self, s, *, eta=None):
        """Density of the singular values :math:`s = \\sqrt{\\lambda}` of :math:`J`:
        :math:`p(s) = 2 s \\rho(s^2)` (continuous part). Returns ``(p, residual)``."""
        s = np.asarray(s, dtype=np.float64)
        rho, res = self.density(s * s, eta=eta)
        return 2.0 * np.abs(s) * rho, res

    def to_dict(self):
        return {"depth": self.depth, "activation": self.activation, "weights": self.weights,
                "sigma_w": self.sigma_w, "sigma_b": self.sigma_b, "q": self.q,
                "chi1": self.chi1, "moments": self.moments.tolist(), "mean_sq": self.mean_sq,
                "var_sq": self.var_sq, "atom": self.atom}


def _psi_d(t, d, w):
    """psi_D(t) = sum w t d / (1 - t d) and its derivative, for an array t."""
    inv = 1.0 / (1.0 - t[:, None] * d[None, :])
    psi = (inv * (t[:, None] * d[None, :])) @ w
    dpsi = (inv * inv * d[None, :]) @ w
    return psi, dpsi


def _log_f(t, z, d, w, sw2, L, gauss):
    """log F(t) and d log F / dt (see the module)."""
    psi, dpsi = _psi_d(t, d, w)
    log_a = np.log(t) - np.log(sw2 * psi)
    dlog_a = 1.0 / t - dpsi / psi
    if not gauss:
        log_a = log_a + np.log1p(psi)
        dlog_a = dlog_a + dpsi / (1.0 + psi)
    log_f = np.log(z * psi) - np.log1p(psi) + L * log_a
    dlog_f = dpsi / psi - dpsi / (1.0 + psi) + L * dlog_a
    return log_f, dlog_f


def _newton(t, z, d, w, sw2, L, gauss, iters=50):
    """Solve F(t) = 1 near t (Newton on log F = 0 taken as F - 1 = 0 near the root, halving
    steps that increase |F - 1|). Returns (t, max |F - 1|)."""
    with np.errstate(all="ignore"):
        log_f, dlog_f = _log_f(t, z, d, w, sw2, L, gauss)
        f = np.exp(log_f)
        res = np.abs(f - 1.0)
        for _ in range(iters):
            todo = res > 1e-13
            if not todo.any():
                break
            step = np.where(todo, (f - 1.0) / (f * dlog_f), 0.0)
            for _ in range(30):
                tn = t - step
                log_fn, dlog_fn = _log_f(tn, z, d, w, sw2, L, gauss)
                fn = np.exp(log_fn)
                resn = np.abs(fn - 1.0)
                better = ~(resn > res) | ~todo
                if better.all():
                    break
                step = np.where(better, step, 0.5 * step)
            t = np.where(todo & better, tn, t)
            f = np.where(todo & better, fn, f)
            dlog_f = np.where(todo & better, dlog_fn, dlog_f)
            res = np.where(todo & better, resn, res)
    return t, float(np.max(res)) if res.size else 0.0


# ----------------------------------------------------------------------------- the API
def jacobian_spectrum(depth, *, activation="tanh", weights="gaussian", sigma_w=1.0,
                      sigma_b=0.0, q=None, slope=0.01, n_moments=8):
    r"""Free-probability prediction of the spectrum of :math:`J J^\top` for a deep network.

    :math:`J = D^L W^L \cdots D^1 W^1` for square layers with weights of variance
    :math:`\sigma_w^2 / n` (``weights="gaussian"``, or any i.i.d. zero-mean law: the result is
    universal) or :math:`\sigma_w` times a Haar orthogonal matrix (``"orthogonal"``), biases
    :math:`\mathcal{N}(0, \sigma_b^2)`, and every pre-activation at second moment ``q`` (default
    the fixed point :math:`q^*` of :func:`weightinit.theory.fixed_point`). Moments from
    :math:`S_{JJ^\top} = (S_{WW^\top} S_{D^2})^L` (Pennington, Schoenholz & Ganguli 2017, eq. 11),
    the density from its Stieltjes transform (see :mod:`weightinit.free_probability`).

    Closed forms: a linear network has :math:`D = I`; with orthogonal weights every singular
    value is :math:`\sigma_w^L`, with Gaussian ones the moments are the Fuss-Catalan numbers
    :math:`m_k = \sigma_w^{2Lk} \binom{(L+1)k}{k} / (Lk + 1)`; in general
    :math:`m_1 = \chi_1^L`.

    Parameters
    ----------
    depth : int
        Number of layers :math:`L \ge 1`.
    activation : str
        Activation name (see :func:`weightinit.theory.q_map`).
    weights : {"gaussian", "orthogonal"}
    sigma_w, sigma_b : float
        Weight scale (std of W times sqrt(fan_in); the gain of orthogonal weights) and bias std.
    q : float, optional
        Pre-activation second moment; default :math:`q^*` (for linear, ReLU and leaky ReLU,
        whose :math:`\phi'(h)` depends only on the sign of :math:`h`, any :math:`q > 0` gives
        the same result and 1 is used when :math:`q^*` is 0 or infinite).
    slope : float
        Negative slope of leaky_relu.
    n_moments : int
        Number of moments :math:`m_1, \dots` to compute (at least 2).

    Returns
    -------
    JacobianSpectrumTheory
        ``moments``, ``mean_sq``, ``var_sq``, ``atom``; ``density(lam)`` and
        ``singular_value_density(s)``.

    Raises
    ------
    ValueError
        Bad arguments; :math:`q^*` infinite (pass ``q``); :math:`\mu_1 = \mathbb{E}[\phi'^2] = 0`.

    References
    ----------
    .. [1] J. Pennington, S. S. Schoenholz, S. Ganguli, NeurIPS 2017, arXiv:1711.04735,
       eqs. (11)-(17) and Fig. 2-4.
    .. [2] J. Pennington, S. S. Schoenholz, S. Ganguli, AISTATS 2018, arXiv:1802.09979.
    """
    from . import theory

    depth = check_int("depth", depth, low=1)
    code = _code(activation)
    check_choice("weights", weights, WEIGHTS)
    sw = check_real("sigma_w", sigma_w, positive=True)
    sb = check_real("sigma_b", sigma_b, nonnegative=True)
    slope = check_real("slope", slope)
    n_moments = check_int("n_moments", n_moments, low=2, high=201)
    if q is None:
        q = theory.fixed_point(activation, sw, sb, slope=slope)
        if activation in _HOMOGENEOUS and not 0.0 < q < math.inf:
            q = 1.0  # phi'(h) depends only on the sign of h: any q > 0 gives the same D
        if math.isinf(q):
            raise ValueError(
                f"q diverges for activation={activation!r}, sigma_w={sigma_w!r}, "
                f"sigma_b={sigma_b!r}: there is no fixed point q*. Pass `q` explicitly.")
    else:
        q = check_real("q", q, nonnegative=True)
    del code
    d, w = d2_distribution(activation, q, slope=slope)
    K = n_moments
    mu = np.array([0.0] + [float(w @ d ** k) for k in range(1, K + 1)])
    if not mu[1] > 0:
        raise ValueError(f"E[phi'(h)^2] = 0 for activation={activation!r} at q={q!r}: the "
                         "Jacobian is 0.")
    sw2 = sw * sw
    z = np.zeros(K + 1)
    z[1] = 1.0
    one_plus = np.zeros(K + 1)
    one_plus[:2] = 1.0
    chi_d = _reverse(mu)                    # chi_{D^2}(z) = z * (chi_d[1:] as a series)
    a = chi_d[1:] / sw2                     # Gaussian: S_W S_D = chi_D(z) / (sigma_w^2 z)
    if weights == "orthogonal":
        a = _mul(a, one_plus[:K])           # orthogonal: times (1 + z)
    s_total = _power(a, depth)              # S_{JJ^T}, length K
    # chi_{JJ^T}(z) = z S(z) / (1 + z); its inverse is psi = sum m_k z^k.
    chi = np.concatenate(([0.0], _mul(s_total, _recip(one_plus[:K]))))
    moments = _reverse(chi)[1:]
    atom = float(w[d == 0.0].sum())
    chi1 = sw2 * mu[1]
    return JacobianSpectrumTheory(
        depth=depth, activation=activation, weights=weights, sigma_w=sw, sigma_b=sb, q=float(q),
        chi1=chi1, moments=moments, mean_sq=float(moments[0]),
        var_sq=float(moments[1] - moments[0] ** 2), atom=atom, slope=slope)
