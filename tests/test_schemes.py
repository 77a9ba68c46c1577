"""Initialisation schemes: shapes, dtypes, exact parameters and their sample statistics.

Expected parameters are written out here from the published formulas (shared/reference.md and
the Glorot/He/LeCun papers), never read back from weightinit's own constants.
"""

import math

import numpy as np
import pytest
import scipy.stats

import weightinit as W
from weightinit import initializers as I

DTYPES = [np.float32, np.float64]

# Every name `get` accepts, aliases included.
ALL_NAMES = list(I.REGISTRY) + list(I.ALIASES)
ALIAS_TARGETS = {
    "xavier_normal": "glorot_normal", "xavier_uniform": "glorot_uniform",
    "kaiming_normal": "he_normal", "kaiming_uniform": "he_uniform", "eye": "identity",
}
# Shapes each scheme accepts (identity is 2-D only; the rest take a conv-like 3-D weight).
SHAPE = {"identity": (12, 8), "eye": (12, 8)}
DEFAULT_SHAPE = (12, 8, 3)
EXTRA = {"constant": {"value": 0.25}}


def shape_of(name):
    return SHAPE.get(name, DEFAULT_SHAPE)


def call(name, **kw):
    return W.get(name)(shape_of(name), **{**EXTRA.get(name, {}), **kw})


# ----------------------------------------------------------------------------- registry
def test_registry_contents():
    assert set(I.REGISTRY) == {
        "zeros", "ones", "constant", "normal", "uniform", "truncated_normal", "variance_scaling",
        "lecun_normal", "lecun_uniform", "glorot_normal", "glorot_uniform", "he_normal",
        "he_uniform", "orthogonal", "identity", "dirac", "delta_orthogonal"}
    assert I.ALIASES == ALIAS_TARGETS


def test_schemes_lists_registry_then_aliases():
    assert W.schemes() == list(I.REGISTRY)
    assert W.schemes(aliases=True) == list(I.REGISTRY) + list(I.ALIASES)
    assert W.schemes(aliases=False) == W.schemes()


@pytest.mark.parametrize("alias, target", sorted(ALIAS_TARGETS.items()))
def test_aliases_resolve_to_the_same_function(alias, target):
    assert W.get(alias) is W.get(target)
    assert getattr(W, alias if alias != "eye" else "identity") is W.get(target)


@pytest.mark.parametrize("name", list(I.REGISTRY))
def test_get_returns_the_public_function(name):
    assert W.get(name) is getattr(W, name)


def test_every_scheme_has_a_formula():
    assert set(W.FORMULAS) == set(I.REGISTRY)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_init_dispatches_by_name(name):
    direct = call(name, seed=3, dtype=np.float64)
    via = W.init(shape_of(name), name, seed=3, dtype=np.float64, **EXTRA.get(name, {}))
    np.testing.assert_array_equal(direct, via)


def test_init_passes_parameters_through():
    np.testing.assert_array_equal(
        W.init((20, 10), "he_uniform", mode="fan_out", seed=1),
        W.he_uniform((20, 10), mode="fan_out", seed=1))


# ----------------------------------------------------------------------------- shape, dtype, out
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ALL_NAMES)
def test_shape_and_dtype(name, dtype):
    w = call(name, seed=0, dtype=dtype)
    assert isinstance(w, np.ndarray)
    assert w.shape == shape_of(name)
    assert w.dtype == dtype
    assert w.flags.c_contiguous
    assert np.all(np.isfinite(w))


@pytest.mark.parametrize("name", ALL_NAMES)
def test_default_dtype_is_float32(name):
    assert call(name, seed=0).dtype == np.float32


@pytest.mark.parametrize("name", ALL_NAMES)
def test_no_upcast_dtype_follows_out(name):
    # No dtype given: the result takes the dtype of `out` (float32 stays float32, JAX's
    # testAccidentalUpcasting) and is written in place.
    for dtype in DTYPES:
        out = np.full(shape_of(name), np.nan, dtype=dtype)
        res = call(name, seed=5, out=out)
        assert res is out
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, call(name, seed=5, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ALL_NAMES)
def test_out_with_explicit_dtype(name, dtype):
    out = np.full(shape_of(name), np.nan, dtype=dtype)
    assert call(name, seed=5, dtype=dtype, out=out) is out
    assert not np.isnan(out).any()


@pytest.mark.parametrize("name", ALL_NAMES)
def test_same_seed_same_values(name):
    np.testing.assert_array_equal(call(name, seed=11), call(name, seed=11))


RANDOM = [n for n in ALL_NAMES if n not in ("zeros", "ones", "constant", "identity", "eye", "dirac")]


@pytest.mark.parametrize("name", RANDOM)
def test_different_seeds_differ(name):
    assert not np.array_equal(call(name, seed=1), call(name, seed=2))


def test_float32_parameters_are_not_upcast_by_numpy_scalars():
    # float32/float64 numpy scalars as parameters change nothing about the result dtype.
    w = W.glorot_normal((8, 4), gain=np.float64(2.0), seed=0, dtype=np.float32)
    assert w.dtype == np.float32
    w = W.normal((8, 4), np.float64(0.0), np.float64(1.0), seed=0, dtype=np.float32)
    assert w.dtype == np.float32


# ----------------------------------------------------------------------------- exact parameters
TRUNC = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2] (Keras, JAX)


def test_truncation_constant():
    phi, Phi = scipy.stats.norm.pdf(2.0), scipy.stats.norm.cdf(2.0)
    closed_form = math.sqrt(1.0 - 4.0 * phi / (2.0 * Phi - 1.0))
    assert closed_form == pytest.approx(TRUNC, rel=1e-15)
    assert scipy.stats.truncnorm(-2, 2).std() == pytest.approx(TRUNC, rel=1e-14)
    assert I.TRUNCATED_STD == pytest.approx(TRUNC, rel=1e-15)


def test_kurtosis_constants_used_for_tolerances():
    # The kappa values the variance tolerances below rely on.
    assert scipy.stats.norm.stats(moments="k") + 3 == pytest.approx(3.0)
    assert scipy.stats.uniform.stats(moments="k") + 3 == pytest.approx(1.8)
    assert scipy.stats.truncnorm(-2, 2).stats(moments="k") + 3 == pytest.approx(2.3655, abs=1e-4)


# torch (out, in, *k) shape with fan_in != fan_out
SHP = (30, 20, 3)
FI, FO = 20 * 3, 30 * 3


def _expected(var, distribution):
    """Independent description of a zero-mean distribution with variance ``var``."""
    if distribution == "normal":
        return dict(distribution="normal", variance=var, std=math.sqrt(var), bound=math.inf)
    if distribution == "uniform":
        a = math.sqrt(3.0 * var)  # Var U(-a, a) = a^2 / 3
        return dict(distribution="uniform", variance=var, std=math.sqrt(var), bound=a, low=-a, high=a)
    s = math.sqrt(var) / TRUNC  # N(0, s^2) cut at +-2s has Var = (TRUNC s)^2 = var
    return dict(distribution="truncated_normal", variance=var, std=math.sqrt(var), bound=2 * s,
                low=-2 * s, high=2 * s)


LRELU = lambda a: 2.0 / (1.0 + a * a)  # noqa: E731  gain^2 of leaky ReLU with slope a

DESCRIBE_CASES = [
    # (scheme, params, variance, distribution)
    ("lecun_normal", {}, 1 / FI, "normal"),
    ("lecun_normal", {"distribution": "truncated_normal"}, 1 / FI, "truncated_normal"),
    ("lecun_uniform", {}, 1 / FI, "uniform"),
    ("glorot_normal", {}, 2 / (FI + FO), "normal"),
    ("glorot_normal", {"distribution": "truncated_normal"}, 2 / (FI + FO), "truncated_normal"),
    ("glorot_normal", {"gain": 3.0}, 9 * 2 / (FI + FO), "normal"),
    ("glorot_uniform", {}, 2 / (FI + FO), "uniform"),
    ("glorot_uniform", {"gain": 0.5}, 0.25 * 2 / (FI + FO), "uniform"),
    ("xavier_uniform", {}, 2 / (FI + FO), "uniform"),
    ("he_normal", {}, 2 / FI, "normal"),
    ("he_normal", {"mode": "fan_out"}, 2 / FO, "normal"),
    ("he_normal", {"distribution": "truncated_normal"}, 2 / FI, "truncated_normal"),
    ("he_normal", {"distribution": "untruncated_normal"}, 2 / FI, "normal"),
    ("he_normal", {"nonlinearity": "leaky_relu", "a": 0.2}, LRELU(0.2) / FI, "normal"),
    ("he_normal", {"nonlinearity": "leaky_relu"}, 2 / FI, "normal"),  # a = 0 as in PyTorch
    ("he_normal", {"nonlinearity": "tanh"}, (5 / 3) ** 2 / FI, "normal"),
    ("he_normal", {"nonlinearity": "linear", "mode": "fan_out"}, 1 / FO, "normal"),
    ("he_normal", {"nonlinearity": "selu"}, 0.75**2 / FI, "normal"),
    ("kaiming_normal", {"mode": "fan_out", "nonlinearity": "leaky_relu", "a": 0.1},
     LRELU(0.1) / FO, "normal"),
    ("he_uniform", {}, 2 / FI, "uniform"),
    ("he_uniform", {"mode": "fan_out"}, 2 / FO, "uniform"),
    ("he_uniform", {"nonlinearity": "leaky_relu", "a": 0.3}, LRELU(0.3) / FI, "uniform"),
    ("variance_scaling", {}, 1 / FI, "truncated_normal"),
    ("variance_scaling", {"scale": 2.0, "mode": "fan_avg", "distribution": "uniform"},
     2 / ((FI + FO) / 2), "uniform"),
    ("variance_scaling", {"scale": 0.5, "mode": "fan_geo_avg", "distribution": "normal"},
     0.5 / math.sqrt(FI * FO), "normal"),
    ("variance_scaling", {"mode": "fan_out", "distribution": "truncated_normal"}, 1 / FO,
     "truncated_normal"),
]


@pytest.mark.parametrize("scheme, params, var, dist", DESCRIBE_CASES,
                         ids=[f"{s}-{'-'.join(f'{k}={v}' for k, v in p.items())}"
                              for s, p, _, _ in DESCRIBE_CASES])
def test_describe_matches_published_formulas(scheme, params, var, dist):
    info = W.describe(SHP, scheme, **params)
    assert info["fan_in"] == FI and info["fan_out"] == FO
    assert info["shape"] == SHP
    assert info["scheme"] == ALIAS_TARGETS.get(scheme, scheme)
    assert info["mean"] == 0.0
    for key, value in _expected(var, dist).items():
        if isinstance(value, str):
            assert info[key] == value
        else:
            assert info[key] == pytest.approx(value, rel=1e-12), key


def test_describe_does_not_draw():
    # A shape far beyond memory is described from its fans alone.
    info = W.describe((2**30, 2**30), "he_normal")
    assert info["variance"] == pytest.approx(2 / 2**30, rel=1e-15)


def test_describe_keras_layout():
    info = W.describe((3, 3, 8, 16), "he_uniform", layout="keras")
    assert (info["fan_in"], info["fan_out"]) == (72, 144)
    assert info["bound"] == pytest.approx(math.sqrt(6 / 72), rel=1e-12)


def test_describe_explicit_axes():
    info = W.describe((4, 8, 16), "glorot_normal", in_axis=1, out_axis=2, batch_axis=0)
    assert (info["fan_in"], info["fan_out"]) == (8, 16)
    assert info["variance"] == pytest.approx(2 / 24, rel=1e-12)


def test_pytorch_linear_default_is_he_uniform_leaky_sqrt5():
    # nn.Linear: kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    shape = (64, 48)
    info = W.describe(shape, "he_uniform", nonlinearity="leaky_relu", a=math.sqrt(5))
    bound = 1 / math.sqrt(48)
    assert info["bound"] == pytest.approx(bound, rel=1e-12)
    assert info["low"] == pytest.approx(-bound, rel=1e-12)
    w = W.he_uniform(shape, nonlinearity="leaky_relu", a=math.sqrt(5), seed=0, dtype=np.float64)
    assert np.abs(w).max() < bound
    assert np.abs(w).max() > 0.99 * bound  # 3072 samples reach the top 1% (P(miss) ~ 1e-13)


@pytest.mark.parametrize("params, expected", [
    ({}, (0.0, 1.0)), ({"mean": 2.0, "std": 0.5}, (2.0, 0.25)),
])
def test_describe_normal(params, expected):
    info = W.describe((10,), "normal", **params)
    assert (info["mean"], info["variance"]) == expected
    assert info["bound"] == math.inf
    assert "fan_in" not in info  # a 1-D shape has no fans


def test_describe_uniform():
    info = W.describe((10,), "uniform", low=-1.0, high=3.0)
    assert info["mean"] == 1.0
    assert info["variance"] == pytest.approx(16 / 12, rel=1e-15)
    assert (info["low"], info["high"], info["bound"]) == (-1.0, 3.0, 3.0)




@pytest.mark.parametrize("mean, std, low, high", [
    (0.0, 1.0, -2.0, 2.0), (1.0, 2.0, 0.0, 5.0), (0.0, 1.0, 0.0, math.inf),
    (0.0, 1.0, -math.inf, -1.0), (0.0, 1.0, -7.0, -6.0), (0.0, 1.0, 3.0, 4.0),
    (0.0, 1.0, -math.inf, -5.0), (-3.0, 0.5, -5.0, -4.0), (0.0, 1.0, -9.0, -8.5),
    # The mirror images of the last three: same variance, mean negated.
    pytest.param(0.0, 1.0, 5.0, math.inf),
    pytest.param(0.0, 1.0, 6.0, 7.0),
    pytest.param(0.0, 1.0, 8.5, 9.0),
])
def test_describe_truncated_normal_matches_scipy(mean, std, low, high):
    info = W.describe((10,), "truncated_normal", mean=mean, std=std, low=low, high=high)
    ref = scipy.stats.truncnorm((low - mean) / std, (high - mean) / std, loc=mean, scale=std)
    assert info["distribution"] == "truncated_normal"
    assert info["mean"] == pytest.approx(ref.mean(), rel=1e-9, abs=1e-12)
    assert info["variance"] == pytest.approx(ref.var(), rel=1e-9)
    assert info["std"] == pytest.approx(ref.std(), rel=1e-9)
    assert (info["low"], info["high"]) == (low, high)


@pytest.mark.parametrize("scheme, params, value", [
    ("zeros", {}, 0.0), ("ones", {}, 1.0), ("constant", {"value": -0.5}, -0.5),
    ("constant", {}, 0.0),
])
def test_describe_constants(scheme, params, value):
    info = W.describe((4, 5), scheme, **params)
    assert info["distribution"] == "constant"
    assert (info["mean"], info["variance"], info["std"]) == (value, 0.0, 0.0)
    assert info["bound"] == abs(value)


@pytest.mark.parametrize("shape, params, n", [
    ((30, 20), {}, 30), ((20, 30), {"gain": 2.0}, 30), ((16, 8, 3, 3), {}, 72),
    ((5, 16, 8), {"batched": True}, 16), ((3, 3, 8, 16), {"layout": "keras"}, 72),
])
def test_describe_orthogonal(shape, params, n):
    # Entries of a Haar (semi-)orthogonal matrix with unit-norm vectors of length n have
    # variance 1/n; times gain^2.
    g = params.get("gain", 1.0)
    info = W.describe(shape, "orthogonal", **params)
    assert info["variance"] == pytest.approx(g * g / n, rel=1e-15)
    assert info["bound"] == g


def test_describe_identity_and_dirac_report_values():
    info = W.describe((4, 6), "identity", gain=2.0)
    # four entries equal 2 out of 24
    assert info["mean"] == pytest.approx(8 / 24, rel=1e-15)
    assert info["variance"] == pytest.approx(4 * 2.0**2 / 24 - (8 / 24) ** 2, rel=1e-14)
    assert info["bound"] == 2.0
    info = W.describe((4, 2, 3), "dirac")
    assert info["mean"] == pytest.approx(2 / 24, rel=1e-15)


# ----------------------------------------------------------------------------- sample statistics
# For N i.i.d. zero-mean draws, s^2 = mean(x^2) estimates sigma^2 with
#   Var(s^2) = (E x^4 - sigma^4) / N = sigma^4 (kappa - 1) / N,  kappa = E x^4 / sigma^4,
# so |s^2 - sigma^2| <= z sigma^2 sqrt((kappa - 1) / N) with z = 5 (two-sided p ~ 5.7e-7); the
# mean obeys |mean| <= z sigma / sqrt(N). kappa: 3 (normal), 1.8 (uniform), 2.3655 (N(0,1)
# truncated at +-2). Seeds are fixed, so a failure is deterministic and means a real bias.
Z = 5.0
KAPPA = {"normal": 3.0, "uniform": 1.8, "truncated_normal": 2.3655}
BIG = (2000, 500)  # torch: fan_in 500, fan_out 2000, N = 10**6
BFI, BFO = 500, 2000

SAMPLE_CASES = [
    ("lecun_normal", {}, 1 / BFI, "normal"),
    ("lecun_normal", {"distribution": "truncated_normal"}, 1 / BFI, "truncated_normal"),
    ("lecun_uniform", {}, 1 / BFI, "uniform"),
    ("glorot_normal", {}, 2 / (BFI + BFO), "normal"),
    ("glorot_normal", {"gain": 2.0, "distribution": "truncated_normal"}, 8 / (BFI + BFO),
     "truncated_normal"),
    ("glorot_uniform", {}, 2 / (BFI + BFO), "uniform"),
    ("he_normal", {}, 2 / BFI, "normal"),
    ("he_normal", {"mode": "fan_out", "nonlinearity": "leaky_relu", "a": 0.5},
     LRELU(0.5) / BFO, "normal"),
    ("he_normal", {"distribution": "truncated_normal"}, 2 / BFI, "truncated_normal"),
    ("he_uniform", {}, 2 / BFI, "uniform"),
    ("he_uniform", {"mode": "fan_out"}, 2 / BFO, "uniform"),
    ("variance_scaling", {}, 1 / BFI, "truncated_normal"),
    ("variance_scaling", {"scale": 3.0, "mode": "fan_geo_avg", "distribution": "uniform"},
     3 / math.sqrt(BFI * BFO), "uniform"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme, params, var, dist", SAMPLE_CASES,
                         ids=[f"{s}-{'-'.join(f'{k}={v}' for k, v in p.items())}"
                              for s, p, _, _ in SAMPLE_CASES])
def test_sample_variance_matches_formula(scheme, params, var, dist, dtype):
    w = W.init(BIG, scheme, seed=20240601, dtype=dtype, **params)
    assert w.dtype == dtype
    x = w.astype(np.float64).ravel()
    n = x.size
    s2 = np.mean(x * x)
    assert abs(s2 - var) <= Z * var * math.sqrt((KAPPA[dist] - 1) / n), (s2, var)
    assert abs(x.mean()) <= Z * math.sqrt(var / n)
    exp = _expected(var, dist)
    if dist == "uniform":
        # never beyond the bounds, and never the open upper bound itself
        assert x.min() >= dtype(exp["low"]) and x.max() < dtype(exp["high"])
    elif dist == "truncated_normal":
        assert x.min() >= dtype(exp["low"]) and x.max() <= dtype(exp["high"])
        # the cut is at 2 std of the parent normal: the sample reaches close to it
        assert x.max() > 0.99 * exp["high"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_uniform_schemes_fill_the_interval(dtype):
    # U(-a, a): the sample min/max approach the bounds within a few a/N.
    # P(no sample within a * 1e-4 of an end) = (1 - 0.5e-4)**(10**6) ~ e**-50.
    w = W.glorot_uniform(BIG, seed=7, dtype=dtype).astype(np.float64)
    a = math.sqrt(6 / (BFI + BFO))
    assert dtype(-a) <= w.min() < -a * (1 - 1e-4)  # low is -a rounded to the dtype
    assert a * (1 - 1e-4) < w.max() < a


# ----------------------------------------------------------------------------- orthogonal
def _gram_error(m, gain=1.0):
    m = np.asarray(m, dtype=np.float64)
    if m.shape[0] < m.shape[1]:
        m = m.T  # orthonormal rows: check M M^T
    return np.abs(m.T @ m - gain**2 * np.eye(m.shape[1])).max()


ORTHO_TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, flat", [
    ((64, 64), (64, 64)), ((100, 30), (100, 30)), ((30, 100), (30, 100)), ((1, 10), (1, 10)),
    ((10, 1), (10, 1)), ((16, 8, 3, 3), (16, 72)), ((100, 4, 3), (100, 12)),
    ((6, 2, 2, 2, 2), (6, 16)),
])
def test_orthogonal_torch_flattening(shape, flat, dtype):
    # PyTorch orthogonal_: rows = shape[0], cols = product of the rest.
    w = W.orthogonal(shape, seed=1, dtype=dtype)
    assert w.shape == shape and w.dtype == dtype
    assert _gram_error(w.reshape(flat)) < ORTHO_TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ["keras", "jax"])
@pytest.mark.parametrize("shape", [(3, 3, 8, 16), (3, 3, 2, 40), (30, 20)])
def test_orthogonal_keras_flattening(shape, layout, dtype):
    # Keras/JAX: cols = shape[-1], rows = the rest.
    w = W.orthogonal(shape, seed=2, dtype=dtype, layout=layout)
    assert _gram_error(w.reshape(-1, shape[-1])) < ORTHO_TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gain", [0.5, 2.0, math.sqrt(2)])
def test_orthogonal_gain(gain, dtype):
    w = W.orthogonal((40, 25), gain, seed=3, dtype=dtype)
    assert _gram_error(w, gain) < ORTHO_TOL[dtype] * gain**2
    w2 = W.orthogonal((40, 25), gain=gain, seed=3, dtype=dtype)
    np.testing.assert_array_equal(w, w2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 20, 10), (5, 10, 20), (3, 8, 8), (4, 6, 2, 3)])
def test_orthogonal_batched(shape, dtype):
    w = W.orthogonal(shape, batched=True, seed=4, dtype=dtype)
    assert w.shape == shape
    mats = w.reshape(shape[0], shape[1], -1)
    for m in mats:
        assert _gram_error(m) < ORTHO_TOL[dtype]
    # independent matrices, not copies
    assert not np.allclose(mats[0], mats[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_orthogonal_is_the_qr_of_the_gaussian_draw_in_its_dtype(dtype):
    # Documented: the Gaussian matrix is drawn and factored in `dtype`. Reference: the
    # sign-corrected QR of the same draw, factored in float64.
    w = W.orthogonal((50, 30), seed=8, dtype=dtype)
    a = W.normal((1, 50, 30), seed=8, dtype=dtype)[0].astype(np.float64)
    q, r = np.linalg.qr(a)
    q = q * np.where(np.diagonal(r) < 0, -1.0, 1.0)
    assert w.dtype == dtype
    np.testing.assert_allclose(w, q, atol=1e-5 if dtype == np.float32 else 1e-13)


def test_orthogonal_is_haar_sign_corrected():
    # Without the sign correction Q diag(sign R_ii), LAPACK's Householder QR gives a diagonal
    # of fixed sign. For Haar-distributed O(3), each entry has mean 0 and variance 1/3, and
    # det = +1 or -1 with probability 1/2 each. N = 20000 matrices, z = 5.
    n_mats = 20000
    w = W.orthogonal((n_mats, 3, 3), batched=True, seed=9, dtype=np.float64)
    diag = np.diagonal(w, axis1=1, axis2=2)
    tol = 5 * math.sqrt(1 / 3 / n_mats)
    assert np.all(np.abs(diag.mean(axis=0)) < tol)
    assert np.all(np.abs(w.mean(axis=0)) < tol)
    assert np.all(np.abs((w * w).mean(axis=0) - 1 / 3) < 5 * math.sqrt(
        (1 / 5 - 1 / 9) / n_mats))  # E x^4 = 3/(n(n+2)) = 1/5 for n = 3
    det = np.linalg.det(w)
    np.testing.assert_allclose(np.abs(det), 1.0, atol=1e-12)
    assert abs(det.mean()) < 5 / math.sqrt(n_mats)


def test_orthogonal_out():
    out = np.empty((20, 10), np.float32)
    assert W.orthogonal((20, 10), seed=1, out=out) is out
    np.testing.assert_array_equal(out, W.orthogonal((20, 10), seed=1, dtype=np.float32))


def test_orthogonal_needs_two_dims():
    with pytest.raises(ValueError, match="shape"):
        W.orthogonal((5,))
    with pytest.raises(ValueError, match="batched"):
        W.orthogonal((5, 4), batched=True)


# ----------------------------------------------------------------------------- identity and dirac
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 5), (3, 7), (7, 3), (1, 4)])
@pytest.mark.parametrize("gain", [1.0, 2.5, -1.0])
def test_identity_is_torch_eye(shape, gain, dtype):
    w = W.identity(shape, gain=gain, dtype=dtype)
    expected = np.zeros(shape, dtype)
    for i in range(min(shape)):
        expected[i, i] = gain
    np.testing.assert_array_equal(w, expected)
    assert w.dtype == dtype
    np.testing.assert_array_equal(W.init(shape, "eye", gain=gain, dtype=dtype), expected)


def test_identity_preserves_input():
    x = np.random.default_rng(0).standard_normal(6)
    np.testing.assert_array_equal(W.identity((6, 6), dtype=np.float64) @ x, x)


def test_identity_rejects_non_2d():
    with pytest.raises(ValueError, match="2-D"):
        W.identity((3, 3, 3))


def _dirac_reference(shape, groups, gain):
    """torch.nn.init.dirac_ written per output channel: channel o of group o // per_group
    copies input channel o % per_group of that group, at the kernel centre (k // 2)."""
    w = np.zeros(shape)
    per_group = shape[0] // groups
    centre = tuple(k // 2 for k in shape[2:])
    for o in range(shape[0]):
        d = o % per_group
        if d < shape[1]:
            w[(o, d) + centre] = gain
    return w


DIRAC_CASES = [
    ((4, 2, 3), 1), ((4, 2, 3), 2), ((4, 4, 3), 4), ((6, 2, 3), 1), ((6, 2, 5), 3),
    ((6, 3, 3, 3), 1), ((6, 3, 3, 3), 2), ((6, 3, 3, 3), 3), ((8, 4, 2, 4), 2), ((8, 2, 3, 5), 4),
    ((4, 4, 3, 3, 3), 2), ((6, 1, 1, 3, 5), 3), ((2, 8, 3), 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, groups", DIRAC_CASES)
def test_dirac_matches_torch_construction(shape, groups, dtype):
    w = W.dirac(shape, groups, gain=1.5, dtype=dtype)
    assert w.dtype == dtype and w.shape == shape
    np.testing.assert_array_equal(w, _dirac_reference(shape, groups, 1.5).astype(dtype))


@pytest.mark.parametrize("groups", [1, 2])
def test_dirac_convolution_is_identity(groups):
    # A 'same'-padded 1-D grouped convolution with the dirac kernel returns its input channels.
    out_ch, in_per_group, k, length = 4, 2, 3, 9
    w = W.dirac((out_ch, in_per_group, k), groups, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((in_per_group * groups, length))
    xp = np.pad(x, ((0, 0), (k // 2, k // 2)))
    per_group = out_ch // groups
    y = np.zeros((out_ch, length))
    for o in range(out_ch):
        g = o // per_group
        for i in range(in_per_group):
            for t in range(length):
                y[o, t] += np.dot(w[o, i], xp[g * in_per_group + i, t:t + k])
    for o in range(out_ch):
        g, d = divmod(o, per_group)
        if d < in_per_group:
            np.testing.assert_array_equal(y[o], x[g * in_per_group + d])
        else:
            np.testing.assert_array_equal(y[o], 0.0)


@pytest.mark.parametrize("shape, groups, match", [
    ((4, 2), 1, "3-, 4- or 5-D"), ((4, 2, 3, 3, 3, 3), 1, "3-, 4- or 5-D"),
    ((6, 2, 3), 4, "groups"), ((6, 2, 3), 0, "groups"),
])
def test_dirac_rejects(shape, groups, match):
    with pytest.raises(ValueError, match=match):
        W.dirac(shape, groups)


# ----------------------------------------------------------------------------- gains
@pytest.mark.parametrize("name, param, gain", [
    ("linear", None, 1.0), ("identity", None, 1.0), ("sigmoid", None, 1.0),
    ("conv1d", None, 1.0), ("conv2d", None, 1.0), ("conv3d", None, 1.0),
    ("conv_transpose1d", None, 1.0), ("conv_transpose2d", None, 1.0),
    ("conv_transpose3d", None, 1.0),
    ("tanh", None, 5.0 / 3.0), ("relu", None, math.sqrt(2.0)),
    ("leaky_relu", None, math.sqrt(2.0 / (1.0 + 0.01**2))),
    ("leaky_relu", 0.2, math.sqrt(2.0 / 1.04)), ("leaky_relu", 0, math.sqrt(2.0)),
    ("leaky_relu", math.sqrt(5), math.sqrt(1.0 / 3.0)), ("leaky_relu", 1.0, 1.0),
    ("selu", None, 0.75),
])
def test_calculate_gain(name, param, gain):
    assert W.calculate_gain(name, param) == pytest.approx(gain, rel=1e-15)


def test_calculate_gain_param_only_for_leaky_relu():
    with pytest.raises(ValueError, match="param"):
        W.calculate_gain("relu", 0.1)


# ----------------------------------------------------------------------------- recommend
RELU_FAMILY = ["relu", "leaky_relu", "prelu", "elu", "gelu", "silu", "swish", "softplus"]
GLOROT_FAMILY = ["sigmoid", "tanh", "softmax", "linear", "identity"]
RECURRENT = ["recurrent", "rnn", "lstm", "gru"]


def test_recommend_covers_exactly_these_activations():
    from weightinit import activations as A
    assert set(A.ACTIVATIONS) == set(RELU_FAMILY + GLOROT_FAMILY + RECURRENT + ["selu"])


@pytest.mark.parametrize("activation", RELU_FAMILY + GLOROT_FAMILY + RECURRENT + ["selu"])
def test_recommend_scheme_per_family(activation):
    r = W.recommend(activation)
    assert isinstance(r, W.Recommendation)
    assert r.reason and isinstance(r.reason, str)
    assert r.bias == 0.0
    if activation in ("leaky_relu", "prelu"):
        slope = 0.01 if activation == "leaky_relu" else 0.25  # PyTorch defaults
        assert r.scheme == "he_normal"
        assert r.params == {"nonlinearity": "leaky_relu", "a": slope}
        assert r.gain == pytest.approx(math.sqrt(2 / (1 + slope**2)), rel=1e-15)
    elif activation in RELU_FAMILY:
        assert (r.scheme, r.params) == ("he_normal", {})
        assert r.gain == pytest.approx(math.sqrt(2), rel=1e-15)
    elif activation in GLOROT_FAMILY:
        assert (r.scheme, r.gain, r.params) == ("glorot_uniform", 1.0, {})
    elif activation == "selu":
        assert (r.scheme, r.gain, r.params) == ("lecun_normal", 1.0, {})
    else:
        assert (r.scheme, r.gain, r.params) == ("orthogonal", 1.0, {})


@pytest.mark.parametrize("activation", RELU_FAMILY + GLOROT_FAMILY + ["selu"])
def test_recommendation_applies_with_its_stated_gain(activation):
    # init(shape, r.scheme, **r.params) has Var = gain^2 * base variance of the scheme.
    r = W.recommend(activation)
    shape = (40, 24)
    info = W.describe(shape, r.scheme, **r.params)
    base = 2 / (24 + 40) if r.scheme == "glorot_uniform" else 1 / 24
    assert info["variance"] == pytest.approx(r.gain**2 * base, rel=1e-12)
    assert W.init(shape, r.scheme, seed=0, **r.params).shape == shape


def test_recommend_leaky_slope_param():
    r = W.recommend("leaky_relu", 0.2)
    assert r.params == {"nonlinearity": "leaky_relu", "a": 0.2}
    assert r.gain == pytest.approx(math.sqrt(2 / 1.04), rel=1e-15)
    r = W.recommend("prelu", param=0.1)
    assert r.params["a"] == 0.1


def test_recommend_param_only_for_leaky_family():
    with pytest.raises(ValueError, match="param"):
        W.recommend("relu", 0.1)


@pytest.mark.parametrize("activation", RELU_FAMILY)
def test_recommend_auto_bias_relu_family(activation):
    assert W.recommend(activation, bias="auto").bias == 0.01


@pytest.mark.parametrize("activation", GLOROT_FAMILY + RECURRENT + ["selu"])
def test_recommend_auto_bias_others(activation):
    assert W.recommend(activation, bias="auto").bias == 0.0


def test_recommend_explicit_bias():
    assert W.recommend("tanh", bias=0.3).bias == 0.3


# ----------------------------------------------------------------------------- bias
@pytest.mark.parametrize("activation", RELU_FAMILY)
def test_bias_auto_relu_family(activation):
    assert W.bias_value(activation, "auto") == 0.01
    np.testing.assert_array_equal(W.bias(7, activation, value="auto"), np.full(7, 0.01, np.float32))


@pytest.mark.parametrize("activation", GLOROT_FAMILY + RECURRENT + ["selu"])
def test_bias_auto_others_zero(activation):
    assert W.bias_value(activation, "auto") == 0.0
    np.testing.assert_array_equal(W.bias(7, activation, value="auto"), np.zeros(7, np.float32))


def test_bias_default_is_zero():
    b = W.bias(5)
    assert b.dtype == np.float32 and b.shape == (5,)
    np.testing.assert_array_equal(b, 0.0)
    assert W.bias_value("relu") == 0.0  # 0 unless asked for "auto"
    np.testing.assert_array_equal(W.bias(5, "relu"), 0.0)


def test_bias_explicit_value_dtype_out():
    b = W.bias((3,), "tanh", value=0.5, dtype=np.float64)
    assert b.dtype == np.float64
    np.testing.assert_array_equal(b, 0.5)
    out = np.empty(4, np.float32)
    assert W.bias(4, "relu", value="auto", out=out) is out
    np.testing.assert_array_equal(out, np.float32(0.01))
    assert W.bias_value("gelu", 0.2) == 0.2


def test_zeros_ones_constant_values():
    np.testing.assert_array_equal(W.zeros((2, 3)), np.zeros((2, 3), np.float32))
    np.testing.assert_array_equal(W.ones((2, 3), dtype=np.float64), np.ones((2, 3)))
    np.testing.assert_array_equal(W.constant((2, 3), -1.25), np.full((2, 3), -1.25, np.float32))


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("shape", [(1100, 1030), (1030, 1100)])
def test_orthogonal_blocked_qr_equals_lapack_qr(shape, dtype, tol):
    """Large matrices take the blocked Householder QR (panels of 256 columns, compact WY
    updates); it must give the same sign-corrected Q as one LAPACK QR of the same Gaussian
    matrix (factored in float64), to the rounding of `dtype`."""
    from weightinit import initializers as I

    assert min(shape) >= I._BLOCK_QR_MIN
    w = W.orthogonal(shape, seed=11, dtype=dtype)
    a = W.normal((1, max(shape), min(shape)), seed=11, dtype=dtype)[0].astype(np.float64)
    q, r = np.linalg.qr(a)
    q = q * np.where(np.diagonal(r) < 0, -1.0, 1.0)
    expected = q.T if shape[0] < shape[1] else q
    assert w.dtype == dtype
    np.testing.assert_allclose(w, expected, atol=tol)
    w = w.astype(np.float64)
    small = w @ w.T if shape[0] < shape[1] else w.T @ w
    np.testing.assert_allclose(small, np.eye(min(shape)), atol=tol)


def test_blocked_qr_stays_orthonormal_on_ill_conditioned_input():
    # Householder QR needs no condition on A (Gram-Schmidt variants would lose orthogonality).
    from weightinit import initializers as I

    rng = np.random.default_rng(0)
    a = rng.standard_normal((1200, 1100))
    a[:, 700] = a[:, 10] + 1e-13 * a[:, 700]  # nearly dependent on a column of an earlier panel
    q = I._haar_q(a)
    np.testing.assert_allclose(q.T @ q, np.eye(1100), atol=1e-12)
