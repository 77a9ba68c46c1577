"""Compile every kernel ahead of use: :func:`weightinit.warmup` (and ``weightinit warmup``).

Each Numba kernel compiles the first time a call needs it and is then kept in Numba's on-disk
cache (``NUMBA_CACHE_DIR``, by default ``__pycache__`` beside the sources), so only the first
process that uses a kernel pays for it. ``warmup`` pays for all of them at once, for example
when a container image or a cluster's shared environment is built: it makes tiny calls that
together reach every kernel the library has, per dtype, so that later processes only load.

The kernels, per dtype (float32, float64), are:

- **generators**: uniform, normal, the ±2σ truncated normal and the general truncated normal,
  each as a serial and a parallel build (``weightinit.random``, section 6 of
  ``docs/performance.md``), and the transposes of the blocked orthogonal QR;
- **simulation**, per activation: the fused forward kernel (bias, activation, statistics,
  histogram) with its finisher for huge and non-finite values, and the backward step, the
  histogram kernel, and the layer/RMS normalisation of residual blocks
  (forward and backward);
- **float64 only**: the raw Philox words and the normal PIT of ``weightinit stream``, and the
  activation kernel used by :func:`weightinit.lsuv`.

A first run compiles on one core: Numba holds one compiler lock per process. So on an empty
cache ``weightinit simulate`` compiles the simulation's kernels in a helper process
(:func:`compile_ahead`) while it compiles the generators itself, and loads the helper's builds
from the cache when its pipeline starts.
"""

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np

from . import _validate as V
from . import random as R
from . import simulation as S
from .kernels import mlp as K
from .initializers import _BLOCK_QR_MIN, orthogonal
from .kernels.activations import CODES
from .lsuv import _activation
from .simulation import simulate

#: The dtypes the kernels are compiled for.
DTYPES = ("float32", "float64")
#: The activations of the simulation kernels.
ACTIVATIONS = tuple(CODES)


def _generators(dtype):
    # Serial below the thresholds of ``random.PARALLEL_FROM``, parallel from them: the smallest
    # size that takes the parallel build of every distribution is the largest threshold.
    for n in (8, max(R.PARALLEL_FROM.values())):
        R.uniform(n, seed=0, dtype=dtype)
        R.normal(n, seed=0, dtype=dtype)
        R.truncated_normal(n, seed=0, dtype=dtype)
        R.truncated_normal(n, 0.0, 1.0, -5.0, 5.0, seed=0, dtype=dtype)
    orthogonal((_BLOCK_QR_MIN, _BLOCK_QR_MIN), seed=0, dtype=dtype)  # the tiled transposes


def _simulation(dtype, activation, first):
    common = dict(activation=activation, std=1.0, samples=8, dtype=dtype, backward=True)
    simulate(2, 8, **common)
    simulate(2, 8, architecture="residual", branch_depth=2, norm="layer", **common)
    # Weights large enough to leave the fast path: the forward kernel's float64 finisher.
    simulate(1, 8, activation=activation, std=1e20, samples=8, dtype=dtype)
    if first:  # once per dtype: RMS norm after the addition (no activation in it)
        simulate(2, 8, architecture="residual", norm="rms", norm_position="post", **common)


def _float64_only():
    for n in (8, R._PARALLEL_MIN):  # `weightinit stream`: raw words and the normal PIT
        R.words(n, seed=0)
        R._normal_pit_words(R.normal(n, seed=0, dtype=np.float64))
    _activation(ACTIVATIONS[0], np.zeros(1), 0.01)  # one kernel: the activation is an argument


def _parts(dtypes, activations):
    """The parts of a warmup, in order: (label, function, arguments)."""
    parts = [(f"generators {d}", _generators, (d,)) for d in dtypes]
    parts += [(f"simulation {a} {d}", _simulation, (d, a, i == 0)) for d in dtypes
              for i, a in enumerate(activations)]
    if "float64" in dtypes:
        parts.append(("stream and lsuv float64", _float64_only, ()))
    return parts


#: Rough compile seconds of a part on an empty cache, to share the parts out between processes.
_COST = {"generators": 16.0, "simulation": 2.0, "stream": 4.5}


def warmup(dtypes=DTYPES, activations=ACTIVATIONS, *, progress=None, jobs=1):
    """Compile (or load from the on-disk cache) every kernel for ``dtypes`` and, of the
    simulation, for ``activations``; return the seconds taken per part.

    Parameters
    ----------
    dtypes : sequence of {"float32", "float64"}
        The dtypes to compile for (default both).
    activations : sequence of str
        The simulation's activations to compile for (default all of :data:`ACTIVATIONS`; an
        empty sequence skips the simulation).
    progress : callable, optional
        Called as ``progress(part, seconds)`` after each part.
    jobs : int or None
        Processes that compile at once (default 1: this process only; None: one per usable
        core). Numba compiles one function at a time per process, so ``jobs=2`` on two cores
        takes about half the time. The parts are shared out by their usual cost; a kernel
        two parts share may compile in two processes.

    Returns
    -------
    dict
        ``{"generators float32": s, "simulation tanh float32": s, ..., "total": s}``, the parts
        in order, "total" the wall time. On a cold cache every kernel compiles
        (``docs/performance.md`` section 7 has the times); on a warm one each part only loads.
    """
    dtypes = [V.check_dtype(d, "dtypes").name for d in _as_tuple("dtypes", dtypes)]
    activations = _as_tuple("activations", activations)
    for a in activations:
        V.check_choice("activations", a, ACTIVATIONS)
    jobs = _cores() if jobs is None else V.check_int("jobs", jobs, low=1)
    parts = _parts(dtypes, activations)
    t_all = time.perf_counter()
    if jobs == 1:
        times = {}

        def note(label, seconds):
            times[label] = seconds
            if progress is not None:
                progress(label, seconds)

        _run(parts, note)
    else:
        times = _in_processes(dtypes, activations, [p[0] for p in parts], jobs, progress)
    times["total"] = time.perf_counter() - t_all
    return times


def _run(parts, report):
    """Run the ``parts`` (label, function, arguments) in order, calling ``report(label,
    seconds)`` after each."""
    for label, fn, args in parts:
        t = time.perf_counter()
        fn(*args)
        report(label, time.perf_counter() - t)


def _in_processes(dtypes, activations, labels, jobs, progress):
    """The parts ``labels`` (of ``_parts(dtypes, activations)``) shared out between ``jobs``
    helper processes (largest first, each to the least loaded): their seconds per part, in the
    order of ``labels``."""
    def cost(label):
        return _COST[label.split()[0]]

    groups = [[] for _ in range(min(jobs, len(labels)))]
    load = [0.0] * len(groups)
    for label in sorted(labels, key=cost, reverse=True):
        i = load.index(min(load))
        groups[i].append(label)
        load[i] += cost(label)
    procs = [subprocess.Popen(_helper_command("_run_parts", json.dumps([dtypes, activations, g])),
                              env=_helper_env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
             for g in groups]
    done, lock, failed = {}, threading.Lock(), []

    def read(proc):
        with proc.stdout:
            for line in proc.stdout:
                label, seconds = json.loads(line)
                with lock:
                    done[label] = seconds
                    if progress is not None:
                        progress(label, seconds)
        if proc.wait():
            failed.append(proc.returncode)

    readers = [threading.Thread(target=read, args=(p,)) for p in procs]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    if failed or len(done) != len(labels):
        missing = [x for x in labels if x not in done]
        raise RuntimeError(f"weightinit warmup: a compiling process failed (exit status "
                           f"{failed}); parts not done: {missing}. Run with jobs=1 to see the "
                           "error.")
    return {x: done[x] for x in labels}


def _run_parts(job):
    """A helper process of :func:`warmup`: ``job`` is the JSON of ``[dtypes, activations,
    labels]``; run those parts of ``_parts(dtypes, activations)``, printing ``[label, seconds]``
    after each."""
    dtypes, activations, labels = json.loads(job)
    by_label = {p[0]: p for p in _parts(dtypes, activations)}
    _run([by_label[label] for label in labels],
         lambda label, seconds: print(json.dumps([label, seconds]), flush=True))


def _as_tuple(name, value):
    """One name or a sequence of names as a tuple."""
    if isinstance(value, str):
        return (value,)
    try:
        return tuple(value)
    except TypeError:
        raise TypeError(f"`{name}` must be a name or a sequence of names. Received: "
                        f"{name}={value!r}") from None


# ----------------------------------------------------------------------------- compile ahead
#: Seconds a simulation waits for its helper process before compiling the kernels itself.
HELPER_TIMEOUT = 300.0
#: The keywords of ``simulate`` that choose its forward pass's kernels (the rest only change
#: values or sizes).
_STRUCTURE = ("activation", "dtype", "architecture", "branch_depth", "branch_scale", "norm",
              "norm_position")


def in_cache(dispatcher):
    """Whether Numba's on-disk cache holds a build of the jitted ``dispatcher`` for this CPU and
    this version of its source (for any signature). True when that cannot be told (caching
    disabled, the JIT off, Numba internals changed): the caller then compiles as it always
    would."""
    try:
        cache = dispatcher._cache
        probe = cache._index_key(None, dispatcher.targetctx.codegen())
        return any(key[1:] == probe[1:] for key in cache._cache_file._load_index())
    except Exception:
        return True


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def compile_ahead(jobs):
    """Compile a command's simulation kernels ahead, over both cores, on a first run.

    ``jobs`` are the keyword dicts of the command's ``simulate`` calls. If the forward kernel of
    the first is not in Numba's on-disk cache and there is a second core, a helper process
    compiles the first job's forward-pass kernels into the cache (a tiny run of the same
    structure that draws nothing: zero weights, a given input), and the next simulation waits
    for it before its pipeline starts: this process compiles the generators meanwhile, so the
    two largest first-run compilations overlap. The jobs' other structures (another norm
    position, branch depth or architecture) get the same tiny runs in this process, just before
    that wait, which it would otherwise spend idle. Returns whether a helper was started.
    ``WEIGHTINIT_COMPILE_HELPER=0`` turns it off.

    The helper only fills the cache: if it fails or is slow (:data:`HELPER_TIMEOUT`), the
    simulation compiles what it needs itself, with the same results."""
    if os.environ.get("WEIGHTINIT_COMPILE_HELPER", "1") == "0" or _cores() < 2:
        return False
    specs = {}  # one per set of kernels, in the jobs' order
    for job in jobs:
        spec = {k: job[k] for k in _STRUCTURE if job.get(k) is not None}
        specs.setdefault(_kernels_key(spec), spec)
    first, *others = specs.values()
    dtype = V.check_dtype(first.get("dtype", "float32"), "dtype").name
    if in_cache(K.KERNELS[first.get("activation", "tanh"), dtype][0].kernel):
        return False
    helper = _start_helper(first)

    def wait():
        try:
            helper.wait(timeout=HELPER_TIMEOUT)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()

    S.BEFORE_FIRST_PASS.extend(functools.partial(_compile_here, spec) for spec in others)
    S.BEFORE_FIRST_PASS.append(wait)
    return True


def _kernels_key(spec):
    """What decides the kernels of a job's structure: not the branch scale (a value), nor which
    norm (LayerNorm and RMSNorm share their kernels)."""
    key = {k: v for k, v in spec.items() if k not in ("branch_scale", "norm")}
    key["norm"] = spec.get("norm") is not None
    return json.dumps(key, sort_keys=True)


def _compile_here(spec):
    """The helper's tiny run in this process. Only a warm-up: should it fail, the simulation
    that needs these kernels meets the same problem and reports it."""
    try:
        _helper(json.dumps(spec))
    except Exception:
        pass


def _start_helper(spec):
    """The helper process of :func:`compile_ahead` for the structure ``spec``: a fork of this
    process where that is safe (:func:`_can_fork`), which skips the interpreter's start and the
    imports (its compilation starts about 0.55 s sooner); otherwise a new interpreter."""
    if not _can_fork():
        return subprocess.Popen(_helper_command("_helper", json.dumps(spec)), env=_helper_env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    with warnings.catch_warnings():  # Python >= 3.12 warns of BLAS's threads: see _can_fork
        warnings.simplefilter("ignore")
        pid = os.fork()
    if pid:
        return _Forked(pid)
    code = 1  # the child: compile, then leave without running any of the parent's exit code
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):  # as across exec: handled -> default
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        _helper(json.dumps(spec))
        code = 0
    finally:
        os._exit(code)


def _can_fork():
    """Whether the helper may be a fork of this process: on Linux, with no Python thread but
    this one and Numba's thread pool not started, as at the start of a ``weightinit simulate``
    command. The only other threads are then BLAS's, and OpenBLAS stops its pool around a fork
    (``pthread_atfork``); the child only compiles and never runs parallel code. Elsewhere (macOS
    system libraries are not safe after a fork) the helper is a new interpreter."""
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    try:
        from numba.np.ufunc import parallel

        return not parallel._is_initialized
    except Exception:  # Numba's internals changed: do not fork
        return False


class _Forked:
    """``wait(timeout)`` and ``kill()`` of a forked child, as :class:`subprocess.Popen`'s."""

    def __init__(self, pid):
        self.pid, self.returncode = pid, None

    def wait(self, timeout=None):
        end = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            pid, status = os.waitpid(self.pid, 0 if end is None else os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
            elif time.monotonic() >= end:
                raise subprocess.TimeoutExpired("helper", timeout)
            else:
                time.sleep(0.002)
        return self.returncode

    def kill(self):
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)


def _helper_command(function, argument):
    """The command line of a helper process that calls this module's ``function(argument)``."""
    return [sys.executable, "-c",
            f"import sys, weightinit._warmup as w; w.{function}(sys.argv[1])", argument]


def _helper_env():
    """The environment of a helper process: this copy of the package first on its path (its
    kernels are the ones cached), the same Numba cache."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path))


def _helper(spec):
    """The helper process of :func:`compile_ahead`: a 2-layer run of 8 units and 8 samples with
    the job's structure, through the same kernels as the job's forward pass."""
    x = np.linspace(-1.0, 1.0, 64).reshape(8, 8)
    simulate(2, 8, scheme="zeros", samples=8, x=x, **json.loads(spec))
