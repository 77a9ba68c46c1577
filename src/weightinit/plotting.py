"""Figures for simulations and mean-field theory (the only module that imports matplotlib).

Every function builds a :class:`matplotlib.figure.Figure` on the non-interactive Agg canvas
(pyplot and its global state are never touched, so importing this module does not change the
backend of an interactive session) and returns it; :func:`save` writes it. Install the optional
dependency with ``pip install "weightinit[plot]"``.
"""

import math

import numpy as np

try:
    import matplotlib
    from matplotlib import colors as _colors
    from matplotlib import ticker as _ticker
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
except ImportError as exc:  # pragma: no cover - exercised with matplotlib hidden
    raise ImportError(
        "Plotting needs matplotlib, which is not installed. Install it with: "
        'pip install "weightinit[plot]"') from exc

#: Line colours, in order of the runs.
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
#: Line styles, cycled with the colours so that coinciding curves stay visible.
LINESTYLES = ["-", "--", "-.", ":"]
#: Resolution of saved raster figures.
DPI = 130
#: One style for every figure.
STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "figure.titlesize": 11,
    "xtick.labelsize": 7.5,
    "ytick.labelsize": 7.5,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=COLORS),
    "lines.linewidth": 1.6,
    "lines.markersize": 4,
    "savefig.facecolor": "white",
}
HIST_COLOR = "#4c72b0"

STAT_LABELS = {
    "mean": "activation mean",
    "std": "activation std",
    "var": "activation variance",
    "q": "pre-activation second moment $q^l$",
    "saturated": "share saturated",
    "dead": "share exactly 0",
    "dead_units": "share of dead units",
    "grad_var": r"gradient second moment $E[(\partial L/\partial h^l)^2]$",
    "grad_norm": "gradient norm per sample",
}
_PERCENT_STATS = ("saturated", "dead", "dead_units")


# ----------------------------------------------------------------------------- helpers
def formats():
    """File extensions :func:`save` can write (png, pdf, svg, ...)."""
    return sorted(FigureCanvasAgg.get_supported_filetypes())


def check_path(path):
    """The file format implied by ``path``'s extension (png when it has none), or ValueError."""
    ext = path.rsplit(".", 1)[-1].lower() if "." in path.replace("\\", "/").rsplit("/", 1)[-1] \
        else ""
    if not ext:
        return "png"
    if ext not in FigureCanvasAgg.get_supported_filetypes():
        raise ValueError(f"Cannot write a figure to {path!r}: unknown image format {ext!r}. "
                         f"Use one of: {', '.join(formats())}")
    return ext


def save(fig, path, fmt="png", dpi=DPI):
    """Write ``fig`` to ``path`` (any name: the format is given, not guessed from it)."""
    with matplotlib.rc_context(STYLE):
        fig.savefig(path, format=fmt, dpi=dpi)


def _figure(width, height):
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def run_label(result):
    """Short description of a simulation's weights: ``N(0, 0.01²)`` or ``he_normal (a=0.1)``."""
    if "std" in result.params and result.scheme.startswith("normal(std="):
        label = f"N(0, {result.params['std']:g}²)"
    else:
        extra = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in result.params.items())
        label = f"{result.scheme} ({extra})" if extra else result.scheme
    if result.sigma_b2 > 0:
        label += f", bias std {math.sqrt(result.sigma_b2):g}"
    if result.bias:
        label += f", bias {result.bias:g}"
    if getattr(result, "architecture", "mlp") == "residual":
        label += f", {result.residual_label}"
    return label


def _shape_text(result):
    w = result.widths
    if getattr(result, "architecture", "mlp") == "residual":
        return f"{len(w)} residual block{'s' * (len(w) > 1)} of {w[0]} units"
    if len(set(w)) == 1:
        return f"{len(w)} layer{'s' * (len(w) > 1)} of {w[0]} units"
    return "widths " + "-".join(map(str, w))


def _common_text(results):
    """What all runs share: activation, architecture and sample count (for a title)."""
    parts = []
    acts = {r.activation for r in results}
    if len(acts) == 1:
        parts.append(next(iter(acts)))
    shapes = {_shape_text(r) for r in results}
    if len(shapes) == 1:
        parts.append(next(iter(shapes)))
    samples = {r.samples for r in results}
    if len(samples) == 1:
        parts.append(f"{next(iter(samples))} samples")
    return ", ".join(parts)


def _log_ticks(axis, lo, hi):
    """Readable ticks for a log axis over [lo, hi]: 1-2-5 steps labelled as plain numbers
    for short ranges, decades otherwise; no minor-tick labels."""
    if not (0 < lo < hi and math.isfinite(hi)):
        return
    decades = math.log10(hi / lo)
    if decades > 2.5:
        axis.set_minor_formatter(_ticker.NullFormatter())
        return
    mantissas = ((1, 2, 5) if decades > 1 else (1, 1.5, 2, 3, 5) if decades > 0.5
                 else (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9))
    ticks = [m * 10.0**k for k in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
             for m in mantissas]
    ticks = [t for t in ticks if lo <= t * (1 + 1e-12) and t <= hi * (1 + 1e-12)]
    if len(ticks) >= 2:
        axis.set_major_locator(_ticker.FixedLocator(ticks))
        axis.set_major_formatter(_ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(_ticker.NullFormatter())


def select_layers(depth, max_layers):
    """0-based indices of at most ``max_layers`` evenly spaced layers, always the first and last."""
    if depth <= max_layers:
        return list(range(depth))
    if max_layers == 1:
        return [depth - 1]
    return sorted({int(round(x)) for x in np.linspace(0, depth - 1, max_layers)})


# ----------------------------------------------------------------------------- histograms
def histograms(results, *, labels=None, max_layers=10, title=None):
    """Activation histograms: one row per run, one column per layer ("1-layer", "2-layer", ...).

    Deep networks show at most ``max_layers`` evenly spaced layers (the title says so). When
    every run has a single layer, the runs are laid out side by side instead. Bars give the share
    of a layer's activations in each bin. A spike of exact zeros (dead ReLUs) that would flatten
    everything else is clipped and its height written on the panel.
    """
    results = list(results)
    labels = list(labels) if labels is not None else [run_label(r) for r in results]
    single = all(r.depth == 1 for r in results)
    layer_sets = [[0] if single else select_layers(r.depth, max_layers) for r in results]
    ncols = len(results) if single else max(len(s) for s in layer_sets)
    nrows = 1 if single else len(results)
    with matplotlib.rc_context(STYLE):
        panel = 2.1 if ncols <= 6 else 1.55
        fig = _figure(max(panel * ncols + 0.8, 5.0), 1.9 * nrows + 0.8)
        axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
        for i, (r, layers, label) in enumerate(zip(results, layer_sets, labels)):
            row = axes[0] if single else axes[i]
            panels = [row[i]] if single else list(row[: len(layers)])
            for ax in (row[len(layers):] if not single else []):
                ax.set_visible(False)
            ymax = 0.0
            for ax, layer in zip(panels, layers):
                ymax = max(ymax, _hist_panel(ax, r, layer))
            for j, ax in enumerate(panels):
                ax.set_ylim(0, ymax * 1.08 if ymax > 0 else 1)
                ax.yaxis.set_major_formatter(_ticker.PercentFormatter(1.0, decimals=0))
                if single:
                    ax.set_title(f"{label}\n(1 layer)")
                    if i == 0:
                        ax.set_ylabel("share of activations")
                else:
                    ax.set_title(f"{layers[j] + 1}-layer")
                    if j == 0:
                        ax.set_ylabel(f"{label}\n\nshare of activations")
                    else:
                        ax.tick_params(labelleft=False)
                if single or i == nrows - 1:
                    ax.set_xlabel("activation")
        if title is None:
            title = f"Activation histograms per layer ({_common_text(results)})"
        depth = max(r.depth for r in results)
        if not single and ncols < depth:
            title += f"\nshowing {ncols} of {depth} layers, evenly spaced"
        fig.suptitle(title)
    return fig


def _hist_panel(ax, result, layer):
    """Draw one layer's histogram; return the y-limit it needs (after any spike clipping)."""
    counts = result.hist[layer].astype(float)
    edges = result.bin_edges[layer]
    total = counts.sum()
    share = counts / total if total > 0 else counts
    ax.stairs(share, edges, fill=True, color=HIST_COLOR, alpha=0.9)
    ax.set_xlim(edges[0], edges[-1])
    ax.xaxis.set_major_locator(_ticker.MaxNLocator(3))
    fmt = _ticker.ScalarFormatter(useMathText=True)
    fmt.set_powerlimits((-3, 4))
    ax.xaxis.set_major_formatter(fmt)
    top = float(share.max()) if share.size else 0.0
    notes = []
    if share.size > 1 and result.dead[layer] >= 0.1:
        k = int(np.argmax(share))
        rest = float(np.delete(share, k).max())
        if edges[k] <= 0.0 <= edges[k + 1] and 0 < rest and share[k] > 3 * rest:
            top = 1.6 * rest
            ax.annotate(f"bar clipped:\n{share[k]:.0%} in this bin,\n{result.dead[layer]:.0%} "
                        "exactly 0", xy=(edges[k + 1], top), xytext=(4, -1),
                        textcoords="offset points", ha="left", va="top", fontsize=6.5,
                        color="#333333")
    if result.nonfinite[layer] > 0:
        notes.append(f"{result.nonfinite[layer]:.0%} NaN/inf")
    if notes:
        ax.text(0.03, 0.97, "\n".join(notes), transform=ax.transAxes, ha="left", va="top",
                fontsize=7, color="#b22222")
    return top


# ----------------------------------------------------------------------------- per-layer curves
def layer_stats(results, stats=("std",), *, labels=None, logy=(), title=None, ylim=None,
                reference=None):
    """Per-layer statistics, one panel per name in ``stats`` (attributes of SimulationResult),
    one line per run; names in ``logy`` use a logarithmic y axis. ``ylim`` and ``reference``
    map a statistic to fixed y limits and to the value of a dotted reference line."""
    ylim, reference = dict(ylim or {}), dict(reference or {})
    results = list(results)
    labels = list(labels) if labels is not None else [run_label(r) for r in results]
    with matplotlib.rc_context(STYLE):
        fig = _figure(max(4.2 * len(stats), 5.0), 3.4)
        axes = fig.subplots(1, len(stats), squeeze=False)[0]
        for ax, stat in zip(axes, stats):
            for k, (r, label) in enumerate(zip(results, labels)):
                y = getattr(r, stat)
                if y is None:
                    continue
                y = np.asarray(y, dtype=float)
                x = np.arange(1, len(y) + 1)
                keep = np.isfinite(y) & ((y > 0) if stat in logy else True)
                ax.plot(x[keep], y[keep], marker="o" if len(y) <= 20 else None, label=label,
                        color=COLORS[k % len(COLORS)], linestyle=LINESTYLES[k % len(LINESTYLES)])
            if stat in reference:
                ax.axhline(reference[stat], color="0.4", linestyle=":", linewidth=1.0, zorder=0)
            if stat in ylim:
                ax.set_ylim(*ylim[stat])
            if stat in logy and ax.has_data():
                ax.set_yscale("log")
                _log_ticks(ax.yaxis, *ax.get_ylim())
            if stat in _PERCENT_STATS:
                ax.yaxis.set_major_formatter(_ticker.PercentFormatter(1.0))
            ax.set_xlabel("layer")
            ax.set_ylabel(STAT_LABELS.get(stat, stat))
            ax.set_title(STAT_LABELS.get(stat, stat) + (" (log scale)" if stat in logy else ""))
            ax.xaxis.set_major_locator(_ticker.MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        axes[0].legend()
        fig.suptitle(title or f"Per-layer statistics ({_common_text(results)})")
    return fig


def theory_vs_simulation(results, predictions, *, labels=None, title=None, stat="q"):
    """Simulated pre-activation second moment ``q`` per layer (markers) against the mean-field
    prediction (lines), one colour per run, log y axis. ``predictions[i]`` is
    ``results[i].theory()``. ``stat`` picks another statistic both carry (residual runs:
    ``"grad_var"``, ``"branch_ratio"``)."""
    results = list(results)
    labels = list(labels) if labels is not None else [run_label(r) for r in results]
    with matplotlib.rc_context(STYLE):
        fig = _figure(8.6, 4.4)
        ax = fig.subplots()
        for k, (r, pred, label) in enumerate(zip(results, predictions, labels)):
            color = COLORS[k % len(COLORS)]
            x = np.arange(1, r.depth + 1)
            qt = np.asarray(pred[stat], dtype=float)
            qs = np.asarray(getattr(r, stat), dtype=float)
            ok = np.isfinite(qt) & (qt > 0)
            ax.plot(x[ok], qt[ok], color=color, label=label)
            ok = np.isfinite(qs) & (qs > 0)
            ax.plot(x[ok], qs[ok], "o", color=color, markersize=3.5, markerfacecolor="none")
        if ax.has_data():
            ax.set_yscale("log")
            _log_ticks(ax.yaxis, *ax.get_ylim())
        ax.plot([], [], "-", color="0.3", label="mean-field theory")
        ax.plot([], [], "o", color="0.3", markerfacecolor="none", label="simulation")
        residual = all(getattr(r, "architecture", "mlp") == "residual" for r in results)
        ax.set_xlabel("block $l$" if residual else "layer $l$")
        ylabel = {"grad_var": "gradient second moment at the block's output",
                  "branch_ratio": r"branch/skip variance ratio $\alpha^2 E[F^2] / q_l$"}.get(
            stat, "residual-stream second moment $q_l$" if residual
            else "pre-activation second moment $q^l$")
        ax.set_ylabel(ylabel + " (log scale)")
        ax.xaxis.set_major_locator(_ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
        ax.set_title(title or f"Simulation vs mean-field theory ({_common_text(results)})")
    return fig


# ----------------------------------------------------------------------------- phase diagram
def phase_diagram(activation, sigma_w, sigma_b, chi1, *, points=(), title=None):
    r"""Order/chaos phase diagram: :math:`\chi_1` over (:math:`\sigma_w`, :math:`\sigma_b`) as a
    colour map (log scale, centred on 1), the edge of chaos :math:`\chi_1 = 1` as a labelled
    contour and the two phases annotated. ``chi1`` has rows ``sigma_b`` and columns ``sigma_w``
    (as :func:`weightinit.theory.phase_diagram` returns it). ``points`` are ``(sigma_w, sigma_b,
    label)`` triples to mark. Axes are the standard deviations :math:`\sigma_w` (weights have
    variance :math:`\sigma_w^2/\mathrm{fan\_in}`) and :math:`\sigma_b`."""
    sw = np.asarray(sigma_w, dtype=float)
    sb = np.asarray(sigma_b, dtype=float)
    chi = np.ma.masked_invalid(np.asarray(chi1, dtype=float))
    pos = chi.compressed()
    pos = pos[pos > 0]
    if pos.size:
        span = max(float(pos.max()), 1.0 / float(pos.min()), 1.5)
    else:
        span = 2.0
    span = min(span, 1e3)
    shown = np.ma.clip(chi, 1.0 / span, span)
    with matplotlib.rc_context(STYLE):
        fig = _figure(6.4, 4.8)
        ax = fig.subplots()
        smooth = sw.size > 1 and sb.size > 1 and not np.ma.is_masked(shown)
        mesh = ax.pcolormesh(sw, sb, shown, shading="gouraud" if smooth else "nearest",
                             cmap="RdBu_r", norm=_colors.LogNorm(vmin=1.0 / span, vmax=span),
                             rasterized=True)
        bar = fig.colorbar(mesh, ax=ax)
        _log_ticks(bar.ax.yaxis, 1.0 / span, span)
        bar.set_label(r"$\chi_1$ (log scale; clipped to the colour range)")
        finite = chi.compressed()
        ordered = np.ma.filled(chi < 1.0, False)
        chaotic = np.ma.filled(chi > 1.0, False)
        if finite.size and finite.min() < 1.0 < finite.max() and sw.size > 1 and sb.size > 1:
            cs = ax.contour(sw, sb, chi, levels=[1.0], colors="k", linewidths=1.8)
            ax.clabel(cs, fmt={1.0: r"$\chi_1 = 1$ (edge of chaos)"}, fontsize=8, inline=True)
        for mask, text in ((ordered, "ORDERED\n" r"$\chi_1 < 1$" "\n(gradients vanish)"),
                           (chaotic, "CHAOTIC\n" r"$\chi_1 > 1$" "\n(gradients explode)")):
            where = _deepest_point(mask, sw, sb)
            if where is not None:
                ax.text(*where, text, ha="center", va="center", fontsize=8.5, weight="bold",
                        color="k", bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="none",
                                             alpha=0.75))
        for x, y, label in points:
            ax.plot([x], [y], marker="*", color="gold", markeredgecolor="k", markersize=11,
                    linestyle="none")
            ax.annotate(label, (x, y), xytext=(5, 5), textcoords="offset points", fontsize=7.5,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.7))
        ax.set_xlim(sw[0], sw[-1])
        ax.set_ylim(sb[0], sb[-1])
        ax.set_xlabel(r"$\sigma_w$ (weight std $\times \sqrt{\mathrm{fan\_in}}$; not squared)")
        ax.set_ylabel(r"$\sigma_b$ (bias std; not squared)")
        ax.set_title(title or f"Order-to-chaos phase diagram, {activation} "
                     r"(mean field, $\chi_1 = \sigma_w^2\, E[\phi'(\sqrt{q^*} z)^2]$)")
    return fig


def _deepest_point(mask, sw, sb):
    """(x, y) of the grid point of ``mask`` farthest from the other region and the axes' edges
    (in axes-fraction units), where a region's label fits; None for an empty region."""
    if not mask.any():
        return None
    step_i = max(1, mask.shape[0] // 40)
    step_j = max(1, mask.shape[1] // 40)
    m = mask[::step_i, ::step_j]
    fy = np.linspace(0.0, 1.0, mask.shape[0])[::step_i]
    fx = np.linspace(0.0, 1.0, mask.shape[1])[::step_j]
    gy, gx = np.meshgrid(fy, fx, indexing="ij")
    inside = np.column_stack((gx[m], gy[m]))
    if not len(inside):
        return None
    outside = np.column_stack((gx[~m], gy[~m]))
    # Labels are wider than tall: horizontal distances count 1/1.6 as much as vertical ones.
    score = np.minimum.reduce([inside[:, 0] / 1.6, (1 - inside[:, 0]) / 1.6, inside[:, 1],
                               1 - inside[:, 1]])
    if len(outside):
        d = np.sqrt(((inside[:, None, 0] - outside[None, :, 0]) / 1.6) ** 2
                    + (inside[:, None, 1] - outside[None, :, 1]) ** 2).min(axis=1)
        score = np.minimum(score, d)
    k = int(np.argmax(score))
    fx_k, fy_k = inside[k]
    return (sw[0] + fx_k * (sw[-1] - sw[0]), sb[0] + fy_k * (sb[-1] - sb[0]))


def sweep_phase_diagrams(activation, sigma_w, sigma_b, chi1_sim, chi1_theory, *, title=None,
                         note=None):
    r"""A simulated phase diagram beside the mean-field one (``weightinit sweep --plot``).

    Left: :math:`\chi_1` measured from back-propagated gradients at every grid point
    (:func:`weightinit.sweep.sweep`), one cell per point, with its :math:`\chi_1 = 1` contour
    (solid) and the mean-field contour (dashed) for comparison; grey cells have no estimate.
    Right: the mean-field :math:`\chi_1` (:func:`weightinit.theory.phase_diagram`) on the same
    grid. One logarithmic colour scale centred on 1 for both. Arrays have rows ``sigma_b`` and
    columns ``sigma_w``; ``note`` is a line of settings added to the title."""
    sw = np.asarray(sigma_w, dtype=float)
    sb = np.asarray(sigma_b, dtype=float)
    sim = np.ma.masked_invalid(np.asarray(chi1_sim, dtype=float))
    theo = np.ma.masked_invalid(np.asarray(chi1_theory, dtype=float))
    pos = np.concatenate([sim.compressed(), theo.compressed()])
    pos = pos[pos > 0]
    span = max(float(pos.max()), 1.0 / float(pos.min()), 1.5) if pos.size else 2.0
    span = min(span, 1e3)
    norm = _colors.LogNorm(vmin=1.0 / span, vmax=span)
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.75")
    grid2d = sw.size > 1 and sb.size > 1

    def contour(ax, chi, style):
        finite = chi.compressed()
        if grid2d and finite.size and finite.min() < 1.0 < finite.max():
            ax.contour(sw, sb, chi, levels=[1.0], colors="k", linewidths=1.8,
                       linestyles=style)

    with matplotlib.rc_context(STYLE):
        fig = _figure(11.5, 4.6)
        axes = fig.subplots(1, 2, sharey=True)
        for ax, chi, name in ((axes[0], sim, "simulation"), (axes[1], theo, "mean-field theory")):
            mesh = ax.pcolormesh(sw, sb, np.ma.clip(chi, 1.0 / span, span), shading="nearest",
                                 cmap=cmap, norm=norm, rasterized=True)
            contour(ax, chi, "solid")
            ax.set_xlim(max(ax.get_xlim()[0], 0.0), ax.get_xlim()[1])  # sigmas are >= 0
            ax.set_ylim(max(ax.get_ylim()[0], 0.0), ax.get_ylim()[1])
            ax.set_xlabel(r"$\sigma_w$ (weight std $\times \sqrt{\mathrm{fan\_in}}$)")
            ax.set_title(f"{name}: " + (r"$\chi_1$ from gradient growth per layer"
                                        if ax is axes[0] else
                                        r"$\chi_1 = \sigma_w^2\, E[\phi'(\sqrt{q^*} z)^2]$"))
        contour(axes[0], theo, "dashed")
        axes[0].plot([], [], "k-", label=r"$\chi_1 = 1$, simulation")
        axes[0].plot([], [], "k--", label=r"$\chi_1 = 1$, mean field")
        axes[0].legend(loc="upper left", frameon=True, framealpha=0.8)
        axes[0].set_ylabel(r"$\sigma_b$ (bias std)")
        bar = fig.colorbar(mesh, ax=axes)
        _log_ticks(bar.ax.yaxis, 1.0 / span, span)
        bar.set_label(r"$\chi_1$ (log scale; > 1 chaotic, < 1 ordered)")
        head = title or f"Order-to-chaos phase diagram, {activation}: simulation vs mean field"
        fig.suptitle(head + (f"\n{note}" if note else ""))
    return fig


# ----------------------------------------------------------------------------- LSUV
def variance_by_depth(panels, *, title=None, ylabel="pre-activation variance (log scale)",
                      reference=1.0):
    """Per-layer curves on a log y axis, one panel per entry of ``panels`` = ``[(panel title,
    [(label, values) or (label, values, style), ...]), ...]`` (``values[l]`` = layer l + 1;
    ``style``: matplotlib line keywords overriding the cycled colour and line style), with a
    dotted line at ``reference``. Used for the LSUV figure: the pre-activation variance per
    layer of networks initialised by plain schemes and by LSUV."""
    panels = list(panels)
    with matplotlib.rc_context(STYLE):
        fig = _figure(max(4.0 * len(panels), 5.0), 3.6)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (name, curves) in zip(axes, panels):
            for k, (label, y, *style) in enumerate(curves):
                y = np.asarray(y, dtype=float)
                x = np.arange(1, len(y) + 1)
                keep = np.isfinite(y) & (y > 0)
                kw = dict(color=COLORS[k % len(COLORS)], linestyle=LINESTYLES[k % len(LINESTYLES)],
                          marker="o" if len(y) <= 20 else None)
                kw.update(style[0] if style else {})
                ax.plot(x[keep], y[keep], label=label, **kw)
            if reference is not None:
                ax.axhline(reference, color="0.4", linestyle=":", linewidth=1.0, zorder=0)
            if ax.has_data():
                ax.set_yscale("log")
                _log_ticks(ax.yaxis, *ax.get_ylim())
            ax.set_xlabel("layer")
            ax.set_ylabel(ylabel)
            ax.set_title(name)
            ax.xaxis.set_major_locator(_ticker.MaxNLocator(integer=True))
            ax.grid(alpha=0.3, which="both")
            ax.legend()
        if title:
            fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------- Jacobian spectra
def jacobian_spectrum(result, theory=None, *, points=200, title=None):
    """Histogram (density) of the singular values of ``result`` (a
    :class:`weightinit.JacobianSpectrum` from ``method="exact"``) with, if given, the
    free-probability density ``theory.singular_value_density`` as a line."""
    with matplotlib.rc_context(STYLE):
        fig = _figure(6.4, 4.0)
        ax = fig.subplots()
        edges = np.asarray(result.bin_edges, dtype=float)
        counts = np.asarray(result.hist, dtype=float)
        widths = np.diff(edges)
        total = counts.sum()
        if total > 0:
            ax.bar(edges[:-1], counts / (total * widths), width=widths, align="edge",
                   color=COLORS[0], alpha=0.5, label="simulation")
        if theory is not None:
            s = np.linspace(edges[0], edges[-1], points + 1)[1:]
            p, _ = theory.singular_value_density(s)
            ax.plot(s, p, color=COLORS[1], label="free probability")
        ax.set_xlabel("singular value of the input-output Jacobian")
        ax.set_ylabel("density")
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(title or f"{result.activation}, {result.scheme}, depth {result.depth}, "
                     f"width {result.width}")
    return fig
