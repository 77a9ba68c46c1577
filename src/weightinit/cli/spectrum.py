"""``weightinit spectrum``: singular values of a deep MLP's (or residual network's)
input-output Jacobian vs theory."""

from .common import (Outputs, add_residual_options, check_outputs, finite_float,
                     import_plotting, json_text, key_value, nonneg_float, nonneg_int,
                     positive_int, residual_settings)


def add_parser(sub):
    s = sub.add_parser(
        "spectrum", help="singular values of a deep MLP's input-output Jacobian vs free "
        "probability",
        description="Exact singular values of J = D_L W_L^T ... D_1 W_1^T (float64 SVD of the "
        "accumulated product) at random inputs, their squared mean and variance beside the "
        "free-probability prediction (Pennington, Schoenholz & Ganguli 2017). --plot draws the "
        "histogram with the theory density, --json writes every value. With --architecture "
        "residual: the residual blocks of `weightinit simulate`, against the mean-field mean "
        "squared singular value.")
    s.add_argument("--activation", default="tanh", help="activation (default tanh)")
    how = s.add_mutually_exclusive_group()
    how.add_argument("--scheme", default=None, help="weight scheme (default glorot_normal)")
    how.add_argument("--std", type=nonneg_float, default=None, help="plain N(0, STD^2) weights")
    how.add_argument("--recipe", default=None,
                     help="with --architecture residual: a transformer recipe (gpt2, "
                     "olmo_mitchell, mup, ...) draws the branch weights, -p its parameters")
    s.add_argument("--param", "-p", type=key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="scheme (or recipe) parameter, e.g. -p gain=1.3")
    s.add_argument("--depth", type=positive_int, default=10, help="layers (default 10)")
    s.add_argument("--width", type=positive_int, default=128, help="units (default 128)")
    s.add_argument("--sigma-b", type=nonneg_float, default=0.0, help="bias std (default 0)")
    s.add_argument("--samples", type=positive_int, default=4, help="inputs (default 4)")
    s.add_argument("--seed", type=nonneg_int, default=0, help="default 0")
    s.add_argument("--bins", type=positive_int, default=50, help="histogram bins (default 50)")
    s.add_argument("--method", default="exact", choices=("exact", "randomised"))
    s.add_argument("--slope", type=finite_float, default=0.01,
                   help="negative slope of leaky_relu (default 0.01)")
    add_residual_options(s)
    s.add_argument("--plot", metavar="PATH", help="write the histogram figure (png, pdf, svg)")
    s.add_argument("--json", metavar="PATH", help="write the simulation and theory as JSON")
    s.set_defaults(run=run)


def run(args, stdout):
    from ..spectrum import jacobian_spectrum

    params = dict(args.param)
    if args.std is not None and params:
        raise ValueError("--param sets scheme parameters; it needs --scheme, not --std.")
    if args.plot and args.method != "exact":
        raise ValueError("--plot needs --method exact (the randomised method has no "
                         "singular values).")
    check_outputs(plot=args.plot, json=args.json)
    plotting = import_plotting() if args.plot else None
    fmt = plotting.check_path(args.plot) if args.plot else None
    if args.recipe is not None:
        if args.architecture != "residual":
            raise ValueError("--recipe sets the weights of residual blocks; add --architecture "
                             "residual.")
        kw = dict(recipe=args.recipe, **params)
    elif args.std is not None:
        kw = dict(std=args.std)
    else:
        kw = dict(scheme=args.scheme or "glorot_normal", **params)
    kw.update(residual_settings(args)[0])  # single-valued options: one setting
    residual = args.architecture == "residual"
    result = jacobian_spectrum(args.depth, args.width, activation=args.activation,
                               sigma_b=args.sigma_b, samples=args.samples, seed=args.seed,
                               bins=args.bins, method=args.method, slope=args.slope, **kw)
    theory = mean_field = None
    if residual:
        try:
            mean_field = result.mean_field_mean_sq()
        except ValueError as e:
            print(f"mean-field: not available ({e})", file=stdout)
    else:
        try:
            theory = result.theory()
        except ValueError as e:
            print(f"theory: not available ({e})", file=stdout)
    block = f"{result.depth} residual blocks" if residual else f"depth {result.depth}"
    lines = [("network", f"{result.activation}, {result.scheme}, {block}, "
              f"width {result.width}, sigma_w {result.sigma_w:.6g}, sigma_b {result.sigma_b:.6g}"),
             ("mean s^2", f"{result.mean_sq:.6g}"), ("var s^2", f"{result.var_sq:.6g}")]
    if mean_field is not None:
        lines.append(("mean-field mean s^2", f"{mean_field:.6g}   (theory.propagate_residual)"))
    if theory is not None:
        lines += [("theory mean s^2", f"{theory.mean_sq:.6g}   (chi1^L, chi1 = "
                   f"{theory.chi1:.6g})"), ("theory var s^2", f"{theory.var_sq:.6g}")]
    if result.singular_values is not None:
        sv = result.singular_values
        lines.append(("singular values", f"min {sv.min():.6g}, max {sv.max():.6g}"))
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        print(f"{k:<{width}}  {v}", file=stdout)
    outputs = Outputs()
    try:
        if args.json:
            outputs.text(json_text({"simulation": result.to_dict(),
                                    "theory": None if theory is None else theory.to_dict(),
                                    "mean_field_mean_sq": mean_field}), args.json)
        if args.plot:
            outputs.figure(plotting, plotting.jacobian_spectrum(result, theory), args.plot, fmt)
        outputs.publish()
    finally:
        outputs.discard()
    for path in outputs.published:
        print(f"wrote {path}", file=stdout)
    return 0
