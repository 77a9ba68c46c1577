"""JAX adapter: weightinit.jax.initializer and key_seed, eagerly, under jit and vmap, in Flax.

Reference values are weightinit.init under the documented key -> seed rule, with the seed
recomputed here from the key's words.
"""

import subprocess
import sys

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

import weightinit as wi  # noqa: E402
from weightinit.jax import initializer, key_seed  # noqa: E402


def seed_from_key(key):
    """(k0 << 32) | k1 of a two-word key, read from its raw data."""
    words = np.asarray(jax.random.key_data(key)) if jnp.issubdtype(
        key.dtype, jax.dtypes.prng_key) else np.asarray(key)
    return (int(words[0]) << 32) | int(words[1])


def test_key_seed():
    assert key_seed(jax.random.key(42)) == 42
    assert key_seed(jax.random.PRNGKey(7)) == 7
    raw = jnp.array([3, 5], dtype=jnp.uint32)
    assert key_seed(raw) == (3 << 32) | 5
    k = jax.random.split(jax.random.key(0))[1]
    assert key_seed(k) == seed_from_key(k)
    rbg = jax.random.key(1, impl="rbg")
    s = key_seed(rbg)
    assert 0 <= s < 2**64 and s == key_seed(jax.random.key(1, impl="rbg"))
    with pytest.raises(TypeError, match="single PRNG key"):
        key_seed(jnp.zeros((2, 2), jnp.uint32))


@pytest.mark.parametrize("scheme, shape, kw", [
    ("he_normal", (64, 32), {}),
    ("glorot_normal", (3, 3, 16, 32), {"distribution": "truncated_normal"}),
    ("lecun_uniform", (32, 16), {"in_axis": -1, "out_axis": -2}),
    ("variance_scaling", (4, 8, 6), {"batch_axis": 0, "scale": 2.0, "mode": "fan_avg"}),
    ("variance_scaling", (4, 3, 8), {"in_axis": (0, 1), "out_axis": -1, "mode": "fan_avg"}),
    ("he_normal", (6, 2, 4), {"in_axis": -3, "out_axis": (-2, -1)}),
    ("orthogonal", (20, 12), {}),
    ("truncated_normal", (5, 5), {"std": 0.02, "low": -0.04, "high": 0.04}),
])
def test_values_equal_weightinit_init(scheme, shape, kw):
    key = jax.random.fold_in(jax.random.key(3), 9)
    init = initializer(scheme, **kw)
    got = init(key, shape)
    assert got.dtype == jnp.float32 and got.shape == shape
    want = wi.init(shape, scheme, seed=seed_from_key(key), layout="jax", **kw)
    np.testing.assert_array_equal(np.asarray(got), want)
    jitted = jax.jit(lambda k: init(k, shape))(key)  # key is a tracer: host callback
    np.testing.assert_array_equal(np.asarray(jitted), want)


def test_axes_change_the_fans():
    key = jax.random.key(0)
    a = initializer("lecun_normal")(key, (10, 40))  # fan_in 10
    b = initializer("lecun_normal", in_axis=-1, out_axis=-2)(key, (10, 40))  # fan_in 40
    np.testing.assert_allclose(np.asarray(b), np.asarray(a) / 2.0, rtol=1e-6)


def test_tuple_axes_give_jax_fans():
    # The attention-output kernel (heads, head_dim, d) of Flax: fan_in = heads * head_dim.
    # Values equal weightinit.init with JAX's own fans passed explicitly.
    from jax._src.nn.initializers import _compute_fans

    key, shape = jax.random.key(11), (4, 8, 32)
    axes = {"in_axis": (-3, -2), "out_axis": -1}
    got = np.asarray(initializer("lecun_normal", **axes)(key, shape))
    fans = tuple(int(f) for f in _compute_fans(shape, **axes))
    assert fans == (32, 32)
    want = wi.init(shape, "lecun_normal", seed=seed_from_key(key), fans=fans)
    np.testing.assert_array_equal(got, want)


def test_dtypes_and_vmap():
    key = jax.random.key(5)
    init = initializer("he_uniform")
    f32 = np.asarray(init(key, (8, 16)))
    for dt in (jnp.bfloat16, jnp.float16):
        got = init(key, (8, 16), dt)
        assert got.dtype == dt
        np.testing.assert_array_equal(np.asarray(got), np.asarray(jnp.asarray(f32).astype(dt)))
    with pytest.raises(TypeError, match="floating"):
        init(key, (8, 16), jnp.int32)
    keys = jax.random.split(key, 3)
    stacked = jax.vmap(lambda k: init(k, (4, 6)))(keys)
    for k, row in zip(keys, stacked):
        np.testing.assert_array_equal(np.asarray(row), np.asarray(init(k, (4, 6))))


def test_flax_dense_kernel_init_is_bitwise_weightinit():
    nn = pytest.importorskip("flax.linen")
    seen = {}

    def spy(name, init):
        def wrapped(key, shape, dtype=jnp.float32):
            seen[name] = (key, shape)
            return init(key, shape, dtype)
        return wrapped

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.Dense(32, kernel_init=spy("a", initializer("he_normal")))(x))
            return nn.Dense(4, kernel_init=spy("b", initializer("he_normal")))(x)

    x = jnp.ones((2, 16))
    params = MLP().init(jax.random.key(0), x)["params"]
    keys = dict(seen)
    assert set(keys) == {"a", "b"}
    for name, layer in (("a", "Dense_0"), ("b", "Dense_1")):
        key, shape = keys[name]
        want = wi.init(shape, "he_normal", layout="jax", seed=seed_from_key(key))
        np.testing.assert_array_equal(np.asarray(params[layer]["kernel"]), want)
        assert not np.asarray(params[layer]["bias"]).any()
    jitted = jax.jit(MLP().init)(jax.random.key(0), x)["params"]
    for layer in ("Dense_0", "Dense_1"):
        np.testing.assert_array_equal(np.asarray(jitted[layer]["kernel"]),
                                      np.asarray(params[layer]["kernel"]))


def test_errors():
    with pytest.raises(ValueError, match="Unknown `scheme`"):
        initializer("kaiming")
    with pytest.raises(TypeError, match="`seed` cannot be a parameter"):
        initializer("he_normal", seed=1)
    with pytest.raises(TypeError, match="fan-based"):
        initializer("orthogonal", in_axis=0)
    with pytest.raises(ValueError, match="Fans are undefined"):
        initializer("he_normal")(jax.random.key(0), (5,))
    with pytest.raises(ValueError, match="out of range"):
        initializer("he_normal", in_axis=3)(jax.random.key(0), (5, 4))


def test_import_needs_no_jax_and_names_the_extra():
    code = ("import sys; sys.modules['jax'] = None\n"
            "try:\n    import weightinit.jax\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert 'pip install "weightinit[jax]"' in out


SHARDED = r"""
import os
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from flax import nnx
import weightinit as wi
import weightinit.jax as wj

assert jax.device_count() == 4
calls = []
real = wi.initializers.variance_scaling
def counting(shape, *a, region=None, **k):
    if not wi.random.is_planning():  # the validation pass draws nothing
        calls.append(region)
    return real(shape, *a, region=region, **k)
wi.initializers.variance_scaling = counting  # he_normal draws through it

mesh = jax.make_mesh((2, 2), ("x", "y"))
init = wj.initializer("he_normal")
key = jax.random.key(3)
shape = (8, 12)
full = wi.init(shape, "he_normal", seed=3, layout="jax")
for spec in (P("x", "y"), P(None, ("x", "y")), P("y"), P()):
    sh = NamedSharding(mesh, spec)
    local = sh.shard_shape(shape)
    for how, f in (("eager", lambda: init(key, shape, out_sharding=sh)),
                   ("jit", jax.jit(lambda k: init(k, shape, out_sharding=sh),
                                   out_shardings=sh).__call__)):
        calls.clear()
        a = f() if how == "eager" else f(key)
        assert a.sharding.spec == sh.spec
        assert np.asarray(a).tobytes() == full.tobytes(), (spec, how)
        assert all(s.data.shape == local for s in a.addressable_shards)
        # every host draw is one shard's region, never the whole tensor (unless replicated)
        assert calls and all(r is not None for r in calls), calls
        sizes = {tuple(x.stop - x.start for x in r) if isinstance(r[0], slice) else tuple(r[1])
                 for r in calls}
        assert sizes == {local}, (spec, how, sizes)

class Model(nnx.Module):
    def __init__(self, rngs):
        self.dense = nnx.Linear(8, 12, rngs=rngs, use_bias=False,
                                kernel_init=wj.with_partitioning(init, (None, "y"), mesh))

with jax.set_mesh(mesh):
    m = nnx.jit(lambda: Model(nnx.Rngs(params=3)))()
k = m.dense.kernel[...]
assert k.sharding.spec == P(None, "y"), k.sharding
expect = np.asarray(init(nnx.Rngs(params=3).params(), (8, 12)))
assert np.asarray(k).tobytes() == expect.tobytes()
assert all(s.data.shape == (8, 6) for s in k.addressable_shards)
with jax.set_mesh(mesh):  # a PartitionSpec takes the mesh in context
    a = init(key, shape, out_sharding=P("x", "y"))
    b = jax.jit(lambda k: init(k, shape, out_sharding=P("x", "y")))(key)
for x in (a, b):
    assert np.asarray(x).tobytes() == full.tobytes()
    assert all(s.data.shape == (4, 6) for s in x.addressable_shards)
try:  # shards must divide the shape evenly
    init(key, (7, 12), out_sharding=NamedSharding(mesh, P("x")))
    raise AssertionError("uneven shards accepted")
except ValueError as e:
    assert "`out_sharding`" in str(e)
print("ok")
"""


def test_sharded_initialisation_on_four_devices():
    """Each of 4 (host-platform) devices draws only its shard; the array equals the unsharded
    one bitwise. A subprocess, as the device count must be set before JAX initialises."""
    out = subprocess.run([sys.executable, "-c", SHARDED], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def test_out_sharding_errors():
    init = initializer("he_normal")
    with pytest.raises(TypeError, match="`out_sharding`"):
        init(jax.random.key(0), (4, 4), out_sharding="model")
    with pytest.raises(ValueError, match="no mesh is in context"):
        init(jax.random.key(0), (4, 4), out_sharding=jax.sharding.PartitionSpec())
