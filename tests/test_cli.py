"""Command line: ``weightinit describe | generate | warmup`` through cli.main(argv) and once as
``python -m weightinit`` in a subprocess."""

import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import weightinit as W
from weightinit import cli
from weightinit.cli import generate as generate_cmd


def run(argv):
    """cli.main with a captured stdout: (exit status, printed text)."""
    out = io.StringIO()
    code = cli.main(argv, stdout=out)
    return code, out.getvalue()


def leftovers(directory):
    return sorted(p for p in os.listdir(directory) if p.endswith(".part") or ".weightinit-" in p)


def _strict_json(text):
    def reject(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=reject)


# ----------------------------------------------------------------------------- describe
def test_describe_lists_every_scheme_with_its_formula():
    code, text = run(["describe"])
    assert code == 0
    lines = text.splitlines()
    for name in W.schemes():
        assert any(line.split() and line.split()[0] == name and W.FORMULAS[name] in line
                   for line in lines), name
    aliases = [line for line in lines if line.startswith("aliases:")]
    assert len(aliases) == 1
    for alias in ("xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform", "eye"):
        assert alias in aliases[0]


def test_describe_one_scheme_text():
    code, text = run(["describe", "he_normal", "--shape", "64", "32"])
    assert code == 0
    fields = dict(line.strip().split(": ", 1) for line in text.splitlines() if ": " in line)
    assert fields["scheme"] == "he_normal"
    assert int(fields["fan_in"]) == 32 and int(fields["fan_out"]) == 64
    assert float(fields["variance"]) == pytest.approx(2 / 32, rel=1e-5)  # printed with %.6g
    assert fields["distribution"] == "normal"


def test_describe_json_uniform():
    code, text = run(["describe", "glorot_uniform", "--shape", "30", "20", "--json"])
    assert code == 0
    info = _strict_json(text)
    assert info["shape"] == [30, 20]
    assert (info["fan_in"], info["fan_out"]) == (20, 30)
    a = math.sqrt(6 / 50)
    assert info["high"] == pytest.approx(a, rel=1e-12)
    assert info["low"] == pytest.approx(-a, rel=1e-12)
    assert info["variance"] == pytest.approx(2 / 50, rel=1e-12)


def test_describe_json_with_params_and_layout():
    code, text = run(["describe", "kaiming_uniform", "--shape", "3", "3", "8", "16", "--layout",
                      "keras", "-p", "mode=fan_out", "--param", "nonlinearity=leaky_relu",
                      "-p", "a=0.5", "--json"])
    assert code == 0
    info = _strict_json(text)
    assert info["scheme"] == "he_uniform"
    assert info["fan_out"] == 144
    assert info["variance"] == pytest.approx(2 / (1 + 0.25) / 144, rel=1e-12)


def test_describe_json_truncated_normal():
    code, text = run(["describe", "variance_scaling", "--shape", "10", "40", "--json",
                      "-p", "scale=2", "-p", "mode=fan_avg"])
    assert code == 0
    info = _strict_json(text)
    assert info["distribution"] == "truncated_normal"
    assert info["variance"] == pytest.approx(2 / 25, rel=1e-12)


def test_describe_json_is_standard_json_for_normal_schemes():
    code, text = run(["describe", "he_normal", "--shape", "4", "3", "--json"])
    assert code == 0
    info = _strict_json(text)
    assert info["variance"] == pytest.approx(2 / 3, rel=1e-12)


@pytest.mark.parametrize("argv, message", [
    (["describe", "he_normal"], "--shape"),
    (["describe", "he_normal", "--shape", "5"], "Fans are undefined"),
    (["describe", "nonsense", "--shape", "5", "5"], "Unknown `scheme`"),
    (["describe", "he_normal", "--shape", "5", "5", "-p", "mode=sideways"], "Unknown `mode`"),
    (["describe", "he_normal", "--shape", "5", "0"], "`shape`"),
])
def test_describe_errors_exit_2(argv, message, capsys):
    code, text = run(argv)
    assert code == 2
    assert text == ""
    err = capsys.readouterr().err
    assert err.startswith("weightinit describe: error:")
    assert message in err


@pytest.mark.parametrize("argv", [
    [], ["frobnicate"], ["describe", "--shape", "x"], ["generate", "--shape", "3"],
    ["describe", "-p", "novalue"],
])
def test_argparse_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert W.__version__ in capsys.readouterr().out


# ----------------------------------------------------------------------------- generate
GENERATE_CASES = [
    ("he_normal", [], {}),
    ("glorot_uniform", ["-p", "gain=2"], {"gain": 2}),
    ("variance_scaling", ["-p", "mode=fan_out", "-p", "distribution=uniform"],
     {"mode": "fan_out", "distribution": "uniform"}),
    ("lecun_normal", ["-p", "distribution=truncated_normal"], {"distribution": "truncated_normal"}),
    ("truncated_normal", ["-p", "std=0.5", "-p", "low=-0.3", "-p", "high=1"],
     {"std": 0.5, "low": -0.3, "high": 1}),
    ("constant", ["-p", "value=0.25"], {"value": 0.25}),
    ("zeros", [], {}),
    ("orthogonal", ["-p", "gain=1.5"], {"gain": 1.5}),
    ("eye", [], {}),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scheme, argv, params", GENERATE_CASES, ids=[c[0] for c in GENERATE_CASES])
def test_generate_small_equals_library(tmp_path, scheme, argv, params, dtype):
    path = tmp_path / "w.npy"
    shape = (24, 10)
    code, text = run(["generate", "--shape", "24", "10", "--scheme", scheme, "--seed", "4242",
                      "--dtype", dtype, "--out", str(path)] + argv)
    assert code == 0
    assert "wrote" in text and "seed=4242" in text
    got = np.load(path)
    assert got.dtype == np.dtype(dtype) and got.shape == shape
    np.testing.assert_array_equal(got, W.init(shape, scheme, seed=4242, dtype=dtype, **params))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scheme, argv, params", GENERATE_CASES[:7], ids=[c[0] for c in GENERATE_CASES[:7]])
def test_generate_streamed_equals_library(tmp_path, monkeypatch, scheme, argv, params, dtype):
    # Shrink the chunk so a 50 x 71 tensor (3550 elements) streams in chunks of 1000, with a
    # ragged last chunk and chunk boundaries inside Philox blocks.
    monkeypatch.setattr(generate_cmd, "_CHUNK", 1000)
    calls = []
    real = generate_cmd._draw_chunk
    monkeypatch.setattr(generate_cmd, "_draw_chunk", lambda *a: (calls.append(a[2]), real(*a))[1])
    path = tmp_path / "big.npy"
    shape = (50, 71)
    code, _ = run(["generate", "--shape", "50", "71", "--scheme", scheme, "--seed", "99",
                   "--dtype", dtype, "--out", str(path)] + argv)
    assert code == 0
    assert calls == [0, 1000, 2000, 3000]  # it did stream
    got = np.load(path)
    assert got.dtype == np.dtype(dtype) and got.shape == shape
    np.testing.assert_array_equal(got, W.init(shape, scheme, seed=99, dtype=dtype, **params))
    assert leftovers(tmp_path) == []


def test_generate_whole_honours_offset_param(tmp_path):
    path = tmp_path / "o.npy"
    assert run(["generate", "--shape", "30", "20", "--scheme", "he_normal", "--seed", "3",
                "-p", "offset=7", "--out", str(path)])[0] == 0
    np.testing.assert_array_equal(np.load(path), W.he_normal((30, 20), seed=3, offset=7))


def test_generate_streamed_honours_offset_param(tmp_path, monkeypatch):
    monkeypatch.setattr(generate_cmd, "_CHUNK", 100)
    path = tmp_path / "o.npy"
    assert run(["generate", "--shape", "30", "20", "--scheme", "he_normal", "--seed", "3",
                "-p", "offset=7", "--out", str(path)])[0] == 0
    np.testing.assert_array_equal(np.load(path), W.he_normal((30, 20), seed=3, offset=7))


def test_generate_streamed_keras_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(generate_cmd, "_CHUNK", 64)
    path = tmp_path / "k.npy"
    code, _ = run(["generate", "--shape", "3", "3", "8", "16", "--scheme", "he_uniform",
                   "--layout", "keras", "--seed", "5", "--out", str(path)])
    assert code == 0
    np.testing.assert_array_equal(np.load(path),
                                  W.he_uniform((3, 3, 8, 16), layout="keras", seed=5))


def test_generate_without_seed_reports_a_reproducible_seed(tmp_path):
    path = tmp_path / "r.npy"
    code, text = run(["generate", "--shape", "8", "8", "--scheme", "he_normal", "--out", str(path)])
    assert code == 0
    seed = int(text.rsplit("seed=", 1)[1].split()[0])
    np.testing.assert_array_equal(np.load(path), W.he_normal((8, 8), seed=seed))


def test_generate_file_permissions_follow_umask(tmp_path):
    path = tmp_path / "p.npy"
    old = os.umask(0o022)
    try:
        assert run(["generate", "--shape", "4", "4", "--scheme", "ones", "--out", str(path)])[0] == 0
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644  # not mkstemp's 0600


@pytest.mark.parametrize("argv, message", [
    (["--scheme", "he_normal", "-p", "mode=sideways"], "Unknown `mode`"),
    (["--scheme", "nonsense"], "Unknown `scheme`"),
    (["--scheme", "he_normal", "-p", "gain=2"], "gain"),  # he_normal takes no gain
    (["--scheme", "he_normal", "--seed", "-1"], "`seed`"),
    (["--scheme", "truncated_normal", "-p", "low=1", "-p", "high=0"], "`low`"),
    (["--scheme", "orthogonal", "-p", "gain=-1"], "`gain`"),
])
@pytest.mark.parametrize("chunk", [None, 100])  # whole and streamed paths
def test_generate_error_exits_2_and_writes_nothing(tmp_path, monkeypatch, capsys, argv, message,
                                                   chunk):
    if chunk:
        monkeypatch.setattr(generate_cmd, "_CHUNK", chunk)
    path = tmp_path / "w.npy"
    code, text = run(["generate", "--shape", "30", "20", "--out", str(path)] + argv)
    assert code == 2
    assert message in capsys.readouterr().err
    assert not path.exists()
    assert os.listdir(tmp_path) == []


def test_generate_error_keeps_the_previous_file(tmp_path, capsys):
    path = tmp_path / "w.npy"
    np.save(path, np.arange(3.0))
    code, _ = run(["generate", "--shape", "0", "5", "--scheme", "he_normal", "--out", str(path)])
    assert code == 2
    np.testing.assert_array_equal(np.load(path), np.arange(3.0))
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("exc, code", [(ValueError("boom"), 2), (KeyboardInterrupt(), 130)])
def test_generate_failure_mid_stream_leaves_no_part_file(tmp_path, monkeypatch, capsys, exc, code):
    monkeypatch.setattr(generate_cmd, "_CHUNK", 100)
    real = generate_cmd._draw_chunk
    calls = []

    def flaky(plan, seed, start, out):
        calls.append(start)
        if len(calls) == 3:
            raise exc
        real(plan, seed, start, out)

    monkeypatch.setattr(generate_cmd, "_draw_chunk", flaky)
    path = tmp_path / "w.npy"
    np.save(path, np.zeros(2))
    assert run(["generate", "--shape", "30", "20", "--scheme", "he_normal", "--seed", "1",
                "--out", str(path)])[0] == code
    assert len(calls) == 3
    np.testing.assert_array_equal(np.load(path), np.zeros(2))  # the old file is untouched
    assert leftovers(tmp_path) == []


def test_generate_into_missing_directory_exits_2(tmp_path, capsys):
    path = tmp_path / "missing" / "w.npy"
    assert run(["generate", "--shape", "4", "4", "--scheme", "zeros", "--out", str(path)])[0] == 2
    assert "weightinit generate: error:" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- warmup
def test_warmup(capsys):
    code, text = run(["warmup", "--dtype", "float32", "--activation", "tanh", "relu"])
    assert code == 0
    parts = [line.split()[:-2] for line in text.splitlines()]
    # One line per part as it ends (parts run in several processes at once), then the total.
    assert parts[-1] == ["total"] and sorted(parts[:-1]) == [
        ["generators", "float32"], ["simulation", "relu", "float32"],
        ["simulation", "tanh", "float32"]]
    code, text = run(["warmup", "--dtype", "float32", "--activation", "tanh", "-j", "1"])
    assert code == 0
    assert [line.split()[:-2] for line in text.splitlines()] == [
        ["generators", "float32"], ["simulation", "tanh", "float32"], ["total"]]
    code, text = run(["warmup", "--dtype", "float64", "--no-simulation", "--quiet"])
    assert code == 0 and text == ""
    with pytest.raises(SystemExit):
        run(["warmup", "--activation", "swish"])
    assert "invalid choice: 'swish'" in capsys.readouterr().err


def test_warmup_function_checks_its_arguments():
    with pytest.raises(TypeError, match="dtypes"):
        W.warmup(["float16"])
    with pytest.raises(ValueError, match="activations"):
        W.warmup(["float32"], ["swish"])


# ----------------------------------------------------------------------------- progress
class _Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("flag, shown", [([], True), (["--progress"], True),
                                         (["--no-progress"], False)])
def test_generate_progress_bar_only_on_a_terminal(tmp_path, monkeypatch, flag, shown):
    """tqdm draws the bar on stderr when it is a terminal (and not --no-progress), never
    elsewhere; the bar ends at 100% of the elements."""
    monkeypatch.setattr(generate_cmd, "_CHUNK", 100)  # 300 elements: three chunks
    argv = ["generate", "--shape", "3", "100", "--scheme", "normal", "--seed", "1"] + flag
    silent = io.StringIO()
    monkeypatch.setattr(sys, "stderr", silent)
    assert run(argv + ["--out", str(tmp_path / "a.npy")])[0] == 0
    assert silent.getvalue() == ""  # not a terminal: no bar, even with --progress
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert run(argv + ["--out", str(tmp_path / "b.npy")])[0] == 0
    text = tty.getvalue()
    if shown:
        assert "generate: 100%" in text and "300/300" in text, text
        assert text.endswith("\n")
    else:
        assert text == ""
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


def test_progress_bar_is_tqdm_and_off_when_disabled(monkeypatch):
    from tqdm import tqdm

    from weightinit.cli.common import progress_bar

    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    with progress_bar(4, "x", enabled=False) as bar:
        assert isinstance(bar, tqdm)
        bar.update(4)
    with progress_bar(0, "empty") as bar:  # nothing to do: no bar
        pass
    assert tty.getvalue() == ""
    with progress_bar(4, "x") as bar:
        bar.update(2)
    assert "x:  50%" in tty.getvalue()


# ----------------------------------------------------------------------------- subprocess
def test_python_dash_m_describe():
    proc = subprocess.run([sys.executable, "-m", "weightinit", "describe"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for name in W.schemes():
        assert name in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "weightinit", "describe", "he_uniform",
                           "--shape", "10", "6", "--json"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["bound"] == pytest.approx(1.0, rel=1e-12)  # sqrt(6/6)
    proc = subprocess.run([sys.executable, "-m", "weightinit", "describe", "nope", "--shape", "2",
                           "2"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Unknown `scheme`" in proc.stderr


def test_every_registered_command_is_one_module():
    """``cli.COMMANDS`` lists one module per command, each with ``add_parser`` and ``run``; the
    parser offers exactly these commands, in this order."""
    import argparse
    import importlib

    for name in cli.COMMANDS:
        module = importlib.import_module(f"weightinit.cli.{name}")
        assert callable(module.add_parser) and callable(module.run), name
    sub = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(cli.COMMANDS)
    for name, parser in sub.choices.items():
        assert parser.get_default("run").__module__ == f"weightinit.cli.{name}"
