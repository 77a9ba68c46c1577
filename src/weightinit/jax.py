r"""JAX adapter: weightinit schemes as ``jax.nn.initializers``-style functions (Flax
``kernel_init``).

``import weightinit`` never imports JAX; this module does (install it with
``pip install "weightinit[jax]"``).

:func:`initializer` returns ``init(key, shape, dtype=jnp.float32)``. The values are computed on
the host by weightinit (Philox, not JAX's PRNG) and equal
``weightinit.init(shape, scheme, seed=key_seed(key), layout="jax", in_axis=..., out_axis=...,
batch_axis=..., **params)`` in float32 (float64 when ``dtype`` is float64 and x64 is enabled),
converted to ``dtype``. Inside ``jax.jit`` (e.g. ``jax.jit(model.init)``) the key is a tracer
and the host computation runs through ``jax.pure_callback``; the values are the same.
"""

import hashlib

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without jax
    raise ImportError(
        "weightinit.jax needs JAX, which is not installed. Install it with: "
        'pip install "weightinit[jax]"') from exc

from . import _validate as V
from .initializers import ALIASES, get

__all__ = ["initializer", "key_seed"]

#: Schemes whose variance comes from the fans (they take in_axis/out_axis/batch_axis).
FAN_SCHEMES = ("variance_scaling", "lecun_normal", "lecun_uniform", "glorot_normal",
               "glorot_uniform", "he_normal", "he_uniform")


def _key_words(key):
    """The key's data as a NumPy uint32 array (typed keys through ``jax.random.key_data``)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return key


def _seed_from_words(words):
    w = np.asarray(words, dtype=np.uint32).reshape(-1)
    if w.size == 2:
        return (int(w[0]) << 32) | int(w[1])
    return int.from_bytes(hashlib.blake2b(w.astype("<u4").tobytes(), digest_size=8).digest(),
                          "little")


def key_seed(key):
    """The 64-bit weightinit seed of a JAX PRNG key.

    A two-word key (threefry, the default: ``jax.random.key(s)`` or ``jax.random.PRNGKey(s)``,
    stored as ``[s >> 32, s & 0xFFFFFFFF]``) gives ``(k[0] << 32) | k[1]``, so the key of seed
    ``s`` maps back to ``s``; keys with other word counts (e.g. ``rbg``) give the first 8 bytes
    of the BLAKE2b hash of their little-endian words. Accepts new-style typed keys and raw
    ``uint32`` key arrays (not tracers: inside ``jit`` :func:`initializer` converts on the host).
    """
    words = _key_words(key)
    if not jnp.issubdtype(words.dtype, jnp.uint32) or words.ndim != 1:
        raise TypeError("`key` must be a single PRNG key (a typed key or a uint32 key array). "
                        f"Received dtype {words.dtype} and shape {words.shape}")
    return _seed_from_words(np.asarray(words))


def initializer(scheme, *, in_axis=-2, out_axis=-1, batch_axis=(), **params):
    r"""A JAX initializer ``init(key, shape, dtype=jnp.float32)`` drawing ``scheme``.

    Usable wherever JAX/Flax take an initializer, e.g.
    ``flax.linen.Dense(128, kernel_init=initializer("he_normal"))``.

    Parameters
    ----------
    scheme : str
        Any name of ``weightinit.schemes(aliases=True)``.
    in_axis, out_axis : int
        Axes of the weight's input and output dimension (JAX's defaults -2 and -1, the Flax
        ``(*kernel, in, out)`` layout); the other axes not in ``batch_axis`` are the receptive
        field. Used by the fan-based schemes (variance_scaling, lecun_*, glorot_*, he_*).
    batch_axis : int or tuple of int
        Axes excluded from the fans.
    **params
        The scheme's parameters (``distribution="truncated_normal"`` gives the truncated
        normals of ``jax.nn.initializers``; weightinit's *_normal schemes are untruncated by
        default).

    Returns
    -------
    callable
        ``init(key, shape, dtype=jnp.float32)``: ``key`` a PRNG key (its seed: :func:`key_seed`),
        ``shape`` a tuple of ints, ``dtype`` any floating dtype (bfloat16 and float16 are
        rounded from float32). Values equal ``weightinit.init(shape, scheme,
        seed=key_seed(key), layout="jax", **axes, **params)`` converted to ``dtype``.

    Raises
    ------
    ValueError, TypeError
        At creation for an unknown scheme or reserved parameters (``seed``, ``dtype``, ``out``,
        ``layout``); at call for a non-floating dtype or parameters the shape does not allow.
    """
    fn = get(scheme)
    for bad in ("seed", "dtype", "out", "layout"):
        if bad in params:
            raise TypeError(f"`{bad}` cannot be a parameter of a JAX initializer: the seed comes "
                            "from the key, the dtype from the call, the layout is 'jax'.")
    axes = {}
    if ALIASES.get(scheme, scheme) in FAN_SCHEMES:
        axes = {"in_axis": in_axis, "out_axis": out_axis, "batch_axis": batch_axis}
    elif (in_axis, out_axis, batch_axis) != (-2, -1, ()):
        raise TypeError(f"`in_axis`/`out_axis`/`batch_axis` only apply to fan-based schemes "
                        f"({', '.join(FAN_SCHEMES)}); {scheme!r} does not use fans.")

    def host(shape, np_dtype, words):
        return fn(shape, seed=_seed_from_words(words), dtype=np_dtype, layout="jax", **axes,
                  **params)

    def init(key, shape, dtype=jnp.float32):
        shape = V.check_shape(shape)
        dtype = jax.dtypes.canonicalize_dtype(dtype)
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(f"`dtype` must be a floating dtype. Received: {dtype}")
        np_dtype = np.float64 if dtype == np.float64 else np.float32
        # Validate parameters on the host now (raises at trace time, not inside the callback).
        from .random import planning

        with planning():
            fn(shape, seed=0, dtype=np_dtype, layout="jax", **axes, **params)
        words = _key_words(key)
        if words.dtype != jnp.uint32 or words.ndim != 1:
            raise TypeError("`key` must be a single PRNG key (a typed key or a uint32 key "
                            f"array). Received dtype {words.dtype} and shape {words.shape}")
        if isinstance(words, jax.core.Tracer):
            out = jax.pure_callback(
                lambda w: host(shape, np_dtype, w),
                jax.ShapeDtypeStruct(shape, np_dtype), words, vmap_method="sequential")
        else:
            out = jnp.asarray(host(shape, np_dtype, np.asarray(words)))
        return out.astype(dtype)

    init.scheme = scheme
    return init
