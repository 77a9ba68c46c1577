"""What the commands share: argument types, the progress option, atomic output files and the
optional imports (matplotlib for figures).

Every output file is written to a temporary file beside it and renamed into place once complete
(:class:`Outputs`, :func:`publish`), so an error, Ctrl-C or SIGTERM never leaves a partial file.
"""

import argparse
import importlib
import itertools
import json
import math
import os
import shutil
import sys
import tempfile

import numpy as np



class MissingDependencyError(RuntimeError):
    """An optional dependency (matplotlib, for figures) is not installed."""


def import_plotting():
    """Import :mod:`weightinit.plotting` on first use (it imports matplotlib)."""
    try:
        return importlib.import_module("..plotting", __package__)
    except ImportError as e:
        raise MissingDependencyError(str(e)) from e


# ----------------------------------------------------------------------------- argument types
def key_value(text):
    """``key=value`` with value parsed as JSON when possible (numbers, true/false), else text."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def scheme_options(p):
    p.add_argument("--layout", default="torch", choices=("torch", "keras", "jax"))
    p.add_argument("--param", "-p", type=key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="scheme parameter, e.g. -p mode=fan_out -p gain=2")


def argtype(cast, minimum, label):
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


positive_int = argtype(int, 1, "a positive integer")
nonneg_int = argtype(int, 0, "an integer >= 0")
nonneg_float = argtype(float, 0.0, "a finite number >= 0")


def finite_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return v


def bias_arg(text):
    return "auto" if text == "auto" else finite_float(text)


# ----------------------------------------------------------------------------- progress
def progress_option(p):
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: on when stderr is a terminal)")


def want_progress(args):
    return (True if args.progress is None else args.progress) and sys.stderr.isatty()


def progress_bar(total, desc, enabled=True):
    """A tqdm bar of ``total`` steps on stderr, drawn only if ``enabled`` and stderr is a terminal
    (tqdm's ``disable=None``); use it as a context manager so that an error closes it."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=None if enabled and total > 0 else True,
                file=sys.stderr)


def phase_grid(activation, sw_grid, sb_grid, slope, progress):
    """chi1 on the grid (rows sigma_b), one row at a time so a progress bar can follow."""
    from .. import theory as T

    rows = []
    with progress_bar(len(sb_grid), "phase diagram", progress) as bar:
        for sb in sb_grid:
            rows.append(T.phase_diagram(activation, sw_grid, [sb], slope=slope)[0])
            bar.update(1)
    return np.array(rows)


# ----------------------------------------------------------------------------- atomic output
def check_disk(directory, nbytes, what,
               hint="Write it to a larger disk, or use a smaller shape."):
    """Refuse before writing if ``directory``'s file system has less than ``nbytes`` free (a
    memory-mapped write would otherwise die of SIGBUS when the disk fills)."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return  # a missing directory is reported where the file is created
    if nbytes > free:
        raise ValueError(
            f"{what}: the file needs {nbytes / 2**30:.2f} GiB but only {free / 2**30:.2f} GiB is "
            f"free in {directory}. {hint}")


def publish(tmp, path):
    """Make the finished temporary file durable and move it into place in one atomic step."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Outputs:
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
            publish(tmp, path)
            self.pending.pop(0)
            self.published.append(path)

    def discard(self):
        for tmp, _ in self.pending:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        self.pending.clear()


def check_outputs(**paths):
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


def json_text(obj, **kw):
    return json.dumps(obj, allow_nan=False, **kw) + "\n"


def branch_scale_arg(text):
    """A residual branch scale: a non-negative number or a named preset such as 1/sqrt(L)."""
    from .._residual import BRANCH_SCALES

    if text in BRANCH_SCALES:
        return text
    try:
        return nonneg_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a non-negative number or one of {', '.join(sorted(BRANCH_SCALES))}, got "
            f"{text!r}") from None


def add_residual_options(parser, several=False):
    """--architecture, --branch-depth, --branch-scale, --norm, --norm-position (with
    ``several``: the last three take several values, one run per combination)."""
    many = dict(nargs="+") if several else {}
    res = parser.add_argument_group(
        "residual networks", "h_{l+1} = h_l + alpha F(h_l), F one or two dense layers"
        + ("; the settings below take several values: one run per combination" if several
           else ""))
    res.add_argument("--architecture", default="mlp", choices=("mlp", "residual"),
                     help="mlp (default) or residual")
    res.add_argument("--branch-depth", type=positive_int, default=1, choices=(1, 2),
                     help="layers per residual branch: 1 (phi(xW + b)) or 2 (phi(xW1 + b1) W2 + "
                     "b2); default 1")
    res.add_argument("--branch-scale", type=branch_scale_arg, default=[1.0] if several else 1.0,
                     metavar="ALPHA", help="branch multiplier alpha: a number or 1/sqrt(L), "
                     "1/sqrt(2L), 1/L (L = depth); default 1", **many)
    res.add_argument("--norm", default=["none"] if several else "none",
                     choices=("none", "layer", "rms"),
                     help="normalisation without gain/bias: none (default), layer or rms", **many)
    res.add_argument("--norm-position", default=["pre"] if several else "pre",
                     choices=("pre", "post"),
                     help="pre: h + alpha F(N(h)) (pre-LN); post: N(h + alpha F(h)); default pre",
                     **many)


def residual_settings(args):
    """The ``simulate``/``jacobian_spectrum`` keywords of every residual setting the options of
    :func:`add_residual_options` ask for, one per distinct combination ([{}] for an MLP; a
    setting without a norm has no position, so ``none`` with ``pre`` and ``post`` is one)."""
    def values(v):
        return v if isinstance(v, list) else [v]

    scales, norms, positions = (values(v) for v in (args.branch_scale, args.norm,
                                                    args.norm_position))
    if args.architecture == "mlp":
        given = [o for o, v, d in (("--branch-depth", args.branch_depth, 1),
                                   ("--branch-scale", scales, [1.0]), ("--norm", norms, ["none"]),
                                   ("--norm-position", positions, ["pre"])) if v != d]
        if given:
            raise ValueError(f"{', '.join(given)} apply to residual networks only; add "
                             "--architecture residual.")
        return [{}]
    settings = dict.fromkeys((n, "pre" if n == "none" else p, a)
                             for n, p, a in itertools.product(norms, positions, scales))
    return [dict(architecture="residual", branch_depth=args.branch_depth, branch_scale=a,
                 norm=None if n == "none" else n, norm_position=p) for n, p, a in settings]
