"""Calls from several Python threads at once give the results of sequential calls.

Eight threads, released together by a barrier, run a shuffled mix of every kind of work: the
stateless generators at serial and parallel sizes (the parallel kernels share one thread pool
under a lock), schemes including orthogonal (LAPACK), describe, the theory functions, simulate
with a backward pass, the command line, and draws from one shared Generator. Each result must
equal the one computed sequentially beforehand; the shared Generator must hand out every draw
number exactly once. The threads are daemons joined with a timeout, so a deadlock fails the test
instead of hanging the run. (``tests/test_random.py`` covers four threads on the stateless
generators and on one Generator's ``normal``; this adds the mix.)
"""

import hashlib
import io
import json
import random
import threading
import time

import numpy as np

import weightinit as W
from weightinit import cli
from weightinit import random as R
from weightinit import theory as T

THREADS = 8
PAR = 1 << 16  # from this size the parallel kernels run (pinned for the tests in conftest.py)
TIMEOUT = 240.0


def digest(value):
    if isinstance(value, np.ndarray):
        return hashlib.sha256(f"{value.dtype}{value.shape}".encode() + value.tobytes()).hexdigest()
    return json.dumps(value, sort_keys=True, default=str)


def _sim():
    r = W.simulate(4, 64, samples=300, activation="tanh", backward=True, seed=2)
    return np.concatenate([r.mean, r.var, r.q, r.grad_var, r.hist.ravel().astype(float)])


def _cli():
    buf = io.StringIO()
    assert cli.main(["describe", "he_normal", "--shape", "64", "32", "--json"], stdout=buf) == 0
    return json.loads(buf.getvalue())


JOBS = {
    "uniform-f32-serial": lambda: R.uniform(5000, -1.0, 2.0, seed=1),
    "uniform-f64-parallel": lambda: R.uniform(PAR + 9, seed=2, dtype=np.float64, offset=3),
    "normal-f32-parallel": lambda: R.normal((PAR + 7,), 0.5, 2.0, seed=3),
    "normal-f64-serial": lambda: R.normal(999, seed=4, dtype=np.float64),
    "trunc-f32-parallel": lambda: R.truncated_normal(PAR * 2, seed=5),
    "trunc-tail-f64": lambda: R.truncated_normal(3000, 0.0, 1.0, 1.0, np.inf, seed=6,
                                                 dtype=np.float64),
    "he_normal": lambda: W.he_normal((512, 256), seed=7),
    "glorot_uniform-keras": lambda: W.glorot_uniform((3, 3, 64, 32), seed=8, layout="keras"),
    "lecun_truncated-f64": lambda: W.lecun_normal((300, 200), seed=9,
                                                  distribution="truncated_normal",
                                                  dtype=np.float64),
    "orthogonal": lambda: W.orthogonal((200, 120), seed=10),
    "identity-dirac": lambda: np.concatenate([W.identity((6, 9)).ravel(),
                                              W.dirac((4, 2, 3, 3)).ravel()]),
    "describe": lambda: W.describe((64, 32, 3, 3), "variance_scaling", scale=2.0,
                                   mode="fan_avg", distribution="uniform"),
    "spawned-child": lambda: W.Generator(12).spawn(3)[2].normal(PAR + 1),
    "theory": lambda: (T.chi1("tanh", 1.3, 0.05), T.fixed_point("tanh", 1.3, 0.05),
                       T.critical_sigma_w("tanh", 0.3)),
    "simulate": _sim,
    "cli-describe": _cli,
}


def run_threads(work, n_threads=THREADS, timeout=TIMEOUT):
    """Run ``work(i)`` in ``n_threads`` daemon threads started together; return their results
    (re-raising the first error) or fail if any thread is still running after ``timeout``."""
    barrier = threading.Barrier(n_threads)
    results, errors = [None] * n_threads, []

    def target(i):
        try:
            barrier.wait(timeout)
            results[i] = work(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n_threads)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = sum(t.is_alive() for t in threads)
    assert not stuck, f"{stuck} of {n_threads} threads still running after {timeout} s: deadlock?"
    if errors:
        raise errors[0]
    return results


def test_mixed_work_in_threads_equals_sequential():
    expected = {name: digest(job()) for name, job in JOBS.items()}  # also compiles everything
    names = list(JOBS) * 2

    def work(i):
        order = names[:]
        random.Random(i).shuffle(order)  # every thread its own order
        return [(name, digest(JOBS[name]())) for name in order]

    for per_thread in run_threads(work):
        assert len(per_thread) == len(names)
        for name, got in per_thread:
            assert got == expected[name], name


def _reference_draws(seed, kinds_shapes, n_draws):
    """table[(kind, d)] = digest of draw number d of that kind from a fresh Generator(seed)."""
    table = {}
    for kind, shape, dtype in kinds_shapes:
        for d in range(n_draws):
            g = W.Generator(seed)
            for _ in range(d):  # any call consumes one draw number
                g.uniform(1)
            table[digest(getattr(g, kind)(shape, dtype=dtype))] = (kind, d)
    return table


def test_shared_generator_hands_out_each_draw_once():
    seed, per_thread = 2024, 6
    n_draws = THREADS * per_thread
    calls = [("uniform", (PAR + 3,), np.float32), ("normal", (257,), np.float64),
             ("truncated_normal", (PAR // 2, 3), np.float32)]
    table = _reference_draws(seed, calls, n_draws)
    assert len(table) == len(calls) * n_draws  # every (kind, draw) gives distinct values
    g = W.Generator(seed)

    def work(i):
        rng = random.Random(100 + i)
        got = []
        for _ in range(per_thread):
            kind, shape, dtype = rng.choice(calls)
            got.append((kind, digest(getattr(g, kind)(shape, dtype=dtype))))
        return got

    results = [item for chunk in run_threads(work) for item in chunk]
    assert g.draws == n_draws
    draws = []
    for kind, d in results:
        assert d in table, f"a {kind} draw matches no (kind, draw number) of the sequence"
        assert table[d][0] == kind
        draws.append(table[d][1])
    assert sorted(draws) == list(range(n_draws))  # each draw number exactly once


def test_threads_with_out_arrays_fill_only_their_own(tmp_path):
    # Eight threads fill disjoint chunks of one memory-mapped array with offset= (the
    # out-of-core path): the file equals the whole tensor drawn at once.
    n, chunk = 8 * (PAR + 5), PAR + 5
    whole = R.normal(n, seed=77)
    mm = np.lib.format.open_memmap(tmp_path / "w.npy", mode="w+", dtype=np.float32, shape=(n,))

    def work(i):
        R.normal(chunk, seed=77, offset=i * chunk, out=mm[i * chunk:(i + 1) * chunk])

    run_threads(work)
    mm.flush()
    assert np.load(tmp_path / "w.npy").tobytes() == whole.tobytes()


def test_simulations_in_threads_are_independent():
    n_threads = 4
    seeds = list(range(n_threads))
    expected = [digest(W.simulate(3, 48, samples=200, activation="relu", scheme="he_normal",
                                  seed=s).q) for s in seeds]
    got = run_threads(lambda i: digest(W.simulate(3, 48, samples=200, activation="relu",
                                                  scheme="he_normal", seed=seeds[i]).q),
                      n_threads=n_threads)
    assert got == expected
