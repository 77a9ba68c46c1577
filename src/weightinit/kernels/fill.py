"""Counter-based fill kernels: one body, compiled parallel and serial, float32 and float64.

Element ``g`` (global index, i.e. ``offset + i``) of a draw takes its bits from Philox block
``g // E`` under counter ``(block_lo, block_hi, s0, s1)`` and key ``(k0, k1)``, where ``E`` is the
number of elements a block of four 32-bit words yields:

=======  ===================================  =====================  ============================
dtype    uniform                              truncated normal       normal (Box-Muller)
=======  ===================================  =====================  ============================
float32  E=5: the high 24 bits of words 0-3,  E=4: one word per      E=4: words (0,1) -> elements
         then (low bytes of words 0, 1, 2)    element (23 bits)      0,1; (2,3) -> elements 2,3
float64  E=2: two words per element (53 bits) E=2: two words (52)    E=2: (0,1) radius, (2,3) angle
=======  ===================================  =====================  ============================

A value therefore depends only on (key, s0, s1, g): never on threads, block scheduling or the
range filled in one call. Kernels assume validated input and never raise.

The arithmetic is plain IEEE-754 without contraction: a fused multiply-add appears only where
it is written (:func:`fma`, always correctly rounded), never where the compiler chooses. A
vectorised loop body and its scalar remainder would otherwise round differently, and the same
element could get different bits depending on which of them computed it.
"""

import math
import types as pytypes

import numba
import numpy as np
from numba import njit, prange

from .bits import f32_as_u32 as _f32_as_u32
from .bits import f64_as_i64 as _f64_as_i64
from .bits import fma
from .bits import i64_as_f64 as _i64_as_f64
from .bits import u32_as_f32 as _u32_as_f32
from .philox import MASK32, SHIFT32, U64, philox4x32_10

UNIFORM, NORMAL, TRUNC_CENTRAL, TRUNC_TAIL = 0, 1, 2, 3

_JIT = dict(cache=True, error_model="numpy", nogil=True)
_INLINE = dict(inline="always", error_model="numpy")

F32 = np.float32
I32 = np.int32
I64 = np.int64
U32 = np.uint32


# ----------------------------------------------------------------------------- float32 math
# No SVML in this llvmlite, so libm calls would stop vectorisation: these are branch-free
# polynomial kernels. logf: the reduction and minimax polynomial of Arm's optimized-routines
# v_logf (3.34 ulp); sin/cos: Cephes sinf/cosf (S. L. Moshier) on [-pi/4, pi/4]. The tests check
# them against float64 references.
_LOG_OFF = U32(0x3F2AAAAB)  # bits of 2/3: the mantissa is reduced to [2/3, 4/3)
_LOG_P = tuple(F32(float.fromhex(c)) for c in (
    "-0x1.ffffc8p-2", "0x1.555d7cp-2", "-0x1.00187cp-2", "0x1.961348p-3", "-0x1.4f9934p-3",
    "0x1.5a9aa2p-3", "-0x1.3e737cp-3"))
_LN2 = F32(float.fromhex("0x1.62e43p-1"))
_HALF = F32(0.5)
_ONE = F32(1.0)


@njit(**_INLINE)
def logf(x):
    """Natural log of a positive, normal float32 (max error 3.4 ulp), branch-free."""
    u = _f32_as_u32(x) - _LOG_OFF
    n = I32(u) >> I32(23)  # arithmetic shift: the exponent relative to 2/3
    r = _u32_as_f32((u & U32(0x007FFFFF)) + _LOG_OFF) - _ONE
    r2 = r * r
    c = _LOG_P
    p = fma(c[6], r2, fma(c[5], r, c[4]))
    q = fma(p, r2, fma(c[3], r, c[2]))
    y = fma(q, r2, fma(c[1], r, c[0]))
    return fma(y, r2, fma(F32(n), _LN2, r))


_S1, _S2, _S3 = F32(-1.6666654611e-1), F32(8.3321608736e-3), F32(-1.9515295891e-4)
_C1, _C2, _C3 = F32(4.166664568298827e-2), F32(-1.388731625493765e-3), F32(2.443315711809948e-5)
_TURN24 = F32(2.0 * math.pi / 2.0**24)


@njit(**_INLINE)
def cos_sin_turn24(k):
    """(cos, sin) of the angle 2*pi*k/2**24 for an int32 k in [0, 2**24)."""
    q = (k + I32(1 << 21)) >> I32(22)  # nearest quarter turn, 0..4
    r = F32(k - (q << I32(22))) * _TURN24  # exact reduction to [-pi/4, pi/4)
    z = r * r
    s = fma(r * z, fma(z, fma(z, _S3, _S2), _S1), r)
    c = fma(z * z, fma(z, fma(z, _C3, _C2), _C1), fma(-_HALF, z, _ONE))
    return _quarter_turns(q, c, s)


@njit(**_INLINE)
def _quarter_turns(q, c, s):
    """(cos, sin) of q quarter turns plus the angle whose (cos, sin) are (c, s)."""
    odd = (q & 1) != 0
    cq = s if odd else c
    sq = c if odd else s
    cq = -cq if ((q + 1) & 2) != 0 else cq
    sq = -sq if (q & 2) != 0 else sq
    return cq, sq


# Giles, "Approximating the erfinv function", GPU Computing Gems Jade (2011), single precision.
_ERFINV_C = tuple(F32(c) for c in (
    2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
    -0.00125372503, -0.00417768164, 0.246640727, 1.50140941))
_ERFINV_T = tuple(F32(c) for c in (
    -0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
    -0.0076224613, 0.00943887047, 1.00167406, 2.83297682))
_SQRT2_F32 = F32(math.sqrt(2.0))


@njit(**_INLINE)
def _horner9(c, w):
    y = fma(fma(fma(fma(c[0], w, c[1]), w, c[2]), w, c[3]), w, c[4])
    return fma(fma(fma(fma(y, w, c[5]), w, c[6]), w, c[7]), w, c[8])


# Far tail, min(p, 1-p) < 1e-6 (beyond Giles's single-precision fit): with t = sqrt(-2 ln p),
# Phi^{-1}(p) = -(t - A(t)/B(t)), a degree-3/3 rational fitted like the central one (relative
# error 3e-9 in float64) on p in [1e-40, 1e-5].
_FA = (1.184200560330703e-04, 6.993834853040412e-02, 1.2138443770005465, 2.4678666957518614)
_FB = (1.2784420977486282e-02, 0.37122826619218147, 1.5883201337705772, 1.0)
_FA32 = tuple(F32(c) for c in _FA)
_FB32 = tuple(F32(c) for c in _FB)
_FAR = 1e-6


@njit(**_INLINE)
def _far_tail(t, a, b):
    num = fma(fma(fma(a[0], t, a[1]), t, a[2]), t, a[3])
    den = fma(fma(fma(b[0], t, b[1]), t, b[2]), t, b[3])
    return t - num / den


@njit(**_INLINE)
def ndtri_f32(p):
    """Standard normal quantile of p in (0, 1), float32, any normal p.

    Giles's sqrt(2) erfinv(2p - 1) with w = -log(4p(1-p)) (both branches evaluated and one
    selected, which keeps the loop vectorised), and the far-tail rational below 1e-6.
    """
    w = -logf(F32(4.0) * p * (_ONE - p))
    x = F32(2.0) * p - _ONE
    c = _horner9(_ERFINV_C, w - F32(2.5))
    t = _horner9(_ERFINV_T, math.sqrt(w) - F32(3.0))
    z = _SQRT2_F32 * (c if w < F32(5.0) else t) * x
    m = min(p, _ONE - p)
    f = _far_tail(math.sqrt(F32(-2.0) * logf(m)), _FA32, _FB32)
    return z if m >= F32(_FAR) else (f if p > _HALF else -f)


# Phi^{-1}(1/2 + q) = q P(r) / Q(r), r = c - q^2, for |z| <= 2.0005: the +-2 sigma truncation
# of Keras/JAX variance scaling and PyTorch's trunc_normal_ default. A degree-4/4 rational fitted
# (weighted least squares, relative error 1e-7 in float64; see docs/performance.md) in a variable
# where every term is positive, so float32 evaluation loses nothing to cancellation: no log,
# about half the work of the Giles path.
_CQ = F32(0.22779318690299988)  # (Phi(2.0005) - 1/2)^2
_CP = tuple(F32(c) for c in (
    3092.7227191347115, 9018.871671443136, 2904.8890582599784, 220.1184419840328, 4.191487015455122))
_CR = tuple(F32(c) for c in (
    3652.332374103042, 4423.295128729225, 980.3216086270068, 60.0293587316034, 1.0))


@njit(**_INLINE)
def ndtri_central_f32(q):
    """Standard normal quantile of 1/2 + q for |q| <= Phi(2.0005) - 1/2 (float32)."""
    r = fma(-q, q, _CQ)
    num = fma(fma(fma(fma(_CP[0], r, _CP[1]), r, _CP[2]), r, _CP[3]), r, _CP[4])
    den = fma(fma(fma(fma(_CR[0], r, _CR[1]), r, _CR[2]), r, _CR[3]), r, _CR[4])
    return q * (num / den)


# ----------------------------------------------------------------------------- float64 math
# Branch-free like the float32 ones, so the float64 normal loop vectorises too. log: fdlibm's
# e_log.c (Sun Microsystems, 1993; also musl's log.c): reduction of the mantissa to
# [sqrt(2)/2, sqrt(2)), log(1 + f) = 2s + s R(s^2) with s = f/(2 + f), error below 1 ulp.
# sin/cos: fdlibm's __kernel_sin/__kernel_cos on [-pi/4, pi/4] with the reduced argument as a
# head and a tail. The tests measure both against mpmath (docs/quality.md).
_LG = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
       2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
       1.479819860511658591e-01)
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10


@njit(**_INLINE)
def log_f64(x):
    """Natural log of a positive, normal float64 (error below 1 ulp), branch-free."""
    bits = _f64_as_i64(x)
    hx = (bits >> I64(32)) + I64(0x3FF00000 - 0x3FE6A09E)
    k = (hx >> I64(20)) - I64(0x3FF)
    hx = (hx & I64(0x000FFFFF)) + I64(0x3FE6A09E)
    f = _i64_as_f64((hx << I64(32)) | (bits & I64(0xFFFFFFFF))) - 1.0
    hfsq = 0.5 * f * f
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    c = _LG
    t1 = w * (c[1] + w * (c[3] + w * c[5]))
    t2 = z * (c[0] + w * (c[2] + w * (c[4] + w * c[6])))
    dk = float(I32(k))
    return s * (hfsq + (t1 + t2)) + dk * _LN2_LO - hfsq + f + dk * _LN2_HI


_KS = (-1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04,
       2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10)
_KC = (4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05,
       -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11)
# 2 pi / 2**53 as a head (2 pi rounded, scaled exactly) and a tail.
_TURN53_HI = float.fromhex("0x1.921fb54442d18p+2") * 2.0**-53
_TURN53_LO = float.fromhex("0x1.1a62633145c07p-52") * 2.0**-53
_Q50, _Q51 = U64(1 << 50), U64(51)


@njit(**_INLINE)
def cos_sin_turn53(k):
    """(cos, sin) of the angle 2*pi*k/2**53 for a uint64 k in [0, 2**53), each within 1 ulp."""
    q = (k + _Q50) >> _Q51  # nearest quarter turn, 0..4
    m = float(I64(k) - I64(q << _Q51))  # exact, |m| <= 2**50: the rest, in 2**-53 turns
    x = m * _TURN53_HI  # x + y = 2 pi m / 2**53, |x| <= pi/4, y the rounding error and the tail
    y = fma(m, _TURN53_HI, -x) + m * _TURN53_LO
    z = x * x
    w = z * z
    a = _KS
    v = z * x
    r = a[1] + z * (a[2] + z * (a[3] + z * (a[4] + z * a[5])))
    s = x - ((z * (0.5 * y - v * r) - y) - v * a[0])
    b = _KC
    r = z * (b[0] + z * (b[1] + z * b[2])) + w * w * (b[3] + z * (b[4] + z * b[5]))
    hz = 0.5 * z
    w = 1.0 - hz
    c = w + (((1.0 - w) - hz) + (z * r - x * y))
    return _quarter_turns(I32(q), c, s)


# Wichura, "Algorithm AS 241: The percentage points of the normal distribution", Applied
# Statistics 37 (1988) 477-484, PPND16: three degree-7/7 rationals, relative error about 1e-16.
# Coefficients in ascending order, the denominators' leading 1 omitted; transcription checked
# against the paper's hash sums (sums of the mantissas) in the tests.
_AS241_A = (3.387132872796366608, 133.14166789178437745, 1971.5909503065514427,
            13731.693765509461125, 45921.953931549871457, 67265.770927008700853,
            33430.575583588128105, 2509.0809287301226727)
_AS241_B = (42.313330701600911252, 687.1870074920579083, 5394.1960214247511077,
            21213.794301586595867, 39307.89580009271061, 28729.085735721942674,
            5226.495278852854561)
_AS241_C = (1.42343711074968357734, 4.6303378461565452959, 5.7694972214606914055,
            3.64784832476320460504, 1.27045825245236838258, 0.24178072517745061177,
            0.0227238449892691845833, 7.7454501427834140764e-4)
_AS241_D = (2.05319162663775882187, 1.6763848301838038494, 0.68976733498510000455,
            0.14810397642748007459, 0.0151986665636164571966, 5.475938084995344946e-4,
            1.05075007164441684324e-9)
_AS241_E = (6.6579046435011037772, 5.4637849111641143699, 1.7848265399172913358,
            0.29656057182850489123, 0.026532189526576123093, 0.0012426609473880784386,
            2.71155556874348757815e-5, 2.01033439929228813265e-7)
_AS241_F = (0.59983220655588793769, 0.13692988092273580531, 0.0148753612908506148525,
            7.868691311456132591e-4, 1.8463183175100546818e-5, 1.4215117583164458887e-7,
            2.04426310338993978564e-15)


@njit(**_INLINE)
def _rational77(a, b, x):
    num = ((((((a[7] * x + a[6]) * x + a[5]) * x + a[4]) * x + a[3]) * x + a[2]) * x + a[1]) * x + a[0]
    den = ((((((b[6] * x + b[5]) * x + b[4]) * x + b[3]) * x + b[2]) * x + b[1]) * x + b[0]) * x + 1.0
    return num / den


@njit(**_INLINE)
def ndtri_f64(q, m, central):
    """Standard normal quantile of p = 1/2 + q, given q and m = min(p, 1 - p) (a normal float64),
    each from whichever form the caller has exactly: AS 241, its regions evaluated and one
    selected (branch-free). ``central`` (a compile-time constant) promises |q| <= 0.4773
    (|z| <= 2.0005), where the far-tail region (m < exp(-25)) is never needed."""
    zc = q * _rational77(_AS241_A, _AS241_B, 0.180625 - q * q)
    t = math.sqrt(-log_f64(m))
    zt = _rational77(_AS241_C, _AS241_D, t - 1.6)
    if not central:
        zt = zt if t <= 5.0 else _rational77(_AS241_E, _AS241_F, t - 5.0)
    zt = -zt if q < 0.0 else zt
    return zc if abs(q) <= 0.425 else zt


# ----------------------------------------------------------------------------- words -> values
_S5, _S6, _S8, _S9 = U64(5), U64(6), U64(8), U64(9)
_S11, _S12, _S16, _S20, _S21 = U64(11), U64(12), U64(16), U64(20), U64(21)
_B8 = U64(0xFF)
_TWO_M24 = F32(2.0**-24)
_TWO_M53 = 2.0**-53


@njit(**_INLINE)
def _uniform_f32(k, p):
    u = F32(I32(k)) * _TWO_M24  # k < 2**24: [0, 1), 24 bits
    return min(fma(p[1], u, p[0]), p[2])  # p = (low, high - low, largest float below high)


@njit(**_INLINE)
def _normal_f32(wa, wb, p):
    u = F32(I32(wa >> _S8) + I32(1)) * _TWO_M24  # (0, 1], never 0: radius finite
    r = math.sqrt(F32(-2.0) * logf(u))
    c, s = cos_sin_turn24(I32(wb >> _S8))
    return fma(p[1], r * c, p[0]), fma(p[1], r * s, p[0])


@njit(**_INLINE)
def _trunc_f32(w, p, central):
    # p = (mean, +-std, P0, width, 1, low, high, largest p below 1) with P0 = Phi(alpha) - 1/2
    # (central) or Phi(alpha); (alpha, beta) the standardised interval or its mirror image (then
    # std is negated). u in (0, 1) with 23 bits, symmetric about 1/2.
    u = F32(I32(w >> _S9) * I32(2) + I32(1)) * _TWO_M24
    q = fma(p[3], u, p[2])
    if central:
        z = ndtri_central_f32(q)
    else:
        z = ndtri_f32(min(max(q, F32(1.1754944e-38)), p[7]))
    return min(max(fma(p[1], z, p[0]), p[5]), p[6])


@njit(**_INLINE)
def _bits53(hi, lo):
    return (hi << _S21) | (lo >> _S11)


@njit(**_INLINE)
def _normal_f64(w0, w1, w2, w3, p):  # one block -> two normals
    u = float(_bits53(w0, w1) + U64(1)) * _TWO_M53  # (0, 1]
    r = math.sqrt(-2.0 * log_f64(u))
    c, s = cos_sin_turn53(_bits53(w2, w3))
    return p[0] + p[1] * (r * c), p[0] + p[1] * (r * s)


@njit(**_INLINE)
def _uniform_f64(hi, lo, p):
    u = float(I32(hi >> _S5)) * 67108864.0 + float(I32(lo >> _S6))  # 53 bits
    return min(fma(p[1], u * _TWO_M53, p[0]), p[2])


@njit(**_INLINE)
def _trunc_f64(hi, lo, p, central):
    # p as in _trunc_f32; the central form gives q = P - 1/2 without cancellation, the tail form
    # gives P, whose small values keep their digits.
    k = (hi << _S20) | (lo >> _S12)  # 52 bits
    u = float(k * U64(2) + U64(1)) * _TWO_M53  # (0, 1), symmetric
    v = p[2] + p[3] * u
    if central:
        q = v
        m = 0.5 - abs(v)
    else:
        v = min(max(v, 2.2250738585072014e-308), p[7])
        q = v - 0.5
        m = min(v, 1.0 - v)
    x = p[0] + p[1] * ndtri_f64(q, m, central)
    return min(max(x, p[5]), p[6])


# One function per (distribution, dtype): the values of one Philox block of four words.
@njit(**_INLINE)
def _uniform_block_f32(w0, w1, w2, w3, p):
    # Five 24-bit uniforms from 128 bits: the high 24 bits of each word, then the low bytes of
    # words 0, 1 and 2 (the low byte of word 3 is unused). Philox output words are uniform and
    # independent, so every bit is, and a fifth value costs no further Philox rounds.
    low = ((w0 & _B8) << _S16) | ((w1 & _B8) << _S8) | (w2 & _B8)
    return (_uniform_f32(w0 >> _S8, p), _uniform_f32(w1 >> _S8, p), _uniform_f32(w2 >> _S8, p),
            _uniform_f32(w3 >> _S8, p), _uniform_f32(low, p))


@njit(**_INLINE)
def _normal_block_f32(w0, w1, w2, w3, p):
    a, b = _normal_f32(w0, w1, p)
    c, d = _normal_f32(w2, w3, p)
    return a, b, c, d


@njit(**_INLINE)
def _trunc_central_block_f32(w0, w1, w2, w3, p):
    return (_trunc_f32(w0, p, True), _trunc_f32(w1, p, True), _trunc_f32(w2, p, True),
            _trunc_f32(w3, p, True))


@njit(**_INLINE)
def _trunc_tail_block_f32(w0, w1, w2, w3, p):
    return (_trunc_f32(w0, p, False), _trunc_f32(w1, p, False), _trunc_f32(w2, p, False),
            _trunc_f32(w3, p, False))


@njit(**_INLINE)
def _uniform_block_f64(w0, w1, w2, w3, p):
    return _uniform_f64(w0, w1, p), _uniform_f64(w2, w3, p)


@njit(**_INLINE)
def _trunc_central_block_f64(w0, w1, w2, w3, p):
    return _trunc_f64(w0, w1, p, True), _trunc_f64(w2, w3, p, True)


@njit(**_INLINE)
def _trunc_tail_block_f64(w0, w1, w2, w3, p):
    return _trunc_f64(w0, w1, p, False), _trunc_f64(w2, w3, p, False)


_BLOCKS = {
    (UNIFORM, "float32"): _uniform_block_f32,
    (NORMAL, "float32"): _normal_block_f32,
    (TRUNC_CENTRAL, "float32"): _trunc_central_block_f32,
    (TRUNC_TAIL, "float32"): _trunc_tail_block_f32,
    (UNIFORM, "float64"): _uniform_block_f64,
    (NORMAL, "float64"): _normal_f64,
    (TRUNC_CENTRAL, "float64"): _trunc_central_block_f64,
    (TRUNC_TAIL, "float64"): _trunc_tail_block_f64,
}

#: Elements one Philox block (four 32-bit words) yields, per (distribution, dtype).
PER_BLOCK = {(dist, dtype): (5 if dist == UNIFORM else 4) if dtype == "float32" else 2
             for dist, dtype in _BLOCKS}

# ----------------------------------------------------------------------------- the fill kernel
_values = _per_block = _whole = _segment = None  # bound per kernel by ``_specialise``
_parallel = False

#: Elements of one work item of the box kernel (a multiple of every PER_BLOCK).
CHUNK = 20 * 1024


def _whole_py(out, j0, nb, blk0, k0, k1, s0, s1, p):
    """``out[j0:j0 + nb * E]`` = the elements of the ``nb`` whole Philox blocks from ``blk0``:
    the hot loop, the only place a block's values are computed (one compiled function per
    distribution and dtype, shared by the serial and the parallel kernel)."""
    for b in range(nb):
        blk = blk0 + U64(b)
        w0, w1, w2, w3 = philox4x32_10(blk & MASK32, blk >> SHIFT32, s0, s1, k0, k1)
        v = _values(w0, w1, w2, w3, p)
        j = j0 + U64(b) * U64(_per_block)  # a literal stride, or the loop won't vectorise
        for t in range(_per_block):
            out[j + U64(t)] = v[t]


def _segment_py(out, i0, n, g0, k0, k1, s0, s1, p, edge):
    """Serial fill of ``out[i0:i0 + n]`` with the elements ``g0 .. g0 + n - 1`` of the draw.

    Whole blocks go through the hot loop; a partial block at either end goes through it too,
    into ``edge`` (one block of scratch), and is copied in part, so any ``g0`` gives the same
    values and the block's code is compiled once."""
    e = U64(_per_block)
    head = min((e - g0 % e) % e, n)
    if head > U64(0):
        _whole(edge, U64(0), U64(1), g0 // e, k0, k1, s0, s1, p)
        t0 = g0 % e
        for t in range(head):
            out[i0 + U64(t)] = edge[t0 + U64(t)]
    nb = (n - head) // e
    blk0 = (g0 + head) // e
    j0 = i0 + head
    _whole(out, j0, nb, blk0, k0, k1, s0, s1, p)
    tail = n - head - nb * e
    if tail > U64(0):
        _whole(edge, U64(0), U64(1), blk0 + nb, k0, k1, s0, s1, p)
        j = j0 + nb * e
        for t in range(tail):
            out[j + U64(t)] = edge[t]


def _fill_py(out, base, counts, strides, run, k0, k1, s0, s1, p, edges):
    """Fill the 1-D contiguous ``out`` with a strided box of the draw, in C order.

    The box is ``out.size // run`` runs of ``run`` consecutive elements; run ``r``, unravelled
    over ``counts`` (the box's extents on the outer axes, C order) into indices ``i_d``, starts at
    element ``base + sum(i_d * strides[d])``. A contiguous fill is one run (``counts`` empty).
    Work items (pieces of at most ``CHUNK`` elements of a run, or groups of short runs) run in
    parallel: every element's value depends only on its index in the draw, never on the items
    or threads. ``edges`` (one row of ``E`` elements per thread of the parallel build, one row
    for the serial build) is the scratch of the partial blocks.
    """
    run = U64(run)
    if run == U64(0):
        return
    runs = U64(out.size) // run
    # A work item is a piece of at most CHUNK elements of one run, or (short runs) a group of
    # whole runs of about CHUNK elements together.
    per = (run + U64(CHUNK) - U64(1)) // U64(CHUNK)
    group = max(U64(CHUNK) // run, U64(1)) if per == U64(1) else U64(1)
    items = ((runs + group - U64(1)) // group) * per
    m = counts.size
    for item in prange(items):
        edge = edges[numba.get_thread_id() if _parallel else 0]
        it = U64(item)
        c = it % per
        r0 = (it // per) * group
        for r in range(r0, min(r0 + group, runs)):
            g = base
            q = U64(r)
            for a in range(m):
                d = m - 1 - a
                g += (q % counts[d]) * strides[d]
                q //= counts[d]
            i = c * U64(CHUNK)
            n = min(U64(CHUNK), run - i)
            _segment(out, U64(r) * run + i, n, g + i, k0, k1, s0, s1, p, edge)


def _copy(py, name, env):
    fn = pytypes.FunctionType(py.__code__, env, name)
    fn.__qualname__ = name
    fn.__doc__ = py.__doc__
    return fn


def _specialise(dist, dtype, parallel):
    """``_fill_py`` compiled with its block function bound: one cached kernel per combination.

    Each is a module-level function copy with its own name (and so its own cache file); closures
    or jitted-function arguments would defeat Numba's on-disk cache.
    """
    name = f"fill_{dist}_{dtype}"
    env = dict(globals(), _values=_BLOCKS[dist, dtype], _per_block=PER_BLOCK[dist, dtype],
               _parallel=parallel)
    if (dist, dtype) not in _WHOLE:  # the first build compiles the hot loop, the other reuses it
        _WHOLE[dist, dtype] = njit(**_JIT)(_copy(_whole_py, name + "_whole", env))
    env["_whole"] = _WHOLE[dist, dtype]
    env["_segment"] = njit(inline="always", **_JIT)(_copy(_segment_py, name + "_segment", env))
    body = _copy(_fill_py, name + ("_parallel" if parallel else "_serial"), env)
    return njit(parallel=parallel, **_JIT)(body)


_WHOLE = {}  # the hot loop per (distribution, dtype), shared by the two builds
KERNELS = {
    (dist, dtype, parallel): _specialise(dist, dtype, parallel)
    for dist in (UNIFORM, NORMAL, TRUNC_CENTRAL, TRUNC_TAIL)
    for dtype in ("float32", "float64")
    for parallel in (False, True)
}
