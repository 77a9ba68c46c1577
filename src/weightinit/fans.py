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
        raise TypeError(f"`{name}` must be an integer axis. Received: {name}={value!r}")
    if not -ndim <= value < ndim:
        raise ValueError(f"`{name}`={value} is out of range for a {ndim}-D shape.")
    return int(value) % ndim


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
    in_axis, out_axis : int, optional
        Explicit axes (JAX convention); they override ``layout``.
    batch_axis : int or tuple of int
        Axes excluded from the fans (JAX), e.g. a leading batch of independent matrices.

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
    i = _axis("in_axis", default_in if in_axis is None else in_axis, ndim)
    o = _axis("out_axis", default_out if out_axis is None else out_axis, ndim)
    if isinstance(batch_axis, numbers.Integral):
        batch_axis = (batch_axis,)
    elif isinstance(batch_axis, (str, bytes)) or not hasattr(batch_axis, "__iter__"):
        raise TypeError(f"`batch_axis` must be an integer axis or a tuple of them. Received: "
                        f"batch_axis={batch_axis!r}")
    b = {_axis("batch_axis", a, ndim) for a in batch_axis}
    if i == o or i in b or o in b:
        raise ValueError(
            f"`in_axis`, `out_axis` and `batch_axis` must be distinct axes. Received "
            f"in_axis={i}, out_axis={o}, batch_axis={sorted(b)} for shape {shape}")
    receptive = math.prod(d for k, d in enumerate(shape) if k not in (i, o) and k not in b)
    return shape[i] * receptive, shape[o] * receptive


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
