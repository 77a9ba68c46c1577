"""``SimulationResult.to_dataframe()`` and ``SweepResult.to_dataframe()``: long format, one row per
(run, layer), every statistic, checked element by element against the result's own arrays; a
clear error without pandas."""

import json
import sys

import numpy as np
import pytest

from weightinit import simulate
from weightinit.sweep import SweepResult

pd = pytest.importorskip("pandas")


def test_simulation_dataframe_has_one_row_per_layer_and_every_statistic():
    r = simulate(4, 12, activation="tanh", scheme="glorot_normal", samples=30, seed=3,
                 backward=True, bias_std=0.1)
    df = r.to_dataframe(run="glorot")
    assert len(df) == 4
    assert list(df["layer"]) == [1, 2, 3, 4]
    assert set(df["run"]) == {"glorot"}
    for name in ("mean", "var", "std", "q", "saturated", "dead", "dead_units", "nonfinite",
                 "grad_var", "grad_norm", "sigma_w2"):
        np.testing.assert_array_equal(df[name].to_numpy(), np.asarray(getattr(r, name), float),
                                      err_msg=name)
    for layer in range(4):
        np.testing.assert_array_equal(df["hist"][layer], r.hist[layer])
        np.testing.assert_array_equal(df["bin_edges"][layer], r.bin_edges[layer])
    assert list(df["width"]) == r.widths
    row = df.iloc[0]
    assert (row["activation"], row["scheme"], row["samples"], row["seed"], row["dtype"]) == \
        ("tanh", "glorot_normal", 30, 3, "float32")
    assert json.loads(row["params"]) == r.params
    assert row["sigma_b2"] == pytest.approx(0.01)


def test_runs_concatenate_and_forward_only_runs_have_nan_gradients():
    runs = [simulate(3, 8, activation="relu", std=s, samples=10) for s in (0.5, 1.0)]
    df = pd.concat([r.to_dataframe(run=i) for i, r in enumerate(runs)], ignore_index=True)
    assert len(df) == 6 and list(df["run"]) == [0, 0, 0, 1, 1, 1]
    assert df["grad_var"].isna().all() and df["grad_norm"].isna().all()
    np.testing.assert_array_equal(df.loc[df["run"] == 1, "std"].to_numpy(), runs[1].std)
    # Long format: a pivot gives back the per-run arrays.
    wide = df.pivot(index="layer", columns="run", values="mean")
    np.testing.assert_array_equal(wide[0].to_numpy(), runs[0].mean)


def test_residual_dataframe_has_the_branch_statistics_and_settings():
    r = simulate(3, 16, samples=20, architecture="residual", branch_depth=2,
                 branch_scale="1/sqrt(L)", norm="rms", norm_position="post")
    df = r.to_dataframe()
    for name in ("branch_q", "branch_ratio", "q"):
        np.testing.assert_array_equal(df[name].to_numpy(), np.asarray(getattr(r, name), float))
    row = df.iloc[0]
    assert (row["architecture"], row["branch_depth"], row["norm"], row["norm_position"]) == \
        ("residual", 2, "rms", "post")
    assert row["branch_scale"] == pytest.approx(3 ** -0.5)
    mlp = simulate(2, 8, samples=10).to_dataframe()
    assert mlp["branch_ratio"].isna().all() and set(mlp["architecture"]) == {"mlp"}


def _sweep_result():
    rng = np.random.default_rng(0)
    n_b, n_w, depth = 2, 3, 4
    per_point = {k: rng.random((n_b, n_w)) for k in
                 ("chi1_sim", "chi1_theory", "q_sim", "q_theory", "q_star", "nonfinite",
                  "seconds")}
    return SweepResult(activation="tanh", sigma_w=np.array([0.5, 1.0, 2.0]),
                       sigma_b=np.array([0.0, 0.3]), depth=depth, width=16, samples=8, seed=1,
                       dtype="float32", slope=0.01, chi1_layers=np.full((n_b, n_w), depth - 1),
                       q=rng.random((n_b, n_w, depth)), grad_var=rng.random((n_b, n_w, depth)),
                       **per_point)


def test_sweep_dataframe_has_one_row_per_point_and_layer():
    s = _sweep_result()
    df = s.to_dataframe()
    assert len(df) == 2 * 3 * 4
    for _, row in df.iterrows():
        i = int(np.flatnonzero(s.sigma_b == row["sigma_b"])[0])
        j = int(np.flatnonzero(s.sigma_w == row["sigma_w"])[0])
        layer = int(row["layer"]) - 1
        assert row["run"] == i * 3 + j
        assert row["q"] == s.q[i, j, layer] and row["grad_var"] == s.grad_var[i, j, layer]
        for name in ("chi1_sim", "chi1_theory", "chi1_layers", "q_sim", "q_theory", "q_star",
                     "nonfinite", "seconds"):
            assert row[name] == getattr(s, name)[i, j], name
        assert (row["activation"], row["depth"], row["width"], row["dtype"]) == \
            ("tanh", 4, 16, "float32")
    # Every (point, layer) exactly once.
    assert not df.duplicated(["sigma_b", "sigma_w", "layer"]).any()


@pytest.mark.parametrize("make", ["simulation", "sweep"])
def test_missing_pandas_says_what_to_install(monkeypatch, make):
    result = simulate(2, 4, std=1.0, samples=4) if make == "simulation" else _sweep_result()
    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` now fails
    with pytest.raises(ImportError, match=r'pip install "weightinit\[pandas\]"'):
        result.to_dataframe()
