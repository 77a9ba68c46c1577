"""Property-based tests (hypothesis) over every scheme, shape, dtype, mode, distribution and layout.

For random shapes of 1 to 5 small dimensions and random valid parameters, every scheme in
``weightinit.schemes()`` must: return the shape and dtype asked for, finite values, the same bits
for the same seed, the same bits through ``out=`` (with the dtype taken from ``out``), values
within the distribution's bounds, and a ``describe()`` whose fans and variance agree with the
published formulas evaluated here from the shape (fans computed independently of
``compute_fans``). For ``weightinit.random`` the chunking contract holds at any offset:
``f((k,), offset=j) == f((n,), offset=i)[j - i : j - i + k]``.

Hypothesis runs derandomized with no example database, so every run tries the same examples.
"""

import math

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import weightinit as W  # noqa: E402
from weightinit import random as R  # noqa: E402

# On a failure hypothesis's pytest plugin imports libcst to write a patch; a dependency of it
# warns on import, which this project's filterwarnings=error would turn into an INTERNALERROR
# that hides the failing example.
pytestmark = pytest.mark.filterwarnings(
    "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")

SETTINGS = settings(max_examples=50, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

DTYPES = (np.float32, np.float64)
LAYOUTS = ("torch", "keras", "jax")
MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
DISTRIBUTIONS = ("truncated_normal", "normal", "untruncated_normal", "uniform")
#: torch.nn.init.calculate_gain, written out from its documentation.
GAINS = {"linear": 1.0, "identity": 1.0, "conv1d": 1.0, "conv2d": 1.0, "conv3d": 1.0,
         "conv_transpose1d": 1.0, "conv_transpose2d": 1.0, "conv_transpose3d": 1.0,
         "sigmoid": 1.0, "tanh": 5.0 / 3.0, "relu": math.sqrt(2.0), "selu": 0.75}
#: Standard deviation of N(0, 1) truncated to [-2, 2] (Keras/JAX constant).
TRUNC_STD = 0.87962566103423978

seeds = st.integers(0, 2**64 - 1)
dtypes = st.sampled_from(DTYPES)
small_floats = st.floats(0.05, 20.0, allow_nan=False, allow_infinity=False)
FAN_SCHEMES = ("variance_scaling", "lecun_normal", "lecun_uniform", "glorot_normal",
               "glorot_uniform", "he_normal", "he_uniform")


def _shape(draw, low, high):
    ndim = draw(st.integers(low, high))
    return tuple(draw(st.lists(st.integers(1, 6), min_size=ndim, max_size=ndim)))


@st.composite
def scheme_calls(draw):
    """(scheme name, shape, keyword parameters) for any scheme with valid random parameters."""
    name = draw(st.sampled_from(W.schemes()))
    kw = {"dtype": draw(dtypes)}
    if name != "dirac":
        kw["layout"] = draw(st.sampled_from(LAYOUTS))
    if name in ("zeros", "ones", "constant", "normal", "uniform", "truncated_normal"):
        shape = _shape(draw, 1, 5)
    elif name == "identity":
        shape = _shape(draw, 2, 2)
    elif name == "dirac":
        shape = _shape(draw, 3, 5)
    elif name == "delta_orthogonal":  # a kernel with in <= out
        s = list(_shape(draw, 3, 5))
        i, o = (1, 0) if kw.get("layout", "torch") == "torch" else (-2, -1)
        s[i], s[o] = sorted((s[i], s[o]))
        shape = tuple(s)
    else:
        shape = _shape(draw, 2, 5)
    if name not in ("zeros", "ones", "constant", "identity", "dirac"):
        kw["seed"] = draw(seeds)
    if name == "constant":
        kw["value"] = draw(st.floats(-1e6, 1e6, allow_nan=False))
    elif name == "normal":
        kw.update(mean=draw(st.floats(-10, 10)), std=draw(st.floats(0.0, 10.0)))
    elif name == "uniform":
        low = draw(st.floats(-10, 10))
        kw.update(low=low, high=low + draw(st.floats(1e-3, 20.0)))
    elif name == "truncated_normal":
        mean, std = draw(st.floats(-3, 3)), draw(st.floats(0.1, 3.0))
        alpha = draw(st.one_of(st.just(-math.inf), st.floats(-5.0, 4.0)))
        if math.isinf(alpha):
            beta = draw(st.floats(-3.0, 5.0))
        else:
            beta = draw(st.one_of(st.just(math.inf), st.floats(alpha + 0.05, alpha + 6.0)))
        kw.update(mean=mean, std=std, low=mean + alpha * std, high=mean + beta * std)
    elif name == "variance_scaling":
        kw.update(scale=draw(small_floats), mode=draw(st.sampled_from(MODES)),
                  distribution=draw(st.sampled_from(DISTRIBUTIONS)))
    elif name == "lecun_normal":
        kw["distribution"] = draw(st.sampled_from(DISTRIBUTIONS))
    elif name in ("glorot_normal", "glorot_uniform"):
        kw["gain"] = draw(small_floats)
        if name == "glorot_normal":
            kw["distribution"] = draw(st.sampled_from(DISTRIBUTIONS))
    elif name in ("he_normal", "he_uniform"):
        kw["mode"] = draw(st.sampled_from(MODES))
        kw["nonlinearity"] = draw(st.sampled_from(sorted(GAINS) + ["leaky_relu"]))
        if kw["nonlinearity"] == "leaky_relu":
            kw["a"] = draw(st.floats(0.0, 5.0))
        if name == "he_normal":
            kw["distribution"] = draw(st.sampled_from(DISTRIBUTIONS))
    elif name == "delta_orthogonal":
        kw["gain"] = draw(small_floats)
    elif name == "orthogonal":
        kw["gain"] = draw(small_floats)
        if len(shape) >= 3:
            kw["batched"] = draw(st.booleans())
    elif name == "identity":
        kw["gain"] = draw(st.floats(-5, 5))
    elif name == "dirac":
        divisors = [g for g in range(1, shape[0] + 1) if shape[0] % g == 0]
        kw.update(groups=draw(st.sampled_from(divisors)), gain=draw(st.floats(-5, 5)))
    return name, shape, kw


def fans(shape, layout):
    """Fan-in and fan-out written out from the PyTorch / Keras conventions."""
    if layout == "torch":  # (out, in, *kernel)
        receptive = math.prod(shape[2:])
        return shape[1] * receptive, shape[0] * receptive
    receptive = math.prod(shape[:-2])  # (*kernel, in, out)
    return shape[-2] * receptive, shape[-1] * receptive


def fan(mode, fan_in, fan_out):
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
            "fan_geo_avg": math.sqrt(fan_in * fan_out)}[mode]


def expected_variance(name, shape, kw):
    """Var(W) from the published formulas, for the fan-based schemes."""
    fi, fo = fans(shape, kw.get("layout", "torch"))
    if name == "variance_scaling":
        return kw["scale"] / fan(kw["mode"], fi, fo)
    if name in ("lecun_normal", "lecun_uniform"):
        return 1.0 / fi
    if name in ("glorot_normal", "glorot_uniform"):
        return 2.0 * kw["gain"] ** 2 / (fi + fo)
    nl = kw["nonlinearity"]
    g2 = 2.0 / (1.0 + kw["a"] ** 2) if nl == "leaky_relu" else GAINS[nl] ** 2
    return g2 / fan(kw["mode"], fi, fo)


def distribution_of(name, kw):
    if name in ("lecun_uniform", "glorot_uniform", "he_uniform"):
        return "uniform"
    if name == "variance_scaling":
        return kw["distribution"]
    return kw.get("distribution", "normal")


@SETTINGS
@given(scheme_calls())
def test_every_scheme_shape_dtype_finite_deterministic_and_out(call):
    name, shape, kw = call
    fn = W.get(name)
    a = fn(shape, **kw)
    dtype = np.dtype(kw["dtype"])
    assert a.shape == shape and a.dtype == dtype
    assert a.flags.c_contiguous
    assert np.all(np.isfinite(a))
    b = fn(shape, **kw)
    assert a.tobytes() == b.tobytes()  # same seed, same bits
    assert W.init(shape, name, **kw).tobytes() == a.tobytes()
    out = np.full(shape, np.nan, dtype)
    kw_out = {k: v for k, v in kw.items() if k != "dtype"}  # dtype from out
    res = fn(shape, **kw_out, out=out)
    assert res is out
    assert out.tobytes() == a.tobytes()


@SETTINGS
@given(scheme_calls())
def test_describe_agrees_with_the_formulas_and_the_values(call):
    name, shape, kw = call
    params = {k: v for k, v in kw.items() if k not in ("seed", "dtype")}
    info = W.describe(shape, name, **params)
    layout = kw.get("layout", "torch")
    if len(shape) >= 2:
        assert (info["fan_in"], info["fan_out"]) == fans(shape, layout)
        assert (info["fan_in"], info["fan_out"]) == W.compute_fans(shape, layout)
    else:
        assert "fan_in" not in info
    a = W.get(name)(shape, **kw).astype(np.float64)
    tol = 8 * np.finfo(kw["dtype"]).eps  # values are rounded to the dtype
    assert np.all(np.abs(a) <= info["bound"] * (1 + tol) + 1e-300)
    if name in FAN_SCHEMES:
        var = expected_variance(name, shape, kw)
        assert info["variance"] == pytest.approx(var, rel=1e-9)
        dist = distribution_of(name, kw)
        if dist == "uniform":  # U(-a, a), a = sqrt(3 Var)
            assert info["bound"] == pytest.approx(math.sqrt(3 * var), rel=1e-12)
        elif dist == "truncated_normal":  # N(0, s^2) cut at +-2s, s = sqrt(Var) / 0.8796...
            assert info["bound"] == pytest.approx(2 * math.sqrt(var) / TRUNC_STD, rel=1e-12)
        else:
            assert info["bound"] == math.inf
    elif name == "delta_orthogonal":  # gain * orthonormal in columns: sum of squares g^2 in
        n_in = shape[1] if layout == "torch" else shape[-2]
        var = kw["gain"] ** 2 * n_in / math.prod(shape)
        assert info["variance"] == pytest.approx(var, rel=1e-12)
        assert np.mean(a * a) == pytest.approx(var, rel=1e-4 if kw["dtype"] == np.float32
                                               else 1e-10)
    elif name in ("zeros", "ones", "constant"):
        value = {"zeros": 0.0, "ones": 1.0}.get(name, kw.get("value"))
        assert info["variance"] == 0.0 and info["mean"] == value
        np.testing.assert_array_equal(a, np.float64(np.dtype(kw["dtype"]).type(value)))


@SETTINGS
@given(kind=st.sampled_from(["uniform", "normal", "truncated_normal", "truncated_tail"]),
       dtype=dtypes, seed=seeds, start=st.integers(0, 2**64 - 4096),
       skip=st.integers(0, 40), k=st.integers(1, 40))
def test_offset_chunks_are_slices_of_one_sequence(kind, dtype, seed, start, skip, k):
    # elements start+skip .. start+skip+k-1, drawn on their own and as part of a longer draw
    fn, params = {"uniform": (R.uniform, (-1.0, 3.0)), "normal": (R.normal, (0.5, 2.0)),
                  "truncated_normal": (R.truncated_normal, (0.0, 1.0, -2.0, 2.0)),
                  "truncated_tail": (R.truncated_normal, (0.0, 1.0, 1.0, math.inf))}[kind]
    whole = fn((skip + k + 7,), *params, seed=seed, dtype=dtype, offset=start)
    part = fn((k,), *params, seed=seed, dtype=dtype, offset=start + skip)
    assert part.tobytes() == whole[skip:skip + k].tobytes()
    if start == 0:  # and the offset-free call is the sequence's beginning
        assert fn((skip + k,), *params, seed=seed, dtype=dtype).tobytes() == \
            whole[:skip + k].tobytes()


@SETTINGS
@given(dtype=dtypes, seed=seeds, low=st.floats(-1e6, 1e6), width=st.floats(1e-6, 1e6),
       n=st.integers(1, 3000))
def test_uniform_stays_in_low_high(dtype, seed, low, width, n):
    high = low + width
    if not low < high:  # width below the spacing of floats at low
        return
    t = np.dtype(dtype).type
    if not t(low) < t(high):  # too narrow for the dtype: a clean error, never a value >= high
        with pytest.raises(ValueError, match="`low` and `high` round to the same"):
            R.uniform(n, low, high, seed=seed, dtype=dtype)
        return
    a = R.uniform(n, low, high, seed=seed, dtype=dtype).astype(np.float64)
    # low is rounded to the dtype first; high is never reached, even where the dtype rounds
    # high itself upwards
    assert a.min() >= float(t(low))
    assert a.max() < high


@SETTINGS
@given(dtype=dtypes, seed=seeds, mean=st.floats(-5, 5), std=st.floats(0.01, 5),
       alpha=st.floats(-6, 3), width=st.floats(0.01, 8), n=st.integers(1, 2000))
def test_truncated_normal_stays_in_low_high(dtype, seed, mean, std, alpha, width, n):
    low, high = mean + alpha * std, mean + (alpha + width) * std
    t = np.dtype(dtype).type
    a = R.truncated_normal(n, mean, std, low, high, seed=seed, dtype=dtype).astype(np.float64)
    assert np.all(np.isfinite(a))
    assert a.min() >= float(t(low)) and a.max() <= float(t(high))


@SETTINGS
@given(kind=st.sampled_from(["uniform", "normal", "truncated_normal"]), dtype=dtypes, seed=seeds,
       shape=st.lists(st.integers(1, 7), min_size=1, max_size=4).map(tuple),
       calls=st.integers(1, 4))
def test_generator_draw_d_is_the_counter_with_draw_d(kind, dtype, seed, shape, calls):
    # A Generator's first draw is the stateless function; later ones differ from it and from
    # each other, and a fresh Generator with the same seed repeats them all.
    g1, g2 = W.Generator(seed), W.Generator(seed)
    xs = [getattr(g1, kind)(shape, dtype=dtype) for _ in range(calls)]
    ys = [getattr(g2, kind)(shape, dtype=dtype) for _ in range(calls)]
    assert [x.tobytes() for x in xs] == [y.tobytes() for y in ys]
    assert xs[0].tobytes() == getattr(R, kind)(shape, seed=seed, dtype=dtype).tobytes()
    assert g1.draws == calls
