"""Residual-network simulation speed: ``simulate(architecture="residual")`` against the bare
matmuls it needs, a straightforward NumPy implementation and (when installed) PyTorch, in one
run.

Width 1024, 50 blocks, 1024 samples, tanh, float32, full statistics and histograms, in two
settings: one-layer branches without normalisation (50 GEMMs) and two-layer branches with
pre-LayerNorm (100 GEMMs). Target: simulate <= 1.2 x the bare ``numpy.matmul`` calls. Run:
``python -m pytest bench/test_residual.py --benchmark-group-by=group``; the ratios are printed
by ``python bench/simulation_report.py --residual``.
"""

import numpy as np
import pytest

import weightinit as wi

WIDTH, BLOCKS, SAMPLES, BINS = 1024, 50, 1024, 30
SETTINGS = {"1-layer branch, no norm": dict(branch_depth=1, norm=None),
            "2-layer branch, pre-LN": dict(branch_depth=2, norm="layer")}


def bare_matmuls(branch_depth, norm):
    """The floor: the BLOCKS * branch_depth GEMMs alone, on fixed matrices."""
    rng = np.random.default_rng(0)
    h = rng.standard_normal((SAMPLES, WIDTH), dtype=np.float32)
    w = (rng.standard_normal((WIDTH, WIDTH), dtype=np.float32) / np.sqrt(WIDTH)).astype(np.float32)
    out = np.empty_like(h)

    def run():
        for _ in range(BLOCKS * branch_depth):
            np.matmul(h, w, out=out)
    return run


def numpy_version(branch_depth, norm):
    """The experiment written with NumPy: default_rng weights, matmul, tanh, LayerNorm, the
    residual add, and the stream's statistics and histogram per block."""
    def run():
        rng = np.random.default_rng(0)
        h = rng.standard_normal((SAMPLES, WIDTH), dtype=np.float32)
        std = np.float32(np.sqrt(1.0 / WIDTH))
        stats = []
        for _ in range(BLOCKS):
            x = h
            if norm:
                mu = x.mean(axis=1, keepdims=True)
                x = (x - mu) / np.sqrt(x.var(axis=1, keepdims=True) + 1e-5)
            z = x @ (rng.standard_normal((WIDTH, WIDTH), dtype=np.float32) * std)
            f = np.tanh(z)
            if branch_depth == 2:
                f = f @ (rng.standard_normal((WIDTH, WIDTH), dtype=np.float32) * std)
            h = h + f
            lo, hi = h.min(), h.max()
            stats.append((h.mean(), h.var(), np.mean(h * h), np.mean(z * z),
                          np.mean(np.abs(np.tanh(z)) > 0.9), np.histogram(h, BINS, (lo, hi))[0]))
        return stats
    return run


def torch_version(branch_depth, norm):
    torch = pytest.importorskip("torch")

    def run():
        g = torch.Generator().manual_seed(0)
        h = torch.randn(SAMPLES, WIDTH, generator=g)
        w = torch.empty(WIDTH, WIDTH)
        stats = []
        for _ in range(BLOCKS):
            x = torch.nn.functional.layer_norm(h, (WIDTH,)) if norm else h
            torch.nn.init.xavier_normal_(w, generator=g)
            z = x @ w
            f = torch.tanh(z)
            if branch_depth == 2:
                torch.nn.init.xavier_normal_(w, generator=g)
                f = f @ w
            h = h + f
            stats.append((h.mean(), h.var(), (h * h).mean(), (z * z).mean(),
                          (torch.tanh(z).abs() > 0.9).float().mean(),
                          torch.histc(h, BINS, float(h.min()), float(h.max()))))
        return stats
    return run


def weightinit_version(branch_depth, norm):
    return lambda: wi.simulate(BLOCKS, WIDTH, activation="tanh", scheme="glorot_normal",
                               samples=SAMPLES, seed=0, architecture="residual",
                               branch_depth=branch_depth, norm=norm)


PEERS = {"bare matmuls": bare_matmuls, "weightinit": weightinit_version, "numpy": numpy_version,
         "torch": torch_version}


@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("peer", list(PEERS))
def test_residual_50_blocks_width1024(benchmark, peer, setting):
    run = PEERS[peer](**SETTINGS[setting])
    run()  # compile / warm up outside the timer
    benchmark.group = f"residual tanh 1024 x 50 blocks, {setting}"
    benchmark.pedantic(run, rounds=3, iterations=1)
