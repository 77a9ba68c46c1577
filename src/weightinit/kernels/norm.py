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
float64; the kernels are serial (each thread of the simulation's team runs them on its rows).
"""

import math

import numpy as np
from numba import njit

_JIT = dict(cache=True, error_model="numpy", nogil=True)


@njit(**_JIT)
def forward(x, y, s, center, eps, r0, r1):
    """Rows r0..r1: ``y[r] <- N(x[r])`` (``y`` may be ``x``) and ``s[r]`` (float64) the row's
    inverse scale; ``center``: LayerNorm, else RMSNorm. A non-finite row gives NaN."""
    n = x.shape[1]
    t = y.dtype.type
    for r in range(r0, r1):
        xr, yr = x[r], y[r]
        mu = 0.0
        if center:
            for j in range(n):
                mu += np.float64(xr[j])
            mu /= n
        ss = 0.0
        for j in range(n):
            d = np.float64(xr[j]) - mu
            ss += d * d
        inv = 1.0 / math.sqrt(ss / n + eps)
        if not math.isfinite(ss):
            inv = math.nan
        s[r] = inv
        m, iv = t(mu), t(inv)
        for j in range(n):
            yr[j] = (xr[j] - m) * iv


@njit(**_JIT)
def backward(g, y, s, center, out, r0, r1):
    """Rows r0..r1: ``out[r] <- s[r] (g[r] - mean(g[r]) - y[r] mean(g[r] y[r]))`` (the mean of g
    only with ``center``, LayerNorm); ``out`` may be ``g``."""
    n = g.shape[1]
    t = out.dtype.type
    for r in range(r0, r1):
        gr, yr, o = g[r], y[r], out[r]
        mg = 0.0
        mgy = 0.0
        for j in range(n):
            gj = np.float64(gr[j])
            mg += gj
            mgy += gj * np.float64(yr[j])
        mg = mg / n if center else 0.0
        mgy /= n
        sr, a, b = t(s[r]), t(mg), t(mgy)
        for j in range(n):
            o[j] = sr * (gr[j] - a - yr[j] * b)
