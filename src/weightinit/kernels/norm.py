r"""Row normalisation kernels of the residual simulation: LayerNorm and RMSNorm, forward and
backward, without learnable gain or bias (their values at initialisation: 1 and 0).

For one row :math:`x \in \mathbb{R}^n`:

* LayerNorm (Ba, Kiros & Hinton 2016): :math:`y = (x - \mu) s`, :math:`\mu = \frac1n \sum_j x_j`,
  :math:`s = (\frac1n \sum_j (x_j - \mu)^2 + \epsilon)^{-1/2}`;
* RMSNorm (Zhang & Sennrich 2019): :math:`y = x s`, :math:`s = (\frac1n \sum_j x_j^2 +
  \epsilon)^{-1/2}`.

Backward, for the cotangent :math:`g = \partial L / \partial y`: differentiating,
:math:`\partial y_j / \partial x_k = s(\delta_{jk} - \frac1n - \frac1n y_j y_k)` (LayerNorm; the
:math:`\frac1n` term is absent for RMSNorm), hence

.. math::

    \frac{\partial L}{\partial x_k} = s\Big(g_k - \overline{g} - y_k\, \overline{g y}\Big),
    \qquad \overline{g} = \frac1n \sum_j g_j \ (\text{LayerNorm; } 0 \text{ for RMSNorm}),
    \quad \overline{g y} = \frac1n \sum_j g_j y_j,

which needs only the output :math:`y` and the row's :math:`s` (reference: the LayerNorm
backward of PyTorch, ``aten/src/ATen/native/cpu/layer_norm_kernel.cpp``). Row sums are taken in
float64 and may be reassociated, so that they vectorise (0.9 -> 0.13 ms for 512 rows of 1024
float32 values on one core): their order is fixed by the compiled code, the same for any number
of threads. The kernels are serial (each thread of the simulation's team runs them on its rows).
"""

import math

import numpy as np
from numba import njit

_JIT = dict(cache=True, error_model="numpy", nogil=True)
_SUM = dict(_JIT, fastmath={"reassoc"})  # only the row sums: the element-wise maths stays exact
U64 = np.uint64


@njit(**_SUM)
def _row_sum(x, shift, square):
    """sum_j (x_j - shift), or of its squares, in float64 (unsigned indices: a signed index
    keeps a negative-index check that stops vectorisation)."""
    t = 0.0
    for j in range(U64(x.shape[0])):
        d = np.float64(x[j]) - shift
        t += d * d if square else d
    return t


@njit(**_SUM)
def dot(x, y):
    """sum_j x_j y_j in float64."""
    t = 0.0
    for j in range(U64(x.shape[0])):
        t += np.float64(x[j]) * np.float64(y[j])
    return t


@njit(**_JIT)
def forward(x, y, s, center, eps, r0, r1):
    """Rows r0..r1: ``y[r] <- N(x[r])`` (``y`` may be ``x``) and ``s[r]`` (float64) the row's
    inverse scale; ``center``: LayerNorm, else RMSNorm. A non-finite row gives NaN."""
    n = x.shape[1]
    t = y.dtype.type
    for r in range(r0, r1):
        xr, yr = x[r], y[r]
        mu = _row_sum(xr, 0.0, False) / n if center else 0.0
        ss = _row_sum(xr, mu, True)
        inv = 1.0 / math.sqrt(ss / n + eps)
        if not math.isfinite(ss):
            inv = math.nan
        s[r] = inv
        m, iv = t(mu), t(inv)
        for j in range(U64(n)):
            yr[j] = (xr[j] - m) * iv


@njit(**_JIT)
def backward(g, y, s, center, out, r0, r1):
    """Rows r0..r1: ``out[r] <- s[r] (g[r] - mean(g[r]) - y[r] mean(g[r] y[r]))`` (the mean of g
    only with ``center``, LayerNorm); ``out`` may be ``g``."""
    n = g.shape[1]
    t = out.dtype.type
    for r in range(r0, r1):
        gr, yr, o = g[r], y[r], out[r]
        mg = _row_sum(gr, 0.0, False) / n if center else 0.0
        mgy = dot(gr, yr) / n
        sr, a, b = t(s[r]), t(mg), t(mgy)
        for j in range(U64(n)):
            o[j] = sr * (gr[j] - a - yr[j] * b)
