"""Finite-width deviation from mean-field theory: simulated per-layer statistics against
``SimulationResult.theory()`` for widths 32 to 4096 (docs/simulation.md, finite width).

For each setting and width, over seeds 0..SEEDS-1 (one weight draw each, 256 samples):

* ``q max``: the largest relative error |q_sim / q_theory - 1| over the layers (blocks), mean
  over seeds;
* ``q last``: the signed relative error at the last layer, mean +- standard deviation over
  seeds (a bias shows as a mean away from 0, spread between weight draws as the deviation);
* ``grad``: the same signed error of the backward second moment at the first block;
* ``branch/skip max``: the largest relative error of the branch/skip variance ratio over the
  blocks, mean over seeds (residual settings; under post-norm q is 1 by construction, so this
  is where its finite-width deviation shows).

Run: ``python bench/finite_width.py [depth] [max_width]`` (defaults 100 and 4096). Prints a
Markdown table.
"""

import os
import sys
import time

import numpy as np

import weightinit as wi

sys.path.insert(0, os.path.dirname(__file__))
import peers  # noqa: E402

SEEDS = 3
SAMPLES = 256
SETTINGS = {
    "MLP, tanh, Glorot": dict(activation="tanh", scheme="glorot_normal"),
    "MLP, tanh, edge of chaos (sigma_b 0.05)": dict(
        activation="tanh", scheme="variance_scaling", distribution="normal", bias_std=0.05,
        scale=wi.theory.critical_sigma_w("tanh", 0.05) ** 2),
    "residual, tanh, pre-LN, 2-layer branch, alpha 1": dict(
        activation="tanh", architecture="residual", branch_depth=2, norm="layer"),
    "residual, tanh, post-LN, 2-layer branch, alpha 1": dict(
        activation="tanh", architecture="residual", branch_depth=2, norm="layer",
        norm_position="post"),
    "residual, ReLU (He), no norm, alpha 1/sqrt(L)": dict(
        activation="relu", scheme="he_normal", architecture="residual",
        branch_scale="1/sqrt(L)"),
}


def errors(depth, width, kw):
    q_max, q_last, grad, ratio = [], [], [], []
    for seed in range(SEEDS):
        r = wi.simulate(depth, width, samples=SAMPLES, seed=seed, backward=True, **kw)
        th = r.theory()
        rel = r.q / th["q"] - 1
        q_max.append(np.nanmax(np.abs(rel)))
        q_last.append(rel[-1])
        if "grad_var" in th:
            grad.append(r.grad_var[0] / th["grad_var"][0] - 1)
            ratio.append(np.nanmax(np.abs(r.branch_ratio / th["branch_ratio"] - 1)))
    return np.mean(q_max), np.array(q_last), np.array(grad), np.mean(ratio) if ratio else 0.0


def main(depth=100, max_width=4096):
    widths = [w for w in (32, 64, 128, 256, 512, 1024, 2048, 4096) if w <= max_width]
    print(f"# {peers.cpu()[0]}; depth {depth}, {SAMPLES} samples, seeds 0-{SEEDS - 1}\n")
    for name, kw in SETTINGS.items():
        print(f"\n{name}\n")
        grad = kw.get("architecture") == "residual"
        head = "| width | q max | q last |" + (" branch/skip max | grad (first block) |"
                                             if grad else "")
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        for w in widths:
            t = time.perf_counter()
            q_max, q_last, g, ratio = errors(depth, w, kw)
            row = (f"| {w} | {q_max:.2%} | {q_last.mean():+.2%} +- {q_last.std(ddof=1):.2%} |")
            if grad:
                row += f" {ratio:.2%} | {g.mean():+.1%} +- {g.std(ddof=1):.1%} |"
            print(row + f"  <!-- {time.perf_counter() - t:.0f} s -->", flush=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
