"""Recipes of the figures of docs/simulation.md (sections 4 to 13), in the order of the doc."""

import math

import numpy as np

from .. import initializers as _init
from ..cli.common import phase_grid
from . import SEED, sig, sig_list


def _fig_zeros(ctx):
    """docs/simulation.md section 4, zero and constant weights: the symmetry never breaks."""
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
    rng = np.random.default_rng(SEED)
    h = rng.standard_normal((min(sz["samples"], 200), sz["width"]))
    spread = []
    for _ in range(sz["depth"]):
        w = _init.get(scheme)((h.shape[1], sz["width"]), layout="keras", dtype=np.float64,
                              **params)
        h = act(h @ w)
        spread.append(float(h.std(axis=1).max()))
    return sig_list(spread)


def _fig_classic(ctx):
    """docs/simulation.md section 5, sigmoid with std 1 and std 0.01: the textbook figure."""
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
    """docs/simulation.md section 6, Xavier/Glorot for sigmoid and tanh."""
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
    """docs/simulation.md section 7, ReLU at depth 50: Glorot shrinks, He stays flat."""
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
    """docs/simulation.md section 8, orthogonal versus Glorot for tanh."""
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
    """docs/simulation.md section 9, SELU with LeCun normal: self-normalisation."""
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
    """docs/simulation.md section 10, one layer of 500 units on 500 samples."""
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
    """docs/simulation.md sections 11.1 (the phase diagram for tanh) and 11.2 (simulation
    against mean-field theory)."""
    from .. import theory as T

    sz, P = ctx.sizes, ctx.plotting
    sb0 = 0.05
    crit = T.critical_sigma_w("tanh", sb0)
    points = [(1.0, sb0), (crit, sb0), (1.5, sb0), (2.5, 0.3), (1.3, 0.6)]
    sw_grid = np.linspace(0.5, 3.0, sz["phase_resolution"])
    sb_grid = np.linspace(0.0, 1.0, sz["phase_resolution"])
    chi = phase_grid("tanh", sw_grid, sb_grid, 0.01, ctx.progress)
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
        point_numbers.append({"point": letter, "sigma_w": sig(sw), "sigma_b": sb,
                              **{k: sig(v) for k, v in scales.items()}})
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
            "critical_sigma_w": {f"{sb:g}": sig(T.critical_sigma_w("tanh", sb))
                                 for sb in (0.0, 0.05, 0.3, 0.6, 1.0)},
            "points": point_numbers, "runs": runs,
            "phase_grid": {"sigma_w": [sig(sw_grid[0]), sig(sw_grid[-1])],
                           "sigma_b": [sig(sb_grid[0]), sig(sb_grid[-1])],
                           "resolution": sz["phase_resolution"]}}


def _fig_residual(ctx):
    """docs/simulation.md sections 12.2 and 12.3 (residual networks): pre-LN vs post-LN (tanh,
    two-layer branch) and the branch scale 1 vs 1/sqrt(L) (ReLU), simulation against
    :func:`weightinit.theory.propagate_residual`."""
    sz, P = ctx.sizes, ctx.plotting
    size = dict(depth=sz["residual_depth"], width=sz["residual_width"],
                samples=sz["residual_samples"], architecture="residual", backward=True)
    sets = {
        "norms": [(f"{name}", dict(activation="tanh", scheme="glorot_normal", branch_depth=2,
                                   norm=norm, norm_position=pos))
                  for name, norm, pos in (("no norm", None, "pre"), ("pre-LN", "layer", "pre"),
                                          ("post-LN", "layer", "post"))],
        "scaling": [(f"{name}, alpha {a}", dict(activation="relu", scheme="he_normal",
                                                 norm=norm, branch_scale=a))
                    for name, norm in (("no norm", None), ("pre-LN", "layer"))
                    for a in ("1", "1/sqrt(L)")],
    }
    out, files = {}, []
    for key, runs in sets.items():
        results, numbers = [], []
        for label, kw in runs:
            r, n = ctx.simulate(label, **size, **kw)
            results.append(r)
            numbers.append(n)
        preds = [r.theory() for r in results]
        labels = [label for label, _ in runs]
        shape = (f"{sz['residual_depth']} blocks of {sz['residual_width']} units, "
                 f"{sz['residual_samples']} samples")
        if key == "norms":
            title = f"tanh, two-layer branches, Glorot weights, alpha 1 ({shape})"
            files += [ctx.save("residual_norms.png", P.theory_vs_simulation(
                          results, preds, labels=labels, title=title)),
                      ctx.save("residual_norms_grad.png", P.theory_vs_simulation(
                          results, preds, labels=labels, title=title, stat="grad_var"))]
        else:
            title = f"ReLU, one-layer branches, He weights ({shape})"
            files.append(ctx.save("residual_scaling.png", P.theory_vs_simulation(
                results, preds, labels=labels, title=title)))
        out[key] = numbers
    return {"files": files, "description": "Residual networks: the residual stream's second "
            "moment q and the gradient's per block, simulation (markers) against mean-field "
            "theory (lines); pre-LN vs post-LN vs no normalisation, and branch scale 1 vs "
            "1/sqrt(L).", "runs": out["norms"] + out["scaling"]}


def _fig_spectra(ctx):
    """docs/simulation.md section 13: Jacobian singular-value densities at criticality, tanh
    (q* = 0.5) and ReLU (sigma_w^2 = 2), orthogonal against Gaussian weights, beside the
    free-probability densities (Pennington, Schoenholz & Ganguli 2017, Fig. 3)."""
    from .. import spectrum as SP
    from .. import theory as T

    sz, P = ctx.sizes, ctx.plotting
    q = 0.5  # tanh: sigma_w, sigma_b with chi1 = 1 and fixed point q* = 0.5
    sw_t = T.gaussian_expectation(lambda u: (1 - np.tanh(u) ** 2) ** 2, q) ** -0.5
    sb_t = math.sqrt(q - sw_t**2 * T.gaussian_expectation(lambda u: np.tanh(u) ** 2, q))
    n = sz["spectrum_width"]
    cases = [("tanh", "orthogonal", sw_t, sb_t), ("tanh", "gaussian", sw_t, sb_t),
             ("relu", "orthogonal", math.sqrt(2), 0.0), ("relu", "gaussian", math.sqrt(2), 0.0)]
    files, numbers = [], []
    for act, weights, sw, sb in cases:
        kw = (dict(scheme="orthogonal", gain=sw) if weights == "orthogonal"
              else dict(std=sw / math.sqrt(n)))
        r = SP.jacobian_spectrum(sz["spectrum_depth"], n, activation=act, sigma_b=sb,
                                 samples=sz["spectrum_samples"], seed=SEED, **kw)
        th = r.theory()
        files.append(ctx.save(f"spectrum_{act}_{weights}.png",
                              P.jacobian_spectrum(r, th)))
        numbers.append({"activation": act, "weights": weights, "sigma_w": sig(sw),
                        "sigma_b": sig(sb), "mean_sq": sig(r.mean_sq), "var_sq": sig(r.var_sq),
                        "theory_mean_sq": sig(th.mean_sq), "theory_var_sq": sig(th.var_sq),
                        "largest": sig(r.singular_values.max())})
    return {"files": files, "description": "Jacobian singular values (histogram) against the "
            "free-probability density (line) at criticality.", "spectra": numbers}


#: (key in numbers.json, recipe), in the order of docs/simulation.md.
FIGURES = [("zeros_constant", _fig_zeros), ("sigmoid_classic", _fig_classic),
           ("xavier", _fig_xavier), ("relu_glorot_vs_he", _fig_relu),
           ("tanh_orthogonal_vs_glorot", _fig_orthogonal), ("selu_lecun", _fig_selu),
           ("one_layer", _fig_one_layer), ("tanh_theory", _fig_theory),
           ("residual", _fig_residual), ("spectra", _fig_spectra)]
