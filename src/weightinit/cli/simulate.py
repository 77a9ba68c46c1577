"""``weightinit simulate``: propagate random inputs through a deep MLP or residual network;
per-layer statistics, activation histograms (matplotlib, the "plot" extra) and the mean-field
comparison."""

import itertools
import math
import sys

import numpy as np

from .. import initializers as _init
from .._warmup import compile_ahead
from .common import (Outputs, add_residual_options, bias_arg, check_outputs, import_plotting,
                     json_text, key_value, nonneg_float, nonneg_int, positive_int,
                     progress_option, residual_settings, want_progress)


def add_parser(sub):
    s = sub.add_parser(
        "simulate", help="propagate random inputs through a deep MLP or residual network: "
        "per-layer statistics, activation histograms, mean-field comparison",
        description="Propagate N(0, I) inputs through `depth` dense layers h = act(h W + b) (or, "
        "with --architecture residual, `depth` blocks h = h + alpha F(h) with optional "
        "LayerNorm/RMSNorm before or after the addition) and summarise each layer's "
        "activations. Prints a per-layer table; --plot draws histograms (rows: one per "
        "--scheme/--std value and residual setting, columns: layers), --theory compares q per "
        "layer with mean-field theory, --json writes every statistic.")
    s.add_argument("--activation", default="tanh",
                   help="linear, sigmoid, tanh, relu, leaky_relu, elu, selu, gelu, silu or "
                   "softplus (default tanh)")
    how = s.add_mutually_exclusive_group(required=True)
    how.add_argument("--scheme", nargs="+", metavar="NAME",
                     help="one or more weight schemes to compare (see `weightinit describe`)")
    how.add_argument("--std", nargs="+", type=nonneg_float, metavar="STD",
                     help="one or more plain N(0, STD^2) weight distributions to compare")
    how.add_argument("--recipe", nargs="+", metavar="NAME",
                     help="with --architecture residual: one or more transformer recipes "
                     "(gpt2, megatron, olmo_mitchell, fixup, rezero, ...; see "
                     "weightinit.recipes) to compare, their parameters given by --param")
    s.add_argument("--depth", type=positive_int, default=None, help="layers (default 5)")
    s.add_argument("--width", type=positive_int, default=None, help="units per layer (default 100)")
    s.add_argument("--widths", type=positive_int, nargs="+", metavar="W",
                   help="one width per layer, instead of --depth and --width")
    s.add_argument("--samples", type=positive_int, default=1000, help="inputs (default 1000)")
    s.add_argument("--input-dim", type=positive_int, default=None,
                   help="input features (default: the first width)")
    s.add_argument("--bias", type=bias_arg, default=0.0,
                   help='constant bias, or "auto" (0.01 for the ReLU family, else 0); default 0')
    s.add_argument("--bias-std", type=nonneg_float, default=0.0,
                   help="also add a N(0, BIAS_STD^2) bias per unit (default 0)")
    s.add_argument("--seed", type=nonneg_int, default=0, help="default 0")
    s.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    s.add_argument("--bins", type=positive_int, default=30,
                   help="histogram bins (default 30; over [0, 1] for sigmoid, [-1, 1] for tanh, "
                   "each layer's range otherwise)")
    s.add_argument("--backward", action="store_true",
                   help="also back-propagate a random cotangent and report the gradient's second "
                   "moment per layer")
    add_residual_options(s, several=True)
    s.add_argument("--param", "-p", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="scheme (or recipe) parameter, e.g. -p scale=2.25 -p distribution=normal")
    s.add_argument("--plot", metavar="PATH", help="write the histogram figure (png, pdf, svg, ...)")
    s.add_argument("--max-layers", type=positive_int, default=10,
                   help="histogram columns for deep networks: at most this many evenly spaced "
                   "layers (default 10)")
    s.add_argument("--json", metavar="PATH",
                   help="write every run's statistics as JSON (a list of SimulationResult.to_dict())")
    s.add_argument("--theory", metavar="PATH",
                   help="write a figure of q per layer: simulation vs mean-field prediction")
    progress_option(s)
    s.set_defaults(run=run)


def _resolve_widths(args):
    if args.widths is not None:
        if args.width is not None:
            raise ValueError("Give either --widths or --width, not both.")
        if args.depth is not None and args.depth != len(args.widths):
            raise ValueError(f"--depth {args.depth} disagrees with the {len(args.widths)} "
                             "values of --widths.")
        return list(args.widths)
    return [args.width or 100] * (args.depth or 5)


def run(args, stdout):
    from .. import simulation as S
    from .._validate import check_choice

    check_choice("activation", args.activation, S.ACTIVATIONS)
    widths = _resolve_widths(args)
    params = dict(args.param)
    input_dim = args.input_dim or widths[0]
    if args.std is not None and params:
        raise ValueError("--param sets scheme or recipe parameters; it needs --scheme or "
                         "--recipe, not --std.")
    runs = []  # simulate() keyword arguments, one dict per row of the figure
    constant = []
    if args.recipe is not None and args.architecture != "residual":
        raise ValueError("--recipe sets the weights of residual blocks; add --architecture "
                         "residual.")
    values = next(v for v in (args.std, args.recipe, args.scheme) if v is not None)
    for value, residual in itertools.product(values, residual_settings(args)):
        kw = dict(activation=args.activation, widths=widths, samples=args.samples,
                  input_dim=args.input_dim, bias=args.bias, bias_std=args.bias_std,
                  seed=args.seed, dtype=args.dtype, bins=args.bins, backward=args.backward,
                  **residual)
        if args.std is not None:
            kw["std"] = value
        elif args.recipe is not None:
            kw.update(recipe=value, **params)
        else:
            info = _init.describe((input_dim, widths[0]), value, layout="keras", **params)
            if info["distribution"] in ("constant", "identity"):
                constant.append(value)
            kw.update(scheme=value, **params)
        runs.append(kw)
    check_outputs(plot=args.plot, json=args.json, theory=args.theory)
    if args.theory and len(constant) == len(runs):
        raise ValueError(f"--theory needs random weights; {', '.join(constant)} gives constant "
                         "weights, where mean-field theory does not apply.")
    # A first run: the forward pass's kernels compile in a helper process meanwhile.
    compile_ahead(runs)
    plotting = import_plotting() if (args.plot or args.theory) else None
    fmts = {k: plotting.check_path(p) for k, p in (("plot", args.plot), ("theory", args.theory))
            if p}
    progress = want_progress(args)

    outputs = Outputs()
    try:
        results = []
        for i, kw in enumerate(runs):
            result = S.simulate(progress=progress, **kw)
            results.append(result)
            _print_table(result, i, len(runs), kw, stdout)
        if args.json:
            outputs.text(json_text([r.to_dict() for r in results]), args.json)
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
    """A compact per-layer table: layer, mean, std, saturated, dead (+ gradient, NaN share; for
    residual runs the rows are blocks, with the branch/skip variance ratio)."""
    w = result.widths
    shape = f"{len(w)} x {w[0]} units" if len(set(w)) == 1 else "widths " + "-".join(map(str, w))
    residual = result.architecture == "residual"
    if residual:
        shape = f"{len(w)} residual blocks of {w[0]} units ({result.residual_label})"
    bias = ""
    if result.bias:
        bias += f", bias {result.bias:g}"
    if result.sigma_b2:
        bias += f", bias std {math.sqrt(result.sigma_b2):g}"
    print(f"# run {index + 1}/{total}: {result.activation}, {_weights_text(result)}, {shape}, "
          f"{result.samples} samples{bias}, seed {kw['seed']}", file=stdout)
    cols = ["block" if residual else "layer", "mean", "std", "saturated", "dead"]
    if residual:
        cols.append("br/skip")  # the branch/skip variance ratio
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
        if residual:
            row += f"{result.branch_ratio[layer]:>11.4g}"
        if grad:
            row += f"{result.grad_var[layer]:>11.4g}"
        if bad:
            row += f"{result.nonfinite[layer]:>11.1%}"
        print(row, file=stdout)
