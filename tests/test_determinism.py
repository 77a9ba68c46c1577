"""Determinism: the same bits in every process, and counters that never collide.

1. Fresh processes with different ``PYTHONHASHSEED`` and ``NUMBA_NUM_THREADS`` (1 and 2) compute
   SHA-256 digests of every distribution (both dtypes, serial and parallel sizes, an offset),
   a spawned Generator tree, several schemes, orthogonal and simulate; all digests must agree
   with each other and with this process. (``tests/test_random.py`` already compares the four
   random kernels at 1 and 2 threads; this extends it to the schemes, Generator trees and
   simulations, and varies the hash seed.)
2. Counter ranges. The module docstring of ``weightinit/random.py`` states the layout: key =
   the 64-bit seed, counter = ``(block_lo, block_hi, draw, stream << 2 | kind)`` with ``block =
   index // E`` (E elements per Philox block, from ``weightinit/kernels/fill.py``). The tests
   record the arguments every draw passes to its kernel, check them against that layout, rebuild
   uniform draws from Philox words at the recorded counters, and check over many random
   ``spawn`` trees and draws that no two draws of one tree share a counter.
3. float32 vs float64: the random generators document no relation between the two dtypes'
   values (they read the same counters with different bit recipes), so none is tested.
   orthogonal documents that it draws and factors in the requested dtype: float32 results are
   the QR of the float32 Gaussian draw, and ``out=`` gives the same bits.
"""

import hashlib
import json
import os
import random
import subprocess
import sys
import threading

import numpy as np
import pytest

import weightinit as W
from weightinit import random as R
from weightinit.kernels import fill as K

# ----------------------------------------------------------------------------- 1. processes
_DIGEST = r'''
import hashlib, math
import numpy as np
import weightinit as W
from weightinit import random as R


def sha(*arrays):
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def digests():
    out = {}
    seed = 2**63 + 12345
    dists = {"uniform": (R.uniform, (-2.0, 3.0)), "normal": (R.normal, (0.5, 2.0)),
             "trunc_central": (R.truncated_normal, (0.0, 1.0, -2.0, 2.0)),
             "trunc_tail": (R.truncated_normal, (0.0, 1.0, -math.inf, 0.5))}
    for name, (fn, params) in dists.items():
        for dtype in ("float32", "float64"):
            for n in (1001, (1 << 17) + 5):  # the serial and the parallel kernel
                out[f"{name}-{dtype}-{n}"] = sha(fn(n, *params, seed=seed, dtype=dtype, offset=7))
    g = W.Generator(99)
    kids = g.spawn(3)
    out["generator-tree"] = sha(g.normal(5000), g.uniform((70, 1000)),
                                kids[2].truncated_normal(3000, dtype=np.float64),
                                kids[0].spawn(2)[1].normal((1 << 16) + 3))
    schemes = {"he_normal": {}, "glorot_uniform": {"layout": "keras"},
               "lecun_normal": {"distribution": "truncated_normal"},
               "variance_scaling": {"scale": 2.0, "mode": "fan_avg", "distribution": "uniform"}}
    for name, kw in schemes.items():
        for dtype in ("float32", "float64"):
            out[f"{name}-{dtype}"] = sha(W.init((512, 300), name, seed=5, dtype=dtype, **kw))
    for dtype in ("float32", "float64"):
        out[f"orthogonal-{dtype}"] = sha(
            W.orthogonal((300, 200), seed=5, dtype=dtype),
            W.orthogonal((4, 30, 50), batched=True, seed=6, dtype=dtype))
    out["identity-dirac"] = sha(W.identity((5, 7), gain=2.0), W.dirac((6, 3, 3, 3), groups=2))
    r = W.simulate(6, 96, samples=500, activation="tanh", backward=True, seed=3)
    out["simulate-tanh"] = sha(r.mean, r.var, r.q, r.saturated, r.hist, r.grad_var, r.grad_norm)
    r = W.simulate(4, 64, samples=300, activation="relu", scheme="he_normal", seed=4,
                   dtype=np.float64)
    out["simulate-relu-f64"] = sha(r.mean, r.var, r.q, r.hist, r.dead, r.dead_units)
    return out
'''
_SCRIPT = _DIGEST + r'''
import json, numba, sys
print(json.dumps({"threads": numba.get_num_threads(), "hash": hash("weightinit"),
                  "digests": digests()}))
'''


def _in_process():
    namespace = {}
    exec(_DIGEST, namespace)
    return namespace["digests"]()


def test_same_bits_in_fresh_processes_for_any_thread_count_and_hash_seed():
    runs = {}
    for threads, hash_seed in ((1, "0"), (2, "1"), (2, "random")):
        env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), PYTHONHASHSEED=hash_seed)
        proc = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        assert info["threads"] == threads
        runs[(threads, hash_seed)] = info
    assert runs[(1, "0")]["hash"] != runs[(2, "1")]["hash"]  # the hash seeds did differ
    reference = _in_process()
    for key, info in runs.items():
        differ = sorted(k for k in reference if info["digests"].get(k) != reference[k])
        assert not differ, f"{key}: different bits for {differ}"
        assert set(info["digests"]) == set(reference)


# ----------------------------------------------------------------------------- 2. counters
KIND = {"uniform": 0, "normal": 1, "truncated_normal": 2}  # random.py docstring
CODE_KIND = {K.UNIFORM: 0, K.NORMAL: 1, K.TRUNC_CENTRAL: 2, K.TRUNC_TAIL: 2}


def per_block(kind, dtype):
    """Elements per Philox block (the table in weightinit/kernels/fill.py's docstring)."""
    if np.dtype(dtype) == np.float64:
        return 2
    return 5 if kind == "uniform" else 4


class Recorder:
    """Stands in for ``fill.KERNELS``: records each launch's counter and key, then runs it."""

    def __init__(self, kernels):
        self.kernels = kernels
        self.calls = []
        self.lock = threading.Lock()

    def __getitem__(self, key):
        code, dtype, parallel = key
        kernel = self.kernels[key]

        def launch(flat, offset, counts, strides, run, k0, k1, s0, s1, p, edges):
            assert counts.size == 0 and run == flat.size  # a whole tensor: one run
            with self.lock:
                self.calls.append(dict(
                    kind=CODE_KIND[code], dtype=dtype, n=flat.size, offset=int(offset),
                    key=int(k0) | int(k1) << 32, s0=int(s0), s1=int(s1), out=flat,
                    parallel=parallel))
            return kernel(flat, offset, counts, strides, run, k0, k1, s0, s1, p, edges)
        return launch


@pytest.fixture
def recorder(monkeypatch):
    rec = Recorder(K.KERNELS)
    monkeypatch.setattr(K, "KERNELS", rec)
    return rec


def counter_range(call, kind_name):
    """(key, s0, s1, first block, last block) a recorded launch used."""
    e = per_block(kind_name, call["dtype"])
    return (call["key"], call["s0"], call["s1"], call["offset"] // e,
            (call["offset"] + call["n"] - 1) // e)


def test_each_draw_uses_the_documented_counter(recorder, uniform_values):
    g = W.Generator(2**40 + 3)
    child = g.spawn(1)[0]
    grandchild = child.spawn(1)[0]
    plan = [(g, "uniform", np.float32, 10), (g, "normal", np.float64, 7),
            (child, "truncated_normal", np.float32, 9), (grandchild, "uniform", np.float64, 33),
            (child, "uniform", np.float32, 12), (g, "uniform", np.float32, 5)]
    expected_draw = {}
    for gen, kind, dtype, n in plan:
        out = getattr(gen, kind)(n, dtype=dtype)
        call = recorder.calls[-1]
        draw = expected_draw.get(id(gen), 0)
        expected_draw[id(gen)] = draw + 1
        assert call["key"] == gen.seed  # key = the 64-bit seed
        assert call["s0"] == draw  # the generator's draw count before this call
        assert call["s1"] == gen.stream << 2 | KIND[kind]
        assert call["offset"] == 0 and call["n"] == n
        if kind == "uniform":  # the values are those of the Philox words at that counter
            ref = uniform_values(gen.seed, n, dtype, draw=draw, stream=gen.stream)
            np.testing.assert_array_equal(out, ref)
    # the stateless functions: draw 0, stream 0, element offset as given
    R.normal(40, seed=17, offset=2**50 + 3, dtype=np.float32)
    call = recorder.calls[-1]
    assert (call["key"], call["s0"], call["s1"], call["offset"]) == (17, 0, 1, 2**50 + 3)
    assert counter_range(call, "normal")[3:] == ((2**50 + 3) // 4, (2**50 + 42) // 4)


def _random_tree(rng, seed, draws, spawns):
    """Draw ``draws`` times from random members of a tree that spawns ``spawns`` times."""
    members = [W.Generator(seed)]
    made = []
    events = ["draw"] * draws + ["spawn"] * spawns
    rng.shuffle(events)
    for event in events:
        gen = rng.choice(members)
        if event == "spawn":
            members.extend(gen.spawn(rng.randint(1, 3)))
        else:
            kind = rng.choice(list(KIND))
            dtype = rng.choice([np.float32, np.float64])
            getattr(gen, kind)(rng.randint(1, 9), dtype=dtype)
            made.append(kind)
    return members, made


def test_no_two_draws_of_a_spawn_tree_share_a_counter(recorder):
    rng = random.Random(20240611)
    ranges = []
    for tree in range(40):
        seed = rng.choice([0, 1, 2**32, 2**64 - 1, rng.getrandbits(64)])
        seed = seed if tree % 5 else 7  # several trees of one seed: told apart by nothing
        start = len(recorder.calls)
        members, kinds = _random_tree(rng, seed, draws=60, spawns=15)
        calls = recorder.calls[start:]
        assert len(calls) == len(kinds)
        streams = [m.stream for m in members]
        assert len(set(streams)) == len(streams)  # stream ids unique within the tree
        assert max(streams) < 2**30
        tree_ranges = [counter_range(c, k) for c, k in zip(calls, kinds)]
        # by construction each draw of a tree has its own (draw, stream, kind) words ...
        words = [(key, s0, s1) for key, s0, s1, _, _ in tree_ranges]
        assert len(set(words)) == len(words)
        # ... and the last counter word decodes back to the stream and kind
        for (_, _, s1, _, _), kind in zip(tree_ranges, kinds):
            assert s1 & 3 == KIND[kind] and (s1 >> 2) in streams
        ranges.append((seed, tree_ranges))
    # Across trees: different seeds are different keys; two trees of one seed repeat each
    # other's counters exactly (that is reproducibility), which is why spawn, not a second
    # Generator(seed), gives independent streams.
    keys = {seed: {r[0] for r in rs} for seed, rs in ranges}
    assert all(k == {seed} for seed, k in keys.items())
    same_seed = [rs for seed, rs in ranges if seed == 7]
    assert len(same_seed) >= 2


def test_block_ranges_of_one_counter_only_meet_for_overlapping_elements():
    # Within one (key, draw, stream, kind) the element index picks the block: disjoint element
    # ranges can share at most the boundary block, and then different elements of it.
    rng = random.Random(5)
    for _ in range(2000):
        kind = rng.choice(list(KIND))
        dtype = rng.choice([np.float32, np.float64])
        e = per_block(kind, dtype)
        a0 = rng.randrange(0, 2**64 - 2000)
        a1 = a0 + rng.randint(1, 50)
        b0 = a1 + rng.randint(0, 20)
        b1 = b0 + rng.randint(1, 50)
        pairs_a = {(i // e, i % e) for i in range(a0, a1)}
        pairs_b = {(i // e, i % e) for i in range(b0, b1)}
        assert not pairs_a & pairs_b
        assert (a1 - 1) // e <= b0 // e  # blocks are ordered like the elements


def test_counter_words_at_their_limits(recorder):
    # stream ids and draw numbers fill their words without spilling into the next one.
    g = W.Generator(3)
    g._tree["next"] = 2**30 - 2  # as if 2**30 - 3 streams had been spawned already
    last_two = g.spawn(2)
    assert [c.stream for c in last_two] == [2**30 - 2, 2**30 - 1]
    with pytest.raises(ValueError, match="`n`"):
        g.spawn(1)
    top = last_two[1]
    top.truncated_normal(5)
    assert recorder.calls[-1]["s1"] == 0xFFFFFFFC | 2  # stream 2**30 - 1, kind 2: word < 2**32
    top._draw = 2**32 - 1  # as if 2**32 - 1 draws had been made
    top.uniform(3)
    assert recorder.calls[-1]["s0"] == 2**32 - 1
    with pytest.raises(RuntimeError, match="spawn"):
        top.uniform(3)


def test_spawn_from_several_threads_gives_unique_streams():
    g = W.Generator(11)
    barrier = threading.Barrier(6)
    got = []

    def work():
        barrier.wait()
        for _ in range(50):
            got.extend(c.stream for c in g.spawn(3))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert sorted(got) == list(range(1, 6 * 50 * 3 + 1))


# ----------------------------------------------------------------------------- 3. dtypes
@pytest.mark.parametrize("shape, kw", [((64, 48), {}), ((48, 64), {"gain": 1.7}),
                                       ((16, 4, 3, 3), {"layout": "keras"}),
                                       ((3, 20, 30), {"batched": True})])
def test_orthogonal_float32_is_factored_in_float32(shape, kw):
    # Same seed: the float32 result is orthogonal in float32 precision and close to (not equal
    # to) the float64 one, which factors a float64 draw of the same seed; out= gives its bits.
    q32 = W.orthogonal(shape, seed=8, dtype=np.float32, **kw)
    assert q32.dtype == np.float32
    q64 = W.orthogonal(shape, seed=8, dtype=np.float64, **kw)
    assert q32.tobytes() != q64.astype(np.float32).tobytes()
    out = np.empty(shape, np.float32)
    W.orthogonal(shape, seed=8, out=out, **kw)
    assert out.tobytes() == q32.tobytes()


def test_digest_helper_is_sensitive():
    # guards test 1 against a digest that ignores its input
    namespace = {}
    exec(_DIGEST, namespace)
    sha = namespace["sha"]
    a = W.normal(10, seed=1)
    b = a.copy()
    b[3] = np.nextafter(b[3], np.float32(np.inf))
    assert sha(a) != sha(b) and sha(a) == sha(a.copy())
    assert sha(a) != sha(a.astype(np.float64)) and sha(a) != sha(a.reshape(2, 5))
    assert hashlib.sha256(a.tobytes()).hexdigest() != sha(a)  # dtype and shape are hashed too


@pytest.mark.parametrize("kind", ["uniform", "normal", "truncated_normal"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_serial_shares_equal_the_parallel_draw(kind, dtype, recorder):
    # Inside random.serial() every call takes the serial kernel, and shares filled with offset=
    # (as the simulation's threads do) equal one parallel call.
    n = 3 * R._PARALLEL_MIN + 7
    whole = getattr(R, kind)(n, seed=11, dtype=dtype)
    assert recorder.calls[-1]["n"] == n and recorder.calls[-1]["parallel"]
    parts = np.empty(n, dtype)
    cuts = [0, 12345, 2 * R._PARALLEL_MIN + 1, n]
    with R.serial():
        for a, b in zip(cuts, cuts[1:]):
            getattr(R, kind)(b - a, seed=11, dtype=dtype, out=parts[a:b], offset=a)
    assert np.array_equal(parts, whole)
    assert [c["parallel"] for c in recorder.calls[-3:]] == [False, False, False]
