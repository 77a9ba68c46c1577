"""Materialising a Llama-like model from the meta device: weightinit.torch.materialize_ against
PyTorch's own path (``to_empty`` + each module's ``reset_parameters``), in one run.

The model (about 150 M parameters, float32) is small enough for the bench run;
``materialize_report.py`` measures the 1 B model, peak memory and 2 ranks in fresh processes.
Each round builds a new meta model outside the timer (pedantic setup).
"""

import os
import sys

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import models  # noqa: E402

import weightinit.torch as wt  # noqa: E402

CFG = dict(dim=1024, n_layers=8, hidden=2816, vocab=16000, heads=16)


def meta_model():
    with torch.device("meta"):
        return models.Llama(**CFG)


def torch_path(model):
    model.to_empty(device="cpu")
    with torch.no_grad():
        for mod in model.modules():
            if callable(getattr(mod, "reset_parameters", None)):
                mod.reset_parameters()
    return model


PATHS = {"weightinit": lambda m: wt.materialize_(m, "cpu", seed=0), "torch": torch_path}


@pytest.mark.parametrize("lib", sorted(PATHS))
def test_materialize(benchmark, lib):
    run = PATHS[lib]
    run(meta_model())  # warm-up: Numba cache load, PyTorch's first calls
    benchmark.group = "materialize Llama-like from meta"
    n = sum(p.numel() for p in meta_model().parameters())
    benchmark.extra_info.update(lib=lib, params=n)
    benchmark.pedantic(run, setup=lambda: ((meta_model(),), {}), rounds=5)
