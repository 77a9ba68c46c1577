"""How often dieharder reports WEAK or FAILED for a perfect generator.

dieharder turns the p-values of a test's p-samples into one final p-value with a Kolmogorov-
Smirnov step (libdieharder/kstest.c, version 3.31.1): it takes d = max_i |p_(i) - i/(n+1)| over
the sorted p-values and returns the Kolmogorov survival function of d for n samples. Since
(i-1)/n <= i/(n+1) <= i/n, d never exceeds the KS distance D_n, so the final p-values lean
towards 1: WEAK (p < 0.005 or p > 0.995) and even FAILED (p > 1 - 1e-6) results on the high side
are more frequent than their nominal rates, while the low side is conservative.

This script draws n exact U(0, 1) p-values many times, applies the same statistic and the exact
Kolmogorov distribution (scipy.stats.kstwo; dieharder evaluates it with the Marsaglia-Tsang-Wang
algorithm) and prints the rates.

    python bench/quality/dieharder_ks_bias.py [--psamples 100] [--reps 200000]
"""

import argparse

import numpy as np
from scipy import stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--psamples", type=int, default=100)
    ap.add_argument("--reps", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    n, reps = args.psamples, args.reps
    rng = np.random.default_rng(args.seed)
    p = np.empty(reps)
    for start in range(0, reps, 10_000):
        stop = min(start + 10_000, reps)
        u = np.sort(rng.random((stop - start, n)), axis=1)
        d = np.abs(u - np.arange(1, n + 1) / (n + 1)).max(axis=1)
        p[start:stop] = stats.kstwo.sf(d, n)
    counts = {
        "p < 0.005 (WEAK, low; nominal 0.005)": np.sum(p < 0.005),
        "p > 0.995 (WEAK, high; nominal 0.005)": np.sum(p > 0.995),
        "WEAK (either side; nominal 0.01)": np.sum((p < 0.005) | (p > 0.995)),
        "p > 1 - 1e-6 (FAILED, high; nominal 1e-6)": np.sum(p > 1 - 1e-6),
        "p < 1e-6 (FAILED, low; nominal 1e-6)": np.sum(p < 1e-6),
    }
    print(f"{n} p-samples, {reps} simulated tests")
    for k, c in counts.items():
        v = c / reps
        se = np.sqrt(v * (1 - v) / reps)
        print(f"  {k:<44} {c:>7} times: {v:.3g} +- {se:.2g}")
    print("  deciles of the final p-value:", np.round(np.histogram(p, 10, (0, 1))[0] / reps, 4))


if __name__ == "__main__":
    main()
