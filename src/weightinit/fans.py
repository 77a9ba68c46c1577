"""Fan-in and fan-out of a weight shape under PyTorch, Keras or explicit (JAX) axis conventions."""

import math
import numbers

from . import _validate as V

LAYOUTS = {
    # layout: (in_axis, out_axis)
    "torch": (1, 0),  # (out, in, *kernel): nn.Linear, nn.ConvNd
    "keras": (-2, -1),  # (*kernel, in, out): Keras Dense/Conv, Flax
    "jax": (-2, -1),  # jax.nn.initializers defaults in_axis=-2, out_axis=-1
}
MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")


def _axis(name, value, ndim):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer axis or a tuple of them. Received: "
                        f"{name}={value!r}")
    if not -ndim <= value < ndim:
        raise ValueError(f"`{name}`={value} is out of range for a {ndim}-D shape (axes run from "
                         f"{-ndim} to {ndim - 1}).")
    return int(value) % ndim


def _axes(name, value, ndim, *, empty_ok):
    """``value`` (an axis or a sequence of axes, negative counting from the end) as a tuple of
    distinct non-negative axes."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (_axis(name, value, ndim),)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"`{name}` must be an integer axis or a tuple of them. Received: "
                        f"{name}={value!r}")
    axes = tuple(_axis(name, a, ndim) for a in value)
    if not axes and not empty_ok:
        raise ValueError(f"`{name}` must name at least one axis. Received: {name}={value!r}")
    if len(set(axes)) != len(axes):
        raise ValueError(f"`{name}` names the same axis twice. Received: {name}={value!r} "
                         f"for a {ndim}-D shape")
    return axes


def compute_fans(shape, layout="torch", *, in_axis=None, out_axis=None, batch_axis=()):
    r"""Return ``(fan_in, fan_out)`` of a weight ``shape``.

    With receptive field :math:`r` = product of the dimensions that are neither the input, the
    output nor a batch axis: ``fan_in = shape[in_axis] * r`` and ``fan_out = shape[out_axis] * r``.

    Parameters
    ----------
    shape : tuple of int
        At least two dimensions.
    layout : {"torch", "keras", "jax"}
        ``"torch"``: ``(out, in, *kernel)`` as ``torch.nn.init``; ``"keras"``/``"jax"``:
        ``(*kernel, in, out)`` as Keras and ``jax.nn.initializers``.
    in_axis, out_axis : int or tuple of int, optional
        Explicit axes (JAX convention); they override ``layout``. Negative values count from
        the end; a tuple makes the fan the product of those dimensions (e.g. the heads and
        head size of an attention kernel), exactly as ``jax.nn.initializers.variance_scaling``.
    batch_axis : int or tuple of int
        Axes excluded from the fans (JAX), e.g. a leading batch of independent matrices.

    With tuples: ``fan_in = prod(shape[in_axis]) * r`` and ``fan_out = prod(shape[out_axis]) * r``,
    ``r`` the product of the remaining dimensions. Where JAX would accept overlapping axes
    (and then divide by a dimension twice, giving a fractional receptive field) or an empty
    ``in_axis``/``out_axis``, weightinit refuses them.

    Raises
    ------
    ValueError
        For fewer than two dimensions, axes out of range or not distinct, or an unknown layout.

    References
    ----------
    PyTorch ``torch.nn.init._calculate_fan_in_and_fan_out``; JAX
    ``jax.nn.initializers._compute_fans``.
    """
    shape = V.check_shape(shape)
    V.check_choice("layout", layout, LAYOUTS)
    ndim = len(shape)
    if ndim < 2:
        raise ValueError(
            f"Fans are undefined for a {ndim}-D shape {shape}: fan-based schemes need a weight "
            "with input and output dimensions. For a bias use `weightinit.bias` or `zeros`; for "
            "a vector use `normal`/`uniform` with an explicit scale.")
    default_in, default_out = LAYOUTS[layout]
    i = _axes("in_axis", default_in if in_axis is None else in_axis, ndim, empty_ok=False)
    o = _axes("out_axis", default_out if out_axis is None else out_axis, ndim, empty_ok=False)
    b = _axes("batch_axis", batch_axis, ndim, empty_ok=True)
    if set(i) & set(o) or set(i) & set(b) or set(o) & set(b):
        raise ValueError(
            f"`in_axis`, `out_axis` and `batch_axis` must be distinct axes. Received "
            f"in_axis={list(i)}, out_axis={list(o)}, batch_axis={list(b)} (counted from 0) for "
            f"shape {shape}")
    used = set(i) | set(o) | set(b)
    receptive = math.prod(d for k, d in enumerate(shape) if k not in used)
    return (math.prod(shape[k] for k in i) * receptive,
            math.prod(shape[k] for k in o) * receptive)


def fan(mode, fan_in, fan_out):
    """The fan that ``mode`` names: fan_in, fan_out, (in+out)/2 or sqrt(in*out)."""
    V.check_choice("mode", mode, MODES)
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    if mode == "fan_avg":
        return (fan_in + fan_out) / 2.0
    return math.sqrt(fan_in * fan_out)
