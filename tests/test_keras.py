"""Keras 3 adapter: weightinit.keras initializers on the torch backend (in process) and on the
JAX backend (in a subprocess, since Keras fixes its backend at import).

Reference values are weightinit.init(shape, scheme, seed=..., layout="keras"); reference fans
are Keras' own compute_fans.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import weightinit as wi  # noqa: E402
import weightinit.keras as wk  # noqa: E402
from keras.src.initializers.random_initializers import compute_fans as keras_fans  # noqa: E402

#: A shape each scheme accepts (Keras layout: (*kernel, in, out)).
SHAPES = {"dirac": (3, 3, 4, 4), "identity": (5, 5), "orthogonal": (12, 7),
          "delta_orthogonal": (3, 3, 4, 6)}
PARAMS = {"constant": {"value": 0.5}, "truncated_normal": {"std": 0.1, "low": -0.15, "high": 0.2}}


def numpy(t):
    if hasattr(t, "value"):  # a keras.Variable
        t = t.value
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def test_one_class_per_scheme_with_its_name():
    assert set(wk.CLASSES) == set(wi.schemes())
    assert wk.HeNormal is wk.CLASSES["he_normal"] and wk.GlorotUniform.__name__ == "GlorotUniform"
    for scheme, cls in wk.CLASSES.items():
        assert issubclass(cls, keras.initializers.Initializer)
        assert cls.__name__ in wk.__all__ and scheme in cls.__doc__


@pytest.mark.parametrize("scheme", wi.schemes())
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_values_equal_weightinit_init(scheme, dtype):
    shape, params = SHAPES.get(scheme, (3, 2, 6, 5)), PARAMS.get(scheme, {})
    init = wk.CLASSES[scheme](seed=12345, **params)
    got = init(shape, dtype)
    assert tuple(got.shape) == shape and keras.backend.standardize_dtype(got.dtype) == dtype
    want = wi.init(shape, scheme, seed=12345, layout="keras", dtype=np.dtype(dtype), **params)
    np.testing.assert_array_equal(numpy(got), want)
    np.testing.assert_array_equal(numpy(wk.Initializer(scheme, seed=12345, **params)(shape,
                                                                                      dtype)), want)


@pytest.mark.parametrize("shape", [(7,), (6, 5), (3, 6, 5), (3, 2, 6, 5), (2, 3, 2, 4, 5)])
def test_fans_are_keras_fans(shape):
    # A uniform with variance 3/fan_in: the values are bitwise those drawn with Keras' fans, and
    # they differ from those of any other fan (the bound sqrt(3 * 3 / fan_in) scales them).
    fans = keras_fans(shape)
    init = wk.VarianceScaling(seed=4, scale=3.0, mode="fan_in", distribution="uniform")
    got = numpy(init(shape))
    want = wi.init(shape, "variance_scaling", seed=4, scale=3.0, mode="fan_in",
                   distribution="uniform", fans=fans)
    np.testing.assert_array_equal(got, want)
    assert np.abs(got).max() <= np.sqrt(9.0 / fans[0])
    wrong = wi.init(shape, "variance_scaling", seed=4, scale=3.0, mode="fan_in",
                    distribution="uniform", fans=(fans[0] + 1, fans[1]))
    assert not np.array_equal(got, wrong)


def test_dense_and_conv_layers():
    dense = keras.layers.Dense(8, kernel_initializer=wk.HeNormal(seed=0),
                               bias_initializer=wk.Constant(value=0.1))
    dense.build((None, 4))
    np.testing.assert_array_equal(numpy(dense.kernel), wi.init((4, 8), "he_normal", seed=0,
                                                               layout="keras"))
    np.testing.assert_array_equal(numpy(dense.bias), np.full(8, 0.1, np.float32))
    conv = keras.layers.Conv2D(6, 3, kernel_initializer=wk.GlorotUniform(seed=1))
    conv.build((None, 9, 9, 2))
    np.testing.assert_array_equal(numpy(conv.kernel), wi.init((3, 3, 2, 6), "glorot_uniform",
                                                              seed=1, layout="keras"))


def test_seed_semantics_as_keras():
    shape = (16, 16)
    seeded = wk.HeUniform(seed=7)
    np.testing.assert_array_equal(numpy(seeded(shape)), numpy(seeded(shape)))  # stateless
    unseeded = wk.HeUniform()  # one seed from OS entropy at creation, then fixed
    np.testing.assert_array_equal(numpy(unseeded(shape)), numpy(unseeded(shape)))
    assert unseeded.get_config()["seed"] is None
    # two unseeded objects: equal only if their 64-bit entropy seeds collide (p = 2**-64)
    assert not np.array_equal(numpy(unseeded(shape)), numpy(wk.HeUniform()(shape)))
    # a SeedGenerator advances: new values each call, reproducible from its seed
    gen_a = wk.HeUniform(seed=keras.random.SeedGenerator(3))
    gen_b = wk.HeUniform(seed=keras.random.SeedGenerator(3))
    a1, a2 = numpy(gen_a(shape)), numpy(gen_a(shape))
    assert not np.array_equal(a1, a2)
    np.testing.assert_array_equal(a1, numpy(gen_b(shape)))
    np.testing.assert_array_equal(a2, numpy(gen_b(shape)))


def test_low_precision_dtypes_are_rounded_from_float32():
    import torch

    f32 = wi.init((8, 8), "he_normal", seed=2, layout="keras")
    for dtype, torch_dtype in (("bfloat16", torch.bfloat16), ("float16", torch.float16)):
        got = wk.HeNormal(seed=2)((8, 8), dtype)
        assert keras.backend.standardize_dtype(got.dtype) == dtype
        want = torch.from_numpy(f32).to(torch_dtype)  # round to nearest even
        assert torch.equal(got.cpu(), want)


@pytest.mark.parametrize("scheme", wi.schemes())
def test_config_round_trip(scheme):
    params = PARAMS.get(scheme, {})
    for init in (wk.CLASSES[scheme](seed=9, **params), wk.Initializer(scheme, seed=9, **params)):
        config = init.get_config()
        again = type(init).from_config(config)
        assert again.get_config() == config
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(init))
        assert type(restored) is type(init) and restored.get_config() == config
        shape = SHAPES.get(scheme, (4, 3))
        np.testing.assert_array_equal(numpy(restored(shape)), numpy(init(shape)))
    gen = wk.Normal(seed=keras.random.SeedGenerator(5), std=0.5)
    assert type(wk.Normal.from_config(gen.get_config()).seed) is keras.random.SeedGenerator


# Keras' torch backend converts variables with np.array(tensor) when saving, which NumPy 2 warns
# about for torch tensors; the warning is Keras' own, not this adapter's.
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept:DeprecationWarning")
def test_saved_model_reloads(tmp_path):
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(5, kernel_initializer=wk.GlorotNormal(seed=3, gain=2.0)),
        keras.layers.Dense(2, kernel_initializer=wk.Initializer("orthogonal", seed=4)),
    ])
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for old, new in zip(model.layers, loaded.layers):
        assert type(new.kernel_initializer) is type(old.kernel_initializer)
        assert new.kernel_initializer.get_config() == old.kernel_initializer.get_config()
        np.testing.assert_array_equal(numpy(new.kernel), numpy(old.kernel))
    np.testing.assert_array_equal(numpy(loaded.layers[0].kernel),
                                  wi.init((6, 5), "glorot_normal", seed=3, gain=2.0,
                                          layout="keras"))


@pytest.mark.parametrize("make, call, exc, match", [
    (lambda: wk.Initializer("nope"), None, ValueError, "Unknown `scheme`"),
    (lambda: wk.Normal(sd=1.0), None, TypeError, "Unknown parameter.*'sd'"),
    (lambda: wk.HeNormal(dtype="float32"), None, TypeError, "`dtype` cannot be a parameter"),
    (lambda: wk.HeNormal(layout="torch"), None, TypeError, "`layout` cannot be a parameter"),
    (lambda: wk.HeNormal(seed=-1), None, ValueError, "seed"),
    (lambda: wk.HeNormal(seed=2**64), None, ValueError, "seed"),
    (lambda: wk.HeNormal(seed=1.5), None, TypeError, "seed"),
    (lambda: wk.HeNormal(seed=0), ((4, 4), "int32"), TypeError, "floating dtype"),
    (lambda: wk.HeNormal(seed=0), ((4, 4), "bool"), TypeError, "floating dtype"),
    (lambda: wk.HeNormal(seed=0), ((0, 4), None), ValueError, "shape"),
    (lambda: wk.HeNormal(seed=0), ((-3, 4), None), ValueError, "shape"),
    (lambda: wk.HeNormal(seed=0, mode="fan_sideways"), ((4, 4), None), ValueError, "mode"),
    (lambda: wk.Orthogonal(seed=0, gain=float("nan")), ((4, 4), None), ValueError, "gain"),
    (lambda: wk.Dirac(seed=0), ((4, 4), None), ValueError, "dirac"),
])
def test_bad_input(make, call, exc, match):
    with pytest.raises(exc, match=match):
        init = make()
        init(*call)


def test_bad_call_does_not_advance_a_seed_generator():
    gen = keras.random.SeedGenerator(1)
    init = wk.Normal(seed=gen)
    with pytest.raises(TypeError):
        init((3, 3), "int32")
    np.testing.assert_array_equal(numpy(init((3, 3))),
                                  numpy(wk.Normal(seed=keras.random.SeedGenerator(1))((3, 3))))


def test_import_names_the_extra_when_keras_is_missing():
    code = ("import sys; import weightinit; assert 'keras' not in sys.modules; "
            "sys.modules['keras'] = None\n"
            "try:\n    import weightinit.keras\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert 'pip install "weightinit[keras]"' in out


def test_jax_backend():
    pytest.importorskip("jax")
    code = """
import numpy as np, keras, weightinit as wi, weightinit.keras as wk
assert keras.backend.backend() == "jax"
dense = keras.layers.Dense(8, kernel_initializer=wk.LecunNormal(seed=5))
dense.build((None, 3))
got = np.asarray(dense.kernel.value)
assert np.array_equal(got, wi.init((3, 8), "lecun_normal", seed=5, layout="keras"))
x = wk.Orthogonal(seed=1)((6, 6), "bfloat16")
assert str(x.dtype) == "bfloat16"
print("ok")
"""
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
