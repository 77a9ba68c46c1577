"""Command line: ``weightinit simulate | theory | figures`` through cli.main(argv).

Expected values come from the library called directly (simulate(), theory) or from closed forms
(critical sigma_w of ReLU and linear networks)."""

import importlib.util
import io
import json
import math
import os
import sys

import numpy as np
import pytest

from weightinit import cli, doc_figures
from weightinit import simulation as S
from conftest import run_cli

needs_mpl = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                               reason="matplotlib (the 'plot' extra) is not installed")
PNG = b"\x89PNG\r\n\x1a\n"


run = run_cli


def strict_json(text):
    def reject(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=reject)


def as_json(result):
    return json.loads(json.dumps(result.to_dict(), allow_nan=False))


def table_rows(text):
    """The per-layer rows of every printed table: lists of strings."""
    return [line.split() for line in text.splitlines() if line[:5].strip().isdigit()]


def leftovers(directory):
    return sorted(p for p in os.listdir(directory) if ".weightinit-" in p or p.endswith(".part"))


SMALL = ["--depth", "3", "--width", "16", "--samples", "40"]


# ----------------------------------------------------------------------------- simulate: table
def test_simulate_prints_the_per_layer_table():
    code, text = run(["simulate", "--activation", "sigmoid", "--std", "1"] + SMALL)
    assert code == 0
    lines = text.splitlines()
    assert lines[0].startswith("# run 1/1: sigmoid, N(0, 1^2) weights, 3 x 16 units, 40 samples")
    assert lines[1].split() == ["layer", "mean", "std", "saturated", "dead"]
    rows = table_rows(text)
    assert [r[0] for r in rows] == ["1", "2", "3"]
    ref = S.simulate(3, 16, activation="sigmoid", std=1.0, samples=40)
    for layer, row in enumerate(rows):
        assert float(row[1]) == pytest.approx(ref.mean[layer], rel=1e-3)
        assert float(row[2]) == pytest.approx(ref.std[layer], rel=1e-3)
        assert float(row[3].rstrip("%")) == pytest.approx(100 * ref.saturated[layer], abs=0.06)
        assert row[4] == "0.0%"


def test_simulate_backward_and_widths_add_a_gradient_column():
    code, text = run(["simulate", "--activation", "relu", "--scheme", "he_normal", "--widths",
                      "12", "8", "4", "--samples", "30", "--backward", "--seed", "7"])
    assert code == 0
    assert "widths 12-8-4" in text
    assert text.splitlines()[1].split()[-1] == "grad_var"
    ref = S.simulate(widths=[12, 8, 4], activation="relu", scheme="he_normal", samples=30,
                     backward=True, seed=7)
    rows = table_rows(text)
    assert len(rows) == 3
    for layer, row in enumerate(rows):
        assert float(row[5]) == pytest.approx(ref.grad_var[layer], rel=1e-3)
        assert float(row[4].rstrip("%")) == pytest.approx(100 * ref.dead[layer], abs=0.06)


# ----------------------------------------------------------------------------- simulate: files
@needs_mpl
def test_simulate_writes_png_json_and_theory_matching_the_library(tmp_path):
    png, js, th = tmp_path / "fig.png", tmp_path / "stats.json", tmp_path / "theory.png"
    code, text = run(["simulate", "--activation", "sigmoid", "--std", "1", "--depth", "5",
                      "--width", "20", "--samples", "50", "--input-dim", "10", "--seed", "3",
                      "--plot", str(png), "--json", str(js), "--theory", str(th)])
    assert code == 0
    for p in (png, js, th):
        assert f"wrote {p}" in text
    assert png.read_bytes()[:8] == PNG and th.read_bytes()[:8] == PNG
    got = strict_json(js.read_text())
    ref = S.simulate(5, 20, activation="sigmoid", std=1.0, samples=50, input_dim=10, seed=3)
    assert got == [as_json(ref)]
    assert len(got[0]["hist"]) == 5 and len(got[0]["hist"][0]) == 30  # 30 bins by default
    assert got[0]["bin_edges"][0][0] == 0.0 and got[0]["bin_edges"][0][-1] == 1.0
    assert leftovers(tmp_path) == []


@needs_mpl
def test_simulate_compares_several_schemes_with_parameters(tmp_path):
    js, png = tmp_path / "s.json", tmp_path / "s.png"
    code, text = run(["simulate", "--activation", "tanh", "--scheme", "variance_scaling",
                      "lecun_normal", "-p", "distribution=normal", "--depth", "2", "--width",
                      "10", "--samples", "20", "--bias-std", "0.1", "--bias", "0.05",
                      "--dtype", "float64", "--bins", "7", "--json", str(js), "--plot", str(png)])
    assert code == 0
    assert text.count("# run ") == 2 and "# run 2/2: tanh, lecun_normal" in text
    got = strict_json(js.read_text())
    common = dict(activation="tanh", samples=20, bias_std=0.1, bias=0.05, dtype="float64",
                  bins=7, distribution="normal")
    assert got == [as_json(S.simulate(2, 10, scheme="variance_scaling", **common)),
                   as_json(S.simulate(2, 10, scheme="lecun_normal", **common))]
    assert png.read_bytes()[:8] == PNG


def test_simulate_compares_several_stds_and_bias_auto(tmp_path):
    js = tmp_path / "s.json"
    code, text = run(["simulate", "--activation", "relu", "--std", "0.5", "0.01", "1",
                      "--bias", "auto"] + SMALL + ["--json", str(js)])
    assert code == 0
    got = strict_json(js.read_text())
    assert [g["params"] for g in got] == [{"std": 0.5}, {"std": 0.01}, {"std": 1.0}]
    assert all(g["bias"] == 0.01 for g in got)  # the ReLU rule
    assert got[1] == as_json(S.simulate(3, 16, activation="relu", std=0.01, samples=40,
                                        bias="auto"))
    assert text.count("# run ") == 3


def test_simulate_progress_only_on_a_terminal(monkeypatch):
    seen = []
    real = S.simulate

    def spy(*a, **kw):
        seen.append(kw["progress"])
        return real(*a, **kw)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(S, "simulate", spy)
    assert run(["simulate", "--std", "1"] + SMALL)[0] == 0  # pytest's stderr: not a TTY
    monkeypatch.setattr(sys, "stderr", Tty())
    assert run(["simulate", "--std", "1"] + SMALL)[0] == 0
    assert run(["simulate", "--std", "1", "--no-progress"] + SMALL)[0] == 0
    assert seen == [False, True, False]


@needs_mpl
def test_histogram_figure_caps_the_columns_of_deep_networks():
    from weightinit import plotting

    deep = S.simulate(23, 6, activation="tanh", scheme="glorot_normal", samples=10)
    shallow = S.simulate(3, 6, activation="tanh", std=0.5, samples=10)
    assert plotting.select_layers(23, 10) == [0, 2, 5, 7, 10, 12, 15, 17, 20, 22]
    assert plotting.select_layers(3, 10) == [0, 1, 2]
    fig = plotting.histograms([deep, shallow], max_layers=10)
    assert "showing 10 of 23 layers" in fig._suptitle.get_text()
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles[:10] == [f"{i + 1}-layer" for i in (0, 2, 5, 7, 10, 12, 15, 17, 20, 22)]
    assert titles[10:] == ["1-layer", "2-layer", "3-layer"]
    assert fig.axes[0].get_ylabel().startswith("glorot_normal")
    assert fig.axes[10].get_ylabel().startswith("N(0, 0.5²)")


def test_simulate_recipes(tmp_path):
    # --recipe compares transformer recipes in residual networks; -p passes their parameters
    # (to every recipe of the run).
    path = tmp_path / "r.json"
    common = ["--architecture", "residual", "--branch-depth", "2", "--depth", "3", "--width",
              "16", "--samples", "32", "--json", str(path)]
    code, text = run(["simulate", "--recipe", "gpt2", "wang_init"] + common)
    assert code == 0
    assert [r["recipe"] for r in json.loads(path.read_text())] == ["gpt2", "wang_init"]
    assert "# run 1/2: tanh, gpt2 recipe weights, 3 residual blocks" in text
    code, text = run(["simulate", "--recipe", "mup", "-p", "base_width=8"] + common)
    assert code == 0
    ref = S.simulate(3, 16, architecture="residual", recipe="mup", base_width=8, branch_depth=2,
                     samples=32)
    np.testing.assert_allclose(json.loads(path.read_text())[0]["q"], ref.q)
    assert "# run 1/1: tanh, mup recipe (base_width=8) weights" in text


# ----------------------------------------------------------------------------- simulate: errors
@pytest.mark.parametrize("argv, message", [
    (["--activation", "swish", "--std", "1"], "Unknown `activation`"),
    (["--scheme", "he_normal", "--std", "1"], "not allowed with"),
    ([], "one of the arguments --scheme --std --recipe is required"),
    (["--std", "-1"], "--std"),
    (["--std", "1", "--bins", "0"], "--bins"),
    (["--std", "1", "--depth", "0"], "--depth"),
    (["--std", "1", "--samples", "0"], "--samples"),
    (["--std", "1", "--bias", "high"], "--bias"),
    (["--scheme", "nonsense"], "Unknown `scheme`"),
    (["--scheme", "he_normal", "-p", "gain=2"], "gain"),
    (["--scheme", "variance_scaling", "-p", "mode=sideways"], "Unknown `mode`"),
    (["--std", "1", "-p", "gain=2"], "--param"),
    (["--std", "1", "--widths", "4", "4", "--depth", "3"], "--depth 3 disagrees"),
    (["--std", "1", "--widths", "4", "4", "--width", "3"], "--widths or --width"),
    (["--std", "1", "--dtype", "float16"], "--dtype"),
    (["--std", "1", "--norm", "layer"], "--architecture residual"),
    (["--std", "1", "--branch-depth", "2"], "--architecture residual"),
    (["--std", "1", "--architecture", "residual", "--branch-scale", "-1"], "--branch-scale"),
    (["--std", "1", "--architecture", "residual", "--branch-scale", "1/sqrt(D)"],
     "1/sqrt(L)"),
    (["--std", "1", "--architecture", "residual", "--norm", "batch"], "--norm"),
    (["--std", "1", "--architecture", "residual", "--branch-depth", "3"], "--branch-depth"),
    (["--std", "1", "--architecture", "residual", "--widths", "4", "8"], "one width"),
    (["--recipe", "gpt2"], "--architecture residual"),
    (["--recipe", "gpt3", "--architecture", "residual"], "Unknown `recipe`"),
    (["--recipe", "mup", "--architecture", "residual"], "base_width"),
    (["--recipe", "gpt2", "--architecture", "residual", "-p", "sigma=1"], "no parameter"),
])
def test_simulate_bad_arguments_exit_2_with_a_message(tmp_path, capsys, argv, message):
    code, text = run(["simulate"] + argv + ["--json", str(tmp_path / "x.json")])
    assert code == 2
    assert text == ""
    err = capsys.readouterr().err
    assert "error:" in err and message in err
    assert os.listdir(tmp_path) == []


def test_simulate_residual_runs_one_table_per_setting():
    argv = ["simulate", "--scheme", "glorot_normal", "--architecture", "residual",
            "--branch-depth", "2", "--norm", "none", "layer", "--norm-position", "pre", "post",
            "--branch-scale", "1", "1/sqrt(L)", "--backward"] + SMALL
    code, text = run(argv)
    assert code == 0
    heads = [line for line in text.splitlines() if line.startswith("# run")]
    # none x post is not a setting: 1 + 2 positions for "layer", times 2 scales
    assert len(heads) == 6 and heads[0].startswith("# run 1/6: tanh, glorot_normal weights, 3 "
                                                   "residual blocks of 16 units (no norm, alpha 1,")
    assert "post-LN, alpha 0.577" in heads[-1]
    assert text.splitlines()[1].split() == ["block", "mean", "std", "saturated", "dead",
                                            "br/skip", "grad_var"]
    rows = table_rows(text)
    ref = S.simulate(3, 16, scheme="glorot_normal", samples=40, architecture="residual",
                     branch_depth=2, branch_scale="1/sqrt(L)", norm="layer",
                     norm_position="post", backward=True)
    for layer, row in enumerate(rows[-3:]):
        assert float(row[1]) == pytest.approx(ref.mean[layer], rel=1e-3, abs=1e-12)
        assert float(row[5]) == pytest.approx(ref.branch_ratio[layer], rel=1e-3)
        assert float(row[6]) == pytest.approx(ref.grad_var[layer], rel=1e-3)


@needs_mpl
def test_simulate_residual_theory_figure(tmp_path):
    path = tmp_path / "t.png"
    code, text = run(["simulate", "--scheme", "glorot_normal", "--architecture", "residual",
                      "--norm", "layer", "--norm-position", "pre", "post"] + SMALL
                     + ["--theory", str(path), "--json", str(tmp_path / "r.json")])
    assert code == 0 and path.read_bytes().startswith(PNG)
    runs = strict_json((tmp_path / "r.json").read_text())
    assert [(r["norm"], r["norm_position"]) for r in runs] == [("layer", "pre"), ("layer", "post")]


@needs_mpl
@pytest.mark.parametrize("option, name, message", [
    ("--plot", "fig.xyz", "unknown image format"),
    ("--plot", os.path.join("missing", "fig.png"), "does not exist"),
    ("--json", os.path.join("missing", "s.json"), "does not exist"),
    ("--theory", ".", "is a directory"),
])
def test_simulate_bad_output_paths_fail_before_simulating(tmp_path, monkeypatch, capsys, option,
                                                          name, message):
    monkeypatch.setattr(S, "simulate", lambda *a, **k: pytest.fail("simulated anyway"))
    code, text = run(["simulate", "--std", "1"] + SMALL + [option, str(tmp_path / name)])
    assert code == 2 and text == ""
    assert message in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_simulate_same_file_twice_is_an_error(tmp_path, capsys):
    path = str(tmp_path / "a.png")
    code, _ = run(["simulate", "--std", "1"] + SMALL + ["--plot", path, "--theory", path])
    assert code == 2
    assert "name the same file" in capsys.readouterr().err


@needs_mpl
def test_theory_plot_of_constant_weights_is_an_error(tmp_path, capsys):
    code, _ = run(["simulate", "--scheme", "zeros"] + SMALL + ["--theory", str(tmp_path / "t.png")])
    assert code == 2
    assert "mean-field theory does not apply" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


@needs_mpl
def test_theory_plot_leaves_out_runs_without_a_prediction(tmp_path, capsys):
    path = tmp_path / "t.png"
    code, _ = run(["simulate", "--activation", "tanh", "--scheme", "zeros", "glorot_normal"]
                  + SMALL + ["--theory", str(path)])
    assert code == 0
    assert "--theory leaves out zeros" in capsys.readouterr().err
    assert path.read_bytes()[:8] == PNG


# ----------------------------------------------------------------------------- interruption
@pytest.mark.parametrize("fail_at", [1, 2])
def test_interrupted_simulation_writes_nothing(tmp_path, monkeypatch, capsys, fail_at):
    real = S.simulate
    calls = []

    def flaky(*a, **kw):
        calls.append(1)
        if len(calls) == fail_at:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(S, "simulate", flaky)
    js = tmp_path / "s.json"
    js.write_text("old")
    code, _ = run(["simulate", "--std", "1", "2"] + SMALL + ["--json", str(js)])
    assert code == 130
    assert "interrupted" in capsys.readouterr().err
    assert js.read_text() == "old"  # the previous file is untouched
    assert leftovers(tmp_path) == []


@needs_mpl
def test_interrupt_while_saving_a_figure_leaves_no_partial_file(tmp_path, monkeypatch):
    from weightinit import plotting

    def partial_then_interrupt(fig, path, fmt="png", dpi=None):
        with open(path, "wb") as f:
            f.write(PNG[:4])
        raise KeyboardInterrupt

    monkeypatch.setattr(plotting, "save", partial_then_interrupt)
    js, png = tmp_path / "s.json", tmp_path / "s.png"
    code, _ = run(["simulate", "--std", "1"] + SMALL + ["--json", str(js), "--plot", str(png)])
    assert code == 130
    assert os.listdir(tmp_path) == []  # not even the finished JSON


def test_missing_matplotlib_fails_fast_with_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    monkeypatch.delitem(sys.modules, "weightinit.plotting", raising=False)
    monkeypatch.setattr(S, "simulate", lambda *a, **k: pytest.fail("simulated anyway"))
    code, text = run(["simulate", "--std", "1"] + SMALL + ["--plot", str(tmp_path / "f.png")])
    assert code == 1
    assert 'pip install "weightinit[plot]"' in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
    # Commands that draw nothing do not need matplotlib.
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.delitem(sys.modules, "weightinit.plotting", raising=False)
    assert run(["theory", "--activation", "relu"])[0] == 0
    assert run(["simulate", "--std", "1"] + SMALL)[0] == 0


# ----------------------------------------------------------------------------- theory
def theory_fields(text):
    return {line[:18].strip(): line[18:].strip() for line in text.splitlines()}


@pytest.mark.parametrize("activation, sigma_b, expected", [
    ("relu", "0", math.sqrt(2)), ("relu", "0.3", math.sqrt(2)), ("linear", "0", 1.0),
    ("linear", "0.5", 1.0)])
def test_theory_critical_sigma_w_closed_forms(activation, sigma_b, expected):
    code, text = run(["theory", "--activation", activation, "--sigma-b", sigma_b])
    assert code == 0
    f = theory_fields(text)
    assert f["activation"] == activation
    assert float(f["critical sigma_w"].split()[0]) == pytest.approx(expected, rel=1e-5)
    assert float(f["chi1 at critical"]) == pytest.approx(1.0, rel=1e-9)
    if sigma_b == "0":
        assert "every q is a fixed point" in f["q* at critical"]
    else:
        assert f["q* at critical"].startswith("inf")


def test_theory_tanh_with_sigma_w_prints_depth_scales():
    from weightinit import theory as T

    code, text = run(["theory", "--activation", "tanh", "--sigma-b", "0.05", "--sigma-w", "1.5"])
    assert code == 0
    f = theory_fields(text)
    assert float(f["critical sigma_w"].split()[0]) == pytest.approx(
        T.critical_sigma_w("tanh", 0.05), rel=1e-5)
    assert float(f["q* at critical"]) == pytest.approx(
        T.fixed_point("tanh", T.critical_sigma_w("tanh", 0.05), 0.05), rel=1e-5)
    scales = T.depth_scales("tanh", 1.5, 0.05)
    names = {"q_star": "q*", "c_star": "c*", "chi1": "chi1", "chi_c": "chi_c", "xi_q": "xi_q",
             "xi_c": "xi_c"}
    for key, label in names.items():
        assert float(f[label]) == pytest.approx(scales[key], rel=1e-5), key
    assert f["phase"] == "chaotic (chi1 > 1)"


def test_theory_divergent_and_ordered_cases():
    code, text = run(["theory", "--activation", "relu", "--sigma-b", "0.1", "--sigma-w", "1.5"])
    assert code == 0
    f = theory_fields(text)
    assert f["q*"].startswith("inf") and f["depth scales"].startswith("undefined")
    assert float(f["chi1"]) == pytest.approx(1.125, rel=1e-9)
    code, text = run(["theory", "--activation", "linear", "--sigma-w", "0.9"])
    f = theory_fields(text)
    assert f["phase"] == "ordered (chi1 < 1)"
    assert float(f["chi1"]) == pytest.approx(0.81, rel=1e-9)
    code, text = run(["theory", "--activation", "leaky_relu", "--slope", "0.5"])
    f = theory_fields(text)
    assert float(f["critical sigma_w"].split()[0]) == pytest.approx(math.sqrt(2 / 1.25), rel=1e-6)


@pytest.mark.parametrize("argv, message", [
    (["--activation", "swish"], "Unknown `activation`"),
    (["--sigma-b", "-0.1"], "--sigma-b"),
    (["--sigma-w", "nan"], "--sigma-w"),
    (["--phase-diagram", "p.png", "--sigma-w-range", "2", "1"], "--sigma-w-range"),
    (["--phase-diagram", "p.png", "--sigma-b-range", "1", "1"], "--sigma-b-range"),
    (["--phase-diagram", "p.png", "--resolution", "1"], "--resolution"),
])
def test_theory_bad_arguments_exit_2(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _ = run(["theory"] + argv)
    assert code == 2
    assert message in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


@needs_mpl
@pytest.mark.parametrize("activation, extra", [
    ("tanh", ["--sigma-b", "0.05", "--sigma-w", "1.5"]),
    ("relu", []),
    ("tanh", ["--sigma-w-range", "0.1", "0.5", "--sigma-b-range", "0", "0.1"]),  # all ordered
])
def test_phase_diagram_png(tmp_path, activation, extra):
    path = tmp_path / "phase.png"
    code, text = run(["theory", "--activation", activation, "--phase-diagram", str(path),
                      "--resolution", "8"] + extra)
    assert code == 0
    assert f"wrote {path}" in text
    assert path.read_bytes()[:8] == PNG
    assert leftovers(tmp_path) == []


@needs_mpl
def test_phase_diagram_figure_labels_the_edge_of_chaos():
    from weightinit import plotting, theory as T

    sw, sb = np.linspace(0.5, 2.5, 7), np.linspace(0.0, 0.5, 6)
    fig = plotting.phase_diagram("tanh", sw, sb, T.phase_diagram("tanh", sw, sb),
                                 points=[(1.5, 0.05, "A")])
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert any("edge of chaos" in t for t in texts)
    assert any(t.startswith("ORDERED") for t in texts)
    assert any(t.startswith("CHAOTIC") for t in texts)
    assert "A" in texts
    assert r"\sigma_w" in ax.get_xlabel() and "not squared" in ax.get_xlabel()


# ----------------------------------------------------------------------------- figures
TINY = {"samples": 40, "width": 12, "depth": 3, "deep_depth": 6, "relu_width": 16,
        "tanh_width": 12, "selu_width": 12, "one_layer_width": 10, "one_layer_samples": 20,
        "theory_depth": 4, "theory_width": 16, "theory_samples": 20, "phase_resolution": 6,
        "lsuv_depth": 4, "lsuv_width": 12, "lsuv_samples": 50,
        "recipes_widths": [32, 64], "recipes_depth": 3, "recipes_depth_width": 32,
        "residual_depth": 4, "residual_width": 16, "residual_samples": 20,
        "spectrum_depth": 3, "spectrum_width": 8, "spectrum_samples": 2}


@needs_mpl
def test_figures_writes_every_figure_and_numbers(tmp_path, monkeypatch):
    monkeypatch.setattr(doc_figures, "FIGURE_SIZES", TINY)
    out = tmp_path / "docs" / "figures"
    code, text = run(["figures", "--out", str(out)])
    assert code == 0
    numbers = strict_json((out / "numbers.json").read_text())
    assert numbers["sizes"] == TINY
    figs = numbers["figures"]
    assert list(figs) == [key for key, _ in cli.FIGURES]
    files = [f for entry in figs.values() for f in entry["files"]]
    assert len(files) == len(set(files)) == 21
    assert sorted(os.listdir(out)) == sorted(files + ["numbers.json"])
    for name in files:
        assert (out / name).read_bytes()[:8] == PNG, name
    assert f"wrote 22 files to {out}" in text
    # The numbers behind the figures.
    classic = figs["sigmoid_classic"]["runs"]
    assert [r["settings"]["std"] for r in classic] == [1.0, 0.01]
    ref = S.simulate(3, 12, activation="sigmoid", std=0.01, samples=40, input_dim=12)
    assert classic[1]["layers"]["mean"] == pytest.approx(ref.mean, rel=1e-5)
    assert classic[1]["layers"]["std"] == pytest.approx(ref.std, rel=1e-5)
    zeros = figs["zeros_constant"]["runs"]
    assert zeros[1]["layers"]["dead"] == [1.0, 1.0, 1.0]  # relu, zeros: output 0
    assert all(max(r["unit_spread"]) < 1e-12 for r in zeros)  # symmetry never breaks
    theory = figs["tanh_theory"]
    assert [p["point"] for p in theory["points"]] == list("ABCDE")
    assert theory["points"][1]["chi1"] == pytest.approx(1.0, rel=1e-6)
    for r in theory["runs"]:
        assert len(r["theory"]["q"]) == len(r["layers"]["q"]) == 4
    assert figs["tanh_orthogonal_vs_glorot"]["runs"][0]["layers"]["grad_var"] is not None
    residual = figs["residual"]["runs"]
    assert [r["label"] for r in residual][:3] == ["no norm", "pre-LN", "post-LN"]
    for r in residual:  # every residual run carries its prediction and the error against it
        assert set(r["theory_error"]) == {"q", "grad_var", "branch_ratio"}
        assert len(r["theory"]["grad_var"]) == len(r["layers"]["grad_var"]) == 4
    ref = S.simulate(4, 16, activation="tanh", scheme="glorot_normal", samples=20,
                     architecture="residual", branch_depth=2, norm="layer",
                     norm_position="post", backward=True)
    assert residual[2]["layers"]["branch_ratio"] == pytest.approx(ref.branch_ratio, rel=1e-5)
    spectra = figs["spectra"]["spectra"]
    assert [(s["activation"], s["weights"]) for s in spectra] == [
        ("tanh", "orthogonal"), ("tanh", "gaussian"), ("relu", "orthogonal"), ("relu", "gaussian")]
    assert spectra[0]["theory_mean_sq"] == pytest.approx(1.0, rel=1e-9)  # chi1 = 1: chi1^L
    lsuv = [r for r in figs["lsuv"]["runs"] if r["scheme"] == "lsuv"]
    assert [r["activation"] for r in lsuv] == ["relu", "tanh", "selu"]
    for r in lsuv:  # LSUV's own batch: every layer within tol = 0.1 of variance 1
        assert r["converged"] and all(abs(v - 1) < 0.1 for v in r["layers"]["var_calibration"])
    recipes = figs["recipes"]
    assert [d["recipe"] for d in recipes["depth_profile"]][:2] == ["pytorch default", "gpt2"]
    assert all(len(d["act_std"]) == 3 for d in recipes["depth_profile"])
    assert {c["module"] for c in recipes["coord_check"]} >= {"lm_head"}
    assert leftovers(out) == []


@needs_mpl
def test_figures_interrupted_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(doc_figures, "FIGURE_SIZES", TINY)
    real = S.simulate
    calls = []

    def flaky(*a, **kw):
        calls.append(1)
        if len(calls) == 12:  # well into the list of figures
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(S, "simulate", flaky)
    out = tmp_path / "figs"
    assert run(["figures", "--out", str(out)])[0] == 130
    assert os.listdir(out) == []


def test_figures_out_must_be_a_directory(tmp_path, capsys):
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib missing")
    f = tmp_path / "file"
    f.write_text("x")
    assert run(["figures", "--out", str(f)])[0] == 2
    assert "not a directory" in capsys.readouterr().err
