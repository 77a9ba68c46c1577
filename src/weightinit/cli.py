"""Command line: ``weightinit describe | generate | warmup | simulate | theory | figures |
stream | sweep``.

argparse -> public API. ``simulate``, ``theory`` and ``figures`` draw with
:mod:`weightinit.plotting` (matplotlib, the optional "plot" extra), imported only when a figure is
asked for. Every output file is written to a temporary file beside it and renamed into place once
complete, so an error, Ctrl-C or SIGTERM never leaves a partial file (only SIGKILL or a crash
can leave a ``.weightinit-*.part`` temporary file, never a partial output). ``generate --zarr
PATH`` writes into ``PATH.part`` and keeps it when interrupted, so that the same command resumes.
``sweep`` runs on dask.distributed and ``generate --zarr`` writes with zarr (the "dask" extra).
"""

import argparse
import importlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

import numpy as np

from . import __version__
from . import initializers as _init
from . import random as R
from ._progress import Progress
from ._validate import check_memory
from .random import _check_seed, planning

_CHUNK = 1 << 24  # elements per chunk when streaming a large tensor to disk


def _param(text):
    """``key=value`` with value parsed as JSON when possible (numbers, true/false), else text."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _parser():
    p = argparse.ArgumentParser(
        prog="weightinit", description="Exact, reproducible, fast weight initialisation.")
    p.add_argument("--version", action="version", version=f"weightinit {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("describe", help="list schemes with formulas, or describe one for a shape")
    d.add_argument("scheme", nargs="?", help="scheme name (see `weightinit describe`)")
    d.add_argument("--shape", type=int, nargs="+", help="weight shape, e.g. --shape 512 256")
    _common(d)
    d.add_argument("--json", action="store_true", help="print JSON instead of text")

    g = sub.add_parser("generate", help="write an initialised tensor to a .npy file atomically")
    g.add_argument("--shape", type=int, nargs="+", required=True)
    g.add_argument("--scheme", required=True)
    g.add_argument("--seed", type=int, default=None, help="0 <= seed < 2**64 (default: random)")
    g.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    dest = g.add_mutually_exclusive_group(required=True)
    dest.add_argument("--out", help="output .npy path")
    dest.add_argument("--zarr", metavar="PATH",
                      help="output zarr array (directory), written chunk by chunk with bounded "
                      "memory; an interrupted write stays in PATH.part and the same command "
                      "resumes it (needs the dask extra)")
    g.add_argument("--chunk-mib", type=_argtype(float, 1e-6, "a positive number"), default=64.0,
                   help="with --zarr: MiB per chunk of whole rows (default 64; at least one "
                   "row per chunk)")
    g.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    _common(g)

    w = sub.add_parser("warmup", help="compile (and cache) every kernel for both dtypes")
    w.add_argument("--quiet", action="store_true")

    _simulate_parser(sub)
    _theory_parser(sub)
    _figures_parser(sub)
    _stream_parser(sub)
    _sweep_parser(sub)
    return p


def _common(p):
    p.add_argument("--layout", default="torch", choices=("torch", "keras", "jax"))
    p.add_argument("--param", "-p", type=_param, action="append", default=[],
                   metavar="KEY=VALUE", help="scheme parameter, e.g. -p mode=fan_out -p gain=2")


def _describe(args, stdout):
    if args.scheme is None:
        width = max(map(len, _init.REGISTRY))
        for name in _init.schemes():
            print(f"{name:<{width}}  {_init.FORMULAS[name]}", file=stdout)
        aliases = ", ".join(f"{a} = {t}" for a, t in _init.ALIASES.items())
        print(f"\naliases: {aliases}", file=stdout)
        return 0
    if not args.shape:
        raise ValueError("`--shape` is required to describe a scheme, e.g. --shape 512 256")
    info = _init.describe(tuple(args.shape), args.scheme, layout=args.layout, **dict(args.param))
    if args.json:
        def plain(v):  # JSON has no inf: an unbounded normal's bound is written as null
            if isinstance(v, tuple):
                return list(v)
            return None if isinstance(v, float) and not math.isfinite(v) else v

        print(json.dumps({k: plain(v) for k, v in info.items()}), file=stdout)
    else:
        for k, v in info.items():
            print(f"{k:>12}: {v:.6g}" if isinstance(v, float) else f"{k:>12}: {v}", file=stdout)
    return 0


_WHOLE = ("orthogonal", "identity", "dirac", "eye")  # built whole in memory


def _generate(args, stdout):
    if args.zarr is not None:
        return _generate_zarr(args, stdout)
    shape = tuple(args.shape)
    dtype = np.dtype(args.dtype)
    fn = _init.get(args.scheme)
    kwargs = dict(args.param, seed=_check_seed(args.seed), dtype=dtype, layout=args.layout)
    n = math.prod(shape) if all(d > 0 for d in shape) else 0
    streamed = args.scheme not in _WHOLE and n > _CHUNK
    if streamed:
        with planning():  # validates every argument before any file is touched
            plan = fn(shape, **kwargs)
    directory = os.path.dirname(os.path.abspath(args.out))
    if streamed:
        _check_disk(directory, n * dtype.itemsize, f"--shape {' '.join(map(str, shape))}")
    fd, tmp = tempfile.mkstemp(prefix=".weightinit-", suffix=".npy.part", dir=directory)
    os.close(fd)
    try:
        if streamed:
            check_memory(_CHUNK * dtype.itemsize, "one chunk")
            mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            flat = mm.reshape(-1)
            bar = Progress(n, "generate", enabled=not args.no_progress)
            for start in range(0, n, _CHUNK):
                stop = min(start + _CHUNK, n)
                _draw_chunk(plan, kwargs["seed"], kwargs.get("offset", 0) + start, flat[start:stop])
                bar.update(stop)
            bar.close()
            mm.flush()
            del mm, flat
        else:
            with open(tmp, "wb") as f:
                np.save(f, fn(shape, **kwargs))
        _publish(tmp, args.out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    print(f"wrote {args.out}: {args.scheme} {shape} {dtype.name} seed={kwargs['seed']}",
          file=stdout)
    return 0


def _generate_zarr(args, stdout):
    """``generate --zarr PATH``: :func:`weightinit.dask.write_zarr` with a progress bar. The
    array is written in PATH.part and renamed to PATH when complete; an interrupted write is
    resumed by the same command; an existing PATH is never replaced."""
    import importlib.util

    try:
        from . import dask as D
    except ImportError as e:
        raise MissingDependencyError(str(e)) from e
    if importlib.util.find_spec("zarr") is None:
        raise MissingDependencyError('generate --zarr needs zarr, which is not installed. '
                                     'Install it with: pip install "weightinit[dask]"')
    from ._validate import check_shape

    shape = check_shape(tuple(args.shape))
    dtype = np.dtype(args.dtype)
    directory = os.path.dirname(os.path.abspath(args.zarr))
    if not os.path.isdir(directory):
        raise ValueError(f"--zarr {args.zarr}: the directory {directory} does not exist.")
    part = args.zarr.rstrip("/" + os.sep) + ".part"
    written = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(part) for f in fs)
    _check_disk(directory, math.prod(shape) * dtype.itemsize - written,
                f"--shape {' '.join(map(str, shape))}")
    bars = []

    def progress(done, total):
        if not bars:
            bars.append(Progress(total, "generate", enabled=not args.no_progress))
        bars[0].update(done)

    try:
        info = D.write_zarr(args.zarr, shape, args.scheme, seed=args.seed, dtype=dtype,
                            layout=args.layout, chunk_bytes=max(1, int(args.chunk_mib * 2**20)),
                            progress=progress, **dict(args.param))
    except KeyboardInterrupt:
        if bars:
            bars.pop().close()
        if os.path.isdir(part):
            print(f"weightinit generate: the chunks written so far are kept in {part}; run "
                  "the same command again to resume", file=sys.stderr)
        raise
    finally:
        if bars:
            bars[0].close()
    resumed = (f", resumed after {info['resumed_from']} of {info['chunks_total']} chunks"
               if info["resumed_from"] else "")
    print(f"wrote {info['path']}: {args.scheme} {shape} {dtype.name} seed={info['seed']} "
          f"(zarr, {info['chunks_total']} chunks of {list(info['chunks'])}{resumed})",
          file=stdout)
    return 0


def _check_disk(directory, nbytes, what):
    """Refuse before writing if ``directory``'s file system has less than ``nbytes`` free (a
    memory-mapped write would otherwise die of SIGBUS when the disk fills)."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return  # a missing directory is reported where the file is created
    if nbytes > free:
        raise ValueError(
            f"{what}: the file needs {nbytes / 2**30:.2f} GiB but only {free / 2**30:.2f} GiB is "
            f"free in {directory}. Write it to a larger disk or use a smaller shape.")


def _publish(tmp, path):
    """Make the finished temporary file durable and move it into place in one atomic step."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _draw_chunk(plan, seed, start, out):
    """Fill the flat slice ``out`` with elements ``start..`` of the tensor ``plan`` describes."""
    if plan.kind == "constant":
        out.fill(plan.params[0])
        return
    draw = getattr(R, plan.kind)
    draw(out.shape, *plan.params, seed=seed, dtype=out.dtype, out=out, offset=start)


def _warmup(args, stdout):
    t0 = time.perf_counter()
    for dtype in ("float32", "float64"):
        for n in (8, 1 << 16):  # serial and parallel builds
            R.uniform(n, seed=0, dtype=dtype)
            R.normal(n, seed=0, dtype=dtype)
            R.truncated_normal(n, seed=0, dtype=dtype)
            R.truncated_normal(n, 0.0, 1.0, -5.0, 5.0, seed=0, dtype=dtype)
    for n in (8, 1 << 16):  # `weightinit stream`: raw words and the normal PIT
        R.words(n, seed=0)
        R._normal_pit_words(R.normal(n, seed=0, dtype=np.float64))
    if not args.quiet:
        print(f"compiled or loaded every kernel in {time.perf_counter() - t0:.1f} s", file=stdout)
    return 0


# ============================================================================= simulate / theory
class MissingDependencyError(RuntimeError):
    """An optional dependency (matplotlib, for figures) is not installed."""


def _plotting():
    """Import :mod:`weightinit.plotting` on first use (it imports matplotlib)."""
    try:
        return importlib.import_module(".plotting", __package__)
    except ImportError as e:
        raise MissingDependencyError(str(e)) from e


def _argtype(cast, minimum, label):
    """An argparse type: ``cast(text)``, finite and at least ``minimum``."""
    def parse(text):
        try:
            v = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {label}, got {text!r}") from None
        if not (math.isfinite(v) and v >= minimum):
            raise argparse.ArgumentTypeError(f"must be {label}, got {text!r}")
        return v
    return parse


_positive_int = _argtype(int, 1, "a positive integer")
_nonneg_int = _argtype(int, 0, "an integer >= 0")
_nonneg_float = _argtype(float, 0.0, "a finite number >= 0")


def _finite_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return v


def _bias(text):
    return "auto" if text == "auto" else _finite_float(text)


def _progress_args(p):
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: on when stderr is a terminal)")


def _want_progress(args):
    return (True if args.progress is None else args.progress) and sys.stderr.isatty()


def _simulate_parser(sub):
    s = sub.add_parser(
        "simulate", help="propagate random inputs through a deep MLP: per-layer statistics, "
        "activation histograms, mean-field comparison",
        description="Propagate N(0, I) inputs through `depth` dense layers h = act(h W + b) and "
        "summarise each layer's activations. Prints a per-layer table; --plot draws histograms "
        "(rows: one per --scheme/--std value, columns: layers), --theory compares q per layer "
        "with mean-field theory, --json writes every statistic.")
    s.add_argument("--activation", default="tanh",
                   help="linear, sigmoid, tanh, relu, leaky_relu, elu, selu, gelu, silu or "
                   "softplus (default tanh)")
    how = s.add_mutually_exclusive_group(required=True)
    how.add_argument("--scheme", nargs="+", metavar="NAME",
                     help="one or more weight schemes to compare (see `weightinit describe`)")
    how.add_argument("--std", nargs="+", type=_nonneg_float, metavar="STD",
                     help="one or more plain N(0, STD^2) weight distributions to compare")
    s.add_argument("--depth", type=_positive_int, default=None, help="layers (default 5)")
    s.add_argument("--width", type=_positive_int, default=None, help="units per layer (default 100)")
    s.add_argument("--widths", type=_positive_int, nargs="+", metavar="W",
                   help="one width per layer, instead of --depth and --width")
    s.add_argument("--samples", type=_positive_int, default=1000, help="inputs (default 1000)")
    s.add_argument("--input-dim", type=_positive_int, default=None,
                   help="input features (default: the first width)")
    s.add_argument("--bias", type=_bias, default=0.0,
                   help='constant bias, or "auto" (0.01 for the ReLU family, else 0); default 0')
    s.add_argument("--bias-std", type=_nonneg_float, default=0.0,
                   help="also add a N(0, BIAS_STD^2) bias per unit (default 0)")
    s.add_argument("--seed", type=_nonneg_int, default=0, help="default 0")
    s.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    s.add_argument("--bins", type=_positive_int, default=30,
                   help="histogram bins (default 30; over [0, 1] for sigmoid, [-1, 1] for tanh, "
                   "each layer's range otherwise)")
    s.add_argument("--backward", action="store_true",
                   help="also back-propagate a random cotangent and report the gradient's second "
                   "moment per layer")
    s.add_argument("--param", "-p", type=_param, action="append", default=[], metavar="KEY=VALUE",
                   help="scheme parameter, e.g. -p scale=2.25 -p distribution=normal")
    s.add_argument("--plot", metavar="PATH", help="write the histogram figure (png, pdf, svg, ...)")
    s.add_argument("--max-layers", type=_positive_int, default=10,
                   help="histogram columns for deep networks: at most this many evenly spaced "
                   "layers (default 10)")
    s.add_argument("--json", metavar="PATH",
                   help="write every run's statistics as JSON (a list of SimulationResult.to_dict())")
    s.add_argument("--theory", metavar="PATH",
                   help="write a figure of q per layer: simulation vs mean-field prediction")
    _progress_args(s)


def _theory_parser(sub):
    t = sub.add_parser(
        "theory", help="mean-field order/chaos quantities and the phase diagram",
        description="Mean-field signal propagation (Poole et al. 2016; Schoenholz et al. 2017) "
        "for weights N(0, sigma_w^2 / fan_in) and biases N(0, sigma_b^2): the critical sigma_w "
        "(chi1 = 1, the edge of chaos) with q* there, and with --sigma-w the fixed points, chi1 "
        "and depth scales at that sigma_w.")
    t.add_argument("--activation", default="tanh", help="activation (default tanh)")
    t.add_argument("--sigma-b", type=_nonneg_float, default=0.0, help="bias std (default 0)")
    t.add_argument("--sigma-w", type=_nonneg_float, default=None,
                   help="weight scale: std of W times sqrt(fan_in); prints its depth scales")
    t.add_argument("--slope", type=_finite_float, default=0.01,
                   help="negative slope of leaky_relu (default 0.01)")
    t.add_argument("--phase-diagram", metavar="PATH",
                   help="write the (sigma_w, sigma_b) phase diagram figure (png, pdf, svg, ...)")
    t.add_argument("--sigma-w-range", type=_nonneg_float, nargs=2, default=(0.5, 4.0),
                   metavar=("MIN", "MAX"), help="phase diagram x range (default 0.5 4)")
    t.add_argument("--sigma-b-range", type=_nonneg_float, nargs=2, default=(0.0, 1.0),
                   metavar=("MIN", "MAX"), help="phase diagram y range (default 0 1)")
    t.add_argument("--resolution", type=_positive_int, default=60,
                   help="phase diagram grid points per axis (default 60; the cost grows as its "
                   "square)")
    _progress_args(t)


def _figures_parser(sub):
    f = sub.add_parser(
        "figures", help="regenerate the figures of docs/simulation.md and docs/frameworks.md "
        "and their numbers.json",
        description="Run every simulation behind docs/simulation.md (and the LSUV figure of "
        "docs/frameworks.md) and write the figures and numbers.json (the key per-layer "
        "statistics and theory values quoted by the docs).")
    f.add_argument("--out", default=os.path.join("docs", "figures"),
                   help="output directory (created if missing; default docs/figures)")
    _progress_args(f)


class _Outputs:
    """Output files staged as temporary files beside their destinations and moved into place
    together by :meth:`publish`; :meth:`discard` (call it in ``finally``) removes the rest."""

    def __init__(self):
        self.pending = []  # (tmp, path)
        self.published = []

    def new(self, path):
        directory = os.path.dirname(os.path.abspath(path))
        base = os.path.basename(path)
        fd, tmp = tempfile.mkstemp(prefix=f".weightinit-{base}-", suffix=".part", dir=directory)
        os.close(fd)
        self.pending.append((tmp, path))
        return tmp

    def figure(self, plotting, fig, path, fmt):
        plotting.save(fig, self.new(path), fmt)

    def text(self, text, path):
        with open(self.new(path), "w", encoding="utf-8") as f:
            f.write(text)

    def publish(self):
        while self.pending:
            tmp, path = self.pending[0]
            _publish(tmp, path)
            self.pending.pop(0)
            self.published.append(path)

    def discard(self):
        for tmp, _ in self.pending:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        self.pending.clear()


def _check_outputs(**paths):
    """Validate output paths (option name -> path or None) before any work is done."""
    seen = {}
    for option, path in paths.items():
        if path is None:
            continue
        flag = "--" + option.replace("_", "-")
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise ValueError(f"{flag} {path}: the directory {directory} does not exist.")
        if os.path.isdir(path):
            raise ValueError(f"{flag} {path} is a directory; give a file name.")
        key = os.path.abspath(path)
        if key in seen:
            raise ValueError(f"{seen[key]} and {flag} name the same file {path}.")
        seen[key] = flag


def _json_text(obj, **kw):
    return json.dumps(obj, allow_nan=False, **kw) + "\n"


def _resolve_widths(args):
    if args.widths is not None:
        if args.width is not None:
            raise ValueError("Give either --widths or --width, not both.")
        if args.depth is not None and args.depth != len(args.widths):
            raise ValueError(f"--depth {args.depth} disagrees with the {len(args.widths)} "
                             "values of --widths.")
        return list(args.widths)
    return [args.width or 100] * (args.depth or 5)


def _simulate(args, stdout):
    from . import simulation as S
    from ._validate import check_choice

    check_choice("activation", args.activation, S.ACTIVATIONS)
    widths = _resolve_widths(args)
    params = dict(args.param)
    input_dim = args.input_dim or widths[0]
    if args.std is not None and params:
        raise ValueError("--param sets scheme parameters; it needs --scheme, not --std.")
    runs = []  # simulate() keyword arguments, one dict per row of the figure
    constant = []
    for value in (args.std if args.std is not None else args.scheme):
        kw = dict(activation=args.activation, widths=widths, samples=args.samples,
                  input_dim=args.input_dim, bias=args.bias, bias_std=args.bias_std,
                  seed=args.seed, dtype=args.dtype, bins=args.bins, backward=args.backward)
        if args.std is not None:
            kw["std"] = value
        else:
            info = _init.describe((input_dim, widths[0]), value, layout="keras", **params)
            if info["distribution"] in ("constant", "identity"):
                constant.append(value)
            kw.update(scheme=value, **params)
        runs.append(kw)
    _check_outputs(plot=args.plot, json=args.json, theory=args.theory)
    if args.theory and len(constant) == len(runs):
        raise ValueError(f"--theory needs random weights; {', '.join(constant)} gives constant "
                         "weights, where mean-field theory does not apply.")
    plotting = _plotting() if (args.plot or args.theory) else None
    fmts = {k: plotting.check_path(p) for k, p in (("plot", args.plot), ("theory", args.theory))
            if p}
    progress = _want_progress(args)

    outputs = _Outputs()
    try:
        results = []
        for i, kw in enumerate(runs):
            result = S.simulate(progress=progress, **kw)
            results.append(result)
            _print_table(result, i, len(runs), kw, stdout)
        if args.json:
            outputs.text(_json_text([r.to_dict() for r in results]), args.json)
        if args.plot:
            fig = plotting.histograms(results, max_layers=args.max_layers)
            outputs.figure(plotting, fig, args.plot, fmts["plot"])
        if args.theory:
            pairs = []
            for r in results:
                try:
                    pairs.append((r, r.theory()))
                except ValueError as e:
                    print(f"weightinit simulate: --theory leaves out {plotting.run_label(r)}: {e}",
                          file=sys.stderr)
            if not pairs:
                raise ValueError("--theory: mean-field theory applies to none of the runs.")
            fig = plotting.theory_vs_simulation([p[0] for p in pairs], [p[1] for p in pairs])
            outputs.figure(plotting, fig, args.theory, fmts["theory"])
        outputs.publish()
    finally:
        outputs.discard()
    for path in outputs.published:
        print(f"wrote {path}", file=stdout)
    return 0


def _weights_text(result):
    if result.scheme.startswith("normal(std="):
        return f"N(0, {result.params['std']:g}^2) weights"
    extra = ", ".join(f"{k}={v}" for k, v in result.params.items())
    return f"{result.scheme}{f' ({extra})' if extra else ''} weights"


def _print_table(result, index, total, kw, stdout):
    """A compact per-layer table: layer, mean, std, saturated, dead (+ gradient, NaN share)."""
    w = result.widths
    shape = f"{len(w)} x {w[0]} units" if len(set(w)) == 1 else "widths " + "-".join(map(str, w))
    bias = ""
    if result.bias:
        bias += f", bias {result.bias:g}"
    if result.sigma_b2:
        bias += f", bias std {math.sqrt(result.sigma_b2):g}"
    print(f"# run {index + 1}/{total}: {result.activation}, {_weights_text(result)}, {shape}, "
          f"{result.samples} samples{bias}, seed {kw['seed']}", file=stdout)
    cols = ["layer", "mean", "std", "saturated", "dead"]
    grad = result.grad_var is not None
    bad = bool(np.any(result.nonfinite > 0))
    if grad:
        cols.append("grad_var")
    if bad:
        cols.append("nan/inf")
    print("".join(f"{c:>11}" if j else f"{c:>5}" for j, c in enumerate(cols)), file=stdout)
    for layer in range(result.depth):
        row = (f"{layer + 1:>5}{result.mean[layer]:>11.4g}{result.std[layer]:>11.4g}"
               f"{result.saturated[layer]:>11.1%}{result.dead[layer]:>11.1%}")
        if grad:
            row += f"{result.grad_var[layer]:>11.4g}"
        if bad:
            row += f"{result.nonfinite[layer]:>11.1%}"
        print(row, file=stdout)


def _fmt(v):
    return "inf" if v == math.inf else f"{v:.6g}"


def _phase_grid(activation, sw_grid, sb_grid, slope, progress):
    """chi1 on the grid (rows sigma_b), one row at a time so a progress bar can follow."""
    from . import theory as T

    bar = Progress(len(sb_grid), "phase diagram", enabled=progress)
    rows = []
    for i, sb in enumerate(sb_grid):
        rows.append(T.phase_diagram(activation, sw_grid, [sb], slope=slope)[0])
        bar.update(i + 1)
    bar.close()
    return np.array(rows)


def _theory(args, stdout):
    from . import simulation as S
    from . import theory as T
    from ._validate import check_choice

    check_choice("activation", args.activation, S.ACTIVATIONS)
    a, sb, slope = args.activation, args.sigma_b, args.slope
    sw_lo, sw_hi = args.sigma_w_range
    sb_lo, sb_hi = args.sigma_b_range
    if args.phase_diagram:
        if not sw_lo < sw_hi:
            raise ValueError(f"--sigma-w-range needs MIN < MAX. Received: {sw_lo:g} {sw_hi:g}")
        if not sb_lo < sb_hi:
            raise ValueError(f"--sigma-b-range needs MIN < MAX. Received: {sb_lo:g} {sb_hi:g}")
        if args.resolution < 2:
            raise ValueError("--resolution must be at least 2.")
        _check_outputs(phase_diagram=args.phase_diagram)
        plotting = _plotting()
        fmt = plotting.check_path(args.phase_diagram)
    kw = dict(slope=slope) if a == "leaky_relu" else {}
    lines = [("activation", a + (f" (slope {slope:g})" if kw else "")), ("sigma_b", _fmt(sb))]
    try:
        crit = T.critical_sigma_w(a, sb, **kw)
    except ValueError as e:
        crit = None
        lines.append(("critical sigma_w", f"none: {e}"))
    if crit is not None:
        lines.append(("critical sigma_w", f"{_fmt(crit)}   (chi1 = 1, the edge of chaos; "
                      f"sigma_w^2 = {_fmt(crit * crit)}, Var(W) = sigma_w^2 / fan_in)"))
        q = T.fixed_point(a, crit, sb, **kw)
        note = ""
        if q == math.inf:
            note = "   (q grows without bound)"
        elif q > 0 and abs(T.q_map(2 * q, a, crit, sb, **kw) - 2 * q) <= 1e-9 * q:
            note = "   (marginal: the map is the identity, every q is a fixed point)"
        lines.append(("q* at critical", _fmt(q) + note))
        lines.append(("chi1 at critical", _fmt(T.chi1(a, crit, sb, **kw))))
    if args.sigma_w is not None:
        sw = args.sigma_w
        chi = T.chi1(a, sw, sb, **kw)
        phase = ("ordered (chi1 < 1)" if chi < 1 - 1e-9 else "chaotic (chi1 > 1)"
                 if chi > 1 + 1e-9 else "critical (chi1 = 1)")
        lines += [("sigma_w", f"{_fmt(sw)}   (sigma_w^2 = {_fmt(sw * sw)})"), ("phase", phase)]
        try:
            scales = T.depth_scales(a, sw, sb, **kw)
        except ValueError as e:
            lines += [("q*", "inf   (q grows without bound)"), ("chi1", _fmt(chi)),
                      ("depth scales", f"undefined: {e}")]
        else:
            names = {"q_star": "q*", "c_star": "c*", "chi1": "chi1", "chi_c": "chi_c",
                     "xi_q": "xi_q", "xi_c": "xi_c"}
            lines += [(names[k], _fmt(v)) for k, v in scales.items()]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {v}", file=stdout)
    if args.phase_diagram:
        outputs = _Outputs()
        try:
            sw_grid = np.linspace(sw_lo, sw_hi, args.resolution)
            sb_grid = np.linspace(sb_lo, sb_hi, args.resolution)
            chi = _phase_grid(a, sw_grid, sb_grid, slope, _want_progress(args))
            points = [] if args.sigma_w is None else [
                (args.sigma_w, sb, rf"$\sigma_w$={args.sigma_w:g}, $\sigma_b$={sb:g}")]
            fig = plotting.phase_diagram(a, sw_grid, sb_grid, chi, points=points)
            outputs.figure(plotting, fig, args.phase_diagram, fmt)
            outputs.publish()
        finally:
            outputs.discard()
        print(f"wrote {args.phase_diagram}", file=stdout)
    return 0


# ============================================================================= figures
#: Sizes of the `weightinit figures` runs (the tests shrink them).
FIGURE_SIZES = {
    "samples": 1000,            # inputs of the 5-layer histogram figures
    "width": 100,               # units per layer of the 5-layer figures (and input features)
    "depth": 5,
    "deep_depth": 50,           # ReLU, tanh-orthogonal and SELU figures
    "relu_width": 1000,
    "tanh_width": 500,
    "selu_width": 500,
    "one_layer_width": 500,
    "one_layer_samples": 500,
    "theory_depth": 30,
    "theory_width": 1000,
    "theory_samples": 500,
    "phase_resolution": 60,
    "lsuv_depth": 30,           # LSUV figure (docs/frameworks.md)
    "lsuv_width": 256,
    "lsuv_samples": 1024,
}
_FIG_SEED = 0


def _sig(v):
    """6 significant digits, what the docs quote ("inf"/"-inf" for infinities, None for NaN)."""
    v = float(v)
    if math.isnan(v):
        return None
    return float(f"{v:.6g}") if math.isfinite(v) else ("inf" if v > 0 else "-inf")


def _sig_list(a):
    return None if a is None else [_sig(v) for v in np.asarray(a, dtype=float)]


class _FigureContext:
    """Shared state of one `figures` run: the simulations, their numbers and staged files."""

    def __init__(self, out, plotting, outputs, progress, sizes):
        self.out, self.plotting, self.outputs = out, plotting, outputs
        self.progress, self.sizes = progress, sizes

    def simulate(self, label, **kw):
        from . import simulation as S

        kw.setdefault("seed", _FIG_SEED)
        result = S.simulate(progress=self.progress, **kw)
        return result, self.run_numbers(label, kw, result)

    @staticmethod
    def run_numbers(label, kw, result):
        entry = {"label": label,
                 "settings": {k: (v if not isinstance(v, np.dtype) else v.name)
                              for k, v in kw.items()},
                 "sigma_w2": _sig(result.sigma_w2[0]), "input_var": _sig(result.input_var),
                 "layers": {k: _sig_list(getattr(result, k))
                            for k in ("mean", "std", "saturated", "dead", "dead_units", "q")}}
        if result.grad_var is not None:
            entry["layers"]["grad_var"] = _sig_list(result.grad_var)
        if np.any(result.nonfinite > 0):
            entry["layers"]["nonfinite"] = _sig_list(result.nonfinite)
        if np.all(np.isfinite(result.sigma_w2)):
            try:
                pred = result.theory()
            except ValueError as e:
                entry["theory"] = f"not applicable: {e}"
            else:
                entry["theory"] = {"q": _sig_list(pred["q"]), "mean": _sig_list(pred["mean"]),
                                   "std": _sig_list(np.sqrt(np.maximum(pred["var"], 0.0)))}
        return entry

    def save(self, name, fig):
        path = os.path.join(self.out, name)
        self.outputs.figure(self.plotting, fig, path, "png")
        return name


def _fig_zeros(ctx):
    sz, P = ctx.sizes, ctx.plotting
    common = dict(depth=sz["depth"], width=sz["width"], samples=sz["samples"], bias=0.0)
    c = 1.0 / sz["width"]
    specs = [("tanh", "zeros", {}, "tanh, zeros"), ("relu", "zeros", {}, "relu, zeros"),
             ("tanh", "constant", {"value": c}, f"tanh, constant {c:g}"),
             ("relu", "constant", {"value": c}, f"relu, constant {c:g}")]
    results, runs = [], []
    for act, scheme, params, label in specs:
        r, n = ctx.simulate(label, activation=act, scheme=scheme, **common, **params)
        n["unit_spread"] = _unit_spread(act, scheme, params, sz)
        results.append(r)
        runs.append(n)
    fig = P.histograms(results, labels=[s[3] for s in specs], title=(
        "Zero and constant initialisation: every unit of a layer computes the same value\n"
        f"({sz['depth']} layers of {sz['width']} units, {sz['samples']} samples, no bias)"))
    return {"files": [ctx.save("zeros_constant.png", fig)],
            "description": "Histograms per layer for zeros and constant weights with tanh and "
            "relu. Zeros: every activation is exactly 0 (relu: 100% dead). Constant: all units "
            "of a layer are identical for every input (unit_spread = largest std across the "
            "units of a layer over all samples, from a direct float64 NumPy forward pass with "
            "the same weights, is 0 up to rounding, about 1e-16), so the symmetry never breaks "
            "(and gradient descent, giving every unit the same update, cannot break it).",
            "runs": runs}


def _unit_spread(activation, scheme, params, sz):
    """Largest std across the units of a layer (over samples), per layer, by plain NumPy."""
    act = np.tanh if activation == "tanh" else (lambda z: np.maximum(z, 0.0))
    rng = np.random.default_rng(_FIG_SEED)
    h = rng.standard_normal((min(sz["samples"], 200), sz["width"]))
    spread = []
    for _ in range(sz["depth"]):
        w = _init.get(scheme)((h.shape[1], sz["width"]), layout="keras", dtype=np.float64,
                              **params)
        h = act(h @ w)
        spread.append(float(h.std(axis=1).max()))
    return _sig_list(spread)


def _fig_classic(ctx):
    sz, P = ctx.sizes, ctx.plotting
    common = dict(activation="sigmoid", depth=sz["depth"], width=sz["width"],
                  samples=sz["samples"], input_dim=sz["width"], bias=0.0, bins=30)
    results, runs = [], []
    for std in (1.0, 0.01):
        r, n = ctx.simulate(f"N(0, {std:g}²)", std=std, **common)
        results.append(r)
        runs.append(n)
    fig = P.histograms(results, title=(
        "Sigmoid activations per layer with weights N(0, 1²) and N(0, 0.01²)\n"
        f"(input {sz['samples']} x {sz['width']}, {sz['depth']} layers of {sz['width']} units, "
        "no bias, 30 bins over [0, 1])"))
    return {"files": [ctx.save("sigmoid_std1_vs_std001.png", fig)],
            "description": "The classic experiment. std 1: activations pile up at 0 and 1 "
            "(saturated: the local derivative sigma'(z) is nearly 0, so weight gradients are "
            "small). std 0.01: every activation is close to 0.5 (units behave alike; little "
            "expressive power).", "runs": runs}


def _fig_xavier(ctx):
    sz, P = ctx.sizes, ctx.plotting
    results, runs = [], []
    for act in ("sigmoid", "tanh"):
        r, n = ctx.simulate(f"{act}, glorot_normal", activation=act, scheme="glorot_normal",
                            depth=sz["depth"], width=sz["width"], samples=sz["samples"],
                            input_dim=sz["width"], bias=0.0, bins=30)
        results.append(r)
        runs.append(n)
    fig = P.histograms(results, labels=[n["label"] for n in runs], title=(
        "Xavier/Glorot initialisation (glorot_normal, Var(W) = 2 / (fan_in + fan_out))\n"
        f"({sz['depth']} layers of {sz['width']} units, {sz['samples']} samples, no bias)"))
    return {"files": [ctx.save("xavier_sigmoid_tanh.png", fig)],
            "description": "glorot_normal with sigmoid and tanh: neither saturates nor collapses. "
            "For tanh the spread holds across samples; for sigmoid it is mostly spread between "
            "units, while the part that varies with the input shrinks layer by layer.", "runs": runs}


def _fig_relu(ctx):
    sz, P = ctx.sizes, ctx.plotting
    results, runs = [], []
    for scheme in ("glorot_normal", "he_normal"):
        r, n = ctx.simulate(scheme, activation="relu", scheme=scheme, depth=sz["deep_depth"],
                            width=sz["relu_width"], samples=sz["samples"], bias=0.0)
        results.append(r)
        runs.append(n)
    shape = f"{sz['deep_depth']} layers of {sz['relu_width']} units, {sz['samples']} samples"
    f1 = P.layer_stats(results, ("std", "dead"), logy=("std",), title=(
        f"ReLU: glorot_normal vs he_normal ({shape})"))
    f2 = P.histograms(results, title=f"ReLU activation histograms ({shape})")
    return {"files": [ctx.save("relu_glorot_vs_he_std.png", f1),
                      ctx.save("relu_glorot_vs_he_hist.png", f2)],
            "description": "With ReLU, glorot_normal halves the second moment at every layer "
            "(std shrinks by about 1/sqrt(2) per layer), he_normal (Var = 2/fan_in) keeps it "
            "constant; about half the activations are exactly 0 in both.", "runs": runs}


def _fig_orthogonal(ctx):
    sz, P = ctx.sizes, ctx.plotting
    results, runs = [], []
    for scheme in ("glorot_normal", "orthogonal"):
        r, n = ctx.simulate(scheme, activation="tanh", scheme=scheme, depth=sz["deep_depth"],
                            width=sz["tanh_width"], samples=sz["samples"], bias=0.0,
                            backward=True)
        results.append(r)
        runs.append(n)
    fig = P.layer_stats(results, ("std", "grad_var"), logy=("std", "grad_var"), title=(
        f"tanh: orthogonal vs glorot_normal ({sz['deep_depth']} layers of {sz['tanh_width']} "
        f"units, {sz['samples']} samples)"))
    return {"files": [ctx.save("tanh_orthogonal_vs_glorot.png", fig)],
            "description": "tanh at depth 50 with square layers: glorot_normal and orthogonal "
            "(gain 1) have the same per-entry variance 1/n (sigma_w = 1), so the forward std and "
            "the backward gradient second moment per layer are nearly identical; orthogonal "
            "matrices differ in their singular values (all exactly 1), which these per-layer "
            "averages do not see.", "runs": runs}


def _fig_selu(ctx):
    sz, P = ctx.sizes, ctx.plotting
    r, n = ctx.simulate("selu, lecun_normal", activation="selu", scheme="lecun_normal",
                        depth=sz["deep_depth"], width=sz["selu_width"], samples=sz["samples"],
                        bias=0.0)
    shape = f"{sz['deep_depth']} layers of {sz['selu_width']} units, {sz['samples']} samples"
    f1 = P.layer_stats([r], ("mean", "std"), labels=[n["label"]],
                       ylim={"mean": (-0.5, 0.5), "std": (0.0, 1.5)},
                       reference={"mean": 0.0, "std": 1.0},
                       title=f"SELU with lecun_normal: self-normalisation ({shape})")
    f2 = P.histograms([r], labels=[n["label"]], title=f"SELU with lecun_normal ({shape})")
    return {"files": [ctx.save("selu_lecun_stats.png", f1), ctx.save("selu_lecun_hist.png", f2)],
            "description": "SELU with lecun_normal (Var = 1/fan_in): mean stays near 0 and std "
            "near 1 at every depth.", "runs": [n]}


def _fig_one_layer(ctx):
    sz, P = ctx.sizes, ctx.plotting
    n_u, n_s = sz["one_layer_width"], sz["one_layer_samples"]
    results, runs = [], []
    for label, kw in (("N(0, 0.01²)", {"std": 0.01}), ("glorot_normal", {"scheme": "glorot_normal"}),
                      ("N(0, 1²)", {"std": 1.0})):
        r, n = ctx.simulate(label, activation="tanh", depth=1, width=n_u, samples=n_s,
                            input_dim=n_u, bias=0.0, **kw)
        results.append(r)
        runs.append(n)
    fig = P.histograms(results, labels=[n["label"] for n in runs], title=(
        f"One tanh layer of {n_u} units, {n_s} samples of {n_u} features: three weight scales"))
    return {"files": [ctx.save("one_layer_tanh.png", fig)],
            "description": "A single tanh layer: std 0.01 keeps pre-activations near 0 (tanh "
            "is almost linear there; activation std about 0.01 * sqrt(500) = 0.22); glorot_normal gives a broad, unsaturated "
            "spread; std 1 gives pre-activations of std about sqrt(500) = 22, so almost every "
            "unit is saturated at +-1.", "runs": runs}


def _fig_theory(ctx):
    from . import theory as T

    sz, P = ctx.sizes, ctx.plotting
    sb0 = 0.05
    crit = T.critical_sigma_w("tanh", sb0)
    points = [(1.0, sb0), (crit, sb0), (1.5, sb0), (2.5, 0.3), (1.3, 0.6)]
    sw_grid = np.linspace(0.5, 3.0, sz["phase_resolution"])
    sb_grid = np.linspace(0.0, 1.0, sz["phase_resolution"])
    chi = _phase_grid("tanh", sw_grid, sb_grid, 0.01, ctx.progress)
    results, runs, labels, point_numbers = [], [], [], []
    for letter, (sw, sb) in zip("ABCDEFGH", points):
        c1 = T.chi1("tanh", sw, sb)
        label = rf"{letter}: $\sigma_w$={sw:.4g}, $\sigma_b$={sb:g}, $\chi_1$={c1:.3f}"
        r, n = ctx.simulate(label, activation="tanh", scheme="variance_scaling",
                            scale=sw * sw, distribution="normal", bias_std=sb,
                            depth=sz["theory_depth"], width=sz["theory_width"],
                            samples=sz["theory_samples"])
        n["label"] = f"{letter}: sigma_w={sw:.6g}, sigma_b={sb:g}"
        scales = T.depth_scales("tanh", sw, sb)
        point_numbers.append({"point": letter, "sigma_w": _sig(sw), "sigma_b": sb,
                              **{k: _sig(v) for k, v in scales.items()}})
        results.append(r)
        runs.append(n)
        labels.append(label)
    f1 = P.phase_diagram("tanh", sw_grid, sb_grid, chi, points=[
        (sw, sb, letter) for letter, (sw, sb) in zip("ABCDEFGH", points)])
    f2 = P.theory_vs_simulation(results, [r.theory() for r in results], labels=labels, title=(
        f"tanh: simulated q per layer vs mean-field theory\n({sz['theory_depth']} layers of "
        f"{sz['theory_width']} units, {sz['theory_samples']} samples; weights "
        r"N(0, $\sigma_w^2$/fan_in), biases N(0, $\sigma_b^2$))"))
    return {"files": [ctx.save("phase_diagram_tanh.png", f1),
                      ctx.save("theory_vs_simulation_tanh.png", f2)],
            "description": "Mean-field theory for tanh: the (sigma_w, sigma_b) phase diagram "
            "(chi1 colour map, chi1 = 1 contour = edge of chaos; stars A-E = the simulated "
            "points), "
            "and the simulated pre-activation second moment q per layer against the theory "
            "(scheme variance_scaling, scale = sigma_w^2, distribution normal, bias_std = "
            "sigma_b).",
            "critical_sigma_w": {f"{sb:g}": _sig(T.critical_sigma_w("tanh", sb))
                                 for sb in (0.0, 0.05, 0.3, 0.6, 1.0)},
            "points": point_numbers, "runs": runs,
            "phase_grid": {"sigma_w": [_sig(sw_grid[0]), _sig(sw_grid[-1])],
                           "sigma_b": [_sig(sb_grid[0]), _sig(sb_grid[-1])],
                           "resolution": sz["phase_resolution"]}}


def _fig_lsuv(ctx):
    """Pre-activation variance per layer: plain schemes against LSUV (docs/frameworks.md)."""
    from .lsuv import forward_variances, layer_seed, lsuv

    sz, P = ctx.sizes, ctx.plotting
    depth, width, n = sz["lsuv_depth"], sz["lsuv_width"], sz["lsuv_samples"]
    # Calibration batch (LSUV sees it) and a held-out batch (every curve is measured on it).
    x = R.normal((n, width), seed=_FIG_SEED, dtype=np.float64)
    x_test = R.normal((n, width), seed=_FIG_SEED + 1, dtype=np.float64)
    shape = (width, width)
    panels, runs = [], []
    for act in ("relu", "tanh", "selu"):
        curves = []
        for scheme in ("glorot_normal", "he_normal", "lecun_normal"):
            ws = [_init.get(scheme)(shape, layout="keras", dtype=np.float64,
                                    seed=layer_seed(_FIG_SEED, layer)) for layer in range(depth)]
            var = forward_variances(ws, act, x_test)
            curves.append((scheme, var))
            runs.append({"label": f"{act}, {scheme}", "activation": act, "scheme": scheme,
                         "layers": {"var": _sig_list(var)}})
        r = lsuv([np.empty(shape)] * depth, act, x, seed=_FIG_SEED)
        var = forward_variances(r.weights, act, x_test)
        curves.append(("LSUV", var, {"color": "k", "linestyle": "-", "linewidth": 2.2}))
        runs.append({"label": f"{act}, LSUV", "activation": act, "scheme": "lsuv",
                     "converged": all(r.converged),
                     "layers": {"var": _sig_list(var), "var_calibration": _sig_list(r.variances),
                                "scale": _sig_list(r.scales), "iterations": r.iterations}})
        panels.append((act, curves))
    fig = P.variance_by_depth(panels, title=(
        f"Pre-activation variance per layer, plain schemes vs LSUV (tol 0.1, at most 10 steps)\n"
        f"({depth} layers of {width} units, no bias; measured on {n} held-out N(0, 1) inputs)"))
    return {"files": [ctx.save("lsuv.png", fig)],
            "description": "Pre-activation variance Var(h W) per layer on a held-out batch for "
            "glorot_normal, he_normal and lecun_normal weights (seed layer_seed(0, l) for layer "
            "l; glorot_normal = lecun_normal for square layers) and for LSUV (orthonormal "
            "pre-initialisation with the same seeds, then each layer scaled to variance 1 on "
            "a calibration batch). var_calibration: LSUV's final variances on its calibration "
            "batch; scale: the factor LSUV applied to each orthonormal matrix.",
            "settings": {"depth": depth, "width": width, "samples": n, "bias": 0.0,
                         "tol": 0.1, "max_iter": 10, "calibration_seed": _FIG_SEED,
                         "held_out_seed": _FIG_SEED + 1, "dtype": "float64"},
            "runs": runs}


#: (key in numbers.json, builder), in the order of docs/simulation.md, then docs/frameworks.md.
FIGURES = [("zeros_constant", _fig_zeros), ("sigmoid_classic", _fig_classic),
           ("xavier", _fig_xavier), ("relu_glorot_vs_he", _fig_relu),
           ("tanh_orthogonal_vs_glorot", _fig_orthogonal), ("selu_lecun", _fig_selu),
           ("one_layer", _fig_one_layer), ("tanh_theory", _fig_theory), ("lsuv", _fig_lsuv)]


def _figures(args, stdout):
    plotting = _plotting()
    out = args.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} exists and is not a directory.")
    os.makedirs(out, exist_ok=True)
    outputs = _Outputs()
    ctx = _FigureContext(out, plotting, outputs, _want_progress(args), dict(FIGURE_SIZES))
    numbers = {"generated_by": f"weightinit {__version__}: weightinit figures",
               "notes": "Values rounded to 6 significant digits; null = NaN (undefined), "
               '"inf" = infinite. layers.<stat>[i] is layer i + 1. theory = mean-field '
               "prediction (SimulationResult.theory()) for the same run.",
               "seed": _FIG_SEED, "sizes": dict(FIGURE_SIZES), "figures": {}}
    t_all = time.perf_counter()
    try:
        for k, (key, build) in enumerate(FIGURES, 1):
            t0 = time.perf_counter()
            entry = build(ctx)
            numbers["figures"][key] = entry
            print(f"[{k}/{len(FIGURES)}] {key}: {', '.join(entry['files'])} "
                  f"({time.perf_counter() - t0:.1f} s)", file=stdout)
        outputs.text(_json_text(numbers, indent=1), os.path.join(out, "numbers.json"))
        outputs.publish()
    finally:
        outputs.discard()
    print(f"wrote {len(outputs.published)} files to {out} in {time.perf_counter() - t_all:.0f} s",
          file=stdout)
    return 0


# ============================================================================= stream
_STREAM_CHUNK = 1 << 18  # words per write: 1 MiB
_STREAM_DISTRIBUTIONS = ("uniform32", "float32-uniform", "normal-pit")


def _stream_parser(sub):
    s = sub.add_parser(
        "stream", help="write raw generator output (uint32 words) to stdout for test batteries",
        description="Write generator output as binary little-endian uint32 words to stdout, e.g. "
                    "`weightinit stream --seed 1 | dieharder -a -g 200`. uniform32: the raw "
                    "Philox words of the uniform stream; float32-uniform: the 24 bits of each "
                    "float32 U[0, 1) value, four values packed into three words; normal-pit: "
                    "float64 N(0, 1) values z as floor(2**32 * Phi(z)).")
    s.add_argument("--seed", type=int, required=True, help="0 <= seed < 2**64")
    s.add_argument("--distribution", default="uniform32", choices=_STREAM_DISTRIBUTIONS)
    s.add_argument("--count", type=_nonneg_int, default=None,
                   help="number of words to write (default: endless)")
    s.add_argument("--offset", type=_nonneg_int, default=0, help="index of the first word")


def _stream_words(distribution, seed, start, n):
    """Words ``start .. start + n - 1`` (n >= 1) of a ``weightinit stream`` distribution."""
    if distribution == "uniform32":
        return R.words(n, seed=seed, offset=start)
    if distribution == "normal-pit":
        return R._normal_pit_words(R.normal(n, seed=seed, dtype=np.float64, offset=start))
    # float32-uniform: every value is k * 2**-24 with k a 24-bit integer; values 4g..4g+3 fill
    # words 3g..3g+2, most significant bits first, so every bit of every value is tested.
    g0, g1 = start // 3, -(-(start + n) // 3)
    u = R.uniform(4 * (g1 - g0), seed=seed, offset=4 * g0)
    k = (u * np.float32(2**24)).astype(np.uint32).reshape(-1, 4)
    w = np.empty((g1 - g0, 3), np.uint32)
    w[:, 0] = (k[:, 0] << 8) | (k[:, 1] >> 16)
    w[:, 1] = ((k[:, 1] & 0xFFFF) << 16) | (k[:, 2] >> 8)
    w[:, 2] = ((k[:, 2] & 0xFF) << 24) | k[:, 3]
    return w.reshape(-1)[start - 3 * g0:][:n]


def _stream(args, stdout):
    seed = _check_seed(args.seed)
    end = None if args.count is None else args.offset + args.count
    if end:  # validate the far end before writing anything
        _stream_words(args.distribution, seed, end - 1, 1)
    out = getattr(stdout, "buffer", stdout)  # binary: sys.stdout.buffer, or a bytes stream
    if getattr(out, "isatty", lambda: False)():
        raise ValueError("refusing to write binary words to a terminal; pipe them into a test "
                         "battery or redirect to a file")
    pos = args.offset
    try:
        while end is None or pos < end:
            n = _STREAM_CHUNK if end is None else min(_STREAM_CHUNK, end - pos)
            out.write(np.ascontiguousarray(
                _stream_words(args.distribution, seed, pos, n), dtype="<u4").data)
            pos += n
        out.flush()
    except BrokenPipeError:  # the reader closed the pipe (a battery that has enough): success
        if out is getattr(sys.stdout, "buffer", None):
            # Route the interpreter's final flush of stdout to /dev/null, or it reports the
            # broken pipe again on exit.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return 0
    except KeyboardInterrupt:
        print(f"\nweightinit stream: interrupted after {pos - args.offset} words", file=sys.stderr)
        return 130
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the same clean-up removes every temporary file."""


def _raise_terminated(signum, frame):
    raise _Terminated()


def _handle_sigterm():
    """Turn SIGTERM into :class:`_Terminated` while a command runs; return a function that undoes it.

    Only from the main thread and only if SIGTERM still has its default action (an embedding
    program's own handler is left alone).
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        return lambda: None
    signal.signal(signal.SIGTERM, _raise_terminated)
    return lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL)


# ============================================================================= sweep
def _sweep_parser(sub):
    s = sub.add_parser(
        "sweep", help="simulate a (sigma_w, sigma_b) grid on dask.distributed: the simulated "
        "phase diagram beside the mean-field one",
        description="Simulate a deep MLP (weights N(0, sigma_w^2/width), biases N(0, "
        "sigma_b^2), forward and backward) at every point of a (sigma_w, sigma_b) grid, as "
        "tasks of a dask.distributed cluster (a local cluster of --workers single-threaded "
        "processes, or --scheduler ADDRESS). Measures chi1 from the gradient's growth per "
        "layer and the last layer's q, beside mean-field theory. Grids: START:STOP:COUNT "
        "(inclusive, like numpy.linspace), comma-separated values, or one value. Needs the "
        "dask extra.")
    s.add_argument("--activation", default="tanh", help="activation (default tanh)")
    s.add_argument("--sigma-w", required=True, metavar="GRID",
                   help="weight scales, e.g. 0.5:4:64")
    s.add_argument("--sigma-b", default="0", metavar="GRID", help="bias scales (default 0)")
    s.add_argument("--depth", type=_positive_int, default=50, help="layers (default 50)")
    s.add_argument("--width", type=_positive_int, default=256,
                   help="units per layer and input features (default 256)")
    s.add_argument("--samples", type=_positive_int, default=100, help="inputs (default 100)")
    s.add_argument("--seed", type=_nonneg_int, default=0,
                   help="default 0 (the same for every point)")
    s.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    s.add_argument("--slope", type=_finite_float, default=0.01,
                   help="negative slope of leaky_relu (default 0.01)")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=None,
                       help="worker processes of the local cluster (default: the CPU count)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="use a running dask scheduler instead, e.g. tcp://10.0.0.1:8786 "
                       "(its workers need weightinit installed)")
    s.add_argument("--out", metavar="PATH",
                   help="write every result to a zarr group (a directory, written atomically; "
                   "an existing PATH is never replaced)")
    s.add_argument("--plot", metavar="PATH",
                   help="figure: simulated phase diagram beside the mean-field one")
    _progress_args(s)


def _sweep(args, stdout):
    import importlib.util

    from . import simulation as S
    from . import sweep as SW
    from ._validate import check_choice

    check_choice("activation", args.activation, S.ACTIVATIONS)
    sws = SW.parse_grid(args.sigma_w, "--sigma-w")
    sbs = SW.parse_grid(args.sigma_b, "--sigma-b")
    _check_outputs(plot=args.plot)
    if args.out is not None:
        directory = os.path.dirname(os.path.abspath(args.out))
        if not os.path.isdir(directory):
            raise ValueError(f"--out {args.out}: the directory {directory} does not exist.")
        if os.path.lexists(args.out):
            raise ValueError(f"--out {args.out} already exists; remove it or choose another "
                             "path.")
    for module in ("distributed", "zarr"):
        if importlib.util.find_spec(module) is None:
            raise MissingDependencyError(
                f'weightinit sweep needs {module}, which is not installed. Install it with: '
                'pip install "weightinit[dask]"')
    plotting = _plotting() if args.plot else None
    fmt = plotting.check_path(args.plot) if args.plot else None
    bar = Progress(sws.size * sbs.size, "sweep", enabled=_want_progress(args))
    try:
        result = SW.sweep(args.activation, sws, sbs, depth=args.depth, width=args.width,
                          samples=args.samples, seed=args.seed, dtype=args.dtype,
                          slope=args.slope, workers=args.workers, scheduler=args.scheduler,
                          progress=lambda done, total: bar.update(done))
    finally:
        bar.close()
    _print_sweep(result, stdout)
    outputs = _Outputs()
    try:
        if args.plot:
            note = (f"{result.depth} layers of {result.width} units, {result.samples} samples, "
                    f"seed {result.seed}, {result.dtype}")
            fig = plotting.sweep_phase_diagrams(result.activation, result.sigma_w,
                                                result.sigma_b, result.chi1_sim,
                                                result.chi1_theory, note=note)
            outputs.figure(plotting, fig, args.plot, fmt)
        if args.out is not None:
            result.to_zarr(args.out)
        outputs.publish()
    finally:
        outputs.discard()
    for path in ([args.out] if args.out else []) + outputs.published:
        print(f"wrote {path}", file=stdout)
    return 0


def _print_sweep(result, stdout):
    """Settings, timing, agreement with theory and the edge of chaos per sigma_b."""
    n = result.sigma_w.size * result.sigma_b.size
    print(f"# sweep: {result.activation}, {result.sigma_w.size} sigma_w x {result.sigma_b.size} "
          f"sigma_b = {n} points, {result.depth} layers of {result.width} units, "
          f"{result.samples} samples, seed {result.seed}, {result.dtype}", file=stdout)
    print(f"# {result.workers} workers: {result.wall:.1f} s wall, "
          f"{np.nanmean(result.seconds):.2f} s per point on a worker", file=stdout)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = np.abs(np.log(result.chi1_sim / result.chi1_theory))
    ok = np.isfinite(err)
    if ok.any():
        print(f"# |log(chi1 simulated / mean field)|: median {np.median(err[ok]):.3g}, max "
              f"{err[ok].max():.3g} over {int(ok.sum())} points with an estimate", file=stdout)
    sim, theo = result.critical_sigma_w("sim"), result.critical_sigma_w("theory")
    print(f"{'sigma_b':>10}{'edge of chaos sigma_w: simulated':>34}{'mean field':>12}",
          file=stdout)
    for sb, a, b in zip(result.sigma_b, sim, theo):
        print(f"{sb:>10.4g}{_fmt_or_none(a):>34}{_fmt_or_none(b):>12}", file=stdout)


def _fmt_or_none(v):
    return "-" if not math.isfinite(v) else f"{v:.4g}"


def main(argv=None, stdout=None):
    """Entry point; returns the exit status (2 for bad arguments, 1 when matplotlib is missing
    for a figure, 130 on Ctrl-C, 143 on SIGTERM). Interrupted or terminated, a command leaves no
    output file and no temporary file behind (``generate --zarr`` keeps ``PATH.part`` to
    resume)."""
    stdout = stdout or sys.stdout
    args = _parser().parse_args(argv)
    restore = _handle_sigterm()
    try:
        return {"describe": _describe, "generate": _generate, "warmup": _warmup,
                "simulate": _simulate, "theory": _theory, "figures": _figures,
                "stream": _stream, "sweep": _sweep}[args.command](
            args, stdout)
    except (ValueError, TypeError) as e:
        print(f"weightinit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except MissingDependencyError as e:
        print(f"weightinit {args.command}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. an output folder that does not exist or is not writable
        print(f"weightinit {args.command}: error: {e.strerror or e}: {e.filename or ''}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        what, code = ("terminated", 143) if isinstance(e, _Terminated) else ("interrupted", 130)
        print(f"\nweightinit {args.command}: {what}; no output written", file=sys.stderr)
        return code
    finally:
        restore()
