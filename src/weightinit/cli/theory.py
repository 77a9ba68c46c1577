"""``weightinit theory``: mean-field order/chaos quantities and the phase diagram."""

import math

import numpy as np

from .common import (Outputs, check_outputs, finite_float, import_plotting, nonneg_float,
                     phase_grid, positive_int, progress_option, want_progress)


def add_parser(sub):
    t = sub.add_parser(
        "theory", help="mean-field order/chaos quantities and the phase diagram",
        description="Mean-field signal propagation (Poole et al. 2016; Schoenholz et al. 2017) "
        "for weights N(0, sigma_w^2 / fan_in) and biases N(0, sigma_b^2): the critical sigma_w "
        "(chi1 = 1, the edge of chaos) with q* there, and with --sigma-w the fixed points, chi1 "
        "and depth scales at that sigma_w.")
    t.add_argument("--activation", default="tanh", help="activation (default tanh)")
    t.add_argument("--sigma-b", type=nonneg_float, default=0.0, help="bias std (default 0)")
    t.add_argument("--sigma-w", type=nonneg_float, default=None,
                   help="weight scale: std of W times sqrt(fan_in); prints its depth scales")
    t.add_argument("--slope", type=finite_float, default=0.01,
                   help="negative slope of leaky_relu (default 0.01)")
    t.add_argument("--phase-diagram", metavar="PATH",
                   help="write the (sigma_w, sigma_b) phase diagram figure (png, pdf, svg, ...)")
    t.add_argument("--sigma-w-range", type=nonneg_float, nargs=2, default=(0.5, 4.0),
                   metavar=("MIN", "MAX"), help="phase diagram x range (default 0.5 4)")
    t.add_argument("--sigma-b-range", type=nonneg_float, nargs=2, default=(0.0, 1.0),
                   metavar=("MIN", "MAX"), help="phase diagram y range (default 0 1)")
    t.add_argument("--resolution", type=positive_int, default=60,
                   help="phase diagram grid points per axis (default 60; the cost grows as its "
                   "square)")
    progress_option(t)
    t.set_defaults(run=run)


def _fmt(v):
    return "inf" if v == math.inf else f"{v:.6g}"


def run(args, stdout):
    from .. import simulation as S
    from .. import theory as T
    from .._validate import check_choice

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
        check_outputs(phase_diagram=args.phase_diagram)
        plotting = import_plotting()
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
        outputs = Outputs()
        try:
            sw_grid = np.linspace(sw_lo, sw_hi, args.resolution)
            sb_grid = np.linspace(sb_lo, sb_hi, args.resolution)
            chi = phase_grid(a, sw_grid, sb_grid, slope, want_progress(args))
            points = [] if args.sigma_w is None else [
                (args.sigma_w, sb, rf"$\sigma_w$={args.sigma_w:g}, $\sigma_b$={sb:g}")]
            fig = plotting.phase_diagram(a, sw_grid, sb_grid, chi, points=points)
            outputs.figure(plotting, fig, args.phase_diagram, fmt)
            outputs.publish()
        finally:
            outputs.discard()
        print(f"wrote {args.phase_diagram}", file=stdout)
    return 0
