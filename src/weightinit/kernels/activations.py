"""Activation functions and their derivatives as Numba scalar functions, float64 and float32.

The one definition used by the simulation kernels and by the mean-field theory. ``exp``/``expm1``
are branch-free polynomials (Cody-Waite reduction, Taylor polynomial on |r| <= ln2/2: degree 13
in float64, 8 in float32, error below 2 ulp), so loops over them vectorise; libm has no vector
form in this Numba build.

Every function is written once, with its constants as module globals. The float64 versions are
the module-level functions themselves; :data:`BY_DTYPE` holds copies of the same code compiled
against float32 constants (see :func:`_specialise`), so that a float32 simulation computes in
float32 throughout (twice the SIMD lanes) instead of widening every value to float64.
"""

import math
import types as pytypes

import numpy as np
from numba import njit

from .bits import i64_as_f64 as _i64_as_f64
from .bits import low32_as_f32 as _i32_as_f32


LINEAR, SIGMOID, TANH, RELU, LEAKY_RELU, ELU, SELU, GELU, SILU, SOFTPLUS = range(10)
CODES = {
    "linear": LINEAR, "sigmoid": SIGMOID, "tanh": TANH, "relu": RELU, "leaky_relu": LEAKY_RELU,
    "elu": ELU, "selu": SELU, "gelu": GELU, "silu": SILU, "softplus": SOFTPLUS,
}
SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717

_INLINE = dict(inline="always", error_model="numpy", fastmath={"contract"})


def _constants(dtype):
    """The constants of the code below, as values of ``dtype``."""
    f = np.dtype(dtype).type
    wide = f is np.float64
    values = dict(
        _ZERO=0.0, _HALF=0.5, _ONE=1.0, _TWO=2.0, _MINUS_TWO=-2.0, _FOUR=4.0,
        _SELU_L=SELU_LAMBDA, _SELU_LA=SELU_LAMBDA * SELU_ALPHA,
        _SQRT1_2=math.sqrt(0.5), _INV_SQRT2PI=1.0 / math.sqrt(2.0 * math.pi),
        _INV_LN2=1.0 / math.log(2.0),
        # Cody-Waite split of ln 2 (fdlibm / Cephes expf): n * _LN2_HI is exact.
        _LN2_HI=6.93147180369123816490e-01 if wide else 0.693359375,
        _LN2_LO=1.90821492927058770002e-10 if wide else -2.12194440e-4,
        # Keep 2**n finite and normal.
        _EXP_LO=-708.0 if wide else -87.0, _EXP_HI=709.0 if wide else 88.0,
        # Beyond |z| = _TAIL the Gaussian and logistic tails in gelu' and silu are below any
        # float; exp saturates at e**_EXP_LO there, which a huge |z| would otherwise amplify.
        _TAIL=1e4,
    )
    consts = {k: f(v) for k, v in values.items()}
    consts["_WIDE"] = wide
    degree = 13 if wide else 8
    consts["_EXPM1_C"] = tuple(f(1.0 / math.factorial(k)) for k in range(degree, 0, -1))
    return consts


globals().update(_constants(np.float64))


@njit(**_INLINE)
def _pow2_f64(n):  # 2**n for an integral float64 n in [-1022, 1023]
    return _i64_as_f64(np.int64(n + 1023.0) << np.int64(52))


@njit(**_INLINE)
def _pow2_f32(n):  # 2**n for an integral float32 n in [-126, 127]
    return _i32_as_f32(np.int64(n + np.float32(127.0)) << np.int64(23))


_pow2 = _pow2_f64


@njit(**_INLINE)
def _reduce(x):
    """x = n ln2 + r with |r| <= ln2/2; returns (2**n, expm1(r))."""
    x = min(max(x, _EXP_LO), _EXP_HI)
    n = np.floor(x * _INV_LN2 + _HALF)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    c = _EXPM1_C
    p = c[0]
    for k in range(1, len(c)):
        p = p * r + c[k]
    return _pow2(n), p * r


@njit(**_INLINE)
def exp(x):
    """e**x (saturates below e**-708 and above e**709 in float64, e**-87 and e**88 in float32)."""
    s, m = _reduce(x)
    return s * m + s


@njit(**_INLINE)
def expm1(x):
    """e**x - 1, accurate for small |x|."""
    s, m = _reduce(x)
    return s * m + (s - _ONE)


@njit(**_INLINE)
def _sigmoid(z):
    return _ONE / (_ONE + exp(-z))


# float32 tanh: the odd 13/6 rational of Eigen's float tanh (``generic_fast_tanh_float``, also
# XLA's) on the clamped range [-7.905, 7.905], and z itself for |z| < 4e-4. Relative error below
# 4e-7 (under 7 ulp, largest near |z| = 6 where tanh is within 1e-5 of 1; the tests check it
# against float64 over [-60, 60]); about 60% of the work of the expm1 form, which float64 keeps.
_TANH_P = tuple(np.float32(c) for c in (
    -2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
    1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03))
_TANH_Q = tuple(np.float32(c) for c in (
    1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03))
_TANH_CLAMP, _TANH_TINY = np.float32(7.90531110763549805), np.float32(4e-4)


@njit(**_INLINE)
def _tanh_f32(z):
    x = min(max(z, -_TANH_CLAMP), _TANH_CLAMP)
    x2 = x * x
    p = _TANH_P[0]
    for k in range(1, len(_TANH_P)):
        p = p * x2 + _TANH_P[k]
    q = _TANH_Q[0]
    for k in range(1, len(_TANH_Q)):
        q = q * x2 + _TANH_Q[k]
    return z if abs(z) < _TANH_TINY else x * p / q


# One small function per activation and per derivative (``slope``: leaky_relu's negative
# slope, of z's type; unused by the others). The kernels of one activation inline only its
# own pair, so their compile time does not grow with the number of activations.
@njit(**_INLINE)
def _phi_linear(z, slope):
    return z


@njit(**_INLINE)
def _phi_tanh(z, slope):
    if not _WIDE:
        return _tanh_f32(z)
    e = expm1(_MINUS_TWO * abs(z))
    t = -e / (e + _TWO)
    return t if z >= _ZERO else -t


@njit(**_INLINE)
def _phi_sigmoid(z, slope):
    return _sigmoid(z)


@njit(**_INLINE)
def _phi_relu(z, slope):
    return max(z, _ZERO)


@njit(**_INLINE)
def _phi_leaky_relu(z, slope):
    return z if z > _ZERO else slope * z


@njit(**_INLINE)
def _phi_elu(z, slope):
    return z if z > _ZERO else expm1(min(z, _ZERO))


@njit(**_INLINE)
def _phi_selu(z, slope):
    return _SELU_L * z if z > _ZERO else _SELU_LA * expm1(min(z, _ZERO))


@njit(**_INLINE)
def _phi_gelu(z, slope):
    return _HALF * z * math.erfc(-z * _SQRT1_2)


@njit(**_INLINE)
def _phi_silu(z, slope):
    return _ZERO if z < -_TAIL else z * _sigmoid(z)


@njit(**_INLINE)
def _phi_softplus(z, slope):
    return max(z, _ZERO) + math.log1p(exp(-abs(z)))


@njit(**_INLINE)
def _dphi_linear(z, slope):
    return _ONE


@njit(**_INLINE)
def _dphi_tanh(z, slope):  # 1 - tanh^2 = 4u / (1 + u)^2 with u = e^(-2|z|): no cancellation
    u = exp(_MINUS_TWO * abs(z))
    v = _ONE + u
    return _FOUR * u / (v * v)


@njit(**_INLINE)
def _dphi_sigmoid(z, slope):  # s (1 - s) = e / (1 + e)^2 with e = e^(-|z|)
    e = exp(-abs(z))
    v = _ONE + e
    return e / (v * v)


@njit(**_INLINE)
def _dphi_relu(z, slope):
    return _ONE if z > _ZERO else _ZERO


@njit(**_INLINE)
def _dphi_leaky_relu(z, slope):
    return _ONE if z > _ZERO else slope


@njit(**_INLINE)
def _dphi_elu(z, slope):
    return _ONE if z > _ZERO else exp(min(z, _ZERO))


@njit(**_INLINE)
def _dphi_selu(z, slope):
    return _SELU_L if z > _ZERO else _SELU_LA * exp(min(z, _ZERO))


@njit(**_INLINE)
def _dphi_gelu(z, slope):
    tail = _ZERO if abs(z) >= _TAIL else z * _INV_SQRT2PI * exp(-_HALF * z * z)
    return _HALF * math.erfc(-z * _SQRT1_2) + tail


@njit(**_INLINE)
def _dphi_silu(z, slope):
    if z < -_TAIL:
        return _ZERO
    s = _sigmoid(z)
    return s * (_ONE + z * (_ONE - s))


@njit(**_INLINE)
def _dphi_softplus(z, slope):
    return _sigmoid(z)


@njit(**_INLINE)
def activation(code, z, slope):
    """phi(z) for activation ``code``: the function of that name above."""
    if code == TANH:
        return _phi_tanh(z, slope)
    if code == SIGMOID:
        return _phi_sigmoid(z, slope)
    if code == RELU:
        return _phi_relu(z, slope)
    if code == LEAKY_RELU:
        return _phi_leaky_relu(z, slope)
    if code == ELU:
        return _phi_elu(z, slope)
    if code == SELU:
        return _phi_selu(z, slope)
    if code == GELU:
        return _phi_gelu(z, slope)
    if code == SILU:
        return _phi_silu(z, slope)
    if code == SOFTPLUS:
        return _phi_softplus(z, slope)
    return _phi_linear(z, slope)


@njit(**_INLINE)
def derivative(code, z, slope):
    """phi'(z) for activation ``code``: the function of that name above."""
    if code == TANH:
        return _dphi_tanh(z, slope)
    if code == SIGMOID:
        return _dphi_sigmoid(z, slope)
    if code == RELU:
        return _dphi_relu(z, slope)
    if code == LEAKY_RELU:
        return _dphi_leaky_relu(z, slope)
    if code == ELU:
        return _dphi_elu(z, slope)
    if code == SELU:
        return _dphi_selu(z, slope)
    if code == GELU:
        return _dphi_gelu(z, slope)
    if code == SILU:
        return _dphi_silu(z, slope)
    if code == SOFTPLUS:
        return _dphi_softplus(z, slope)
    return _dphi_linear(z, slope)


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def apply(code, z, slope, derivative_order, out):
    """``out[i] = phi(z[i])`` (order 0) or ``phi'(z[i])`` (order 1), for 1-D float64 arrays."""
    for i in range(z.size):
        if derivative_order == 0:
            out[i] = activation(code, z[i], slope)
        else:
            out[i] = derivative(code, z[i], slope)


def _specialise(dtype):
    """Copies of the scalar functions above bound to ``dtype``'s constants: a namespace with
    ``activation`` and ``derivative`` (inlined into the kernels that call them), and
    one small function per activation, ``phi[name]`` and ``dphi[name]`` (inlined into the
    kernels of that activation), and ``phi_call[name]``, the same activation as an ordinary
    function for rarely taken paths, where inlining would only add compile time."""
    env = dict(globals(), **_constants(dtype), _pow2=_pow2_f32 if dtype == np.float32 else _pow2_f64)
    ns = pytypes.SimpleNamespace()
    name_of = np.dtype(dtype).name
    per_act = [f"_{d}phi_{a}" for a in CODES for d in ("", "d")]
    for name in ("_reduce", "exp", "expm1", "_sigmoid", *per_act, "activation",
                 "derivative"):
        py = globals()[name].py_func
        fn = pytypes.FunctionType(py.__code__, env, name)
        fn.__qualname__ = f"{name}_{name_of}"
        env[name] = njit(**_INLINE)(fn)
        setattr(ns, name, env[name])
    ns.phi = {a: env[f"_phi_{a}"] for a in CODES}  # one activation's own functions
    ns.dphi = {a: env[f"_dphi_{a}"] for a in CODES}
    ns.phi_call = {}  # the same activations as ordinary (not inlined) functions
    for a in CODES:
        call = pytypes.FunctionType(env[f"_phi_{a}"].py_func.__code__, env,
                                    f"phi_call_{a}_{name_of}")
        call.__qualname__ = call.__name__
        ns.phi_call[a] = njit(cache=True, error_model="numpy", fastmath={"contract"},
                              nogil=True)(call)
    return ns


#: The scalar functions per dtype name ("float64" is this module's own functions).
BY_DTYPE = {"float64": _specialise(np.float64), "float32": _specialise(np.float32)}
