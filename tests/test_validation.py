"""Table-driven input validation: every public function x every class of bad input.

Each case asserts the exception type and that the message names the offending argument (the
messages quote it in backticks, e.g. "`std` must be non-negative").
"""

import math
import re
import time
import tracemalloc

import numpy as np
import pytest

import weightinit as W
from weightinit import random as R


def _gen(method):
    def f(**kw):
        return getattr(W.Generator(0), method)(**kw)
    f.__name__ = f"Generator.{method}"
    return f


# name -> (callable taking keyword arguments, valid base arguments)
FUNCS = {
    "uniform": (R.uniform, dict(shape=(4, 5), seed=0)),
    "normal": (R.normal, dict(shape=(4, 5), seed=0)),
    "truncated_normal": (R.truncated_normal, dict(shape=(4, 5), seed=0)),
    "Generator.uniform": (_gen("uniform"), dict(shape=(4, 5))),
    "Generator.normal": (_gen("normal"), dict(shape=(4, 5))),
    "Generator.truncated_normal": (_gen("truncated_normal"), dict(shape=(4, 5))),
    "zeros": (W.zeros, dict(shape=(4, 5))),
    "ones": (W.ones, dict(shape=(4, 5))),
    "constant": (W.constant, dict(shape=(4, 5), value=0.5)),
    "variance_scaling": (W.variance_scaling, dict(shape=(4, 5), seed=0)),
    "lecun_normal": (W.lecun_normal, dict(shape=(4, 5), seed=0)),
    "lecun_uniform": (W.lecun_uniform, dict(shape=(4, 5), seed=0)),
    "glorot_normal": (W.glorot_normal, dict(shape=(4, 5), seed=0)),
    "glorot_uniform": (W.glorot_uniform, dict(shape=(4, 5), seed=0)),
    "he_normal": (W.he_normal, dict(shape=(4, 5), seed=0)),
    "he_uniform": (W.he_uniform, dict(shape=(4, 5), seed=0)),
    "orthogonal": (W.orthogonal, dict(shape=(4, 5), seed=0)),
    "identity": (W.identity, dict(shape=(4, 5))),
    "dirac": (W.dirac, dict(shape=(4, 2, 3))),
    "init": (W.init, dict(shape=(4, 5), scheme="he_normal", seed=0)),
    "describe": (W.describe, dict(shape=(4, 5), scheme="he_normal")),
    "bias": (W.bias, dict(shape=(5,))),
    "compute_fans": (W.compute_fans, dict(shape=(4, 5))),
}

GENERATORS = ["Generator.uniform", "Generator.normal", "Generator.truncated_normal"]
STATELESS = ["uniform", "normal", "truncated_normal"]
FAN_SCHEMES = ["variance_scaling", "lecun_normal", "lecun_uniform", "glorot_normal",
               "glorot_uniform", "he_normal", "he_uniform"]
ALLOCATING = [n for n in FUNCS if n not in ("describe", "compute_fans")]
WITH_DTYPE = ALLOCATING + ["describe"]
WITH_LAYOUT = (STATELESS + ["zeros", "ones", "constant"] + FAN_SCHEMES
               + ["orthogonal", "identity", "compute_fans", "init", "describe"])
WITH_SEED = STATELESS + FAN_SCHEMES + ["orthogonal", "init"]
WITH_OFFSET = STATELESS + FAN_SCHEMES + ["init"]


def named(arg):
    """Regex for a message that quotes the argument name."""
    return re.escape(f"`{arg}`")


CASES = []  # (id, function name, argument overrides, exception type, message regex)


def case(fname, label, overrides, exc, match, marks=()):
    CASES.append(pytest.param(fname, overrides, exc, match, id=f"{fname}-{label}", marks=marks))


# ----------------------------------------------------------------------------- shapes
for fname, (_, base) in FUNCS.items():
    rest = base["shape"][1:]
    for label, shape, exc, match in [
        ("neg-dim", (-1,) + rest, ValueError, r"`shape` must contain positive dimensions"),
        ("zero-dim", (0,) + rest, ValueError, r"`shape` must contain positive dimensions"),
        ("float-dim", (4.0,) + rest, TypeError, r"`shape` must contain integers only"),
        ("npfloat-dim", (np.float64(4),) + rest, TypeError, r"`shape` must contain integers"),
        ("bool-dim", (True,) + rest, TypeError, r"`shape` must contain integers only"),
        ("str-dim", ("4",) + rest, TypeError, r"`shape` must contain integers only"),
        ("none", None, TypeError, r"`shape` must be a tuple of positive integers"),
        ("float", 4.5, TypeError, r"`shape` must be a tuple of positive integers"),
        ("bool", True, TypeError, r"`shape` must be a tuple of positive integers"),
    ]:
        case(fname, label, dict(shape=shape), exc, match)

# ----------------------------------------------------------------------------- dtypes
for fname in WITH_DTYPE:
    for label, dtype in [("int32", np.int32), ("float16", np.float16), ("foo", "foo"),
                         ("complex", np.complex128), ("object", object), ("int", int),
                         ("float16-str", "float16"), ("int64-str", "i8")]:
        case(fname, f"dtype-{label}", dict(dtype=dtype), TypeError, named("dtype"),
             marks=())


# ----------------------------------------------------------------------------- out=
def _out_cases(shape):
    good = np.empty(shape, np.float32)
    wide = np.empty(shape[:-1] + (2 * shape[-1],), np.float32)
    readonly = np.empty(shape, np.float32)
    readonly.flags.writeable = False
    wrong_shape = np.empty(shape[::-1] if len(shape) > 1 and shape[0] != shape[-1] else shape + (1,),
                           np.float32)
    return [
        ("wrong-shape", dict(out=wrong_shape), ValueError, r"`out` has shape"),
        ("too-big", dict(out=np.empty((good.size + 1,), np.float32)), ValueError, r"`out` has shape"),
        ("wrong-dtype", dict(out=np.empty(shape, np.float64), dtype=np.float32), TypeError,
         r"`out` has dtype float64, expected float32"),
        ("non-contiguous", dict(out=wide[..., ::2]), ValueError, r"`out` must be C-contiguous"),
        ("fortran", dict(out=np.asfortranarray(np.empty(shape[::-1], np.float32).T))
         if len(shape) > 1 else dict(out=np.empty(shape, np.float32)[::-1]),
         ValueError, r"`out` must be C-contiguous"),
        ("read-only", dict(out=readonly), ValueError, r"`out` is read-only"),
        ("list", dict(out=[0.0] * good.size, dtype=np.float32), TypeError,
         r"`out` must be a numpy.ndarray"),
    ]


for fname in ALLOCATING:
    for label, overrides, exc, match in _out_cases(FUNCS[fname][1]["shape"]):
        case(fname, f"out-{label}", overrides, exc, match)

# ----------------------------------------------------------------------------- real parameters
NAN, INF = math.nan, math.inf
REALS = {
    # function: [(argument, bad value, exception, message)]
    "uniform": [("low", NAN, ValueError, "finite"), ("low", -INF, ValueError, "finite"),
                ("high", NAN, ValueError, "finite"), ("high", INF, ValueError, "finite"),
                ("low", "0", TypeError, "real number"), ("high", None, TypeError, "real number"),
                ("high", True, TypeError, "real number")],
    "normal": [("mean", NAN, ValueError, "finite"), ("mean", INF, ValueError, "finite"),
               ("std", NAN, ValueError, "finite"), ("std", INF, ValueError, "finite"),
               ("std", -1.0, ValueError, "non-negative"), ("std", -1e-300, ValueError, "non-negative"),
               ("std", "1", TypeError, "real number"), ("std", 1j, TypeError, "real number")],
    "truncated_normal": [("mean", NAN, ValueError, "finite"), ("std", NAN, ValueError, "finite"),
                         ("std", INF, ValueError, "finite"), ("std", -1.0, ValueError, "non-negative"),
                         ("std", 0.0, ValueError, "positive"), ("low", NAN, ValueError, "finite"),
                         ("high", NAN, ValueError, "finite"), ("low", "a", TypeError, "real number")],
    "constant": [("value", NAN, ValueError, "finite"), ("value", INF, ValueError, "finite"),
                 ("value", "1", TypeError, "real number")],
    "variance_scaling": [("scale", NAN, ValueError, "finite"), ("scale", INF, ValueError, "finite"),
                         ("scale", -1.0, ValueError, "positive"), ("scale", 0.0, ValueError, "positive"),
                         ("scale", False, TypeError, "real number")],
    "glorot_normal": [("gain", NAN, ValueError, "finite"), ("gain", INF, ValueError, "finite"),
                      ("gain", -1.0, ValueError, "positive"), ("gain", 0, ValueError, "positive")],
    "glorot_uniform": [("gain", NAN, ValueError, "finite"), ("gain", INF, ValueError, "finite"),
                       ("gain", -2.0, ValueError, "positive"), ("gain", 0.0, ValueError, "positive")],
    "he_normal": [("a", NAN, ValueError, "finite"), ("a", INF, ValueError, "finite"),
                  ("a", 0.1, ValueError, "only used with nonlinearity='leaky_relu'")],
    "he_uniform": [("a", NAN, ValueError, "finite"), ("a", "x", TypeError, "real number"),
                   ("a", 0.1, ValueError, "only used with nonlinearity='leaky_relu'")],
    "orthogonal": [("gain", NAN, ValueError, "finite"), ("gain", INF, ValueError, "finite"),
                   ("gain", -1.0, ValueError, "positive"), ("gain", 0.0, ValueError, "positive")],
    "identity": [("gain", NAN, ValueError, "finite"), ("gain", INF, ValueError, "finite")],
    "dirac": [("gain", NAN, ValueError, "finite"), ("gain", -INF, ValueError, "finite"),
              ("groups", 0, ValueError, "at least 1"), ("groups", 3, ValueError, "must divide"),
              ("groups", 1.5, TypeError, "integer"), ("groups", True, TypeError, "integer")],
    "bias": [("value", NAN, ValueError, "finite"), ("value", INF, ValueError, "finite"),
             ("value", "zero", ValueError, "Unknown")],
}
REALS["Generator.uniform"] = REALS["uniform"]
REALS["Generator.normal"] = REALS["normal"]
REALS["Generator.truncated_normal"] = REALS["truncated_normal"]
for fname, rows in REALS.items():
    for arg, value, exc, match in rows:
        case(fname, f"{arg}={value!r}", {arg: value}, exc, f"{named(arg)}.*{match}|{match}.*{named(arg)}")

# low >= high
for fname in ["uniform", "Generator.uniform"]:
    for low, high in [(1.0, 1.0), (2.0, 1.0), (0.0, -1e-300)]:
        case(fname, f"low={low}-high={high}", dict(low=low, high=high), ValueError,
             r"`low` must be less than `high`")
for fname in ["truncated_normal", "Generator.truncated_normal"]:
    for low, high in [(1.0, 1.0), (2.0, 1.0), (INF, INF), (-INF, -INF), (INF, -INF)]:
        case(fname, f"low={low}-high={high}", dict(low=low, high=high), ValueError,
             r"`low` must be less than `high`")
    # an interval with no usable mass
    case(fname, "far-interval", dict(low=20.0, high=21.0), ValueError, r"\[low, high\]")
    case(fname, "far-interval-low", dict(low=-21.0, high=-20.0), ValueError, r"\[low, high\]")

# ----------------------------------------------------------------------------- seeds and offsets
for fname in WITH_SEED:
    for label, seed, exc in [("neg", -1, ValueError), ("2**64", 2**64, ValueError),
                             ("float", 1.5, TypeError), ("bool", True, TypeError),
                             ("str", "1", TypeError), ("npfloat", np.float64(1), TypeError)]:
        case(fname, f"seed-{label}", dict(seed=seed), exc, named("seed"))
for fname in WITH_OFFSET:
    for label, offset, exc in [("neg", -1, ValueError), ("float", 1.0, TypeError),
                               ("bool", True, TypeError)]:
        case(fname, f"offset-{label}", dict(offset=offset), exc, named("offset"))

# ----------------------------------------------------------------------------- choices
for fname in WITH_LAYOUT:
    for layout in ["pytorch", "TORCH", "", None]:
        case(fname, f"layout-{layout!r}", dict(layout=layout), ValueError, r"Unknown `layout`")
for fname in ["variance_scaling", "he_normal", "he_uniform"]:
    for mode in ["fan_foo", "FAN_IN", "avg", None]:
        case(fname, f"mode-{mode!r}", dict(mode=mode), ValueError, r"Unknown `mode`")
for fname in ["variance_scaling", "lecun_normal", "glorot_normal", "he_normal"]:
    for dist in ["cauchy", "Normal", "truncated", None]:
        case(fname, f"distribution-{dist!r}", dict(distribution=dist), ValueError,
             r"Unknown `distribution`")
for fname in ["he_normal", "he_uniform"]:
    for nl in ["swishy", "ReLU", "prelu"]:
        case(fname, f"nonlinearity-{nl}", dict(nonlinearity=nl), ValueError,
             r"Unknown `nonlinearity`")
for fname in ["init", "describe"]:
    for scheme in ["he", "xavier", "Glorot_uniform", ""]:
        case(fname, f"scheme-{scheme!r}", dict(scheme=scheme), ValueError, r"Unknown `scheme`")

# ----------------------------------------------------------------------------- 1-D shapes
for fname in FAN_SCHEMES + ["init", "describe"]:
    for shape in [(5,), 5, ()]:
        case(fname, f"fans-{shape!r}", dict(shape=shape), ValueError, r"Fans are undefined.*shape")
for shape in [(5,), ()]:
    case("orthogonal", f"ndim-{shape!r}", dict(shape=shape), ValueError, r"shape=")
case("orthogonal", "batched-2d", dict(shape=(4, 5), batched=True), ValueError, r"batched=True")
for shape in [(5,), (2, 3, 4)]:
    case("identity", f"ndim-{shape!r}", dict(shape=shape), ValueError, r"2-D shape")
for shape in [(4,), (4, 2), (4, 2, 1, 1, 1, 1)]:
    case("dirac", f"ndim-{shape!r}", dict(shape=shape), ValueError, r"3-, 4- or 5-D shape")


@pytest.mark.parametrize("fname, overrides, exc, match", CASES)
def test_bad_input(fname, overrides, exc, match):
    fn, base = FUNCS[fname]
    with pytest.raises(exc, match=match):
        fn(**{**base, **overrides})


def test_case_table_covers_every_public_function():
    covered = {p.values[0] for p in CASES}
    assert covered == set(FUNCS)


# ----------------------------------------------------------------------------- other functions
@pytest.mark.parametrize("call, exc, match", [
    (lambda: W.get("foo"), ValueError, r"Unknown `scheme`"),
    (lambda: W.get(None), ValueError, r"Unknown `scheme`"),
    (lambda: W.get(3), ValueError, r"Unknown `scheme`"),
    (lambda: W.calculate_gain("swish"), ValueError, r"Unknown `nonlinearity`"),
    (lambda: W.calculate_gain("Tanh"), ValueError, r"Unknown `nonlinearity`"),
    (lambda: W.calculate_gain("leaky_relu", math.nan), ValueError, r"`param`"),
    (lambda: W.calculate_gain("leaky_relu", math.inf), ValueError, r"`param`"),
    (lambda: W.calculate_gain("leaky_relu", "0.1"), TypeError, r"`param`"),
    (lambda: W.calculate_gain("tanh", 1.0), ValueError, r"`param`"),
    (lambda: W.recommend("swishy"), ValueError, r"Unknown `activation`"),
    (lambda: W.recommend("ReLU"), ValueError, r"Unknown `activation`"),
    (lambda: W.recommend("leaky_relu", math.nan), ValueError, r"`param`"),
    (lambda: W.recommend("tanh", 0.1), ValueError, r"`param`"),
    (lambda: W.bias_value("relu", "automatic"), ValueError, r"Unknown `value`"),
    (lambda: W.bias_value("relu", math.nan), ValueError, r"`value`"),
    (lambda: W.bias_value("relu", None), TypeError, r"`value`"),
    (lambda: W.bias_value("nonsense", "auto"), ValueError, r"Unknown `activation`"),
    (lambda: W.bias((3,), "nonsense", value="auto"), ValueError, r"Unknown `activation`"),
    (lambda: W.Generator(-1), ValueError, r"`seed`"),
    (lambda: W.Generator(2**64), ValueError, r"`seed`"),
    (lambda: W.Generator(1.0), TypeError, r"`seed`"),
    (lambda: W.Generator(0).spawn(0), ValueError, r"`n`"),
    (lambda: W.Generator(0).spawn(-2), ValueError, r"`n`"),
    (lambda: W.Generator(0).spawn(2.0), TypeError, r"`n`"),
])
def test_other_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_bias_rejects_unknown_activation_with_numeric_value():
    with pytest.raises(ValueError, match=r"`activation`"):
        W.bias((3,), "nonsense")


def test_recommend_bad_bias_names_bias():
    with pytest.raises(ValueError, match=r"`bias`"):
        W.recommend("relu", bias="automatic")


def test_out_of_unsupported_dtype_names_out():
    with pytest.raises(TypeError, match=r"`out`"):
        W.normal((3, 4), seed=0, out=np.empty((3, 4), np.int32))


@pytest.mark.parametrize("params, exc, match", [
    (dict(shape=(5,)), ValueError, r"shape"),
    (dict(shape=(4, 5), batched=True), ValueError, r"batched"),
    (dict(shape=(4, 5), dtype=np.int32), TypeError, r"`dtype`"),
])
def test_describe_orthogonal_validates_like_orthogonal(params, exc, match):
    params = dict(params)
    shape = params.pop("shape")
    with pytest.raises(exc):
        W.orthogonal(shape, **params)  # the scheme itself rejects it ...
    with pytest.raises(exc, match=match):
        W.describe(shape, "orthogonal", **params)  # ... so describing it must too


@pytest.mark.parametrize("dtype, low, high", [
    (np.float32, -3e38, 3e38),  # high - low overflows float32
    (np.float32, 0.0, 1e39),  # high itself overflows float32
    (np.float64, -1e308, 1e308),
])
def test_uniform_overflowing_range_is_a_clean_value_error(dtype, low, high):
    with pytest.raises(ValueError, match=r"`high"):
        R.uniform(3, low, high, seed=0, dtype=dtype)


@pytest.mark.parametrize("params", [dict(mean=0.0, std=1e39), dict(mean=1e39, std=1.0)])
def test_normal_parameters_must_fit_the_dtype(params):
    with pytest.raises(ValueError, match=r"`(mean|std)`"):
        R.normal(4, seed=0, dtype=np.float32, **params)


# ----------------------------------------------------------------------------- memory
HUGE = (2**40, 2**10)  # 2**50 elements: 4 PiB in float32


@pytest.mark.parametrize("fname", ALLOCATING)
def test_huge_shape_raises_before_allocating(fname):
    fn, base = FUNCS[fname]
    shape = {"dirac": (2**40, 2**10, 1), "bias": (2**50,)}.get(fname, HUGE)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(W.InsufficientMemoryError, match=r"shape.*GiB") as info:
            fn(**{**base, "shape": shape})
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, MemoryError)
    assert elapsed < 2.0
    assert peak < 16 * 2**20  # nothing of the requested size was allocated


def test_huge_float64_needs_twice_the_memory():
    with pytest.raises(W.InsufficientMemoryError, match=r"float64"):
        R.normal(HUGE, seed=0, dtype=np.float64)


def test_huge_shape_with_out_is_checked_against_out_not_memory():
    # with out= nothing is allocated: a too-small out is a shape error, not a memory error
    with pytest.raises(ValueError, match=r"`out` has shape") as info:
        R.normal(HUGE, seed=0, out=np.empty(3, np.float32))
    assert not isinstance(info.value, W.InsufficientMemoryError)
