r"""Initialisation schemes: one variance-scaling core and its named specialisations.

Every random scheme draws through :mod:`weightinit.random`, so a scheme's value at element ``i``
depends only on ``(seed, i)``. Shapes are read with :func:`weightinit.compute_fans` under
``layout`` (PyTorch's ``(out, in, *kernel)`` by default).
"""

import math

import numpy as np

from . import _validate as V
from ._threads import LOCK
from .activations import bias_value, calculate_gain
from .fans import LAYOUTS, compute_fans, fan
from .kernels.transpose import transpose_into
from .random import Plan, _check_seed, is_planning, normal, planning, truncated_normal, uniform

DISTRIBUTIONS = ("truncated_normal", "normal", "untruncated_normal", "uniform")

#: Standard deviation of N(0, 1) truncated to [-2, 2]:
#: sqrt(1 - 4 phi(2) / (2 Phi(2) - 1)), as written in Keras and JAX.
TRUNCATED_STD = 0.87962566103423978


def _deterministic(shape, value, dtype, out, layout, plannable=True, region=None):
    """``value`` everywhere; returns the array and the region's starts."""
    shape = V.check_shape(shape)
    V.check_choice("layout", layout, ("torch", "keras", "jax"))
    dtype = V.resolve_dtype(dtype, out)
    starts, sizes = (0,) * len(shape), shape
    if region is not None:
        starts, sizes = V.check_region(region, shape)
    if plannable and is_planning():
        return Plan("constant", shape, dtype, (float(value),)), starts
    out = V.prepare_out(sizes, dtype, out)
    out.fill(value)
    return out, starts


def zeros(shape, *, seed=None, dtype=None, layout="torch", out=None, offset=0, region=None):
    """All zeros. Never use for weights of hidden layers: every unit computes the same function
    and receives the same gradient, so symmetry is never broken (with ReLU nothing flows).
    ``region``: only that box, as for :func:`weightinit.random.uniform`."""
    return _deterministic(shape, 0.0, dtype, out, layout, region=region)[0]


def ones(shape, *, seed=None, dtype=None, layout="torch", out=None, offset=0, region=None):
    """All ones (same symmetry problem as :func:`zeros`)."""
    return _deterministic(shape, 1.0, dtype, out, layout, region=region)[0]


def constant(shape, value=0.0, *, seed=None, dtype=None, layout="torch", out=None, offset=0,
             region=None):
    """Every element equal to ``value`` (finite). Used for biases; for weights it leaves every
    unit of a layer identical."""
    return _deterministic(shape, V.check_real("value", value), dtype, out, layout,
                          region=region)[0]


def variance_scaling(shape, scale=1.0, mode="fan_in", distribution="truncated_normal", *,
                     seed=None, dtype=None, layout="torch", out=None, offset=0, in_axis=None,
                     out_axis=None, batch_axis=(), fans=None, region=None):
    r"""Variance-scaling initialiser: :math:`\operatorname{Var}(W) = \mathrm{scale} / n`.

    :math:`n` is the fan named by ``mode``: fan_in, fan_out, fan_avg = (in + out)/2, or
    fan_geo_avg = :math:`\sqrt{\mathrm{in}\cdot\mathrm{out}}`. The distribution has exactly that
    variance:

    * ``"truncated_normal"``: :math:`\mathcal{N}(0, s^2)` cut at :math:`\pm 2s` with
      :math:`s = \sqrt{\mathrm{scale}/n} / 0.87962566103423978` (Keras, JAX);
    * ``"normal"`` (alias ``"untruncated_normal"``): :math:`\mathcal{N}(0, \mathrm{scale}/n)`
      (PyTorch's ``*_normal_``);
    * ``"uniform"``: :math:`U(-a, a)`, :math:`a = \sqrt{3\,\mathrm{scale}/n}`, since
      :math:`\operatorname{Var} U(-a, a) = a^2/3`.

    Parameters
    ----------
    shape : tuple of int
        At least two dimensions (see :func:`compute_fans`), unless ``fans`` are given.
    scale : float
        Positive variance multiplier (``gain**2``).
    mode : {"fan_in", "fan_out", "fan_avg", "fan_geo_avg"}
    distribution : {"truncated_normal", "normal", "uniform"}
    seed, dtype, out, offset, region
        As for :func:`weightinit.random.uniform`; the fans are those of the whole ``shape``, so
        ``region=`` gives bitwise the box of the whole tensor (e.g. one rank's shard).
    layout, in_axis, out_axis, batch_axis
        Axis convention for the fans, see :func:`compute_fans`.
    fans : (float, float), optional
        Explicit positive ``(fan_in, fan_out)`` replacing those read from the shape, for layers
        whose connectivity the shape does not show (e.g. strided or transposed convolutions,
        see :func:`weightinit.torch.init_module_`).

    References
    ----------
    Keras ``VarianceScaling``; JAX ``jax.nn.initializers.variance_scaling``.
    """
    if fans is None:
        fan_in, fan_out = compute_fans(shape, layout, in_axis=in_axis, out_axis=out_axis,
                                       batch_axis=batch_axis)
    else:  # explicit fans: any shape, 1-D included (Keras gives a vector fan_in = fan_out = n)
        V.check_shape(shape)
        V.check_choice("layout", layout, LAYOUTS)
        if isinstance(fans, (str, bytes)) or not hasattr(fans, "__len__") or len(fans) != 2:
            raise TypeError(f"`fans` must be a pair (fan_in, fan_out). Received: fans={fans!r}")
        fan_in, fan_out = (V.check_real("fans", f, positive=True) for f in fans)
    scale = V.check_real("scale", scale, positive=True)
    V.check_choice("distribution", distribution, DISTRIBUTIONS)
    variance = scale / fan(mode, fan_in, fan_out)
    common = dict(seed=seed, dtype=dtype, out=out, offset=offset, region=region)
    if distribution == "uniform":
        a = math.sqrt(3.0 * variance)
        return uniform(shape, -a, a, **common)
    if distribution == "truncated_normal":
        s = math.sqrt(variance) / TRUNCATED_STD
        return truncated_normal(shape, 0.0, s, -2.0 * s, 2.0 * s, **common)
    return normal(shape, 0.0, math.sqrt(variance), **common)


def lecun_normal(shape, *, distribution="normal", **kw):
    r"""LeCun normal: :math:`\mathcal{N}(0, 1/\mathrm{fan\_in})`, the init SELU networks need.

    ``variance_scaling(1, "fan_in", distribution)``. Keras/JAX truncate (pass
    ``distribution="truncated_normal"`` for parity); the default is the untruncated normal of the
    SELU paper. References: LeCun et al., "Efficient BackProp" (1998); Klambauer et al. (2017).
    """
    return variance_scaling(shape, 1.0, "fan_in", distribution, **kw)


def lecun_uniform(shape, **kw):
    r"""LeCun uniform: :math:`U(-a, a)`, :math:`a = \sqrt{3/\mathrm{fan\_in}}` (Var = 1/fan_in).

    Matches Keras/JAX ``lecun_uniform``. Reference: LeCun et al., "Efficient BackProp" (1998).
    """
    return variance_scaling(shape, 1.0, "fan_in", "uniform", **kw)


def glorot_normal(shape, *, gain=1.0, distribution="normal", **kw):
    r"""Glorot/Xavier normal: :math:`\mathcal{N}(0, g^2 \cdot 2/(\mathrm{fan\_in}+\mathrm{fan\_out}))`.

    Var = 2 g^2/(fan_in + fan_out), std = its square root (not the variance). Default matches
    PyTorch ``xavier_normal_``; Keras/JAX ``glorot_normal`` truncate:
    ``distribution="truncated_normal"``. Reference: X. Glorot, Y. Bengio, "Understanding the
    difficulty of training deep feedforward neural networks", AISTATS 2010.
    """
    gain = V.check_real("gain", gain, positive=True)
    return variance_scaling(shape, gain**2, "fan_avg", distribution, **kw)


def glorot_uniform(shape, *, gain=1.0, **kw):
    r"""Glorot/Xavier uniform: :math:`U(-a, a)`, :math:`a = g\sqrt{6/(\mathrm{fan\_in}+\mathrm{fan\_out})}`.

    Var = 2 g^2/(fan_in + fan_out). Matches PyTorch ``xavier_uniform_`` and Keras/JAX
    ``glorot_uniform``. Reference: Glorot & Bengio, AISTATS 2010.
    """
    gain = V.check_real("gain", gain, positive=True)
    return variance_scaling(shape, gain**2, "fan_avg", "uniform", **kw)


def _he_scale(nonlinearity, a):
    a = V.check_real("a", a)
    if nonlinearity == "leaky_relu":
        return calculate_gain("leaky_relu", a) ** 2
    if a != 0:
        raise ValueError(
            f"`a` (negative slope) is only used with nonlinearity='leaky_relu'. Received: a={a!r}, "
            f"nonlinearity={nonlinearity!r}")
    return calculate_gain(nonlinearity) ** 2


def he_normal(shape, *, mode="fan_in", nonlinearity="relu", a=0.0, distribution="normal", **kw):
    r"""He/Kaiming normal: :math:`\mathcal{N}(0, g^2/\mathrm{fan})`, :math:`g^2 = 2` for ReLU.

    Var = 2/fan_in for ReLU; 2/((1 + a^2) fan) for leaky ReLU with slope ``a``
    (``nonlinearity="leaky_relu"``); ``mode="fan_out"`` preserves the backward variance instead.
    Default matches PyTorch ``kaiming_normal_`` (untruncated); Keras/JAX ``he_normal`` truncate:
    ``distribution="truncated_normal"``. Reference: K. He, X. Zhang, S. Ren, J. Sun, "Delving
    Deep into Rectifiers", ICCV 2015.
    """
    return variance_scaling(shape, _he_scale(nonlinearity, a), mode, distribution, **kw)


def he_uniform(shape, *, mode="fan_in", nonlinearity="relu", a=0.0, **kw):
    r"""He/Kaiming uniform: :math:`U(-b, b)`, :math:`b = g\sqrt{3/\mathrm{fan}}` (= :math:`\sqrt{6/\mathrm{fan\_in}}` for ReLU).

    Matches PyTorch ``kaiming_uniform_`` and Keras/JAX ``he_uniform``. PyTorch's ``nn.Linear``
    default, ``kaiming_uniform_(a=sqrt(5))``, is ``he_uniform(nonlinearity="leaky_relu",
    a=5**0.5)`` = :math:`U(\pm 1/\sqrt{\mathrm{fan\_in}})`. Reference: He et al., ICCV 2015.
    """
    return variance_scaling(shape, _he_scale(nonlinearity, a), mode, "uniform", **kw)


xavier_normal = glorot_normal
xavier_uniform = glorot_uniform
kaiming_normal = he_normal
kaiming_uniform = he_uniform


def _matrix_dims(shape, batched, layout):
    """(batch, rows, cols) of the matrices a weight shape is flattened to for orthogonal init.

    torch: (out, in, *kernel) -> rows = out, cols = the rest (``torch.nn.init.orthogonal_``);
    keras/jax: (*kernel, in, out) -> rows = all but the last, cols = out (Keras ``Orthogonal``,
    JAX ``orthogonal(column_axis=-1)``). With ``batched`` the leading axis is the batch.
    """
    b = int(batched)
    batch = shape[0] if batched else 1
    if layout == "torch":
        return batch, shape[b], math.prod(shape[b + 1:])
    return batch, math.prod(shape[b:-1]), shape[-1]


_PANEL = 256  # columns per Householder panel of the blocked QR (measured best at 2048)
_LEAF = 16  # columns of the panels that LAPACK factors inside the recursive panel QR
_BLOCK_QR_MIN = 1024  # from this many columns on, the blocked QR beats one LAPACK call


def _sign_of_diagonal(r):
    d = np.sign(np.diagonal(r, axis1=-2, axis2=-1))
    d[d == 0] = 1.0
    return d


def _wy_factor(v, tau):
    """Upper-triangular T with H_1 H_2 ... H_k = I - V T V^T for Householder reflectors
    H_i = I - tau_i v_i v_i^T (the compact WY form; LAPACK ``larft``, forward, columnwise)."""
    k = tau.size
    s = v.T @ v
    t = np.zeros((k, k), dtype=v.dtype)
    for i in range(k):
        t[i, i] = tau[i]
        t[:i, i] = -tau[i] * (t[:i, :i] @ s[:i, i])
    return t


def _transposed(a):
    """A C-contiguous copy of ``a.T`` for a 2-D ``a`` (a parallel tiled kernel)."""
    a = np.ascontiguousarray(a)
    out = np.empty(a.shape[::-1], a.dtype)
    with LOCK:
        transpose_into(a, out)
    return out


def _sub_product(c, v, x):
    """``c -= v @ x`` for a column-major ``c``: the product is formed column-major too (as
    ``(x^T v^T)^T``), since subtracting a row-major product from it would stride through memory
    (three times slower than the products themselves at 2048 x 2048)."""
    c -= (x.T @ v.T).T


def _unit_lower(f):
    v = np.tril(f, -1)
    np.fill_diagonal(v, 1.0)
    return v


def _panel_qr(a):
    """Householder QR of the panel ``a`` (m, k), in place as LAPACK's ``geqrf`` leaves it (R on
    and above the diagonal, the reflectors below), returning the compact WY factors (V, T).

    Recursive (Elmroth and Gustavson, IBM J. Res. Dev. 44, 2000): the left half is factored, the
    right half updated by matrix products and factored, and T assembled from both halves'; only
    panels of ``_LEAF`` columns go to LAPACK, so the panel work is BLAS-3 as well.
    """
    m, k = a.shape
    if k <= _LEAF:
        h, tau = np.linalg.qr(a, mode="raw")
        a[...] = h.T
        v = _unit_lower(a)
        return v, _wy_factor(v, tau.astype(a.dtype))
    k1 = k // 2
    v1, t1 = _panel_qr(a[:, :k1])
    c = a[:, k1:]
    _sub_product(c, v1, t1.T @ (v1.T @ c))
    v2, t2 = _panel_qr(a[k1:, k1:])
    v = np.zeros((m, k), a.dtype, order="F")
    v[:, :k1] = v1
    v[k1:, k1:] = v2
    t = np.zeros((k, k), a.dtype)
    t[:k1, :k1] = t1
    t[k1:, k1:] = t2
    t[:k1, k1:] = -(t1 @ ((v1[k1:].T @ v2) @ t2))
    return v, t


def _blocked_q(a):
    """Q of the Householder QR of a large ``a`` (m, n), m >= n, with the signs of R's diagonal.

    Blocked as LAPACK's ``geqrf``/``orgqr`` (Schreiber and Van Loan, SIAM J. Sci. Stat. Comput.
    10, 1989): each panel of ``_PANEL`` columns is factored (:func:`_panel_qr`), its reflectors
    gathered into the compact WY form I - V T V^T, and the trailing columns and then Q itself
    are updated by matrix products, so nearly all the work is BLAS-3 (numpy's LAPACK forms Q
    several times slower). The same Q as one LAPACK QR, to rounding, and as stable: no
    condition on A.
    """
    m, n = a.shape
    a = _transposed(a).T  # column-major: panels of columns are contiguous
    factors, sign = [], np.empty(n, dtype=a.dtype)
    for j0 in range(0, n, _PANEL):
        j1 = min(j0 + _PANEL, n)
        v, t = _panel_qr(a[j0:, j0:j1])
        sign[j0:j1] = _sign_of_diagonal(a[j0:j1, j0:j1])
        if j1 < n:
            c = a[j0:, j1:]
            _sub_product(c, v, t.T @ (v.T @ c))  # apply (I - V T V^T)^T to the trailing columns
        factors.append((j0, v, t))
    q = np.zeros((m, n), dtype=a.dtype, order="F")
    np.fill_diagonal(q, 1.0)
    for j0, v, t in reversed(factors):  # Q = H_1 ... H_n [I; 0], accumulated from the right
        c = q[j0:, j0:]
        _sub_product(c, v, t @ (v.T @ c))
    q *= sign
    return _transposed(q.T)


def _haar_q(a):
    """Q of A = QR with R's diagonal made positive (Mezzadri's sign fix): Haar for Gaussian A.

    ``a`` has shape (..., m, n), m >= n, and is factored in its own precision. Small or stacked
    matrices take one LAPACK QR (:func:`numpy.linalg.qr`); a single large one the blocked
    Householder QR of :func:`_blocked_q`.
    """
    if a.ndim > 2 or a.shape[1] < _BLOCK_QR_MIN:
        q, r = np.linalg.qr(a)
        return q * _sign_of_diagonal(r)[..., None, :]
    return _blocked_q(a)


def orthogonal(shape, gain=1.0, *, batched=False, seed=None, dtype=None, layout="torch", out=None,
               region=None):
    r"""(Semi-)orthogonal matrix times ``gain``, Haar-distributed (Saxe et al. 2014).

    A Gaussian matrix :math:`A` of shape (rows, cols) -- under ``layout="torch"`` rows =
    ``shape[0]`` and cols = the product of the rest, as PyTorch flattens convolution kernels;
    under ``"keras"``/``"jax"`` cols = ``shape[-1]`` and rows = the rest, as Keras and JAX do --
    is factored :math:`A = QR` (LAPACK via
    :func:`numpy.linalg.qr`, on :math:`A^\top` when rows < cols); :math:`Q \operatorname{diag}
    (\operatorname{sign} R_{ii})` is Haar-uniform. The result has orthonormal rows if rows <
    cols, orthonormal columns otherwise. With ``batched=True`` the leading axis indexes
    independent matrices. The Gaussian matrix is drawn and factored in ``dtype``, as PyTorch
    does: :math:`\|Q^\top Q - I\|_\infty` is a small multiple of its rounding unit (about
    4e-7 for float32 at 2048 x 2048).

    ``region`` (as for :func:`weightinit.random.uniform`) returns that box of the result, bitwise
    equal to slicing it: every element of Q depends on the whole Gaussian matrix, so the full
    matrix is drawn and factored (time and memory of the whole, about four matrices) and only
    the box is kept. Each rank of a sharded parameter thus pays for the whole QR.

    References
    ----------
    A. M. Saxe, J. L. McClelland, S. Ganguli, "Exact solutions to the nonlinear dynamics of
    learning in deep linear neural networks", ICLR 2014; F. Mezzadri, "How to generate random
    matrices from the classical compact groups", Notices AMS 2007 (sign correction).
    """
    shape = V.check_shape(shape)
    V.check_choice("layout", layout, ("torch", "keras", "jax"))
    gain = V.check_real("gain", gain, positive=True)
    dtype = V.resolve_dtype(dtype, out)
    need = 2 + int(batched)
    if len(shape) < need:
        raise ValueError(
            f"`orthogonal` needs at least {need} dimensions{' with batched=True' if batched else ''}."
            f" Received: shape={shape}")
    batch, rows, cols = _matrix_dims(shape, batched, layout)
    box = None if region is None else tuple(
        slice(a, a + k) for a, k in zip(*V.check_region(region, shape)))
    if out is not None:
        V.check_out(out, shape if box is None else tuple(b.stop - b.start for b in box), dtype)
    if is_planning():
        return Plan("orthogonal", shape, dtype, (gain, batch, rows, cols))
    # QR works on a copy and its factors: about four matrices' worth.
    V.check_memory(4 * batch * rows * cols * dtype.itemsize, f"orthogonal of shape {shape}",
                   "An orthogonal matrix is factored whole in memory (it cannot be generated in "
                   "chunks); use a smaller `shape`.")
    a = normal((batch, max(rows, cols), min(rows, cols)), seed=_check_seed(seed), dtype=dtype)
    q = np.stack([_haar_q(m) for m in a]) if min(rows, cols) >= _BLOCK_QR_MIN else _haar_q(a)
    if rows < cols:
        q = q.transpose(0, 2, 1)
    q *= gain
    result = q.reshape(shape)
    if box is not None:
        result = result[box]
    if out is None:
        return np.ascontiguousarray(result, dtype=dtype)
    out[...] = result
    return out


def identity(shape, *, gain=1.0, seed=None, dtype=None, layout="torch", out=None, region=None):
    """Identity matrix (ones on the main diagonal of a possibly rectangular 2-D shape) times
    ``gain``, as ``torch.nn.init.eye_``. Preserves the input exactly in linear layers (Le et al.
    2015 use it for IRNN recurrent weights). ``region``: only that box, as for
    :func:`weightinit.random.uniform`."""
    shape = V.check_shape(shape)
    if len(shape) != 2:
        raise ValueError(f"`identity` needs a 2-D shape. Received: shape={shape}; for "
                         "convolutions use `dirac`.")
    gain = V.check_real("gain", gain)
    out, (r0, c0) = _deterministic(shape, 0.0, dtype, out, layout, plannable=False, region=region)
    d = np.arange(max(r0, c0), min(r0 + out.shape[0], c0 + out.shape[1]))
    out[d - r0, d - c0] = gain
    return out


def dirac(shape, groups=1, *, gain=1.0, seed=None, dtype=None, layout="torch", out=None,
          region=None):
    """Dirac delta kernel for 3-, 4- or 5-D convolution weights, as ``torch.nn.init.dirac_``: the
    convolution passes input channel ``d`` of each group to output channel ``d`` of that group
    unchanged (times ``gain``), through the kernel's centre tap (index ``k // 2`` on each spatial
    axis). ``layout="torch"``: ``(out, in, *kernel)``; ``"keras"``/``"jax"``: ``(*kernel, in,
    out)``, the same kernel transposed. The output channels must be divisible by ``groups``.
    ``region``: only that box, as for :func:`weightinit.random.uniform`."""
    shape = V.check_shape(shape)
    if len(shape) not in (3, 4, 5):
        raise ValueError(f"`dirac` needs a 3-, 4- or 5-D shape (a convolution kernel). "
                         f"Received: shape={shape}")
    V.check_choice("layout", layout, LAYOUTS)
    torch_order = layout == "torch"
    # axes of (out, in, *kernel) in the tensor
    axes = (0, 1, *range(2, len(shape))) if torch_order else (
        len(shape) - 1, len(shape) - 2, *range(len(shape) - 2))
    n_out, n_in, kernel = shape[axes[0]], shape[axes[1]], [shape[a] for a in axes[2:]]
    groups = V.check_int("groups", groups, low=1)
    if n_out % groups:
        raise ValueError(f"`groups`={groups} must divide the output channels {n_out}.")
    gain = V.check_real("gain", gain)
    out, starts = _deterministic(shape, 0.0, dtype, out, layout, plannable=False, region=region)
    per_group = n_out // groups
    d = np.arange(min(per_group, n_in), dtype=np.int64)
    rows = (np.arange(groups, dtype=np.int64)[:, None] * per_group + d[None, :]).reshape(-1)
    torch_coords = (rows, np.tile(d, groups)) + tuple(np.full(rows.size, k // 2) for k in kernel)
    coords = [None] * len(shape)
    for a, c in zip(axes, torch_coords):
        coords[a] = c
    inside = np.ones(rows.size, bool)
    for c, a, k in zip(coords, starts, out.shape):
        inside &= (c >= a) & (c < a + k)
    out[tuple(c[inside] - a for c, a in zip(coords, starts))] = gain
    return out


def _centre_box(shape, layout):
    """Index of the spatial centre of a convolution kernel: (out, in) slices + centres."""
    if layout == "torch":
        return (slice(None), slice(None)) + tuple(k // 2 for k in shape[2:])
    return tuple(k // 2 for k in shape[:-2]) + (slice(None), slice(None))


def delta_orthogonal(shape, gain=1.0, *, seed=None, dtype=None, layout="torch", out=None,
                     region=None):
    r"""Delta-orthogonal convolution kernel (Xiao et al. 2018): zero everywhere except the
    spatial centre, which holds an orthogonal matrix times ``gain`` (:func:`orthogonal`), as
    ``jax.nn.initializers.delta_orthogonal``.

    ``shape`` is 3-, 4- or 5-D: ``(out, in, *kernel)`` under ``layout="torch"`` or ``(*kernel,
    in, out)`` under ``"keras"``/``"jax"``; it needs ``in <= out`` so that the centre matrix has
    orthonormal columns (the convolution is then an isometry at initialisation). Not elementwise
    (the centre comes from a QR of a whole Gaussian matrix): ``region`` computes the whole kernel
    and returns the box.

    References
    ----------
    L. Xiao, Y. Bahri, J. Sohl-Dickstein, S. Schoenholz, J. Pennington, "Dynamical Isometry and
    a Mean Field Theory of CNNs", ICML 2018, Algorithm 2; JAX ``jax/_src/nn/initializers.py``
    (``delta_orthogonal``).
    """
    shape = V.check_shape(shape)
    V.check_choice("layout", layout, ("torch", "keras", "jax"))
    if len(shape) not in (3, 4, 5):
        raise ValueError(f"`delta_orthogonal` needs a 3-, 4- or 5-D convolution shape. "
                         f"Received: shape={shape}")
    n_out, n_in = (shape[0], shape[1]) if layout == "torch" else (shape[-1], shape[-2])
    if n_in > n_out:
        raise ValueError(f"`delta_orthogonal` needs in_channels <= out_channels. Received: "
                         f"shape={shape} (in={n_in}, out={n_out}).")
    dtype = V.resolve_dtype(dtype, out)
    if not is_planning():
        V.check_memory(math.prod(shape) * dtype.itemsize, f"delta_orthogonal of shape {shape}")
    q = orthogonal((n_out, n_in) if layout == "torch" else (n_in, n_out), gain, seed=seed,
                   dtype=dtype, layout=layout)
    if is_planning():  # q is orthogonal's plan: the checks have run
        return Plan("delta_orthogonal", shape, dtype, (q.params[0], n_out, n_in))
    return _at_centre(shape, layout, q, dtype, out, region)


def _at_centre(shape, layout, matrix, dtype, out, region):
    """A kernel of ``shape`` that is ``matrix`` at its spatial centre and 0 elsewhere, then its
    ``region`` (or the whole) written to ``out`` or returned."""
    w = np.zeros(shape, dtype)  # (memory checked by the callers)
    w[_centre_box(shape, layout)] = matrix
    if region is not None:
        w = w[tuple(slice(a, a + k) for a, k in zip(*V.check_region(region, shape)))]
    if out is None:
        return np.ascontiguousarray(w)
    V.check_out(out, w.shape, dtype)
    out[...] = w
    return out


def zero_init(shape, *, seed=None, dtype=None, layout="torch", out=None, region=None):
    r"""ZerO initialisation (Zhao et al. 2022): deterministic, only zeros and (scaled) ones.

    For the matrix :math:`W \in \mathbb{R}^{P\times Q}` (P = out, Q = in): the rectangular
    identity if :math:`P \le Q`, else :math:`I_{P\times p}\,H_p\,2^{-k/2}\,I_{p\times Q}` with
    :math:`k = \lceil\log_2 P\rceil`, :math:`p = 2^k` and :math:`H_p` the Sylvester Hadamard
    matrix, i.e. :math:`W_{ij} = H_{ij}/\sqrt{p}`. A 3-5-D convolution ``(out, in, *kernel)`` gets
    that matrix at the spatial centre and zeros elsewhere. ``seed`` is ignored.

    References
    ----------
    J. Zhao, F. Schaefer, A. Anandkumar, "ZerO Initialization: Initializing Neural Networks with
    only Zeros and Ones", TMLR 2022, Algorithm 1; jiaweizzhao/ZerO-initialization
    ``example_mnist.ipynb`` (``ZerO_Init_on_matrix``; its normalisation :math:`2^{-k/2}` is used,
    where Algorithm 1 writes :math:`2^{-(k-1)/2}`).
    """
    shape = V.check_shape(shape)
    V.check_choice("layout", layout, ("torch",))
    if len(shape) not in (2, 3, 4, 5):
        raise ValueError(f"`zero_init` needs a 2-D weight or a 3-5-D convolution. "
                         f"Received: shape={shape}")
    dtype = V.resolve_dtype(dtype, out)
    p_, q_ = shape[0], shape[1]
    V.check_memory(math.prod(shape) * dtype.itemsize + 32 * p_ * q_,
                   f"zero_init of shape {shape}")  # the kernel, the matrix and its parity work
    if p_ <= q_:
        m = np.eye(p_, q_)
    else:
        p = 1 << (p_ - 1).bit_length()
        i = np.arange(p_)[:, None] & np.arange(q_)[None, :]
        parity = np.zeros(i.shape, np.int64)
        while i.any():
            parity ^= i & 1
            i = i >> 1
        m = np.where(parity == 0, 1.0, -1.0) / math.sqrt(p)
    return _at_centre(shape, "torch", m, dtype, out, region)


REGISTRY = {
    "zeros": zeros, "ones": ones, "constant": constant,
    "normal": normal, "uniform": uniform, "truncated_normal": truncated_normal,
    "variance_scaling": variance_scaling,
    "lecun_normal": lecun_normal, "lecun_uniform": lecun_uniform,
    "glorot_normal": glorot_normal, "glorot_uniform": glorot_uniform,
    "he_normal": he_normal, "he_uniform": he_uniform,
    "orthogonal": orthogonal, "identity": identity, "dirac": dirac,
    "delta_orthogonal": delta_orthogonal,
}
ALIASES = {
    "xavier_normal": "glorot_normal", "xavier_uniform": "glorot_uniform",
    "kaiming_normal": "he_normal", "kaiming_uniform": "he_uniform", "eye": "identity",
}


def schemes(aliases=False):
    """Names of all schemes (with their aliases if ``aliases``), in registry order."""
    return list(REGISTRY) + (list(ALIASES) if aliases else [])


def get(name):
    """The scheme function registered under ``name`` or one of its aliases."""
    V.check_choice("scheme", name, list(REGISTRY) + list(ALIASES))
    return REGISTRY[ALIASES.get(name, name)]


#: Schemes whose variance is set by the fans (they accept ``fans=`` and the axis arguments).
FAN_SCHEMES = ("variance_scaling", "lecun_normal", "lecun_uniform", "glorot_normal",
               "glorot_uniform", "he_normal", "he_uniform")


def init(shape, scheme, **params):
    """Initialise a tensor with the scheme named ``scheme``: ``init((256, 128), "he_normal", seed=0)``.

    Every scheme accepts ``region=`` (a tuple of step-1 slices, or ``(offsets, sizes)``):
    ``init(shape, scheme, region=r, ...)`` is bitwise ``init(shape, scheme, ...)[r]``, computed
    without the rest except for ``orthogonal`` (see there). Fans come from the whole ``shape``."""
    return get(scheme)(shape, **params)


def bias(shape, activation="linear", *, value=0.0, dtype=None, out=None, region=None):
    """Bias vector: ``value`` everywhere (0 by default, the usual choice); ``value="auto"`` gives
    0.01 for ReLU-family activations (keeps units active at the start) and 0 otherwise."""
    return constant(shape, bias_value(activation, value), dtype=dtype, out=out, region=region)


#: One line per scheme: the distribution and its variance (n = fan named by ``mode``).
FORMULAS = {
    "zeros": "W = 0",
    "ones": "W = 1",
    "constant": "W = value",
    "normal": "N(mean, std^2)",
    "uniform": "U(low, high), Var = (high - low)^2 / 12",
    "truncated_normal": "N(mean, std^2) conditioned on [low, high]",
    "variance_scaling": "Var = scale / n, n = fan_in | fan_out | (in+out)/2 | sqrt(in*out)",
    "lecun_normal": "N(0, 1/fan_in): Var = 1/fan_in",
    "lecun_uniform": "U(-a, a), a = sqrt(3/fan_in): Var = 1/fan_in",
    "glorot_normal": "N(0, 2 g^2/(fan_in+fan_out)): Var = 2 g^2/(fan_in+fan_out)",
    "glorot_uniform": "U(-a, a), a = g sqrt(6/(fan_in+fan_out)): Var = 2 g^2/(fan_in+fan_out)",
    "he_normal": "N(0, g^2/n), n = fan_in (mode) and g^2 = 2 (relu): Var = 2/fan_in",
    "he_uniform": "U(-b, b), b = g sqrt(3/n); relu, fan_in: b = sqrt(6/fan_in), Var = 2/fan_in",
    "orthogonal": "Q of A = QR, A ~ N(0, 1), sign-corrected, times gain: Q^T Q = I",
    "identity": "W = gain * I (rectangular eye)",
    "dirac": "W[g*o+d, d, centre] = gain (identity convolution per group)",
    "delta_orthogonal": "W[:, :, centre] = gain * Q (orthogonal, in <= out), 0 elsewhere",
}


def describe(shape, scheme, **params):
    """Exact distribution a scheme would draw for ``shape``, without drawing it.

    Returns a dict with ``scheme``, ``formula``, ``distribution``, ``fan_in``/``fan_out`` (when
    the shape has them), ``mean``, ``variance``, ``std`` and ``bound`` (largest |W|, ``inf`` for
    an untruncated normal). Deterministic schemes report their constant; orthogonal reports the
    per-entry variance gain**2/max(rows, cols).
    """
    fn = get(scheme)
    name = ALIASES.get(scheme, scheme)
    shape = V.check_shape(shape)
    info = {"scheme": name, "formula": FORMULAS[name], "shape": shape}
    axes = {k: params[k] for k in ("layout", "in_axis", "out_axis", "batch_axis") if k in params}
    if len(shape) >= 2:
        info["fan_in"], info["fan_out"] = compute_fans(shape, **axes)
        if params.get("fans") is not None:  # explicit fans (variance_scaling family)
            info["fan_in"], info["fan_out"] = (float(f) for f in params["fans"])
    if name in ("identity", "dirac"):  # deterministic: describe the values themselves
        w = fn(shape, **{**params, "dtype": np.float64})
        return {**info, "distribution": name, "mean": float(w.mean()), "variance": float(w.var()),
                "std": float(w.std()), "bound": float(abs(w).max())}
    with planning():
        plan = fn(shape, **params)
    if plan.kind == "orthogonal":  # entries of a Haar (semi-)orthogonal matrix times gain
        g, _, rows, cols = plan.params
        n = max(rows, cols)
        return {**info, "distribution": "orthogonal", "mean": 0.0, "variance": g * g / n,
                "std": g / math.sqrt(n), "bound": g}
    if plan.kind == "delta_orthogonal":  # gain * Q (orthonormal columns) at the centre, else 0
        g, _, n_in = plan.params
        var = g * g * n_in / math.prod(shape)  # sum of squares g^2 n_in over every entry
        return {**info, "distribution": "delta_orthogonal", "mean": 0.0, "variance": var,
                "std": math.sqrt(var), "bound": g}
    if plan.kind == "constant":
        return {**info, "distribution": "constant", "mean": plan.params[0], "variance": 0.0,
                "std": 0.0, "bound": abs(plan.params[0])}
    if plan.kind == "uniform":
        low, high = plan.params
        var = (high - low) ** 2 / 12.0
        return {**info, "distribution": "uniform", "mean": (low + high) / 2, "variance": var,
                "std": math.sqrt(var), "bound": max(abs(low), abs(high)), "low": low, "high": high}
    if plan.kind == "normal":
        mean, std = plan.params
        return {**info, "distribution": "normal", "mean": mean, "variance": std * std, "std": std,
                "bound": math.inf}
    mean, std, low, high = plan.params
    m, v = _truncated_moments((low - mean) / std, (high - mean) / std)
    return {**info, "distribution": "truncated_normal", "mean": mean + std * m,
            "variance": std * std * v, "std": std * math.sqrt(v),
            "bound": max(abs(low), abs(high)), "low": low, "high": high,
            "truncation_std": ((low - mean) / std, (high - mean) / std)}


def _truncated_moments(alpha, beta):
    """Mean and variance of N(0, 1) conditioned on [alpha, beta] (Johnson, Kotz & Balakrishnan).

    An interval right of 0 is mirrored, so the probabilities come from the lower tail, where
    they keep their relative precision."""
    if alpha + beta > 0:
        m, v = _truncated_moments(-beta, -alpha)
        return -m, v
    def pdf(x):
        return 0.0 if math.isinf(x) else math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)

    def xpdf(x):
        return 0.0 if math.isinf(x) else x * pdf(x)

    def cdf(x):
        return 0.5 * math.erfc(-x / math.sqrt(2.0))

    z = cdf(beta) - cdf(alpha)
    mean = (pdf(alpha) - pdf(beta)) / z
    return mean, 1.0 + (xpdf(alpha) - xpdf(beta)) / z - mean * mean
