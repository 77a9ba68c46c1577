"""Recipes of the figures of docs/frameworks.md."""

import numpy as np

from .. import initializers as _init
from .. import random as R
from . import SEED, sig_list


def _fig_lsuv(ctx):
    """docs/frameworks.md section 5.1, variance across depth: plain schemes against LSUV."""
    from ..lsuv import forward_variances, layer_seed, lsuv

    sz, P = ctx.sizes, ctx.plotting
    depth, width, n = sz["lsuv_depth"], sz["lsuv_width"], sz["lsuv_samples"]
    # Calibration batch (LSUV sees it) and a held-out batch (every curve is measured on it).
    x = R.normal((n, width), seed=SEED, dtype=np.float64)
    x_test = R.normal((n, width), seed=SEED + 1, dtype=np.float64)
    shape = (width, width)
    panels, runs = [], []
    for act in ("relu", "tanh", "selu"):
        curves = []
        for scheme in ("glorot_normal", "he_normal", "lecun_normal"):
            ws = [_init.get(scheme)(shape, layout="keras", dtype=np.float64,
                                    seed=layer_seed(SEED, layer)) for layer in range(depth)]
            var = forward_variances(ws, act, x_test)
            curves.append((scheme, var))
            runs.append({"label": f"{act}, {scheme}", "activation": act, "scheme": scheme,
                         "layers": {"var": sig_list(var)}})
        r = lsuv([np.empty(shape)] * depth, act, x, seed=SEED)
        var = forward_variances(r.weights, act, x_test)
        curves.append(("LSUV", var, {"color": "k", "linestyle": "-", "linewidth": 2.2}))
        runs.append({"label": f"{act}, LSUV", "activation": act, "scheme": "lsuv",
                     "converged": all(r.converged),
                     "layers": {"var": sig_list(var), "var_calibration": sig_list(r.variances),
                                "scale": sig_list(r.scales), "iterations": r.iterations}})
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
                         "tol": 0.1, "max_iter": 10, "calibration_seed": SEED,
                         "held_out_seed": SEED + 1, "dtype": "float64"},
            "runs": runs}


#: (key in numbers.json, recipe), in the order of docs/frameworks.md.
FIGURES = [("lsuv", _fig_lsuv)]
