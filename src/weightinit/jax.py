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

Sharded initialisation: ``init(key, shape, dtype, out_sharding=NamedSharding(mesh, P(...)))``
(the ``out_sharding`` argument of ``jax.nn.initializers``) gives each device only its shard,
computed on the host from its region (``weightinit.init(..., region=...)``) with memory ~ the
shard: eagerly through :func:`jax.make_array_from_callback`, inside ``jit`` through
:func:`jax.shard_map` whose body finds the shard's offsets from the device's mesh position
(``jax.lax.axis_index``). The result is bitwise the unsharded array for any mesh.
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
from .initializers import ALIASES, FAN_SCHEMES, get

__all__ = ["initializer", "key_seed", "with_partitioning", "roles", "recipe_init"]


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
    in_axis, out_axis : int or tuple of int
        Axes of the weight's input and output dimensions (JAX's defaults -2 and -1, the Flax
        ``(*kernel, in, out)`` layout); negative values count from the end, and a tuple makes
        the fan the product of its dimensions (e.g. ``in_axis=(-3, -2)`` for a
        ``(heads, head_dim, d)`` attention-output kernel), as ``jax.nn.initializers``. The other
        axes not in ``batch_axis`` are the receptive field. Used by the fan-based schemes
        (variance_scaling, lecun_*, glorot_*, he_*); the fans equal JAX's ``_compute_fans``
        for the same arguments (overlapping or empty axis sets are refused).
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
        rounded from float32), ``out_sharding`` a ``NamedSharding`` (or a ``PartitionSpec``
        under ``jax.set_mesh``): each device computes only its shard. Values equal
        ``weightinit.init(shape, scheme, seed=key_seed(key), layout="jax", **axes, **params)``
        converted to ``dtype``.

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

    def host(shape, np_dtype, words, region=None):
        return fn(shape, seed=_seed_from_words(words), dtype=np_dtype, layout="jax", **axes,
                  region=region, **params)

    def init(key, shape, dtype=jnp.float32, out_sharding=None):
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
        if out_sharding is not None:
            return _sharded(host, words, shape, np_dtype, _named(out_sharding)).astype(dtype)
        if isinstance(words, jax.core.Tracer):
            out = jax.pure_callback(
                lambda w: host(shape, np_dtype, w),
                jax.ShapeDtypeStruct(shape, np_dtype), words, vmap_method="sequential")
        else:
            out = jnp.asarray(host(shape, np_dtype, np.asarray(words)))
        return out.astype(dtype)

    init.scheme = scheme
    return init


def _named(sharding):
    """``out_sharding`` as a NamedSharding (a PartitionSpec takes the mesh in context)."""
    if isinstance(sharding, jax.sharding.NamedSharding):
        return sharding
    if isinstance(sharding, jax.sharding.PartitionSpec):
        try:
            mesh = jax.sharding.get_mesh()
        except ValueError:  # inside jit: the abstract mesh is enough for shard_map
            mesh = jax.sharding.get_abstract_mesh()
        if mesh is None or getattr(mesh, "empty", not mesh.shape):
            raise ValueError("`out_sharding` is a PartitionSpec but no mesh is in context: pass "
                             "NamedSharding(mesh, spec) or call under jax.set_mesh(mesh).")
        return jax.sharding.NamedSharding(mesh, sharding)
    raise TypeError("`out_sharding` must be a NamedSharding or a PartitionSpec. Received: "
                    f"{sharding!r}")


def _shard_offsets(sharding, shape):
    """Per axis: the mesh axes it is split over and the shard's extent."""
    try:
        local = sharding.shard_shape(shape)
    except ValueError as exc:
        raise ValueError(f"`out_sharding` {sharding.spec} does not divide shape {shape} evenly: "
                         f"{exc}") from None
    spec = tuple(sharding.spec) + (None,) * (len(shape) - len(sharding.spec))
    names = [() if a is None else (a if isinstance(a, tuple) else (a,)) for a in spec]
    return local, names


def _sharded(host, words, shape, np_dtype, sharding):
    """The tensor with ``sharding``, each shard drawn on its own from its region."""
    local, names = _shard_offsets(sharding, shape)
    if not isinstance(words, jax.core.Tracer):
        w = np.asarray(words)
        return jax.make_array_from_callback(
            shape, sharding, lambda index: host(shape, np_dtype, w, tuple(
                slice(0 if s.start is None else s.start, d if s.stop is None else s.stop)
                for s, d in zip(index, shape))))
    mesh = sharding.mesh

    def shard(w, offsets):
        return host(shape, np_dtype, w, (tuple(int(o) for o in offsets), local))

    def body(w):
        offsets = []
        for axes, k in zip(names, local):
            i = jnp.int32(0)
            for a in axes:  # row-major over the mesh axes the tensor axis is split over
                i = i * mesh.shape[a] + jax.lax.axis_index(a)
            offsets.append(i * k)
        offsets = jnp.stack(offsets) if offsets else jnp.zeros((0,), jnp.int32)
        return jax.pure_callback(shard, jax.ShapeDtypeStruct(local, np_dtype), w, offsets)

    return jax.shard_map(body, mesh=mesh, in_specs=jax.sharding.PartitionSpec(),
                         out_specs=sharding.spec, check_vma=False)(words)


def with_partitioning(init, sharding, mesh=None):
    """Flax NNX ``nnx.with_partitioning(init, sharding, mesh)`` for a weightinit initializer,
    computed shard by shard: the returned initializer calls ``init`` with ``out_sharding`` =
    ``NamedSharding(mesh, PartitionSpec(*sharding))`` (``mesh`` or the mesh in context), so each
    device draws only its shard, and carries the same sharding metadata for Flax.
    """
    from flax import nnx

    spec = sharding if isinstance(sharding, jax.sharding.PartitionSpec) else \
        jax.sharding.PartitionSpec(*sharding)

    def sharded(key, shape, dtype=jnp.float32):
        where = spec if mesh is None else jax.sharding.NamedSharding(mesh, spec)
        return init(key, shape, dtype, out_sharding=where)

    return nnx.with_partitioning(sharded, sharding, mesh)


# ----------------------------------------------------------------------------- recipes
_LIST_NAMES = ("h", "layers", "layer", "blocks", "block", "encoder_layers", "decoder_layers")
_KEY_ATTRS = ("key", "name", "idx")


def _path_parts(path):
    """Path keys of a pytree leaf as strings, without NNX's trailing ``value`` attribute."""
    parts = []
    for k in path:
        for attr in _KEY_ATTRS:
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:  # pragma: no cover - a key type without key/name/idx
            parts.append(str(k))
    if parts and parts[-1] == "value" and type(path[-1]).__name__ == "GetAttrKey":
        parts.pop()
    return parts


def _dotted(parts):
    """The dot-joined module path the role rules read: Flax's ``h_3``/``layers_3`` list names
    become ``h.3``/``layers.3``; a leading ``params`` collection is dropped."""
    if parts and parts[0] == "params":
        parts = parts[1:]
    out = []
    for p in parts:
        head, _, tail = p.rpartition("_")
        out += [head, tail] if head in _LIST_NAMES and tail.isdigit() else [p]
    return ".".join(out)


def _torch_order(shape):
    """PyTorch's ``(out, in, *kernel)`` order of a Flax kernel ``(*kernel, in, out)``."""
    return (shape[-1], shape[-2]) + tuple(shape[:-2]) if len(shape) >= 2 else tuple(shape)


def _leaves(params):
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    bad = [type(leaf).__name__ for _, leaf in leaves if not hasattr(leaf, "shape")]
    if not leaves or bad:
        raise TypeError("`params` must be a pytree of arrays: a Flax params dict "
                        "(model.init(...)) or nnx.state(model, nnx.Param). Received: "
                        f"{type(params).__name__}" + (f" with leaves {bad[:3]}" if bad else
                                                      " with no leaves"))
    return leaves, treedef


def roles(params, roles=None):
    """The role of every leaf of a Flax parameter pytree: a dict ``"a/b/kernel"`` -> ``Role``
    (``weightinit.torch.Role`` fields: role, layer, tied), inferred from the path names with
    the rules of ``weightinit.torch.roles`` (``kernel`` and ``embedding``, ``scale`` and ``bias``
    leaves; ``h_3``/``layers_3``/``layers/3`` give the layer index; a kernel of 3 or more
    dimensions no name rule covers is ``conv``). ``roles={"glob": "role"}`` overrides the
    inference for the paths the glob matches (:mod:`fnmatch`); a pattern matching nothing or
    an unknown role is a ``ValueError``. Unknown leaves have role None."""
    from ._names import Role, layer_of, override_roles, role_from_name

    found = {}
    for path, leaf in _leaves(params)[0]:
        parts = _path_parts(path)
        name, dotted = "/".join(parts), _dotted(parts)
        module, _, pname = dotted.rpartition(".")
        role = role_from_name(module, pname, int(np.prod(np.shape(leaf))))
        if role is None and pname == "kernel" and np.ndim(leaf) >= 3:
            role = "conv"
        found[name] = Role(role, layer_of(dotted))
    return override_roles(found, roles)


def _draw(rule, shape, seed, np_dtype):
    """A leaf of Flax ``shape`` drawn by recipe rule ``rule``: elementwise rules in the leaf's
    own layout; ZerO's structured matrix built in PyTorch order and transposed."""
    from .initializers import init as _init, zero_init

    scheme, params = rule.as_scheme()
    if scheme != "zero_init":
        return _init(shape, scheme, seed=seed, dtype=np_dtype, layout="jax", **params)
    w = zero_init(_torch_order(shape), dtype=np_dtype)
    return np.ascontiguousarray(np.moveaxis(w, (0, 1), (-1, -2)) if len(shape) >= 2 else w)


def recipe_init(params, recipe, *, seed=0, roles=None, n_layers=None, width=None,
                **recipe_params):
    """A new Flax parameter pytree with every leaf drawn by ``recipe``
    (:mod:`weightinit.recipes`) for its role (:func:`roles`): the JAX counterpart of
    ``weightinit.torch.apply_recipe_``.

    ``params`` is a Flax params dict (``model.init(key, x)``, with or without the ``params``
    collection level) or ``nnx.state(model, nnx.Param)`` (then ``nnx.update(model, new)``).
    Leaf ``a/b/kernel`` gets ``rule(recipe, role, layer=..., n_layers=..., width=...,
    shape=<PyTorch-order shape>)`` drawn with seed ``parameter_seed(seed, "a/b/kernel")``, in
    the leaf's shape, layout and dtype: a Flax kernel ``(in, out)`` has the fans of PyTorch's
    ``(out, in)`` weight. A packed ``attn_qkv`` kernel ``(in, 3E)`` gets the q, k and v rules on
    its three column blocks (seeds of ``path#q``, ``#k``, ``#v``). ``n_layers`` defaults to one
    more than the largest layer index, ``width`` to the embedding dimension. Leaves of unknown
    role are a ``ValueError`` listing them (name them with ``roles={"glob": "role"}``);
    ``keep`` rules leave a leaf as it is. Values are computed on the host (NumPy) and returned
    as ``jax.Array`` s.
    """
    from . import recipes as _recipes
    from ._names import parameter_seed

    V.check_choice("recipe", recipe, _recipes.recipes())
    seed = V.check_int("seed", seed, low=0, high=1 << 64)
    found = globals()["roles"](params, roles)
    unknown = [n for n, r in found.items() if r.role is None]
    if unknown:
        raise ValueError(f"No role inferred for parameters {unknown}; give them with "
                         "roles={'glob': 'role'} (roles: " + ", ".join(_recipes.ROLES) + ").")
    leaves, treedef = _leaves(params)
    layers = [r.layer for r in found.values() if r.layer is not None]
    if n_layers is None and layers:
        n_layers = max(layers) + 1
    if width is None:
        emb = [np.shape(leaf) for path, leaf in leaves
               if found["/".join(_path_parts(path))].role == "embedding"]
        width = emb[0][-1] if emb else None
    new = []
    for path, leaf in leaves:
        name = "/".join(_path_parts(path))
        r, shape = found[name], tuple(np.shape(leaf))
        dtype = leaf.dtype
        np_dtype = np.float64 if dtype == jnp.float64 else np.float32
        kw = dict(layer=r.layer, n_layers=n_layers, width=width, **recipe_params)
        tshape = _torch_order(shape)
        if r.role == "attn_qkv" and len(shape) == 2 and shape[-1] % 3 == 0:
            part = (shape[0], shape[1] // 3)
            rules = [(_recipes.rule(recipe, q, shape=_torch_order(part), **kw), q[-1])
                     for q in ("attn_q", "attn_k", "attn_v")]
            if any(rule.distribution == "keep" for rule, _ in rules):
                new.append(leaf)
                continue
            arr = np.concatenate([_draw(rule, part, parameter_seed(seed, f"{name}#{b}"),
                                        np_dtype) for rule, b in rules], axis=-1)
        else:
            rule = _recipes.rule(recipe, r.role, shape=tshape if len(shape) >= 2 else None,
                                 **kw)
            if rule.distribution == "keep":
                new.append(leaf)
                continue
            arr = _draw(rule, shape, parameter_seed(seed, name), np_dtype)
        new.append(jnp.asarray(arr, dtype=dtype))
    return jax.tree_util.tree_unflatten(treedef, new)
