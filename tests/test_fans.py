"""compute_fans under the PyTorch, Keras and JAX conventions (shared/reference.md, "Fans")."""

import math

import numpy as np
import pytest

from weightinit import compute_fans


@pytest.mark.parametrize("shape, expected", [
    ((30, 20), (20, 30)),  # nn.Linear(20, 30).weight: (out, in)
    ((1, 1), (1, 1)),
    ((16, 8, 3), (8 * 3, 16 * 3)),  # Conv1d(8, 16, 3)
    ((16, 8, 3, 5), (8 * 15, 16 * 15)),  # Conv2d(8, 16, (3, 5))
    ((16, 8, 3, 3, 3), (8 * 27, 16 * 27)),  # Conv3d
    ((4, 2, 1, 1), (2, 4)),  # 1x1 conv
])
def test_torch_layout(shape, expected):
    assert compute_fans(shape) == expected
    assert compute_fans(shape, "torch") == expected
    assert compute_fans(shape, layout="torch") == expected


@pytest.mark.parametrize("layout", ["keras", "jax"])
@pytest.mark.parametrize("shape, expected", [
    ((20, 30), (20, 30)),  # Dense kernel: (in, out)
    ((3, 8, 16), (8 * 3, 16 * 3)),  # Conv1D kernel (k, in, out)
    ((3, 5, 8, 16), (8 * 15, 16 * 15)),  # Conv2D (kh, kw, in, out)
    ((3, 3, 3, 8, 16), (8 * 27, 16 * 27)),
])
def test_keras_and_jax_layout(layout, shape, expected):
    assert compute_fans(shape, layout) == expected


def test_layouts_agree_on_transposed_kernels():
    torch_shape = (16, 8, 3, 5)
    keras_shape = (3, 5, 8, 16)  # the same kernel, axes moved
    assert compute_fans(torch_shape, "torch") == compute_fans(keras_shape, "keras")


def test_returns_python_ints():
    fi, fo = compute_fans((np.int64(6), np.int32(4), 3))
    assert type(fi) is int and type(fo) is int
    assert (fi, fo) == (12, 18)


@pytest.mark.parametrize("shape, kw, expected", [
    ((5, 7, 11), dict(in_axis=0, out_axis=2), (5 * 7, 11 * 7)),
    ((5, 7, 11), dict(in_axis=-3, out_axis=-1), (5 * 7, 11 * 7)),
    ((5, 7, 11), dict(in_axis=2, out_axis=0), (11 * 7, 5 * 7)),
    ((5, 7, 11), dict(in_axis=1, out_axis=0), (7 * 11, 5 * 11)),  # torch defaults, explicitly
    # a leading batch of independent (in, out) matrices (JAX batch_axis)
    ((4, 3, 5), dict(in_axis=-2, out_axis=-1, batch_axis=0), (3, 5)),
    ((4, 3, 5), dict(in_axis=-2, out_axis=-1, batch_axis=(0,)), (3, 5)),
    ((4, 3, 5), dict(in_axis=-2, out_axis=-1, batch_axis=-3), (3, 5)),
    ((4, 6, 3, 5), dict(in_axis=2, out_axis=3, batch_axis=(0, 1)), (3, 5)),
    ((4, 6, 3, 5), dict(in_axis=2, out_axis=3, batch_axis=(0,)), (3 * 6, 5 * 6)),
    ((4, 6, 3, 5), dict(in_axis=2, out_axis=3, batch_axis=()), (3 * 24, 5 * 24)),
])
def test_explicit_axes(shape, kw, expected):
    assert compute_fans(shape, **kw) == expected


def test_explicit_axes_override_layout():
    shape = (5, 7, 11)
    expected = (5 * 7, 11 * 7)
    for layout in ("torch", "keras", "jax"):
        assert compute_fans(shape, layout, in_axis=0, out_axis=2) == expected


def test_one_explicit_axis_keeps_the_layout_default_for_the_other():
    # torch default out_axis is 0; keras default in_axis is -2
    assert compute_fans((5, 7, 11), "torch", in_axis=2) == (11 * 7, 5 * 7)
    assert compute_fans((5, 7, 11), "keras", out_axis=0) == (7 * 11, 5 * 11)


def test_fans_are_independent_of_reference_formula():
    # A naive reference: fan = shape[axis] * product of all other non-batch dims.
    rng = np.random.default_rng(0)
    for _ in range(200):
        ndim = int(rng.integers(2, 6))
        shape = tuple(int(d) for d in rng.integers(1, 7, size=ndim))
        i, o = rng.choice(ndim, size=2, replace=False)
        rest = [k for k in range(ndim) if k not in (i, o)]
        batch = tuple(int(k) for k in rest if rng.random() < 0.3)
        r = math.prod(shape[k] for k in rest if k not in batch)
        assert compute_fans(shape, in_axis=int(i), out_axis=int(o), batch_axis=batch) == (
            shape[i] * r, shape[o] * r)


@pytest.mark.parametrize("shape, ndim", [((5,), 1), (5, 1), ((), 0)])
@pytest.mark.parametrize("layout", ["torch", "keras", "jax"])
def test_fewer_than_two_dims(shape, ndim, layout):
    with pytest.raises(ValueError, match=rf"Fans are undefined for a {ndim}-D shape"):
        compute_fans(shape, layout)


@pytest.mark.parametrize("shape, kw, exc, match", [
    ((3, 4), dict(in_axis=2), ValueError, r"`in_axis`=2 is out of range for a 2-D shape"),
    ((3, 4), dict(in_axis=-3), ValueError, r"`in_axis`=-3 is out of range"),
    ((3, 4), dict(out_axis=5), ValueError, r"`out_axis`=5 is out of range"),
    ((3, 4, 5), dict(batch_axis=3), ValueError, r"`batch_axis`=3 is out of range"),
    ((3, 4, 5), dict(batch_axis=(0, -4)), ValueError, r"`batch_axis`=-4 is out of range"),
    ((3, 4), dict(in_axis=0, out_axis=0), ValueError, "must be distinct"),
    ((3, 4), dict(in_axis=1, out_axis=-1), ValueError, "must be distinct"),
    ((3, 4), dict(out_axis=-1), ValueError, "must be distinct"),  # torch in_axis is 1 == -1
    ((3, 4, 5), dict(in_axis=0, out_axis=1, batch_axis=0), ValueError, "must be distinct"),
    ((3, 4, 5), dict(in_axis=0, out_axis=1, batch_axis=-2), ValueError, "must be distinct"),
    ((3, 4), dict(in_axis=1.0), TypeError, r"`in_axis` must be an integer axis"),
    ((3, 4), dict(out_axis="0"), TypeError, r"`out_axis` must be an integer axis"),
    ((3, 4), dict(in_axis=True), TypeError, r"`in_axis` must be an integer axis"),
    ((3, 4, 5), dict(batch_axis=(0.0,)), TypeError, r"`batch_axis` must be an integer axis"),
    ((3, 4, 5), dict(batch_axis=False), TypeError, r"`batch_axis` must be an integer axis"),
    ((3, 4, 5), dict(in_axis=(), out_axis=2), ValueError, r"`in_axis` must name at least one"),
    ((3, 4, 5), dict(in_axis=0, out_axis=[]), ValueError, r"`out_axis` must name at least one"),
    ((3, 4, 5), dict(in_axis=(0, -3), out_axis=2), ValueError, r"`in_axis` names the same axis"),
    ((3, 4, 5), dict(in_axis=(0, 1), out_axis=(1, 2)), ValueError, "must be distinct"),
    ((3, 4, 5), dict(in_axis=(0, 1), out_axis=2, batch_axis=-3), ValueError, "must be distinct"),
    ((3, 4, 5), dict(in_axis=(0, 3), out_axis=2), ValueError, r"`in_axis`=3 is out of range"),
    ((3, 4, 5), dict(in_axis=(0, 1.0), out_axis=2), TypeError, r"`in_axis` must be an integer"),
    ((3, 4, 5), dict(in_axis="01", out_axis=2), TypeError, r"`in_axis` must be an integer"),
])
def test_bad_axes(shape, kw, exc, match):
    with pytest.raises(exc, match=match):
        compute_fans(shape, **kw)


def test_in_axis_minus_one_conflicts_with_torch_out_axis_only_when_equal():
    # torch: out_axis = 0; in_axis=-1 on a 2-D shape is axis 1, which is fine
    assert compute_fans((3, 4), in_axis=-1) == (4, 3)


@pytest.mark.parametrize("layout", ["pytorch", "Keras", "", None, 0])
def test_unknown_layout(layout):
    with pytest.raises(ValueError, match=r"Unknown `layout`"):
        compute_fans((3, 4), layout)


@pytest.mark.parametrize("shape, exc, match", [
    ((3, 0), ValueError, r"`shape` must contain positive dimensions"),
    ((3, -4), ValueError, r"`shape` must contain positive dimensions"),
    ((3, 4.0), TypeError, r"`shape` must contain integers only"),
    ((3, True), TypeError, r"`shape` must contain integers only"),
    (3.5, TypeError, r"`shape` must be a tuple of positive integers"),
    (None, TypeError, r"`shape` must be a tuple of positive integers"),
])
def test_bad_shapes(shape, exc, match):
    with pytest.raises(exc, match=match):
        compute_fans(shape)


def test_huge_shape_is_arithmetic_only():
    # No allocation: fans of a shape far beyond memory are plain integer products.
    assert compute_fans((2**40, 2**30, 3, 3)) == (2**30 * 9, 2**40 * 9)


@pytest.mark.parametrize("shape, kw, expected", [
    ((2, 3, 5, 7), dict(in_axis=(0, 1), out_axis=(2, 3)), (6, 35)),          # no receptive field
    ((2, 3, 5, 7), dict(in_axis=(-4, -3), out_axis=-1), (2 * 3 * 5, 7 * 5)),  # r = shape[2]
    ((2, 3, 5, 7), dict(in_axis=[1], out_axis=(3,), batch_axis=(0, 2)), (3, 7)),
    ((8, 4, 16), dict(in_axis=0, out_axis=(-2, -1)), (8, 64)),  # attention out: (d, heads, hd)
])
def test_tuple_axes(shape, kw, expected):
    assert compute_fans(shape, **kw) == expected


def test_tuple_and_negative_axes_equal_jax_fans():
    # jax.nn.initializers.variance_scaling's own fan computation, for random disjoint axis sets
    # given as ints or tuples, positive or negative.
    jax_init = pytest.importorskip("jax._src.nn.initializers")
    rng = np.random.default_rng(1)
    for _ in range(300):
        ndim = int(rng.integers(2, 6))
        shape = tuple(int(d) for d in rng.integers(1, 6, size=ndim))
        perm = [int(k) for k in rng.permutation(ndim)]
        n_in = int(rng.integers(1, ndim))
        n_out = int(rng.integers(1, ndim - n_in + 1))
        n_batch = int(rng.integers(0, ndim - n_in - n_out + 1))
        groups = perm[:n_in], perm[n_in:n_in + n_out], perm[n_in + n_out:n_in + n_out + n_batch]

        def spell(axes):  # random sign convention; an int when single, sometimes
            axes = [a - ndim if rng.random() < 0.5 else a for a in axes]
            return axes[0] if len(axes) == 1 and rng.random() < 0.5 else tuple(axes)

        i, o = spell(groups[0]), spell(groups[1])
        b = spell(groups[2]) if n_batch else ()
        want = jax_init._compute_fans(shape, in_axis=i, out_axis=o, batch_axis=b)
        assert compute_fans(shape, in_axis=i, out_axis=o, batch_axis=b) == want, (shape, i, o, b)
