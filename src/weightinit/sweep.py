r"""Simulation sweeps over :math:`(\sigma_w, \sigma_b)` grids on :mod:`dask.distributed`.

Each grid point is one :func:`weightinit.simulate` run of a deep MLP with weights
:math:`\mathcal{N}(0, \sigma_w^2/\mathrm{width})` and biases :math:`\mathcal{N}(0, \sigma_b^2)`,
forward and backward. From it the sweep measures

* the simulated :math:`\chi_1`: the growth factor of the back-propagated gradient's second
  moment per layer, :math:`E[(\partial L/\partial h^{l})^2] / E[(\partial L/\partial h^{l+1})^2]`,
  averaged geometrically over a window of layers (see :func:`chi1_from_grad_var`). Mean-field
  theory predicts it equals :math:`\chi_1 = \sigma_w^2 E[\phi'(\sqrt{q^*} z)^2]` (Schoenholz et
  al. 2017, eq. 6; :func:`weightinit.theory.chi1`);
* the last layer's pre-activation second moment :math:`q^L`, beside the theory's :math:`q^L`
  (:func:`weightinit.theory.propagate` from the measured input) and fixed point :math:`q^*`.

The points run as tasks of a dask.distributed cluster: a :class:`distributed.LocalCluster` of
single-threaded worker processes by default, or an existing scheduler (``scheduler=`` address;
its workers need weightinit installed). Every point uses the same ``seed``, so the points differ
only in :math:`\sigma_w, \sigma_b` (common random numbers: a smoother phase diagram). Needs the
optional extra ``pip install "weightinit[dask]"``.
"""

import contextlib
import dataclasses
import errno
import math
import os
import shutil
import signal
import tempfile
import threading
import time

import numpy as np

from . import __version__
from . import _validate as V
from . import theory as T
from .simulation import ACTIVATIONS, simulate

__all__ = ["SweepResult", "sweep", "chi1_from_grad_var", "parse_grid", "GRAD_VAR_BAND"]

#: Second moments of the gradient outside this band (per dtype) are not used to measure chi1:
#: beyond it the float entries themselves approach underflow or overflow.
GRAD_VAR_BAND = {"float32": (1e-50, 1e50), "float64": (1e-250, 1e250)}
_ARRAYS = ("sigma_w", "sigma_b", "chi1_sim", "chi1_theory", "chi1_layers", "q_sim", "q_theory",
           "q_star", "q", "grad_var", "nonfinite", "seconds")


def parse_grid(text, name="grid"):
    """``"start:stop:count"`` (inclusive, as :func:`numpy.linspace`), ``"a,b,c"`` or ``"a"``."""
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
            if count < 1 or not (math.isfinite(start) and math.isfinite(stop)):
                raise ValueError
            values = np.linspace(start, stop, count)
        else:
            values = np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise ValueError(f"`{name}` must be START:STOP:COUNT (COUNT >= 1, inclusive like "
                         f"numpy.linspace), comma-separated values or one value. Received: "
                         f"{text!r}") from None
    return _check_grid(name, values)


def _check_grid(name, values):
    a = np.asarray(values, dtype=float).reshape(-1)
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"`{name}` must be a non-empty list of finite numbers >= 0. Received: "
                         f"{values!r}")
    return a


def chi1_from_grad_var(grad_var, dtype="float32", first=None):
    r"""Simulated :math:`\chi_1` from per-layer gradient second moments.

    ``grad_var[k]`` is :math:`g_k = E[(\partial L/\partial h^{k+1})^2]` (k = 0 .. depth-1, as in
    :class:`weightinit.SimulationResult`). Layer :math:`k+1` multiplies it by
    :math:`r_k = g_{k-1}/g_k`, which mean-field theory predicts to be :math:`\chi_1` once the
    forward pass has reached its fixed point. The estimate is the geometric mean of
    :math:`r_k` over :math:`k \ge` ``first`` (default ``depth // 4``: the first quarter of the
    layers is the forward transient), keeping only pairs whose two second moments lie in
    :data:`GRAD_VAR_BAND` (deep ordered or chaotic networks drive the gradient towards underflow
    or overflow).

    Returns
    -------
    (float, int)
        The estimate (NaN when fewer than 2 pairs are usable) and the number of pairs used.
    """
    g = np.asarray(grad_var, dtype=float)
    depth = g.size
    first = max(1, depth // 4) if first is None else max(1, int(first))
    lo, hi = GRAD_VAR_BAND[np.dtype(dtype).name]
    ok = np.isfinite(g) & (g >= lo) & (g <= hi)
    k = np.arange(first, depth)
    k = k[ok[k] & ok[k - 1]]
    if k.size < 2:
        return math.nan, int(k.size)
    return float(np.exp(np.mean(np.log(g[k - 1]) - np.log(g[k])))), int(k.size)


@dataclasses.dataclass
class SweepResult:
    r"""Per-grid-point results of :func:`sweep`. Grids: ``sigma_w`` (n_w,), ``sigma_b`` (n_b,);
    per-point arrays have rows ``sigma_b`` and columns ``sigma_w`` (as
    :func:`weightinit.theory.phase_diagram`).

    Attributes
    ----------
    chi1_sim, chi1_theory : (n_b, n_w) simulated and mean-field :math:`\chi_1`.
    chi1_layers : (n_b, n_w) number of layer pairs behind ``chi1_sim``.
    q_sim, q_theory : (n_b, n_w) last layer's pre-activation second moment, simulated and
        predicted by :func:`weightinit.theory.propagate` from the measured input.
    q_star : (n_b, n_w) mean-field fixed point :math:`q^*` (inf where q diverges).
    q, grad_var : (n_b, n_w, depth) per-layer simulated q and gradient second moment.
    nonfinite : (n_b, n_w) largest share of NaN/inf activations over the layers.
    seconds : (n_b, n_w) time of each simulation on its worker; ``wall`` : whole sweep.
    """

    activation: str
    sigma_w: np.ndarray
    sigma_b: np.ndarray
    depth: int
    width: int
    samples: int
    seed: int
    dtype: str
    slope: float
    chi1_sim: np.ndarray
    chi1_theory: np.ndarray
    chi1_layers: np.ndarray
    q_sim: np.ndarray
    q_theory: np.ndarray
    q_star: np.ndarray
    q: np.ndarray
    grad_var: np.ndarray
    nonfinite: np.ndarray
    seconds: np.ndarray
    wall: float = math.nan
    workers: int = 0

    def critical_sigma_w(self, which="sim"):
        r"""Per ``sigma_b`` row, the :math:`\sigma_w` where :math:`\log\chi_1` first crosses 0
        going up the ``sigma_w`` grid (linear interpolation in :math:`\log\chi_1`); NaN if it
        does not cross inside the grid. ``which``: ``"sim"`` or ``"theory"``."""
        V.check_choice("which", which, ("sim", "theory"))
        chi = self.chi1_sim if which == "sim" else self.chi1_theory
        out = np.full(self.sigma_b.size, math.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            logc = np.log(chi)
        for i, row in enumerate(logc):
            for j in range(len(row) - 1):
                a, b = row[j], row[j + 1]
                if np.isfinite(a) and np.isfinite(b) and a < 0 <= b:
                    x0, x1 = self.sigma_w[j], self.sigma_w[j + 1]
                    out[i] = x0 + (x1 - x0) * (-a) / (b - a)
                    break
        return out

    def settings(self):
        """The scalar settings (JSON-ready dict)."""
        return {"activation": self.activation, "depth": self.depth, "width": self.width,
                "samples": self.samples, "seed": self.seed, "dtype": self.dtype,
                "slope": self.slope, "wall": self.wall, "workers": self.workers}

    def to_dataframe(self):
        """Long-format :class:`pandas.DataFrame`: one row per (grid point, layer).

        Columns: ``run`` (the point's index, ``i_b * n_w + i_w``), ``sigma_b``, ``sigma_w``,
        ``layer`` (1-based), the per-layer ``q`` and ``grad_var``, the per-point ``chi1_sim``,
        ``chi1_theory``, ``chi1_layers``, ``q_sim``, ``q_theory``, ``q_star``, ``nonfinite`` and
        ``seconds`` (repeated on the point's rows), then the settings ``activation``, ``depth``,
        ``width``, ``samples``, ``seed``, ``dtype`` and ``slope``. Needs pandas
        (``pip install "weightinit[pandas]"``).
        """
        pd = V.import_optional("pandas", "pandas", "SweepResult.to_dataframe()")
        n_b, n_w, depth = self.q.shape
        point = np.repeat(np.arange(n_b * n_w), depth)
        columns = {"run": point, "sigma_b": np.repeat(self.sigma_b, n_w * depth),
                   "sigma_w": np.tile(np.repeat(self.sigma_w, depth), n_b),
                   "layer": np.tile(np.arange(1, depth + 1), n_b * n_w),
                   "q": self.q.reshape(-1), "grad_var": self.grad_var.reshape(-1)}
        for name in ("chi1_sim", "chi1_theory", "chi1_layers", "q_sim", "q_theory", "q_star",
                     "nonfinite", "seconds"):
            columns[name] = np.asarray(getattr(self, name)).reshape(-1)[point]
        for name in ("activation", "depth", "width", "samples", "seed", "dtype", "slope"):
            columns[name] = [getattr(self, name)] * point.size
        return pd.DataFrame(columns)

    def to_zarr(self, path):
        """Write every array and the settings (as attributes) to a zarr group at ``path``,
        atomically: into a temporary directory beside it, renamed when complete. An existing
        ``path`` is never replaced (FileExistsError)."""
        zarr = _zarr()
        path = os.fspath(path).rstrip("/" + os.sep) or os.fspath(path)
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "already exists; remove it or choose another "
                                  "path", path)
        directory = os.path.dirname(os.path.abspath(path))
        tmp = tempfile.mkdtemp(prefix=f".weightinit-{os.path.basename(path)}-", suffix=".part",
                               dir=directory)
        try:
            store = os.path.join(tmp, "store")
            zarr.save_group(store, **{k: np.asarray(getattr(self, k)) for k in _ARRAYS})
            group = zarr.open_group(store, mode="r+")
            group.attrs.update({"format": "weightinit-sweep/1",
                                "weightinit_version": __version__, **self.settings()})
            os.rename(store, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    @classmethod
    def from_zarr(cls, path):
        """Read a result written by :meth:`to_zarr`."""
        zarr = _zarr()
        group = zarr.open_group(os.fspath(path), mode="r")
        attrs = dict(group.attrs)
        if attrs.get("format") != "weightinit-sweep/1":
            raise ValueError(f"{path} is not a weightinit sweep result.")
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in attrs.items() if k in fields}
        kw.update({k: np.asarray(group[k][...]) for k in _ARRAYS})
        return cls(**kw)


def _zarr():
    try:
        import zarr
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ImportError('Writing sweep results needs zarr: pip install "weightinit[dask]"') \
            from exc
    return zarr


def _run_point(sigma_w, sigma_b, settings, threads):
    """One grid point (runs on a worker): simulate forward and backward, return the numbers."""
    import numba

    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    t0 = time.perf_counter()
    width = settings["width"]
    r = simulate(settings["depth"], width, activation=settings["activation"],
                 std=sigma_w / math.sqrt(width), bias_std=sigma_b, samples=settings["samples"],
                 seed=settings["seed"], dtype=settings["dtype"], slope=settings["slope"],
                 backward=True, bins=1)
    return {"q": r.q, "grad_var": r.grad_var, "nonfinite": float(np.max(r.nonfinite)),
            "input_var": r.input_var, "seconds": time.perf_counter() - t0}


def _theory_point(activation, sw, sb, input_var, depth, slope):
    """Mean-field chi1, q* and the last layer's q for one point."""
    kw = {"slope": slope}
    chi = T.chi1(activation, sw, sb, **kw)
    q_star = T.fixed_point(activation, sw, sb, **kw)
    q_last = float(T.propagate(activation, sw, sb, input_var, depth, **kw)[-1])
    return chi, q_star, q_last


def _client(workers, scheduler, stack):
    """A dask.distributed client: to ``scheduler`` or to a new LocalCluster (closed by
    ``stack``)."""
    try:
        import logging

        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - exercised without the extra
        raise ImportError('Sweeps need dask.distributed: pip install "weightinit[dask]"') from exc
    if scheduler is not None:
        return stack.enter_context(Client(scheduler)), None
    stack.enter_context(_environ_kept())
    with _children_ignore_sigint():
        cluster = stack.enter_context(LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
            silence_logs=logging.ERROR))
    return stack.enter_context(Client(cluster)), cluster


@contextlib.contextmanager
def _environ_kept():
    """Restore ``os.environ`` on exit: distributed's nanny sets OMP_NUM_THREADS,
    OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and MALLOC_TRIM_THRESHOLD_ in this process for its
    workers, which would otherwise make every process the caller starts later single-threaded."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(before):
            del os.environ[key]
        os.environ.update(before)


@contextlib.contextmanager
def _children_ignore_sigint():
    """Processes started inside inherit SIGINT ignored (an ignored signal survives exec).

    Ctrl-C in a terminal signals the whole foreground process group. Only this process should
    react, by cancelling the tasks and closing the cluster; worker processes would otherwise
    die on their own, each printing a traceback. A Ctrl-C while the workers start is ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def sweep(activation, sigma_w, sigma_b, *, depth, width, samples=100, seed=0, dtype="float32",
          slope=0.01, workers=None, scheduler=None, client=None, threads_per_task=1,
          progress=None):
    r"""Simulate every :math:`(\sigma_w, \sigma_b)` of a grid on dask.distributed.

    Parameters
    ----------
    activation : str
        One of :data:`weightinit.simulation.ACTIVATIONS`.
    sigma_w, sigma_b : float or 1-D array_like
        Grids of weight and bias scales (weights :math:`\mathcal{N}(0, \sigma_w^2/
        \mathrm{width})`, biases :math:`\mathcal{N}(0, \sigma_b^2)`); see :func:`parse_grid`.
    depth, width, samples : int
        Network depth, units per layer (also the input dimension) and number of inputs.
    seed : int
        The simulation seed, the same for every point.
    dtype : {"float32", "float64"}
    slope : float
        Negative slope of leaky_relu.
    workers : int, optional
        Worker processes of the LocalCluster (default: the CPUs this process may use). Not used with
        ``scheduler`` or ``client``.
    scheduler : str, optional
        Address of a running dask scheduler (e.g. ``"tcp://10.0.0.1:8786"``).
    client : distributed.Client, optional
        Use this client (its cluster is left running).
    threads_per_task : int
        Numba threads each simulation uses (default 1: one single-threaded task per worker
        process; BLAS is single-threaded in dask workers).
    progress : callable, optional
        Called as ``progress(done, total)`` when a point finishes.

    Returns
    -------
    SweepResult

    Ctrl-C (KeyboardInterrupt) cancels the outstanding tasks and shuts a LocalCluster down
    before re-raising.
    """
    V.check_choice("activation", activation, ACTIVATIONS)
    sws = _check_grid("sigma_w", [sigma_w] if np.ndim(sigma_w) == 0 else sigma_w)
    sbs = _check_grid("sigma_b", [sigma_b] if np.ndim(sigma_b) == 0 else sigma_b)
    depth = V.check_int("depth", depth, low=1)
    width = V.check_int("width", width, low=1)
    samples = V.check_int("samples", samples, low=1)
    seed = V.check_int("seed", seed, low=0)
    dtype = V.check_dtype(dtype).name
    slope = V.check_real("slope", slope)
    threads = V.check_int("threads_per_task", threads_per_task, low=1)
    if sum(x is not None for x in (scheduler, client)) > 1:
        raise ValueError("Give at most one of `scheduler` and `client`.")
    if workers is not None:
        workers = V.check_int("workers", workers, low=1)
        if scheduler is not None or client is not None:
            raise ValueError("`workers` sizes the LocalCluster; a `scheduler` or `client` brings "
                             "its own workers.")
    if workers is None:
        workers = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count() or 1)
    settings = {"activation": activation, "depth": depth, "width": width, "samples": samples,
                "seed": seed, "dtype": dtype, "slope": slope}
    shape = (sbs.size, sws.size)
    out = {k: np.full(shape, math.nan) for k in ("chi1_sim", "chi1_theory", "q_sim", "q_theory",
                                                   "q_star", "nonfinite", "seconds")}
    out["chi1_layers"] = np.zeros(shape, np.int64)
    out["q"] = np.full(shape + (depth,), math.nan)
    out["grad_var"] = np.full(shape + (depth,), math.nan)
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if client is None:
            client, _ = _client(workers, scheduler, stack)
        from distributed import as_completed

        n_workers = len(client.nthreads()) or workers
        futures, where = [], {}
        for i, sb in enumerate(sbs):
            for j, sw in enumerate(sws):
                fut = client.submit(_run_point, float(sw), float(sb), settings, threads,
                                    pure=False)
                futures.append(fut)
                where[fut.key] = (i, j)
        try:
            for done, fut in enumerate(as_completed(futures), 1):
                i, j = where[fut.key]
                _store(out, i, j, fut.result(), activation, float(sws[j]), float(sbs[i]),
                       depth, slope, dtype)
                if progress is not None:
                    progress(done, len(futures))
        except BaseException:
            client.cancel(futures)
            raise
    return SweepResult(activation=activation, sigma_w=sws, sigma_b=sbs, depth=depth,
                       width=width, samples=samples, seed=seed, dtype=dtype, slope=slope,
                       wall=time.perf_counter() - t0, workers=n_workers, **out)


def _store(out, i, j, res, activation, sw, sb, depth, slope, dtype):
    out["q"][i, j] = res["q"]
    out["grad_var"][i, j] = res["grad_var"]
    out["q_sim"][i, j] = res["q"][-1]
    out["nonfinite"][i, j] = res["nonfinite"]
    out["seconds"][i, j] = res["seconds"]
    out["chi1_sim"][i, j], out["chi1_layers"][i, j] = chi1_from_grad_var(res["grad_var"], dtype)
    (out["chi1_theory"][i, j], out["q_star"][i, j],
     out["q_theory"][i, j]) = _theory_point(activation, sw, sb, res["input_var"], depth, slope)
