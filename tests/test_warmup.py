"""``weightinit.warmup`` reaches every kernel: after it, in a fresh process with the same (at
first empty) Numba cache, calls of every kind compile nothing.

Two child processes share a new ``NUMBA_CACHE_DIR``. The first runs ``warmup`` for float64 and
one activation; the second listens for Numba's compile events (a kernel loaded from the cache
sends none) while it draws with every distribution and build, factors an orthogonal matrix on
the blocked path, runs MLP and residual simulations (both norms, both positions, backward),
a Jacobian spectrum, LSUV and the stream kernels. Any kernel ``warmup`` missed shows up by name.
The test can fail: without the warmup process the second child compiles dozens of kernels.
"""

import json
import os
import subprocess
import sys
import warnings

import pytest

# Two processes compile (the parts shared out between them), both into the one cache.
_WARMUP = "import weightinit; weightinit.warmup(['float64'], ['relu'], jobs=2)"

_CALLS = r"""
import json
import numpy as np
from numba.core import event
import weightinit as W
from weightinit import random as R
from weightinit.kernels import activations as KA

with event.install_recorder("numba:compile") as rec:
    for n in (8, 1 << 20):
        for fn, args in ((R.uniform, ()), (R.normal, ()), (R.truncated_normal, ()),
                         (R.truncated_normal, (0.0, 1.0, -5.0, 5.0))):
            fn(n, *args, seed=1, dtype="float64")
    W.he_normal((300, 200), seed=2, dtype="float64")
    W.orthogonal((1024, 1024), seed=3, dtype="float64")
    kw = dict(activation="relu", samples=100, dtype="float64", seed=4)
    W.simulate(3, 40, std=1.4, backward=True, bins=7, **kw)
    W.simulate(3, 40, scheme="he_normal", **kw)
    for norm, position, depth in (("layer", "pre", 2), ("rms", "post", 1), (None, "pre", 2)):
        W.simulate(3, 40, std=1.0, architecture="residual", norm=norm, norm_position=position,
                   branch_depth=depth, backward=True, branch_scale="1/sqrt(L)", **kw)
    W.jacobian_spectrum(3, 16, activation="relu", std=1.4, samples=2)
    x = np.random.default_rng(0).standard_normal((64, 16))
    W.lsuv([W.he_normal((16, 16), seed=5, dtype="float64")], ["relu"], x)
    R.words(1 << 17, seed=6)
    R._normal_pit_words(R.normal(1 << 17, seed=7, dtype=np.float64))
print(json.dumps(sorted({e.data["dispatcher"].py_func.__qualname__
                         for _, e in rec.buffer if e.is_start})))
"""


def _child(code, cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_warmup_leaves_nothing_to_compile(tmp_path):
    _child(_WARMUP, tmp_path)
    compiled = json.loads(_child(_CALLS, tmp_path).strip().splitlines()[-1])
    assert compiled == [], f"compiled after warmup: {compiled}"


# ----------------------------------------------------------------------------- compile ahead
_CACHE_STATE = r"""
import numpy as np
import weightinit as W
from weightinit._warmup import in_cache
from weightinit.kernels import mlp as K
kernel = K.KERNELS["softplus", "float64"][0].kernel
before = in_cache(kernel)
W.simulate(1, 8, activation="softplus", std=1.0, samples=8, dtype="float64")
print(before, in_cache(kernel))
"""

# The CLI's first run in a fresh process: which kernels the process itself compiled, whether it
# loaded the forward kernel from the cache, and its statistics.
_FIRST_RUN = r"""
import json, sys, tempfile, os
from numba.core import event
from weightinit.cli import main
from weightinit.kernels import mlp as K
from weightinit import _warmup
started = []
start = _warmup._start_helper
_warmup._start_helper = lambda spec: started.append(start(spec)) or started[-1]
out = os.path.join(tempfile.mkdtemp(), "r.json")
with event.install_recorder("numba:compile") as rec:
    assert main(["simulate", "--activation", "elu", "--std", "1.2", "--depth", "3", "--width",
                 "40", "--samples", "200", "--dtype", "float64", "--json", out],
                stdout=open(os.devnull, "w")) == 0
hits = sum(K.KERNELS["elu", "float64"][0].kernel.stats.cache_hits.values())
print(json.dumps({"compiled": sorted({e.data["dispatcher"].py_func.__qualname__
                                      for _, e in rec.buffer if e.is_start}),
                  "hits": hits, "result": json.load(open(out)),
                  "helpers": [type(h).__name__ for h in started]}))
"""


def test_in_cache_tells_an_empty_cache_from_a_filled_one(tmp_path):
    assert _child(_CACHE_STATE, tmp_path).split() == ["False", "True"]


def test_first_cli_run_loads_the_forward_kernel_its_helper_compiled(tmp_path):
    """With a second core, the forward kernel is compiled by the helper process (on Linux a fork
    of the command's process), never by the CLI's own process, which loads it from the cache;
    the statistics are the same as with the helper turned off (each run in a fresh process with
    an empty cache)."""
    from weightinit._warmup import _cores

    if _cores() < 2:
        pytest.skip("the helper needs a second core")
    runs = {}
    for helper in ("1", "0"):
        cache = tmp_path / helper
        cache.mkdir()
        proc = subprocess.run([sys.executable, "-c", _FIRST_RUN], capture_output=True, text=True,
                              timeout=900, env=dict(os.environ, NUMBA_CACHE_DIR=str(cache),
                                                    WEIGHTINIT_COMPILE_HELPER=helper))
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[helper] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert runs["1"]["helpers"] == [("_Forked" if sys.platform.startswith("linux")
                                     else "Popen")] and runs["0"]["helpers"] == []
    assert "forward_elu_float64" not in runs["1"]["compiled"]
    assert runs["1"]["hits"] >= 1
    assert "forward_elu_float64" in runs["0"]["compiled"] and runs["0"]["hits"] == 0
    assert runs["1"]["result"] == runs["0"]["result"]


@pytest.mark.parametrize("fork", [True, False], ids=["forked", "interpreter"])
def test_a_failing_or_hanging_helper_only_costs_its_timeout(monkeypatch, fork):
    """The helper only fills the cache: one that fails at once, or hangs past the timeout (and
    is killed), leaves the simulation to compile what it needs, with the same results, whether
    the helper is a fork or a new interpreter."""
    import time

    import numpy as np

    import weightinit as W
    from weightinit import _warmup
    from weightinit import simulation as S

    if fork and not hasattr(os, "fork"):
        pytest.skip("no fork here")
    job = dict(activation="tanh", std=1.0, samples=128, dtype="float32")
    plain = W.simulate(3, 16, **job)
    monkeypatch.setattr(_warmup, "in_cache", lambda dispatcher: False)
    monkeypatch.setattr(_warmup, "_cores", lambda: 2)
    monkeypatch.setattr(_warmup, "_can_fork", lambda: fork)
    monkeypatch.setattr(_warmup, "HELPER_TIMEOUT", 1.0)
    for code in ("import sys; sys.exit(3)", "import time; time.sleep(60)"):
        if fork:
            monkeypatch.setattr(_warmup, "_helper", lambda spec, c=code: exec(c))
        else:
            monkeypatch.setattr(_warmup, "_helper_command",
                                lambda fn, arg, c=code: [sys.executable, "-c", c])
        t = time.perf_counter()
        assert _warmup.compile_ahead([job])
        r = W.simulate(3, 16, **job)
        assert time.perf_counter() - t < 30
        assert not S.BEFORE_FIRST_PASS
        for name in ("mean", "var", "q", "hist"):
            np.testing.assert_array_equal(getattr(r, name), getattr(plain, name))
    monkeypatch.setenv("WEIGHTINIT_COMPILE_HELPER", "0")
    assert not _warmup.compile_ahead([job])


def test_the_other_structures_compile_here_before_the_wait(monkeypatch):
    """A command whose runs have several structures: the helper takes the first, this process
    the others (one tiny run per set of kernels: not per branch scale, nor for RMSNorm beside
    LayerNorm), before it waits for the helper; the results are those without any of it."""
    import numpy as np

    import weightinit as W
    from weightinit import _warmup
    from weightinit import simulation as S

    base = dict(activation="tanh", std=1.0, samples=128, architecture="residual",
                branch_depth=1)
    jobs = [dict(base, norm="layer", norm_position="pre", branch_scale=1.0),
            dict(base, norm="rms", norm_position="pre", branch_scale=1.0),
            dict(base, norm="layer", norm_position="pre", branch_scale=0.5),
            dict(base, norm="layer", norm_position="post", branch_scale=1.0),
            dict(base, norm=None, norm_position="pre", branch_scale=1.0)]
    plain = [W.simulate(3, 16, **job) for job in jobs]
    monkeypatch.setattr(_warmup, "in_cache", lambda dispatcher: False)
    monkeypatch.setattr(_warmup, "_cores", lambda: 2)
    monkeypatch.setattr(_warmup, "_can_fork", lambda: False)
    monkeypatch.setattr(_warmup, "_helper_command",
                        lambda fn, arg: [sys.executable, "-c", "import sys; sys.exit(3)"])
    here, helper = [], _warmup._helper
    monkeypatch.setattr(_warmup, "_helper", lambda spec: here.append(spec) or helper(spec))
    assert _warmup.compile_ahead(jobs)
    assert len(S.BEFORE_FIRST_PASS) == 3 and not here
    runs = [W.simulate(3, 16, **job) for job in jobs]
    assert not S.BEFORE_FIRST_PASS
    assert [(json.loads(s).get("norm"), json.loads(s)["norm_position"]) for s in here] == [
        ("layer", "post"), (None, "pre")]
    for r, p in zip(runs, plain):
        for name in ("mean", "var", "q", "hist"):
            np.testing.assert_array_equal(getattr(r, name), getattr(p, name))
    monkeypatch.setattr(_warmup, "_helper", lambda spec: 1 / 0)  # a failing warm-up is only that
    assert _warmup.compile_ahead(jobs)
    W.simulate(3, 16, **jobs[0])
    assert not S.BEFORE_FIRST_PASS


def test_a_forked_helper_reports_its_exit_and_can_be_killed():
    """:class:`_warmup._Forked` waits, times out and kills like ``subprocess.Popen``."""
    import signal

    from weightinit import _warmup

    if not hasattr(os, "fork"):
        pytest.skip("no fork here")

    def fork():
        with warnings.catch_warnings():  # Python >= 3.12: this process has threads
            warnings.simplefilter("ignore")
            return os.fork()

    for code, status in ((0, 0), (5, 5)):
        pid = fork()
        if pid == 0:
            os._exit(code)
        assert _warmup._Forked(pid).wait(timeout=30) == status
    pid = fork()
    if pid == 0:
        import time

        time.sleep(60)
        os._exit(0)
    child = _warmup._Forked(pid)
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=0.1)
    child.kill()
    assert child.wait() == -signal.SIGKILL
    child.kill()  # already reaped: nothing to do


def test_only_a_fresh_single_threaded_process_forks(tmp_path):
    """A fresh process may fork its helper (on Linux); with another Python thread running, or
    Numba's thread pool started, it may not."""
    code = ("import sys, threading, numpy as np, weightinit as W\n"
            "from weightinit._warmup import _can_fork\n"
            "print(_can_fork())\n"
            "e = threading.Event(); t = threading.Thread(target=e.wait); t.start()\n"
            "print(_can_fork()); e.set(); t.join()\n"
            "W.normal(1 << 22, seed=1)\n"  # a parallel draw starts Numba's threads
            "print(_can_fork())\n")
    out = _child(code, tmp_path).split()
    assert out == [str(sys.platform.startswith("linux")), "False", "False"]


def test_warmup_in_processes_reports_every_part_and_a_failing_process(monkeypatch):
    import weightinit as W
    from weightinit import _warmup

    seen = []
    times = W.warmup(["float32"], ["tanh", "relu"], jobs=3,
                     progress=lambda part, s: seen.append(part))
    labels = ["generators float32", "simulation tanh float32", "simulation relu float32"]
    assert list(times) == labels + ["total"] and sorted(seen) == sorted(labels)
    assert all(t >= 0 for t in times.values())
    monkeypatch.setattr(_warmup, "_helper_command",
                        lambda fn, arg: [sys.executable, "-c", "import sys; sys.exit(3)"])
    with pytest.raises(RuntimeError, match="exit status"):
        W.warmup(["float32"], ["tanh"], jobs=2)
    for bad, err in ((0, ValueError), (1.5, TypeError)):
        with pytest.raises(err, match="jobs"):
            W.warmup(["float32"], [], jobs=bad)
