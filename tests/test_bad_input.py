"""One table: every public function against every class of bad input that applies to it.

Each row is (callable, positional args, keyword args, exception type, text the message must
contain), the text being the offending argument's name as the message quotes it (in backticks
for the library's own checks, in quotes for Python's "unexpected keyword argument"). The classes
of bad input: dimensions that are negative, zero, non-integer or huge (beyond memory); NaN,
infinite or negative scales; ``low >= high``; unknown names (schemes, activations, modes,
keyword arguments); unsupported dtypes; unusable ``out=`` arrays; 1-D shapes for fan-based
schemes.

``tests/test_validation.py`` holds the dense matrix for the 23 array-producing functions (every
shape, dtype, ``out=``, seed, offset, layout and parameter class for each of them); this table
covers every other public function in full and adds, for the array-producing ones, the classes
that matrix does not have (10**13-element shapes, unknown keyword arguments, aliases).
``test_every_public_function_is_in_the_table`` keeps the table complete as the API grows.
"""

import inspect
import io
import math
import os
import shutil
import time
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

import weightinit as W
from weightinit import _validate as V
from weightinit import cli
from weightinit import random as R
from weightinit import theory as T

NAN, INF = math.nan, math.inf
HUGE = 10**13  # elements: 37 TiB of float32, more than any machine running these tests has


def gen(method):
    """A Generator method as a plain function (a fresh Generator per call)."""
    def call(*args, **kwargs):
        return getattr(W.Generator(0), method)(*args, **kwargs)
    call.__qualname__ = f"Generator.{method}"
    return call


def sim_theory(scheme):
    def call():
        return W.simulate(2, 8, samples=4, scheme=scheme).theory()
    call.__qualname__ = "SimulationResult.theory"
    return call


def _readonly(shape, dtype):
    a = np.zeros(shape, dtype)
    a.flags.writeable = False
    return a


SIM = dict(samples=4)  # simulate(2, 8, **SIM, ...) is a valid call
ROWS = []  # (callable, args, kwargs, exception, text)


def rows(fn, *entries):
    for args, kwargs, exc, text in entries:
        ROWS.append((fn, args, kwargs, exc, text))


# ----------------------------------------------------------------------------- sizes beyond memory
# (each also appears in test_huge_request_fails_fast_without_allocating)
HUGE_ROWS = [
    (R.uniform, ((HUGE,),), dict(seed=0)),
    (R.normal, ((HUGE // 10, 10),), dict(seed=0)),
    (R.truncated_normal, ((10, HUGE // 10),), dict(seed=0)),
    (gen("uniform"), ((HUGE,),), {}),
    (gen("normal"), ((HUGE,),), dict(dtype=np.float64)),
    (gen("truncated_normal"), ((HUGE,),), {}),
    (W.zeros, ((HUGE,),), {}),
    (W.ones, ((HUGE // 10, 10),), {}),
    (W.constant, ((HUGE,), 0.5), {}),
    (W.variance_scaling, ((HUGE // 10, 10),), dict(seed=0)),
    (W.lecun_normal, ((HUGE // 10, 10),), dict(seed=0)),
    (W.lecun_uniform, ((HUGE // 10, 10),), dict(seed=0)),
    (W.glorot_normal, ((HUGE // 10, 10),), dict(seed=0)),
    (W.xavier_normal, ((HUGE // 10, 10),), dict(seed=0)),
    (W.glorot_uniform, ((10, HUGE // 10),), dict(seed=0)),
    (W.xavier_uniform, ((10, HUGE // 10),), dict(seed=0)),
    (W.he_normal, ((HUGE // 100, 10, 10),), dict(seed=0)),
    (W.kaiming_normal, ((HUGE // 100, 10, 10),), dict(seed=0)),
    (W.he_uniform, ((HUGE // 10, 10),), dict(seed=0)),
    (W.kaiming_uniform, ((HUGE // 10, 10),), dict(seed=0)),
    (W.orthogonal, ((10**7, 10**6),), dict(seed=0)),
    (W.orthogonal, ((10**3, 10**5, 10**5),), dict(seed=0, batched=True)),
    (W.identity, ((10**7, 10**6),), {}),
    (W.dirac, ((10**5, 10**5, 10**3),), {}),
    (W.init, ((HUGE // 10, 10), "he_normal"), dict(seed=0)),
    (W.bias, ((HUGE,),), {}),
    (R.words, (HUGE,), dict(seed=0)),
    (W.simulate, (2, 8), dict(samples=HUGE)),
    (W.simulate, (2, 10**7), dict(samples=8)),
]
for fn, args, kwargs in HUGE_ROWS:
    rows(fn, (args, kwargs, W.InsufficientMemoryError, "GiB"))

# ----------------------------------------------------------------------------- schemes and random.*
# Only what tests/test_validation.py does not have: unknown keyword arguments, and one row of
# each shape class for the aliases (the same functions as glorot_* and he_*).
for fn in (R.uniform, R.normal, R.truncated_normal, W.zeros, W.ones, W.constant,
           W.variance_scaling, W.lecun_normal, W.lecun_uniform, W.glorot_normal,
           W.glorot_uniform, W.he_normal, W.he_uniform, W.orthogonal, W.identity):
    rows(fn, (((4, 5),), dict(seed=0, foo=1), TypeError, "'foo'"))
rows(W.dirac, (((4, 2, 3),), dict(foo=1), TypeError, "'foo'"))
rows(W.delta_orthogonal,
     (((4, 2, 3),), dict(seed=0, foo=1), TypeError, "'foo'"),
     (((4, 5),), dict(seed=0), ValueError, "3-, 4- or 5-D"),
     (((2, 4, 3),), dict(seed=0), ValueError, "in_channels <= out_channels"),
     (((3, 4, 2),), dict(seed=0, layout="keras"), ValueError, "in_channels <= out_channels"),
     (((4, 2, 3),), dict(gain=NAN), ValueError, "`gain`"),
     (((4, 2, 3),), dict(layout="tf"), ValueError, "`layout`"),
     (((10**5, 10**5, 10**3),), dict(seed=0), W.InsufficientMemoryError, "GiB"))
rows(W.zero_init,
     (((4, 2),), dict(foo=1), TypeError, "'foo'"),
     (((4,),), {}, ValueError, "2-D weight or a 3-5-D"),
     (((4, 2),), dict(layout="keras"), ValueError, "`layout`"),
     (((10**6, 10**6),), {}, W.InsufficientMemoryError, "GiB"))
# region=: outside the shape, negative sizes, steps, integers, malformed (every function with it)
BAD_REGIONS = [
    ((slice(0, 5), slice(0, 6)), ValueError, "`region`"),  # stop beyond the axis
    ((slice(-2, None),), ValueError, "negative indices"),
    ((slice(3, 1),), ValueError, "`region`"),  # start > stop
    ((slice(0, 4, 2),), ValueError, "step 1"),
    ((slice(0, 2.5),), TypeError, "`region`"),
    ((slice(None),) * 3, ValueError, "3 slices"),
    ((1, slice(None)), TypeError, "`region`"),  # an int would drop the axis
    (((0, 0), (5, 5)), ValueError, "outside shape"),
    (((1, 1), (-1, 2)), ValueError, "non-negative"),
    (((0,), (1,)), ValueError, "one entry per axis"),
    (((0, 0.5), (1, 1)), TypeError, "integers"),
    ("rows", TypeError, "`region`"),
]
for fn in (R.uniform, R.normal, R.truncated_normal, W.zeros, W.ones, W.constant,
           W.variance_scaling, W.lecun_normal, W.lecun_uniform, W.glorot_normal,
           W.glorot_uniform, W.he_normal, W.he_uniform, W.orthogonal, W.identity, W.bias,
           gen("uniform"), gen("normal"), gen("truncated_normal")):
    for region, exc, text in BAD_REGIONS:
        rows(fn, (((4, 5),), dict(region=region), exc, text))
for region, exc, text in BAD_REGIONS[:5]:
    rows(W.dirac, (((4, 2, 3),), dict(region=region), exc, text))
    rows(W.init, (((4, 5), "he_normal"), dict(region=region), exc, text))
rows(W.normal, (((4, 5),), dict(region=(slice(0, 2),), out=np.zeros((4, 5), np.float32)),
                ValueError, "`out`"))

for fn in (gen("uniform"), gen("normal"), gen("truncated_normal")):
    rows(fn, (((4, 5),), dict(seed=0), TypeError, "'seed'"))  # a Generator has its seed
for fn in (W.xavier_normal, W.xavier_uniform, W.kaiming_normal, W.kaiming_uniform):
    rows(fn,
         (((-4, 5),), dict(seed=0), ValueError, "`shape`"),
         (((0, 5),), dict(seed=0), ValueError, "`shape`"),
         (((4.0, 5),), dict(seed=0), TypeError, "`shape`"),
         (((5,),), dict(seed=0), ValueError, "shape (5,)"),  # fans need two dimensions
         (((4, 5),), dict(seed=0, dtype=np.int32), TypeError, "`dtype`"),
         (((4, 5),), dict(seed=0, out=np.zeros((5, 4), np.float32)), ValueError, "`out`"),
         (((4, 5),), dict(seed=0, out=_readonly((4, 5), np.float32)), ValueError, "`out`"),
         (((4, 5),), dict(seed=0, layout="tf"), ValueError, "`layout`"),
         (((4, 5),), dict(seed=-1), ValueError, "`seed`"))
rows(W.xavier_normal, (((4, 5),), dict(gain=NAN), ValueError, "`gain`"),
     (((4, 5),), dict(gain=-1.0), ValueError, "`gain`"))
rows(W.kaiming_normal, (((4, 5),), dict(mode="fan"), ValueError, "`mode`"),
     (((4, 5),), dict(nonlinearity="ReLU"), ValueError, "`nonlinearity`"),
     (((4, 5),), dict(nonlinearity="leaky_relu", a=INF), ValueError, "`a`"))

# ----------------------------------------------------------------------------- Generator
rows(W.Generator,
     ((-1,), {}, ValueError, "`seed`"), ((2**64,), {}, ValueError, "`seed`"),
     ((1.5,), {}, TypeError, "`seed`"), (("1",), {}, TypeError, "`seed`"),
     ((True,), {}, TypeError, "`seed`"), ((NAN,), {}, TypeError, "`seed`"))
rows(gen("spawn"),
     ((0,), {}, ValueError, "`n`"), ((-3,), {}, ValueError, "`n`"),
     ((2.0,), {}, TypeError, "`n`"), ((True,), {}, TypeError, "`n`"),
     ((None,), {}, TypeError, "`n`"), ((2**30,), {}, ValueError, "`n`"))  # > 2**30 - 1 streams
rows(R.philox4x32,
     (([1, 2, 3], [0, 0]), {}, ValueError, "`counter`"),
     ((np.zeros(4), [0, 0]), {}, ValueError, "`counter`"),
     (([-1, 0, 0, 0], [0, 0]), {}, ValueError, "`counter`"),
     (([2**32, 0, 0, 0], [0, 0]), {}, ValueError, "`counter`"),
     (([2**70, 0, 0, 0], [0, 0]), {}, ValueError, "`counter`"),
     (([0, 0, 0, 0], [0, 0, 0]), {}, ValueError, "`key`"),
     (([0, 0, 0, 0], [0.5, 0]), {}, ValueError, "`key`"),
     ((np.zeros((2, 4), np.uint32), np.zeros((3, 2), np.uint32)), {}, ValueError, "`counter`"))
rows(R.words,
     ((-1,), dict(seed=0), ValueError, "`count`"), ((1.5,), dict(seed=0), TypeError, "`count`"),
     ((4,), dict(seed=-1), ValueError, "`seed`"), ((4,), dict(seed=2**64), ValueError, "`seed`"),
     ((4,), dict(seed=0, offset=-1), ValueError, "`offset`"),
     ((4,), dict(seed=0, offset=2**66 - 1), ValueError, "`offset`"),
     ((4,), dict(seed=0, kind="cauchy"), ValueError, "`kind`"),
     ((4,), dict(seed=0, stream=2**30), ValueError, "`stream`"),
     ((4,), dict(seed=0, stream=-1), ValueError, "`stream`"),
     ((4,), dict(seed=0, draw=2**32), ValueError, "`draw`"),
     ((4,), dict(seed=0, draw=0.5), TypeError, "`draw`"),
     ((4,), dict(seed=0, out=np.zeros(4, np.float32)), TypeError, "`out`"),
     ((4,), dict(seed=0, out=np.zeros(5, np.uint32)), ValueError, "`out`"),
     ((4,), dict(seed=0, out=np.zeros(8, np.uint32)[::2]), ValueError, "`out`"),
     ((4,), dict(seed=0, out=_readonly(4, np.uint32)), ValueError, "`out`"))

# ----------------------------------------------------------------------------- names and helpers
rows(W.get, (("he",), {}, ValueError, "`scheme`"), ((None,), {}, ValueError, "`scheme`"),
     ((3,), {}, ValueError, "`scheme`"), (("He_Normal",), {}, ValueError, "`scheme`"))
rows(W.init, (((4, 5), "he"), {}, ValueError, "`scheme`"),
     (((4, 5), "he_normal"), dict(seed=0, foo=1), TypeError, "'foo'"),
     (((4, 5), "zeros"), dict(scale=2.0), TypeError, "'scale'"))
rows(W.describe, (((4, 5), "nope"), {}, ValueError, "`scheme`"),
     (((4, 5), "he_normal"), dict(foo=1), TypeError, "'foo'"),
     (((4, 5), "he_normal"), dict(mode="fan"), ValueError, "`mode`"),
     (((4, 5), "glorot_uniform"), dict(gain=NAN), ValueError, "`gain`"),
     (((4, 5), "normal"), dict(std=-1.0), ValueError, "`std`"),
     (((4, 5), "uniform"), dict(low=1.0, high=1.0), ValueError, "`low`"),
     (((3, 4, 5), "identity"), {}, ValueError, "shape=(3, 4, 5)"),
     (((3, 4, 5), "dirac"), dict(gain=INF), ValueError, "`gain`"),
     (((5,), "glorot_normal"), {}, ValueError, "shape (5,)"),
     (((4, 5), "he_normal"), dict(layout="tf"), ValueError, "`layout`"))
rows(W.compute_fans,
     (((5,),), {}, ValueError, "shape (5,)"), (((4, 0),), {}, ValueError, "`shape`"),
     (((4, 5),), dict(layout="tf"), ValueError, "`layout`"),
     (((4, 5),), dict(in_axis=2), ValueError, "`in_axis`"),
     (((4, 5),), dict(out_axis=-3), ValueError, "`out_axis`"),
     (((4, 5),), dict(in_axis=1.0), TypeError, "`in_axis`"),
     (((4, 5, 6),), dict(batch_axis=1.5), TypeError, "`batch_axis`"),
     (((4, 5, 6),), dict(batch_axis=None), TypeError, "`batch_axis`"),
     (((4, 5, 6),), dict(batch_axis="0"), TypeError, "`batch_axis`"),
     (((4, 5, 6),), dict(batch_axis=3), ValueError, "`batch_axis`"),
     (((4, 5, 6),), dict(batch_axis=0, in_axis=0), ValueError, "`batch_axis`"))
rows(W.bias, ((5, "swishy"), {}, ValueError, "`activation`"),
     ((5,), dict(value=NAN), ValueError, "`value`"), ((5,), dict(value="x"), ValueError, "`value`"),
     ((5,), dict(dtype=np.int8), TypeError, "`dtype`"),
     ((5,), dict(out=np.zeros(4, np.float32)), ValueError, "`out`"))
rows(W.bias_value, (("swishy",), {}, ValueError, "`activation`"),
     (("relu", "automatic"), {}, ValueError, "`value`"), (("relu", NAN), {}, ValueError, "`value`"),
     (("relu", -INF), {}, ValueError, "`value`"), (("relu", None), {}, TypeError, "`value`"))
rows(W.calculate_gain, (("swish",), {}, ValueError, "`nonlinearity`"),
     ((None,), {}, ValueError, "`nonlinearity`"),
     (("leaky_relu", NAN), {}, ValueError, "`param`"),
     (("leaky_relu", INF), {}, ValueError, "`param`"),
     (("leaky_relu", "0.1"), {}, TypeError, "`param`"), (("tanh", 0.1), {}, ValueError, "`param`"))
rows(W.recommend, (("swishy",), {}, ValueError, "`activation`"),
     ((None,), {}, ValueError, "`activation`"),
     (("prelu", NAN), {}, ValueError, "`param`"), (("prelu", "x"), {}, TypeError, "`param`"),
     (("tanh", 0.1), {}, ValueError, "`param`"),
     (("relu",), dict(bias=NAN), ValueError, "`bias`"),
     (("relu",), dict(bias="x"), ValueError, "`bias`"))

# ----------------------------------------------------------------------------- simulate
rows(W.simulate,
     ((0, 8), SIM, ValueError, "`depth`"), ((2.0, 8), SIM, TypeError, "`depth`"),
     ((None, 8), SIM, TypeError, "`depth`"), ((2, -8), SIM, ValueError, "`width`"),
     ((2, 8.5), SIM, TypeError, "`width`"), ((2, 8), dict(samples=0), ValueError, "`samples`"),
     ((2, 8), dict(samples=4.0), TypeError, "`samples`"),
     ((), dict(SIM, widths=[]), ValueError, "`widths`"),
     ((), dict(SIM, widths=[8, 0]), ValueError, "`widths`"),
     ((), dict(SIM, widths=[8, 2.5]), TypeError, "`widths`"),
     ((), dict(SIM, widths=8), TypeError, "`widths`"),
     ((3,), dict(SIM, widths=[8, 8]), ValueError, "`depth`"),
     ((2.5,), dict(SIM, widths=[8, 8]), TypeError, "`depth`"),
     ((2, 8), dict(SIM, activation="swishy"), ValueError, "`activation`"),
     ((2, 8), dict(SIM, scheme="nope"), ValueError, "`scheme`"),
     ((2, 8), dict(SIM, scheme="he_normal", std=1.0), ValueError, "`scheme`"),
     ((2, 8), dict(SIM, scheme="he_normal", foo=1), TypeError, "'foo'"),
     ((2, 8), dict(SIM, scheme="he_normal", mode="fan"), ValueError, "`mode`"),
     ((2, 8), dict(SIM, scheme="dirac"), ValueError, "shape"),
     ((2, 8), dict(SIM, std=NAN), ValueError, "`std`"),
     ((2, 8), dict(SIM, std=INF), ValueError, "`std`"),
     ((2, 8), dict(SIM, std=-0.5), ValueError, "`std`"),
     ((2, 8), dict(SIM, bias=NAN), ValueError, "`bias`"),
     ((2, 8), dict(SIM, bias="sometimes"), ValueError, "`bias`"),
     ((2, 8), dict(SIM, bias_std=-1.0), ValueError, "`bias_std`"),
     ((2, 8), dict(SIM, bias_std=INF), ValueError, "`bias_std`"),
     ((2, 8), dict(SIM, seed=-1), ValueError, "`seed`"),
     ((2, 8), dict(SIM, seed=0.5), TypeError, "`seed`"),
     ((2, 8), dict(SIM, dtype=np.int32), TypeError, "`dtype`"),
     ((2, 8), dict(SIM, dtype="float16"), TypeError, "`dtype`"),
     ((2, 8), dict(SIM, bins=0), ValueError, "`bins`"),
     ((2, 8), dict(SIM, bins=2.5), TypeError, "`bins`"),
     ((2, 8), dict(SIM, slope=NAN), ValueError, "`slope`"),
     ((2, 8), dict(SIM, backward=True, checkpoint=0), ValueError, "`checkpoint`"),
     ((2, 8), dict(SIM, input_dim=0), ValueError, "`input_dim`"),
     ((2, 8), dict(x=np.ones(8)), ValueError, "`x`"),
     ((2, 8), dict(x=np.ones((0, 8))), ValueError, "`x`"),
     ((2, 8), dict(x=np.full((3, 8), NAN)), ValueError, "`x`"),
     ((2, 8), dict(x=np.array([[INF] * 8])), ValueError, "`x`"),
     ((2, 8), dict(x=[["a"] * 8]), TypeError, "`x`"),
     ((2, 8), dict(x=np.array([[object()] * 8])), TypeError, "`x`"))
rows(sim_theory("zeros"), ((), {}, ValueError, "scheme 'zeros'"))
rows(sim_theory("constant"), ((), {}, ValueError, "scheme 'constant'"))

# ----------------------------------------------------------------------------- warmup
rows(W.warmup, ((["float16"],), {}, TypeError, "`dtypes`"),
     ((3,), {}, TypeError, "`dtypes`"),
     ((["float32"], ["swish"]), {}, ValueError, "`activations`"),
     (("float32", 0.5), {}, TypeError, "`activations`"))

# ----------------------------------------------------------------------------- lsuv
_W2 = [np.zeros((4, 3), np.float32), np.zeros((3, 2), np.float32)]
_X = np.random.default_rng(0).standard_normal((16, 4))
rows(W.lsuv, ((3, "tanh", _X), {}, TypeError, "`weights`"),
     (([], "tanh", _X), {}, ValueError, "`weights`"),
     (([_W2[0], np.zeros((4, 2))], "tanh", _X), {}, ValueError, "`weights[1]`"),
     ((_W2, "swishy", _X), {}, ValueError, "`activations`"),
     ((_W2, ["tanh"], _X), {}, ValueError, "`activations`"),
     ((_W2, "tanh", np.full((16, 4), NAN)), {}, ValueError, "`x`"),
     ((_W2, "tanh", _X[:1]), {}, ValueError, "`x`"),
     ((_W2, "tanh", _X[:, :3]), {}, ValueError, "`x`"),
     ((_W2, "tanh", _X), dict(tol=NAN), ValueError, "`tol`"),
     ((_W2, "tanh", _X), dict(tol=0.0), ValueError, "`tol`"),
     ((_W2, "tanh", _X), dict(max_iter=0), ValueError, "`max_iter`"),
     ((_W2, "tanh", _X), dict(seed=-1), ValueError, "`seed`"),
     ((_W2, "leaky_relu", _X), dict(slope=NAN), ValueError, "`slope`"),
     ((_W2, "tanh", _X), dict(biases=[None]), ValueError, "`biases`"),
     ((_W2, "tanh", _X), dict(biases=[np.zeros(2), None]), ValueError, "`biases[0]`"))

# ----------------------------------------------------------------------------- Jacobian spectra
rows(W.jacobian_spectrum,
     ((0, 8), {}, ValueError, "`depth`"), ((2, 8.5), {}, TypeError, "`width`"),
     ((2, 0), {}, ValueError, "`width`"), ((2, 8), dict(samples=0), ValueError, "`samples`"),
     ((2, 8), dict(activation="swishy"), ValueError, "`activation`"),
     ((2, 8), dict(architecture="resnet"), ValueError, "`architecture`"),
     ((2, 8), dict(method="lanczos"), ValueError, "`method`"),
     ((2, 8), dict(scheme="nope"), ValueError, "`scheme`"),
     ((2, 8), dict(scheme="he_normal", std=1.0), ValueError, "`scheme`"),
     ((2, 8), dict(scheme="zeros"), ValueError, "`scheme`"),
     ((2, 8), dict(std=NAN), ValueError, "`std`"), ((2, 8), dict(std=-1.0), ValueError, "`std`"),
     ((2, 8), dict(sigma_b=-0.1), ValueError, "`sigma_b`"),
     ((2, 8), dict(sigma_b=INF), ValueError, "`sigma_b`"),
     ((2, 8), dict(x=np.zeros((3, 5))), ValueError, "`x`"),
     ((2, 8), dict(x=np.full((3, 8), NAN)), ValueError, "`x`"),
     ((2, 8), dict(bins=0), ValueError, "`bins`"),
     ((2, 8), dict(method="randomised", probes=0), ValueError, "`probes`"),
     ((2, 8), dict(seed=-1), ValueError, "`seed`"),
     ((2, 10**6), {}, V.InsufficientMemoryError, "width"))
rows(T.jacobian_spectrum,
     ((0,), {}, ValueError, "`depth`"), ((2.5,), {}, TypeError, "`depth`"),
     ((2,), dict(activation="swishy"), ValueError, "`activation`"),
     ((2,), dict(weights="haar"), ValueError, "`weights`"),
     ((2,), dict(sigma_w=0.0), ValueError, "`sigma_w`"),
     ((2,), dict(sigma_w=NAN), ValueError, "`sigma_w`"),
     ((2,), dict(sigma_b=-1.0), ValueError, "`sigma_b`"),
     ((2,), dict(q=-1.0), ValueError, "`q`"),
     ((2,), dict(n_moments=1), ValueError, "`n_moments`"),
     ((2,), dict(activation="tanh", sigma_w=3.0, sigma_b=0.0, q=NAN), ValueError, "`q`"))

# ----------------------------------------------------------------------------- theory
for name in ("chi1", "depth_scales", "fixed_point"):
    fn = getattr(T, name)
    rows(fn, (("swishy", 1.0), {}, ValueError, "`activation`"),
         (("tanh", -1.0), {}, ValueError, "`sigma_w`"),
         (("tanh", NAN), {}, ValueError, "`sigma_w`"),
         (("tanh", INF), {}, ValueError, "`sigma_w`"), (("tanh", "1"), {}, TypeError, "`sigma_w`"),
         (("tanh", 1.0, -0.1), {}, ValueError, "`sigma_b`"),
         (("tanh", 1.0, NAN), {}, ValueError, "`sigma_b`"),
         (("leaky_relu", 1.0), dict(slope=NAN), ValueError, "`slope`"),
         (("leaky_relu", 1.0), dict(slope="x"), TypeError, "`slope`"))
rows(T.fixed_point, (("tanh", 1.0), dict(q0=0.0), ValueError, "`q0`"),
     (("tanh", 1.0), dict(q0=INF), ValueError, "`q0`"),
     (("tanh", 1.0), dict(tol=0.0), ValueError, "`tol`"),
     (("tanh", 1.0), dict(tol=NAN), ValueError, "`tol`"),
     (("tanh", 1.0), dict(max_iter=0), ValueError, "`max_iter`"),
     (("tanh", 1.0), dict(max_iter=1.5), TypeError, "`max_iter`"))
rows(T.critical_sigma_w, (("swishy",), {}, ValueError, "`activation`"),
     (("tanh", -1.0), {}, ValueError, "`sigma_b`"), (("tanh", INF), {}, ValueError, "`sigma_b`"),
     (("leaky_relu",), dict(slope=INF), ValueError, "`slope`"))
rows(T.q_map, ((1.0, "swishy", 1.0), {}, ValueError, "`activation`"),
     ((0.0, "tanh", 1.0), {}, ValueError, "`q`"), ((-1.0, "tanh", 1.0), {}, ValueError, "`q`"),
     ((NAN, "tanh", 1.0), {}, ValueError, "`q`"), ((INF, "tanh", 1.0), {}, ValueError, "`q`"),
     ((np.array([1.0, -2.0]), "tanh", 1.0), {}, ValueError, "`q`"),
     (("1", "tanh", 1.0), {}, TypeError, "`q`"),
     ((1.0, "tanh", -1.0), {}, ValueError, "`sigma_w`"),
     ((1.0, "tanh", 1.0, NAN), {}, ValueError, "`sigma_b`"))
rows(T.activation_moments, (("swishy", 1.0), {}, ValueError, "`activation`"),
     (("relu", -1.0), {}, ValueError, "`q`"), (("relu", NAN), {}, ValueError, "`q`"),
     (("leaky_relu", 1.0), dict(slope=INF), ValueError, "`slope`"))
rows(T.c_map, ((1.5, "tanh", 1.0, 0.1, 1.0), {}, ValueError, "`c`"),
     ((NAN, "tanh", 1.0), {}, ValueError, "`c`"), (("x", "tanh", 1.0), {}, TypeError, "`c`"),
     ((np.array([0.5, 2.0]), "tanh", 1.0), {}, ValueError, "`c`"),
     ((0.5, "tanh", 1.0, 0.0, 0.0), {}, ValueError, "`q`"),
     ((0.5, "swishy", 1.0), {}, ValueError, "`activation`"),
     ((0.5, "tanh", -1.0), {}, ValueError, "`sigma_w`"))
rows(T.propagate, (("tanh", 1.0, 0.0, 0.0, 3), {}, ValueError, "`q_input`"),
     (("tanh", 1.0, 0.0, NAN, 3), {}, ValueError, "`q_input`"),
     (("tanh", 1.0, 0.0, 1.0, 0), {}, ValueError, "`depth`"),
     (("tanh", 1.0, 0.0, 1.0, 2.5), {}, TypeError, "`depth`"),
     (("tanh", [1.0, 1.0], 0.0, 1.0, 3), {}, ValueError, "`sigma_w`"),
     (("tanh", [1.0, -1.0], 0.0, 1.0, 2), {}, ValueError, "`sigma_w[1]`"),
     (("tanh", [1.0, NAN], 0.0, 1.0, 2), {}, ValueError, "`sigma_w[1]`"),
     (("tanh", 1.0, -1.0, 1.0, 2), {}, ValueError, "`sigma_b`"),
     (("swishy", 1.0, 0.0, 1.0, 2), {}, ValueError, "`activation`"))
rows(T.propagate_residual, (("tanh", 1.0, 0.0, 0.0, 3), {}, ValueError, "`q_input`"),
     (("tanh", 1.0, 0.0, 1.0, 0), {}, ValueError, "`blocks`"),
     (("tanh", 1.0, 0.0, 1.0, 2.5), {}, TypeError, "`blocks`"),
     (("tanh", [1.0, 1.0], 0.0, 1.0, 3), {}, ValueError, "`sigma_w`"),
     (("tanh", [1.0, NAN], 0.0, 1.0, 2), {}, ValueError, "`sigma_w[1]`"),
     (("tanh", 1.0, -1.0, 1.0, 2), {}, ValueError, "`sigma_b`"),
     (("tanh", 1.0, 0.0, 1.0, 2), dict(branch_scale=INF), ValueError, "`branch_scale`"),
     (("tanh", 1.0, 0.0, 1.0, 2), dict(branch_depth=3), ValueError, "`branch_depth`"),
     (("tanh", 1.0, 0.0, 1.0, 2), dict(norm="batch"), ValueError, "`norm`"),
     (("tanh", 1.0, 0.0, 1.0, 2), dict(norm_position="mid"), ValueError, "`norm_position`"),
     (("tanh", 1.0, 0.0, 1.0, 2), dict(eps=-1.0), ValueError, "`eps`"),
     (("tanh", 1.0, 0.0, 1.0, 2), dict(mean_input=NAN), ValueError, "`mean_input`"),
     (("swishy", 1.0, 0.0, 1.0, 2), {}, ValueError, "`activation`"))
rows(T.phase_diagram, (("tanh", [1.0], [-0.1]), {}, ValueError, "`sigma_b_grid`"),
     (("tanh", [], [0.1]), {}, TypeError, "`sigma_w_grid`"),
     (("tanh", [[1.0]], [0.1]), {}, TypeError, "`sigma_w_grid`"),
     (("tanh", [NAN], [0.1]), {}, ValueError, "`sigma_w_grid`"),
     (("tanh", [INF], [0.1]), {}, ValueError, "`sigma_w_grid`"),
     (("tanh", "ab", [0.1]), {}, TypeError, "`sigma_w_grid`"),
     (("swishy", [1.0], [0.1]), {}, ValueError, "`activation`"))
rows(T.gaussian_expectation, ((np.cos, 1.0), dict(rule="simpson"), ValueError, "`rule`"),
     ((3.0, 1.0), {}, TypeError, "`g`"), ((np.cos, NAN), {}, ValueError, "`q`"),
     ((np.cos, -1.0), {}, ValueError, "`q`"),
     ((np.cos, 1.0), dict(rule="hermite", n_nodes=7), ValueError, "`n_nodes`"),
     ((np.cos, 1.0), dict(rule="hermite", n_nodes=0), ValueError, "`n_nodes`"),
     ((np.cos, 1.0), dict(rule="hermite", n_nodes=1.5), TypeError, "`n_nodes`"))
rows(T.gaussian_expectation_2d, ((np.multiply, 1.0, 0.5), dict(rule="x"), ValueError, "`rule`"),
     ((3, 1.0, 0.5), {}, TypeError, "`g`"), ((np.multiply, NAN, 0.5), {}, ValueError, "`q`"),
     ((np.multiply, "1", 0.5), {}, TypeError, "`q`"),
     ((np.multiply, 1.0, 2.0), {}, ValueError, "`c`"),
     ((np.multiply, 1.0, NAN), {}, ValueError, "`c`"),
     ((np.multiply, 1.0, 0.5), dict(rule="hermite", n_nodes=5), ValueError, "`n_nodes`"))
rows(T.truncated_normal_std, ((2.0, -2.0), {}, ValueError, "`a`"),
     ((1.0, 1.0), {}, ValueError, "`a`"), ((INF, INF), {}, ValueError, "`a`"),
     ((NAN, 1.0), {}, ValueError, "`a`"), ((-1.0, NAN), {}, ValueError, "`b`"),
     (("a", 1.0), {}, TypeError, "`a`"))


def _name(fn):
    return getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))


CASES = [pytest.param(*row, id=f"{_name(row[0])}-{i}") for i, row in enumerate(ROWS)]


@pytest.mark.parametrize("fn, args, kwargs, exc, text", CASES)
def test_bad_input(fn, args, kwargs, exc, text):
    with pytest.raises(exc) as info:
        fn(*args, **kwargs)
    assert text in str(info.value), f"{type(info.value).__name__}: {info.value}"


@pytest.mark.parametrize("fn, args, kwargs", HUGE_ROWS,
                         ids=[f"{_name(r[0])}-{i}" for i, r in enumerate(HUGE_ROWS)])
def test_huge_request_fails_fast_without_allocating(fn, args, kwargs):
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(W.InsufficientMemoryError) as info:
            fn(*args, **kwargs)
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(info.value, ValueError) and isinstance(info.value, MemoryError)
    assert elapsed < 1.0
    assert peak < 16 * 2**20  # nothing of the requested size (terabytes) was allocated
    message = str(info.value)
    assert "GiB" in message and "available" in message
    # what to do instead: the chunked path where one exists, otherwise a smaller request
    assert any(hint in message for hint in ("offset=", "smaller", "fewer")), message


def test_out_of_core_hint_only_where_chunking_exists():
    with pytest.raises(W.InsufficientMemoryError, match=r"`offset=`.*weightinit generate"):
        W.he_normal((HUGE // 10, 10), seed=0)
    with pytest.raises(W.InsufficientMemoryError, match="cannot be generated in chunks") as info:
        W.orthogonal((10**7, 10**6), seed=0)
    assert "offset=" not in str(info.value)
    with pytest.raises(W.InsufficientMemoryError, match="fewer `samples`") as info:
        W.simulate(2, 8, samples=HUGE)
    assert "offset=" not in str(info.value)


def test_describe_and_planning_accept_huge_shapes():
    # Describing draws nothing, so a shape far beyond memory is fine.
    info = W.describe((HUGE // 10, 10), "he_normal")
    assert info["fan_in"] == 10 and info["variance"] == pytest.approx(0.2)
    assert W.compute_fans((HUGE // 10, 10)) == (10, HUGE // 10)


# ----------------------------------------------------------------------------- command line
def _generate(argv, capsys):
    code = cli.main(["generate"] + argv, stdout=io.StringIO())
    return code, capsys.readouterr().err


def test_generate_bigger_than_memory_streams_out_of_core(tmp_path, monkeypatch, capsys):
    # 2**25 float32 values (128 MiB) with only 100 MiB "available": the library refuses the
    # whole array and points to the chunked path; generate takes that path and writes it.
    shape = (2**13, 2**12)
    expected = W.he_normal(shape, seed=4)
    monkeypatch.setattr(V, "available_memory", lambda: 100 * 2**20)
    with pytest.raises(W.InsufficientMemoryError, match="weightinit generate"):
        W.he_normal(shape, seed=4)
    code, err = _generate(["--shape", *map(str, shape), "--scheme", "he_normal", "--seed", "4",
                           "--out", str(tmp_path / "w.npy")], capsys)
    assert code == 0, err
    assert np.load(tmp_path / "w.npy", mmap_mode="r").tobytes() == expected.tobytes()
    assert os.listdir(tmp_path) == ["w.npy"]


def test_generate_whole_scheme_bigger_than_memory_fails_clearly(tmp_path, capsys):
    code, err = _generate(["--shape", str(10**7), str(10**6), "--scheme", "orthogonal",
                           "--seed", "0", "--out", str(tmp_path / "q.npy")], capsys)
    assert code == 2
    assert "GiB" in err and "cannot be generated in chunks" in err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("free", [None, 2**20])  # the real disk, or one with 1 MiB free
def test_generate_bigger_than_the_disk_fails_before_writing(tmp_path, monkeypatch, capsys, free):
    shape = [str(HUGE)] if free is None else ["2000", "20000"]  # 37 TiB, or 160 MB
    if free is not None:
        monkeypatch.setattr(shutil, "disk_usage",
                            lambda path: SimpleNamespace(total=2**40, used=2**40 - free, free=free))
    t0 = time.perf_counter()
    code, err = _generate(["--shape", *shape, "--scheme", "normal", "--seed", "0",
                           "--out", str(tmp_path / "w.npy")], capsys)
    assert code == 2
    assert "GiB is free" in err and "--shape" in err
    assert time.perf_counter() - t0 < 5
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- completeness
#: Public names with no argument to validate (data, types) and why.
NOT_CALLABLE_WITH_BAD_INPUT = {
    "FORMULAS": "a dict",
    "REGISTRY": "a dict",
    "InsufficientMemoryError": "an exception type",
    "Recommendation": "a NamedTuple that recommend() fills",
    "LSUVResult": "a result type that lsuv() fills",
    "SimulationResult": "a dataclass that simulate() fills (its theory() is in the table)",
    "JacobianSpectrum": "a dataclass that jacobian_spectrum() fills",
    "theory": "a module (its functions are in the table)",
    "schemes": "its one argument is a flag: any value's truth is used",
    "TRUNC2_STD": "a constant",
    "SEED_BITS": "a constant",
    "Generator": "in the table as the constructor and its methods",
}


def _public():
    names = {}
    for module, prefix in ((W, ""), (T, "theory."), (R, "random.")):
        for name in module.__all__:
            obj = getattr(module, name)
            if name not in NOT_CALLABLE_WITH_BAD_INPUT:
                names[prefix + name] = obj
    return names


def test_every_public_function_is_in_the_table():
    covered = {id(row[0]) for row in ROWS}
    covered_names = {_name(row[0]) for row in ROWS}
    missing = [name for name, obj in _public().items()
               if id(obj) not in covered and _name(obj) not in covered_names]
    missing += [f"Generator.{m}" for m in ("uniform", "normal", "truncated_normal", "spawn")
                if f"Generator.{m}" not in covered_names]
    if W.Generator not in [row[0] for row in ROWS]:
        missing.append("Generator()")
    assert not missing, f"add bad-input rows for {missing} to tests/test_bad_input.py"


def test_every_row_names_a_public_function():
    public = {id(o) for o in _public().values()} | {id(W.Generator)}
    for fn, *_ in ROWS:
        assert (id(fn) in public or _name(fn).startswith(("Generator.", "SimulationResult."))), fn
        assert inspect.isroutine(fn) or inspect.isclass(fn)
