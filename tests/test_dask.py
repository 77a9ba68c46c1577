"""weightinit.dask: lazy dask arrays equal to the in-memory schemes for every chunking.

Expected values come from the in-memory functions (``weightinit.init`` and friends), which the
rest of the suite checks against independent references (Philox known-answer vectors, exact
distribution tests); here only the chunked assembly is under test, so equality is bitwise.
"""

import inspect
import math
import subprocess
import sys

import numpy as np
import pytest

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")

import weightinit as W  # noqa: E402
import weightinit.dask as WD  # noqa: E402
from weightinit import random as R  # noqa: E402

SHAPE = (13, 7, 3)  # torch conv-like: fan_in = 21, fan_out = 39; 273 elements
#: Chunkings of SHAPE: dask's default (whole trailing dims), one element per chunk (the most
#: row pieces), ragged explicit chunks, chunks that cut Philox blocks (4 float32 / 2 float64 per
#: block) in the middle, one chunk.
CHUNKINGS = {
    "auto": "auto",
    "single-elements": 1,
    "ragged": ((5, 1, 7), (2, 5), (1, 2)),
    "odd": (4, 3, 2),
    "whole": -1,
    "rows": (6, -1, -1),
}

#: (scheme, params) for every registered scheme and alias, with non-default parameters where a
#: scheme has them.
CASES = [
    ("zeros", {}), ("ones", {}), ("constant", {"value": 0.25}),
    ("normal", {"mean": 1.0, "std": 3.0}), ("uniform", {"low": -2.0, "high": 0.5}),
    ("truncated_normal", {"std": 0.5, "low": -0.3, "high": 1.0}),
    ("truncated_normal", {"mean": 0.0, "std": 1.0, "low": 2.5, "high": 4.0}),  # tail sampler
    ("variance_scaling", {"scale": 2.0, "mode": "fan_out", "distribution": "uniform"}),
    ("variance_scaling", {"mode": "fan_avg"}),  # truncated normal
    ("lecun_normal", {}), ("lecun_uniform", {}),
    ("glorot_normal", {"gain": 2.0}), ("glorot_uniform", {}),
    ("he_normal", {"nonlinearity": "leaky_relu", "a": 0.1}), ("he_uniform", {"mode": "fan_out"}),
    ("xavier_normal", {}), ("xavier_uniform", {"gain": 0.5}),
    ("kaiming_normal", {"offset": 5}), ("kaiming_uniform", {}),
]


def _shape_for(name):
    return {"identity": (13, 7), "eye": (13, 7), "dirac": (6, 4, 3, 3),
            "delta_orthogonal": (6, 4, 3, 3)}.get(name, SHAPE)


@pytest.mark.parametrize("layout, shape", [("torch", (6, 4, 3, 3)), ("keras", (3, 5, 4, 6))])
def test_delta_orthogonal_bitwise(layout, shape):
    x = WD.delta_orthogonal(shape, 1.5, seed=7, layout=layout, chunks=2)
    np.testing.assert_array_equal(x.compute(), W.delta_orthogonal(shape, 1.5, seed=7,
                                                                  layout=layout))


def test_every_scheme_is_covered():
    names = {c[0] for c in CASES} | {"orthogonal", "identity", "eye", "dirac", "delta_orthogonal"}
    assert names == set(W.schemes(aliases=True))
    for name in W.schemes(aliases=True):
        assert callable(getattr(WD, name)), name


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("chunks", list(CHUNKINGS.values()), ids=list(CHUNKINGS))
@pytest.mark.parametrize("scheme, params", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bitwise_equal_to_in_memory(scheme, params, chunks, dtype):
    x = WD.init(SHAPE, scheme, chunks=chunks, seed=12345, dtype=dtype, **params)
    assert x.dtype == np.dtype(dtype) and x.shape == SHAPE
    got = x.compute(scheduler="threads")
    ref = W.init(SHAPE, scheme, seed=12345, dtype=dtype, **params)
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("chunks", [1, (5, 3), ((1, 12), (2, 2, 3)), "auto"])
@pytest.mark.parametrize("gain", [1.0, -2.5])
def test_identity_bitwise(chunks, gain):
    for shape, c in (((13, 7), chunks), ((7, 13), chunks[::-1] if isinstance(chunks, tuple)
                                         else chunks)):
        x = WD.identity(shape, gain=gain, chunks=c, dtype="float64")
        np.testing.assert_array_equal(x.compute(), W.identity(shape, gain=gain, dtype="float64"))
    np.testing.assert_array_equal(WD.eye((4, 6), chunks=2).compute(), W.identity((4, 6)))


@pytest.mark.parametrize("shape, params", [
    ((6, 4, 3, 3), {}), ((6, 4, 3, 3), {"groups": 2}), ((8, 3, 5), {"groups": 4, "gain": 2.5}),
    ((4, 6, 3, 3, 3), {}), ((6, 2, 4, 4), {"groups": 3})])
@pytest.mark.parametrize("chunks", [1, (5, 3, 2, 1, 2), -1])
def test_dirac_bitwise(shape, params, chunks):
    chunks = chunks[:len(shape)] if isinstance(chunks, tuple) else chunks
    x = WD.dirac(shape, chunks=chunks, **params)
    np.testing.assert_array_equal(x.compute(), W.dirac(shape, **params))


@pytest.mark.parametrize("chunks", [(2, 3, 5, 7), 4, "auto"])
def test_keras_layout(chunks):
    shape = (3, 3, 8, 16)
    for scheme in ("he_uniform", "glorot_normal", "lecun_uniform"):
        x = WD.init(shape, scheme, layout="keras", seed=5, chunks=chunks)
        np.testing.assert_array_equal(x.compute(), W.init(shape, scheme, layout="keras", seed=5))
    # the layout changes the fans, hence the values: keras differs from torch here
    assert not np.array_equal(WD.he_uniform(shape, layout="keras", seed=5).compute(),
                              WD.he_uniform(shape, seed=5).compute())


def test_extreme_seed_and_large_offset():
    seed, offset = 2**64 - 1, 2**64 - 1000
    x = WD.normal((10, 100), seed=seed, offset=offset, chunks=(3, 7))
    np.testing.assert_array_equal(x.compute(), R.normal((10, 100), seed=seed, offset=offset))


def test_scheme_functions_take_the_in_memory_signature():
    # Positional scheme parameters work as in memory.
    np.testing.assert_array_equal(WD.constant((3, 4), 0.5).compute(), W.constant((3, 4), 0.5))
    np.testing.assert_array_equal(WD.uniform((5,), -1.0, 2.0, seed=1, chunks=2).compute(),
                                  W.uniform((5,), -1.0, 2.0, seed=1))
    np.testing.assert_array_equal(WD.normal((7,), 3.0, 0.5, seed=2, chunks=3).compute(),
                                  W.normal((7,), 3.0, 0.5, seed=2))
    np.testing.assert_array_equal(WD.dirac((4, 4, 3), 2, chunks=1).compute(), W.dirac((4, 4, 3), 2))
    keras = WD.dirac((3, 4, 6), 2, layout="keras", chunks=2).compute()  # (kernel, in, out)
    np.testing.assert_array_equal(keras, W.dirac((6, 4, 3), 2).transpose(2, 1, 0))
    for name in W.schemes(aliases=True):
        sig = inspect.signature(getattr(WD, name))
        mem = inspect.signature(W.get(name))
        assert sig.parameters["chunks"].default == "auto"
        assert "out" not in sig.parameters
        assert [p for p in sig.parameters if p != "chunks"] == [p for p in mem.parameters
                                                                if p != "out"], name
        assert getattr(WD, name).__name__ == name
        assert f"weightinit.{name}" in getattr(WD, name).__doc__


def test_seed_none_one_seed_for_all_chunks():
    x = WD.he_normal((40, 30), chunks=(7, 11))
    seed = WD.seed_of(x)
    a = x.compute(scheduler="threads")
    np.testing.assert_array_equal(a, x.compute(scheduler="sync"))  # the graph holds the seed
    np.testing.assert_array_equal(a, W.he_normal((40, 30), seed=seed))
    # a second call draws another seed (equal with probability 2**-64)
    assert WD.seed_of(WD.he_normal((40, 30), chunks=(7, 11))) != seed
    assert WD.seed_of(WD.he_normal((4, 3), seed=99)) == 99


def test_task_names_are_deterministic():
    a = WD.he_normal((40, 30), seed=3, chunks=10)
    b = WD.he_normal((40, 30), seed=3, chunks=10)
    assert a.name == b.name and a.__dask_keys__() == b.__dask_keys__()
    others = [WD.he_normal((40, 30), seed=4, chunks=10), WD.he_normal((40, 30), seed=3, chunks=20),
              WD.he_normal((40, 30), seed=3, chunks=10, dtype="float64"),
              WD.he_normal((40, 30), seed=3, chunks=10, mode="fan_out"),
              WD.he_uniform((40, 30), seed=3, chunks=10),
              WD.he_normal((40, 30), seed=3, chunks=10, offset=1)]
    assert len({a.name} | {o.name for o in others}) == 1 + len(others)
    assert a.name.startswith("he_normal-seed3-")
    assert WD.kaiming_normal((40, 30), seed=3, chunks=10).name == a.name  # alias = same graph


def _count_calls(monkeypatch, kind):
    calls = []
    real = getattr(R, kind)

    def counting(*args, **kw):
        calls.append((args[0], kw["region"]))
        return real(*args, **kw)

    monkeypatch.setattr(R, kind, counting)
    return calls


def test_fill_block_is_one_region_call_per_chunk(monkeypatch):
    calls = _count_calls(monkeypatch, "normal")
    shape = (6, 5, 4)
    # every chunk is one call of the public generator with the whole shape and the chunk's box
    WD.normal(shape, seed=1, chunks=(6, 5, (1, 3))).compute(scheduler="sync")
    assert len(calls) == 2 and all(s == shape for s, _ in calls)
    assert sorted((r[2].start, r[2].stop) for _, r in calls) == [(0, 1), (1, 4)]
    assert all(r[:2] == (slice(0, 6), slice(0, 5)) for _, r in calls)


def test_auto_chunks_are_whole_rows():
    assert WD.he_normal((1000, 300)).chunks == ((1000,), (300,))
    with dask.config.set({"array.chunk-size": "64KiB"}):
        x = WD.he_normal((1000, 300), dtype="float64")  # 2400 bytes per row -> 27 rows
        assert x.chunks[1] == (300,) and x.chunks[0][0] == 65536 // 2400
        y = WD.he_normal((2, 3, 100000))  # one row exceeds the target: cut the last axis
        assert y.chunks[:2] == ((1, 1), (1, 1, 1)) and y.chunks[2][0] == 65536 // 4
        np.testing.assert_array_equal(y.compute(), W.he_normal((2, 3, 100000), seed=WD.seed_of(y)))


# ----------------------------------------------------------------------------- orthogonal
def test_orthogonal_tsqr_matches_in_memory(monkeypatch):
    # 200-row Gaussian blocks: 15 blocks for 3000 rows, so TSQR reduces the stacked R factors
    # (recursively: 15 * 40 > 200) instead of one LAPACK QR of the whole matrix.
    monkeypatch.setattr(WD, "_TSQR_BLOCK_BYTES", 8 * 40 * 200)
    shape = (3000, 40)
    x = WD.orthogonal(shape, seed=7, dtype="float64", chunks=(1000, 40))
    graph = dict(x.__dask_graph__())
    assert sum(1 for k in graph if isinstance(k, tuple) and "orthogonal-gaussian0" in k[0]) == 15
    q = x.compute()
    ref = W.orthogonal(shape, seed=7, dtype="float64")
    # Both are the Q (with R's diagonal made positive, so unique) of the same Gaussian A.
    # Householder QR is backward stable: each Q is within c(m, n) * eps * cond(A) of the exact
    # one, with cond(A) ~ (sqrt(3000) + sqrt(40)) / (sqrt(3000) - sqrt(40)) ~ 1.3 for a Gaussian
    # matrix and eps = 2.2e-16; 1e-10 leaves a margin of > 1e4 over c ~ sqrt(m n) ~ 350.
    assert np.abs(q - ref).max() < 1e-10
    assert np.abs(q.T @ q - np.eye(40)).max() < 1e-12
    assert WD.seed_of(x) == 7


@pytest.mark.parametrize("shape, kw", [
    ((40, 600), {}),                               # wide: factored transposed
    ((16, 4, 3, 3), {"gain": 2.0}),                # torch conv: 16 x 36, wide
    ((3, 3, 8, 40), {"layout": "keras"}),           # keras conv: 72 x 40, tall
    ((3, 30, 200), {"batched": True}),              # three independent 30 x 200 matrices
])
def test_orthogonal_shapes_and_layouts(monkeypatch, shape, kw):
    monkeypatch.setattr(WD, "_TSQR_BLOCK_BYTES", 8 * 1024)  # several TSQR blocks
    q = WD.orthogonal(shape, seed=11, dtype="float64", **kw).compute()
    ref = W.orthogonal(shape, seed=11, dtype="float64", **kw)
    assert q.shape == ref.shape
    assert np.abs(q - ref).max() < 1e-10  # same argument as test_orthogonal_tsqr_matches_in_memory


def test_orthogonal_float32(monkeypatch):
    monkeypatch.setattr(WD, "_TSQR_BLOCK_BYTES", 4 * 32 * 100)  # 10 TSQR blocks
    q = WD.orthogonal((1000, 32), seed=2, chunks=(300, 32)).compute()
    ref = W.orthogonal((1000, 32), seed=2)
    assert q.dtype == np.float32
    # As in memory, the float32 Gaussian matrix is factored in float32. Both QRs are backward
    # stable: |Q1 - Q2| <= c * u * cond(A) with u = 2**-24, cond(A) ~ (sqrt(1000) + sqrt(32)) /
    # (sqrt(1000) - sqrt(32)) ~ 1.44 and c ~ sqrt(m n) ~ 180: 1.6e-5.
    tol = math.sqrt(1000 * 32) * 2.0**-24 * 1.44
    assert np.abs(q - ref).max() <= tol
    assert np.abs(q.astype(np.float64).T @ q - np.eye(32)).max() <= tol


def test_orthogonal_limits(monkeypatch):
    monkeypatch.setattr(WD, "ORTHOGONAL_MAX_SMALL", 8)
    WD.orthogonal((1000, 8))  # fine: graph only
    WD.orthogonal((8, 1000))
    with pytest.raises(ValueError, match="ORTHOGONAL_MAX_SMALL.*in-memory weightinit.orthogonal"):
        WD.orthogonal((9, 1000))
    with pytest.raises(ValueError, match="`gain`"):
        WD.orthogonal((10, 5), gain=-1)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        WD.orthogonal((10,))


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("call, exc, match", [
    (lambda: WD.init((3, 4), "nonsense"), ValueError, "Unknown `scheme`"),
    (lambda: WD.init((3, 4), "he_normal", out=np.empty((3, 4), np.float32)), TypeError, "`out`"),
    (lambda: WD.init((3, 0), "he_normal"), ValueError, "`shape`"),
    (lambda: WD.init((3, 2.5), "he_normal"), TypeError, "`shape`"),
    (lambda: WD.init((3, 4), "he_normal", seed=-1), ValueError, "`seed`"),
    (lambda: WD.init((3, 4), "he_normal", dtype="int32"), TypeError, "`dtype`"),
    (lambda: WD.init((3, 4), "he_normal", layout="nchw"), ValueError, "`layout`"),
    (lambda: WD.init((3, 4), "he_normal", gain=2), TypeError, "gain"),
    (lambda: WD.init((3, 4), "he_normal", mode="sideways"), ValueError, "`mode`"),
    (lambda: WD.init((3, 4), "he_normal", chunks=(2, 2, 2)), ValueError, "`chunks`"),
    (lambda: WD.init((3, 4), "he_normal", chunks=((1, 1), 4)), ValueError, "`chunks`"),
    (lambda: WD.init((3, 4), "normal", offset=2**64 - 5), ValueError, "`offset`"),
    (lambda: WD.init((3, 4), "normal", offset=-1), ValueError, "`offset`"),
    (lambda: WD.uniform((3, 4), 1.0, 0.0), ValueError, "`low`"),
    (lambda: WD.identity((3, 4, 5)), ValueError, "2-D"),
    (lambda: WD.identity((3, 4), gain="x"), TypeError, "`gain`"),
    (lambda: WD.dirac((6, 4)), ValueError, "3-, 4- or 5-D"),
    (lambda: WD.dirac((6, 4, 3), groups=4), ValueError, "`groups`"),
    (lambda: WD.dirac((6, 4, 3), layout="tf"), ValueError, "`layout`"),
    (lambda: WD.dirac((3, 4, 6), layout="keras", groups=4), ValueError, "`groups`"),
    (lambda: WD.identity((3, 4), offset=1), TypeError, "offset"),
    (lambda: WD.he_normal(), TypeError, "shape"),
    (lambda: WD.seed_of(da.zeros(3)), ValueError, "carries no seed"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_import_is_lazy_and_missing_dask_is_explained():
    code = (
        "import sys\n"
        "import weightinit\n"
        "assert 'dask' not in sys.modules and 'weightinit.dask' not in sys.modules\n"
        "sys.modules['dask'] = None  # make `import dask` fail\n"
        "try:\n"
        "    import weightinit.dask\n"
        "except ImportError as e:\n"
        "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 'pip install "weightinit[dask]"' in out.stdout
