"""``weightinit sweep``: simulate a (sigma_w, sigma_b) grid on dask.distributed (the "dask"
extra)."""

import math
import os

import numpy as np

from .common import (MissingDependencyError, Outputs, check_outputs, finite_float, import_plotting,
                     nonneg_int, positive_int, progress_bar, progress_option, want_progress)


def add_parser(sub):
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
    s.add_argument("--depth", type=positive_int, default=50, help="layers (default 50)")
    s.add_argument("--width", type=positive_int, default=256,
                   help="units per layer and input features (default 256)")
    s.add_argument("--samples", type=positive_int, default=100, help="inputs (default 100)")
    s.add_argument("--seed", type=nonneg_int, default=0,
                   help="default 0 (the same for every point)")
    s.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    s.add_argument("--slope", type=finite_float, default=0.01,
                   help="negative slope of leaky_relu (default 0.01)")
    where = s.add_mutually_exclusive_group()
    where.add_argument("--workers", type=positive_int, default=None,
                       help="worker processes of the local cluster (default: the CPU count)")
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="use a running dask scheduler instead, e.g. tcp://10.0.0.1:8786 "
                       "(its workers need weightinit installed)")
    s.add_argument("--out", metavar="PATH",
                   help="write every result to a zarr group (a directory, written atomically; "
                   "an existing PATH is never replaced)")
    s.add_argument("--plot", metavar="PATH",
                   help="figure: simulated phase diagram beside the mean-field one")
    progress_option(s)
    s.set_defaults(run=run)


def run(args, stdout):
    import importlib.util

    from .. import simulation as S
    from .. import sweep as SW
    from .._validate import check_choice

    check_choice("activation", args.activation, S.ACTIVATIONS)
    sws = SW.parse_grid(args.sigma_w, "--sigma-w")
    sbs = SW.parse_grid(args.sigma_b, "--sigma-b")
    check_outputs(plot=args.plot)
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
    plotting = import_plotting() if args.plot else None
    fmt = plotting.check_path(args.plot) if args.plot else None
    with progress_bar(sws.size * sbs.size, "sweep", want_progress(args)) as bar:
        result = SW.sweep(args.activation, sws, sbs, depth=args.depth, width=args.width,
                          samples=args.samples, seed=args.seed, dtype=args.dtype,
                          slope=args.slope, workers=args.workers, scheduler=args.scheduler,
                          progress=lambda done, total: bar.update(done - bar.n))
    _print_sweep(result, stdout)
    outputs = Outputs()
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
