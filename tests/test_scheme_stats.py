"""Sample statistics of every initialisation scheme against its published formula.

* Every scheme of ``weightinit.schemes()`` (with several parameter sets for the fan-based ones),
  under the torch, keras and jax layouts, for a dense and a convolution shape with the same fans
  in every layout: ``describe``'s variance equals the formula written out here (Glorot
  2 g^2/(fan_in + fan_out), He g^2/fan with g^2 = 2/(1 + a^2) for leaky ReLU, LeCun 1/fan_in,
  variance_scaling scale/n; the truncated normal's variance *after* truncation), and so does the
  sample variance within its standard error; uniform samples never leave (-sqrt(3 Var),
  sqrt(3 Var)) and truncated ones never leave +-2 s.
* Orthogonal matrices: orthonormal to 1e-5 (float32) / 1e-12 (float64) for tall, wide, square,
  convolution and batched shapes in every layout, and Haar-distributed: each fixed entry q of a
  matrix whose unit vectors have length n satisfies q^2 ~ Beta(1/2, (n - 1)/2) with a sign
  independent of it and equally likely + or -, det = +-1 equally often, and the eigenangles
  follow the exact one-point laws of Haar O(n) (not uniform: see :func:`phase_cdf`). The
  unsigned QR (no Mezzadri sign correction) is a negative control that these tests reject.

Sample variance tolerance: for N i.i.d. draws with known mean mu, s^2 = mean((x - mu)^2) has
Var(s^2) = (mu_4 - sigma^4)/N = sigma^4 (kappa - 1)/N exactly, kappa = 1.8 (uniform), 3 (normal),
or the truncated normal's, computed here. Every test function judges its k checks at
z = Phi^-1(1 - ALPHA / (2k)) (Bonferroni), so it fails by chance with probability at most
ALPHA = 1e-6; the 615 default-run test functions of this file together at most 6.2e-4 (most
are exact checks). Seeds are fixed, so outcomes are deterministic.
"""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats

import weightinit as W

ALPHA = 1e-6
DTYPES = [np.float32, np.float64]
LAYOUTS = ["torch", "keras", "jax"]


def z_for(k):
    """Two-sided normal quantile for k checks at total level ALPHA."""
    return float(-scipy.special.ndtri(ALPHA / (2 * k)))


# ----------------------------------------------------------------------------- shapes and fans
# The same (fan_in, fan_out) in every layout: torch (out, in, *kernel), keras/jax
# (*kernel, in, out) (PyTorch torch.nn.init._calculate_fan_in_and_fan_out; Keras and
# jax.nn.initializers default in_axis=-2, out_axis=-1).
FANS = {"dense": (250, 400), "conv": (64 * 25, 96 * 25)}


def shape_for(kind, layout):
    if kind == "dense":
        return (400, 250) if layout == "torch" else (250, 400)
    return (96, 64, 5, 5) if layout == "torch" else (5, 5, 64, 96)


# ----------------------------------------------------------------------------- laws written out
def _phi(x):
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def trunc_moments(a, b):
    """Mean, variance and kurtosis of N(0, 1) conditioned on [a, b], by quadrature."""
    c = min(max(0.0, a), b)
    dens = lambda t: math.exp(-0.5 * (t * t - c * c))  # noqa: E731
    quad = lambda f: scipy.integrate.quad(f, a, b, epsabs=1e-13, epsrel=1e-12)[0]  # noqa: E731
    z = quad(dens)
    m = quad(lambda t: t * dens(t)) / z
    v = quad(lambda t: (t - m) ** 2 * dens(t)) / z
    return m, v, quad(lambda t: (t - m) ** 4 * dens(t)) / z / v**2


#: std of N(0, 1) cut at +-2: sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)) (Keras, JAX)
TRUNC_STD = math.sqrt(1 - 4 * _phi(2.0) / (2 * scipy.special.ndtr(2.0) - 1))
KAPPA = {"uniform": 1.8, "normal": 3.0, "truncated_normal": trunc_moments(-2.0, 2.0)[2]}


def lrelu(a):
    return 2.0 / (1.0 + a * a)  # gain^2 of leaky ReLU with negative slope a (He et al. 2015)


def fan_avg(fi, fo):
    return (fi + fo) / 2


# (scheme, params, law) where law(fan_in, fan_out) -> (distribution, mean, variance)
SCHEMES = [
    ("variance_scaling", {}, lambda fi, fo: ("truncated_normal", 0.0, 1 / fi)),
    ("variance_scaling", {"scale": 2.0, "mode": "fan_avg", "distribution": "uniform"},
     lambda fi, fo: ("uniform", 0.0, 2 / fan_avg(fi, fo))),
    ("variance_scaling", {"scale": 0.5, "mode": "fan_geo_avg", "distribution": "normal"},
     lambda fi, fo: ("normal", 0.0, 0.5 / math.sqrt(fi * fo))),
    ("variance_scaling", {"scale": 1.5, "mode": "fan_out", "distribution": "untruncated_normal"},
     lambda fi, fo: ("normal", 0.0, 1.5 / fo)),
    ("lecun_normal", {}, lambda fi, fo: ("normal", 0.0, 1 / fi)),
    ("lecun_normal", {"distribution": "truncated_normal"},
     lambda fi, fo: ("truncated_normal", 0.0, 1 / fi)),
    ("lecun_uniform", {}, lambda fi, fo: ("uniform", 0.0, 1 / fi)),
    ("glorot_normal", {}, lambda fi, fo: ("normal", 0.0, 2 / (fi + fo))),
    ("glorot_normal", {"gain": 1.5, "distribution": "truncated_normal"},
     lambda fi, fo: ("truncated_normal", 0.0, 2.25 * 2 / (fi + fo))),
    ("glorot_uniform", {}, lambda fi, fo: ("uniform", 0.0, 2 / (fi + fo))),
    ("glorot_uniform", {"gain": 2.0}, lambda fi, fo: ("uniform", 0.0, 4 * 2 / (fi + fo))),
    ("he_normal", {}, lambda fi, fo: ("normal", 0.0, 2 / fi)),
    ("he_normal", {"mode": "fan_out"}, lambda fi, fo: ("normal", 0.0, 2 / fo)),
    ("he_normal", {"nonlinearity": "leaky_relu", "a": 0.2},
     lambda fi, fo: ("normal", 0.0, lrelu(0.2) / fi)),
    ("he_normal", {"nonlinearity": "tanh"}, lambda fi, fo: ("normal", 0.0, (5 / 3) ** 2 / fi)),
    ("he_normal", {"distribution": "truncated_normal"},
     lambda fi, fo: ("truncated_normal", 0.0, 2 / fi)),
    ("he_uniform", {}, lambda fi, fo: ("uniform", 0.0, 2 / fi)),
    ("he_uniform", {"mode": "fan_out", "nonlinearity": "leaky_relu", "a": 0.1},
     lambda fi, fo: ("uniform", 0.0, lrelu(0.1) / fo)),
    # PyTorch nn.Linear / ConvNd default: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in))
    ("he_uniform", {"nonlinearity": "leaky_relu", "a": math.sqrt(5)},
     lambda fi, fo: ("uniform", 0.0, 1 / (3 * fi))),
    ("normal", {"mean": 0.5, "std": 0.2}, lambda fi, fo: ("normal", 0.5, 0.04)),
    ("uniform", {"low": -0.3, "high": 0.5}, lambda fi, fo: ("uniform", 0.1, 0.8**2 / 12)),
    ("truncated_normal", {"mean": 0.1, "std": 0.2, "low": -0.2, "high": 0.3},
     lambda fi, fo: ("truncated_normal",) + (0.1 + 0.2 * trunc_moments(-1.5, 1.0)[0],
                                             0.04 * trunc_moments(-1.5, 1.0)[1])),
    ("zeros", {}, lambda fi, fo: ("constant", 0.0, 0.0)),
    ("ones", {}, lambda fi, fo: ("constant", 1.0, 0.0)),
    ("constant", {"value": -0.25}, lambda fi, fo: ("constant", -0.25, 0.0)),
    ("orthogonal", {}, None), ("orthogonal", {"gain": 2.0}, None),
    ("identity", {"gain": 1.5}, None), ("dirac", {"gain": 2.0}, None),
    ("delta_orthogonal", {"gain": 1.5}, None),
]
SCHEME_IDS = [s + "".join(f"-{k}={v:.4g}" if isinstance(v, float) else f"-{k}={v}"
                          for k, v in p.items()) for s, p, _ in SCHEMES]


def test_every_scheme_is_covered():
    assert {s for s, _, _ in SCHEMES} == set(W.schemes())


def _expected(scheme, params, law, kind, layout):
    """(distribution, mean, variance) of the scheme for this shape, from the formulas above; for
    the deterministic and orthogonal schemes the values written out from their definitions."""
    shape = shape_for(kind, layout)
    if law is not None:
        return law(*FANS[kind])
    gain = params.get("gain", 1.0)
    if scheme == "orthogonal":  # unit vectors of length n = max(rows, cols): Var = gain^2 / n
        rows, cols = _flat(shape, layout)
        return "orthogonal", 0.0, gain**2 / max(rows, cols)
    if scheme == "delta_orthogonal":  # gain * (out x in, orthonormal columns) at the centre:
        n_in = shape[1] if layout == "torch" else shape[-2]  # sum of squares gain^2 * in
        return "delta_orthogonal", 0.0, gain**2 * n_in / math.prod(shape)
    # identity: gain on the diagonal of the 2-D shape; dirac: gain at [d, d, centre] for
    # d < min(out, in) (one group): `count` entries equal gain, the rest 0
    count = min(shape[0], shape[1]) if layout == "torch" or scheme == "identity" else min(
        shape[-1], shape[-2])
    p = count / math.prod(shape)
    return scheme, gain * p, gain**2 * p - (gain * p) ** 2


def _applies(scheme, kind, layout):
    """identity is 2-D only; dirac is a convolution kernel (any layout)."""
    if scheme == "identity":
        return kind == "dense"
    if scheme in ("dirac", "delta_orthogonal"):
        return kind == "conv"
    return True


CASES = [pytest.param(s, p, law, kind, layout, id=f"{sid}-{kind}-{layout}")
         for (s, p, law), sid in zip(SCHEMES, SCHEME_IDS) for kind in FANS for layout in LAYOUTS]


# ----------------------------------------------------------------------------- describe
@pytest.mark.parametrize("scheme, params, law, kind, layout", CASES)
def test_describe_variance_matches_formula(scheme, params, law, kind, layout):
    shape = shape_for(kind, layout)
    if not _applies(scheme, kind, layout):
        with pytest.raises(ValueError):
            W.describe(shape, scheme, layout=layout, **params)
        return
    dist, mean, var = _expected(scheme, params, law, kind, layout)
    info = W.describe(shape, scheme, layout=layout, **params)
    if dist != "constant" and len(shape) >= 2:
        assert (info["fan_in"], info["fan_out"]) == FANS[kind]
    assert info["variance"] == pytest.approx(var, rel=1e-12, abs=1e-300)
    assert info["mean"] == pytest.approx(mean, rel=1e-12, abs=1e-15)


# ----------------------------------------------------------------------------- samples
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme, params, law, kind, layout", CASES)
def test_sample_variance_and_bounds(scheme, params, law, kind, layout, dtype):
    shape = shape_for(kind, layout)
    if not _applies(scheme, kind, layout):
        with pytest.raises(ValueError):
            W.init(shape, scheme, layout=layout, seed=1, dtype=dtype, **params)
        return
    dist, mean, var = _expected(scheme, params, law, kind, layout)
    w = W.init(shape, scheme, layout=layout, seed=20250101, dtype=dtype, **params)
    assert w.shape == shape and w.dtype == dtype
    x = w.astype(np.float64).ravel()
    n = x.size
    if dist == "constant":
        np.testing.assert_array_equal(w, dtype(mean))
        return
    if dist in ("identity", "dirac"):
        gain = params.get("gain", 1.0)
        assert np.count_nonzero(x) == round(mean / gain * n) and set(np.unique(x)) == {0.0, gain}
        assert x.var() == pytest.approx(var, rel=1e-12)
        return
    if dist == "delta_orthogonal":  # zero off the centre, gain * orthonormal columns on it
        gain = params.get("gain", 1.0)
        centre = W.delta_orthogonal(shape, gain, seed=20250101, layout=layout, dtype=np.float64)
        box = ((slice(None), slice(None), 2, 2) if layout == "torch"
               else (2, 2, slice(None), slice(None)))
        q = centre[box] if layout == "torch" else centre[box].T  # (out, in)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(q.T @ q, gain**2 * np.eye(q.shape[1]), atol=tol * gain**2)
        off = np.ones(shape, bool)
        off[box] = False
        assert not np.any(w[off])
        assert np.mean(x * x) == pytest.approx(var, rel=tol)
        return
    if dist == "orthogonal":
        # orthonormal unit vectors: sum of squares = min(rows, cols) gain^2 exactly, so
        # mean(x^2) = Var; the mean of the entries is 1^T Q 1 / N with Var(1^T Q 1) = N / n for
        # Haar Q (Q v uniform on the sphere of R^n for a fixed unit v)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        assert np.mean(x * x) == pytest.approx(var, rel=tol)
        gain = params.get("gain", 1.0)
        assert abs(x.mean()) <= z_for(1) * gain / math.sqrt(max(_flat(shape, layout)) * n)
        return
    z = z_for(2)
    kappa = KAPPA[dist] if scheme != "truncated_normal" else trunc_moments(-1.5, 1.0)[2]
    s2 = np.mean((x - mean) ** 2)
    assert abs(s2 - var) <= z * var * math.sqrt((kappa - 1) / n), (s2, var)
    assert abs(x.mean() - mean) <= z * math.sqrt(var / n), (x.mean(), mean)
    if dist == "uniform":  # U(mean - a, mean + a), a = sqrt(3 Var), upper bound open
        a = math.sqrt(3 * var)
        assert x.min() >= dtype(mean - a) and x.max() < dtype(mean + a)
    elif dist == "truncated_normal" and scheme != "truncated_normal":
        bound = 2 * math.sqrt(var) / TRUNC_STD  # N(0, s^2) cut at +-2s has Var (TRUNC_STD s)^2
        assert np.abs(x).max() <= dtype(bound)
    elif scheme == "truncated_normal":
        assert x.min() >= dtype(params["low"]) and x.max() <= dtype(params["high"])


def test_truncated_normal_constant():
    assert TRUNC_STD == pytest.approx(scipy.stats.truncnorm(-2, 2).std(), rel=1e-14)
    assert KAPPA["truncated_normal"] == pytest.approx(
        scipy.stats.truncnorm(-2, 2).stats(moments="k") + 3, rel=1e-10)


def test_layout_changes_the_fans():
    # The keras shape read as torch would give fan_in 5 * 64 * 96 = 30720: the variance test
    # above can tell the layouts apart.
    w = W.he_normal(shape_for("conv", "keras"), layout="torch", seed=1, dtype=np.float64)
    assert np.var(w) == pytest.approx(2 / (5 * 64 * 96), rel=0.02)
    assert abs(np.var(w) - 2 / FANS["conv"][0]) > 0.5 * 2 / FANS["conv"][0]


# ----------------------------------------------------------------------------- orthonormality
def _flat(shape, layout, batched=False):
    """(rows, cols) of the matrices: torch (out, in, *kernel) -> rows = shape[0], cols = the
    rest (torch.nn.init.orthogonal_); keras/jax -> cols = shape[-1], rows = the rest."""
    s = shape[1:] if batched else shape
    if layout == "torch":
        return s[0], math.prod(s[1:])
    return math.prod(s[:-1]), s[-1]


ORTHO_SHAPES = {
    "square": (64, 64), "tall": (120, 40), "wide": (40, 120),
    "conv-torch": (32, 16, 3, 3), "conv-keras": (3, 3, 16, 32), "conv-wide": (8, 16, 3, 3),
}
ORTHO_TOL = {np.float32: 1e-5, np.float64: 1e-12}


def _gram_error(q):
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-2] < q.shape[-1]:
        q = np.swapaxes(q, -1, -2)
    g = np.swapaxes(q, -1, -2) @ q
    return np.abs(g - np.eye(q.shape[-1])).max()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name", list(ORTHO_SHAPES))
def test_orthogonal_is_orthonormal(name, layout, batched, dtype):
    shape = ((5,) if batched else ()) + ORTHO_SHAPES[name]
    gain = 1.7
    w = W.orthogonal(shape, gain, batched=batched, layout=layout, seed=7, dtype=dtype)
    assert w.shape == shape and w.dtype == dtype
    rows, cols = _flat(shape, layout, batched)
    q = w.reshape((-1, rows, cols)) / gain
    assert _gram_error(q) < ORTHO_TOL[dtype]
    if batched:  # independent matrices, not copies
        assert not np.allclose(q[0], q[1])


def test_orthogonal_large_float32():
    # min(shape) >= 1024 takes the blocked QR; float32 rounding still leaves it orthonormal
    w = W.orthogonal((1030, 1100), seed=3, dtype=np.float32)
    assert _gram_error(w) < ORTHO_TOL[np.float32]


# ----------------------------------------------------------------------------- Haar law
def signed_entry_cdf(t, n):
    """CDF of one entry of a uniform unit vector of R^n: q^2 ~ Beta(1/2, (n - 1)/2) and
    sign(q) = +-1 with probability 1/2 independently, so F(t) = 1/2 + sign(t) I_{t^2} / 2."""
    t = np.asarray(t, dtype=np.float64)
    return 0.5 + 0.5 * np.sign(t) * scipy.stats.beta.cdf(t * t, 0.5, (n - 1) / 2)


def phase_cdf(theta, n, det):
    r"""CDF on [0, pi] of a uniformly chosen non-real eigenangle of a Haar O(n) matrix with
    determinant ``det`` (eigenvalues e^{+-i theta} in pairs, plus +-1 as the dimension and
    determinant force).

    One-point densities (Katz & Sarnak, "Random matrices, Frobenius eigenvalues, and
    monodromy", 1999; from the orthonormal functions of each Weyl density), N = floor(n/2):

    * SO(2N), N angles: rho = [(2N-1) + sin((2N-1)t)/sin t] / (2 pi);
    * O^-(2N) (eigenvalues 1, -1 and N-1 angles, as USp(2N-2)):
      [(2N-1) - sin((2N-1)t)/sin t] / (2 pi);
    * SO(2N+1) (eigenvalue 1 and N angles): [2N - sin(2Nt)/sin t] / (2 pi);
    * O^-(2N+1) = -SO(2N+1): theta -> pi - theta.

    They are not uniform: a uniform law of the phases holds for Haar *unitary* matrices only.
    The integrals use sin((2N-1)t)/sin t = 1 + 2 sum_{k<N} cos 2kt and sin(2Nt)/sin t =
    2 sum_{k<N} cos (2k+1)t. Checked against scipy.stats.ortho_group below.
    """
    th = np.atleast_1d(np.asarray(theta, dtype=np.float64))
    big_n = n // 2
    if n % 2 == 0:
        k = np.arange(1, big_n)
        dirichlet = th + (np.sin(2 * np.outer(th, k)) / k).sum(axis=1)
        if det > 0:
            return ((2 * big_n - 1) * th + dirichlet) / (2 * np.pi * big_n)
        return ((2 * big_n - 1) * th - dirichlet) / (2 * np.pi * (big_n - 1))
    k = np.arange(big_n)

    def so_odd(t):
        return (2 * big_n * t - 2 * (np.sin(np.outer(t, 2 * k + 1)) / (2 * k + 1)).sum(axis=1)) / (
            2 * np.pi * big_n)
    return so_odd(th) if det > 0 else 1.0 - so_odd(np.pi - th)


def haar_samples(mats, entries, rng):
    """What the Haar checks look at in a stack of (semi-)orthogonal matrices: the listed
    entries, and for square matrices the sign of det and one randomly chosen eigenangle in
    (0, pi) per matrix (uniform choice among its non-real pairs, so i.i.d. across matrices),
    split by determinant."""
    out = {f"entry {i},{j}": mats[:, i, j].copy() for i, j in entries}
    if mats.shape[1] == mats.shape[2]:
        n = mats.shape[1]
        det = np.sign(np.linalg.det(mats))
        out["det"] = det
        ev = np.linalg.eigvals(mats)
        for d in (1, -1):
            e = ev[det == d]
            upper = e.imag > 1e-9  # one eigenvalue of each conjugate pair
            k = n // 2 - (1 if d < 0 and n % 2 == 0 else 0)
            assert np.all(upper.sum(axis=1) == k)  # the real ones are exactly the forced +-1
            if k and e.size:
                angles = np.angle(e[upper]).reshape(-1, k)
                out[f"phases det {d:+d}"] = angles[np.arange(angles.shape[0]),
                                                   rng.integers(k, size=angles.shape[0])]
    return out


def haar_pvalues(samples, n_vec, n=None):
    """KS of each entry against :func:`signed_entry_cdf` (unit vectors of length ``n_vec``);
    for n x n matrices the exact binomial test of P(det = 1) = 1/2 and KS of the angles against
    :func:`phase_cdf` for each determinant."""
    p = {}
    for name, x in samples.items():
        if name.startswith("entry"):
            p[name] = scipy.stats.kstest(x, lambda t: signed_entry_cdf(t, n_vec)).pvalue
        elif name == "det":
            p[name] = scipy.stats.binomtest(int((x > 0).sum()), x.size, 0.5).pvalue
        elif x.size:
            d = int(name.split()[-1])
            p[name] = scipy.stats.kstest(x, lambda t: phase_cdf(t, n, d)).pvalue
    return p


def haar_verdict(mats, n_vec, entries, rng):
    """p-values of the Haar checks on one stack of matrices (see haar_samples)."""
    square = mats.shape[1] == mats.shape[2]
    return haar_pvalues(haar_samples(mats, entries, rng), n_vec, mats.shape[1] if square else None)


def _failures(p):
    return {k: v for k, v in p.items() if v < ALPHA / len(p)}


N_MATS = 3000  # batched matrices per Haar test
N_SEEDS = 1000  # separately seeded matrices per Haar test (one call each)


def _by_seed(shape, layout, count, first_seed=1000):
    """``count`` matrices from as many seeds, flattened per layout and divided by the gain."""
    rows, cols = _flat(shape, layout)
    return np.stack([W.orthogonal(shape, 1.5, seed=first_seed + s, layout=layout,
                                  dtype=np.float64).reshape(rows, cols) / 1.5
                     for s in range(count)])


HAAR_SHAPES = [
    ("square", (6, 6), "torch"), ("square-odd", (7, 7), "keras"), ("tall", (12, 5), "torch"),
    ("wide", (5, 12), "jax"), ("conv-torch", (4, 2, 3), "torch"),
    ("conv-keras", (3, 2, 4), "keras"),
]


@pytest.mark.parametrize("name, shape, layout", HAAR_SHAPES, ids=[h[0] for h in HAAR_SHAPES])
def test_orthogonal_is_haar_over_seeds(name, shape, layout):
    mats = _by_seed(shape, layout, N_SEEDS)
    rows, cols = mats.shape[1:]
    entries = [(0, 0), (rows - 1, cols - 1), (0, cols - 1), (rows // 2, cols // 2)]
    p = haar_verdict(mats, max(rows, cols), entries, np.random.default_rng(5))
    assert not _failures(p), p


@pytest.mark.parametrize("n", [4, 7])
def test_orthogonal_is_haar_batched(n):
    mats = W.orthogonal((N_MATS, n, n), batched=True, seed=77, dtype=np.float64)
    p = haar_verdict(mats, n, [(0, 0), (n - 1, n - 1), (1, 2)], np.random.default_rng(6))
    assert not _failures(p), p


@pytest.mark.parametrize("n", [4, 5, 6, 7])
def test_haar_checks_accept_scipy_ortho_group(n):
    # Positive control of the laws: scipy's independent Haar sampler passes.
    mats = scipy.stats.ortho_group.rvs(n, size=N_MATS, random_state=np.random.default_rng(n))
    p = haar_verdict(mats, n, [(0, 0), (n - 1, n - 1), (1, 2)], np.random.default_rng(7))
    assert not _failures(p), p


def _unsigned_q(n, count, seed):
    """Q of numpy.linalg.qr without the sign correction: LAPACK's Householder QR makes
    R_00 = -sign(a_00) ||a_0||, so Q_00 = -|a_00| / ||a_0|| is never positive."""
    a = W.normal((count, n, n), seed=seed, dtype=np.float64)
    return np.linalg.qr(a)[0]


@pytest.mark.parametrize("n", [4, 7])
def test_haar_checks_reject_unsigned_qr(n):
    p = haar_verdict(_unsigned_q(n, N_MATS, 8), n, [(0, 0), (n - 1, n - 1), (1, 2)],
                     np.random.default_rng(9))
    bad = _failures(p)
    assert "entry 0,0" in bad, p


@pytest.mark.parametrize("n", [4, 7])
def test_phases_of_haar_orthogonal_are_not_uniform(n):
    # Why the phase test uses phase_cdf: Haar O(n) has eigenvalues at +1 and -1 (phases 0 and
    # pi) with positive probability, so its phases are not uniform on (-pi, pi], and a uniform
    # law is rejected for the library's matrices. (The non-real phases of both determinants
    # pooled are uniform: the densities of phase_cdf for det +1 and -1 average to a constant.)
    mats = W.orthogonal((N_MATS, n, n), batched=True, seed=77, dtype=np.float64)
    phases = np.abs(np.angle(np.linalg.eigvals(mats)))
    pick = phases[np.arange(N_MATS), np.random.default_rng(1).integers(n, size=N_MATS)]
    assert scipy.stats.kstest(pick, scipy.stats.uniform(0, np.pi).cdf).pvalue < ALPHA


def test_phase_cdf_is_a_cdf():
    for n in range(3, 10):
        for d in (1, -1):
            f = phase_cdf(np.linspace(0, np.pi, 2001), n, d)
            assert f[0] == pytest.approx(0, abs=1e-12) and f[-1] == pytest.approx(1, abs=1e-12)
            assert np.all(np.diff(f) >= -1e-12)


# ----------------------------------------------------------------------------- slow
@pytest.mark.slow
@pytest.mark.parametrize("n", [3, 4, 8])
def test_orthogonal_is_haar_large(n, slow_size):
    # 10^6 matrices at scale 1, in batches of 10^5 (one seed each) to bound memory
    count = slow_size(10**6, minimum=10**4)
    rng = np.random.default_rng(10)
    parts = []
    for b, start in enumerate(range(0, count, 10**5)):
        mats = W.orthogonal((min(10**5, count - start), n, n), batched=True, seed=123 + b,
                            dtype=np.float64)
        parts.append(haar_samples(mats, [(0, 0), (n - 1, n - 1), (1, 2)], rng))
    samples = {k: np.concatenate([s.get(k, np.zeros(0)) for s in parts]) for k in parts[0]}
    p = haar_pvalues(samples, n, n)
    assert not _failures(p), p
