"""``weightinit generate --out PATH.safetensors``: loaded by safetensors' own loaders (NumPy and
PyTorch) bitwise equal to ``weightinit.init``, whether written whole by the safetensors library or
streamed chunk by chunk; metadata; atomic writes; bad input."""

import importlib.util
import io
import json
import os
import struct
from types import SimpleNamespace

import numpy as np
import pytest

import weightinit as W
from weightinit import cli
from weightinit.cli import common
from weightinit.cli import generate as generate_cmd

st_numpy = pytest.importorskip("safetensors.numpy")
safe_open = pytest.importorskip("safetensors").safe_open


def run(argv):
    out = io.StringIO()
    return cli.main(argv, stdout=out), out.getvalue()


def header(path):
    """The JSON header of a safetensors file and its padded length (read by hand: the format is
    an 8-byte little-endian length, then that many bytes of JSON)."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(size)), size


CASES = [("he_normal", [], {}), ("glorot_uniform", ["-p", "gain=2"], {"gain": 2}),
         ("truncated_normal", ["-p", "std=0.5"], {"std": 0.5}), ("zeros", [], {}),
         ("orthogonal", [], {})]


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scheme, argv, params", CASES, ids=[c[0] for c in CASES])
def test_safetensors_loads_bitwise_equal_to_init(tmp_path, monkeypatch, scheme, argv, params,
                                                  dtype, streamed):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file as torch_load

    calls = []
    if streamed:  # 50 x 71 = 3550 elements in chunks of 1000: a ragged last chunk
        monkeypatch.setattr(generate_cmd, "_CHUNK", 1000)
        real = generate_cmd._draw_chunk
        monkeypatch.setattr(generate_cmd, "_draw_chunk",
                            lambda *a: (calls.append(a[3].size), real(*a))[1])
    path = tmp_path / "w.safetensors"
    code, text = run(["generate", "--shape", "50", "71", "--scheme", scheme, "--seed", "7",
                      "--dtype", dtype, "--out", str(path)] + argv)
    assert code == 0, text
    expected = W.init((50, 71), scheme, seed=7, dtype=dtype, **params)
    got = st_numpy.load_file(str(path))["weight"]
    assert got.dtype == np.dtype(dtype) and got.shape == (50, 71)
    assert got.tobytes() == expected.tobytes()
    t = torch_load(str(path))["weight"]
    assert t.dtype == getattr(torch, dtype)
    assert t.numpy().tobytes() == expected.tobytes()
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
    assert meta == {"generator": f"weightinit {W.__version__}", "scheme": scheme, "seed": "7",
                    "shape": "[50, 71]", "dtype": dtype, "layout": "torch",
                    "params": json.dumps(params, sort_keys=True)}
    # Whole schemes (orthogonal) are built in memory; the others stream when asked to.
    assert calls == ([1000, 1000, 1000, 550] if streamed and scheme != "orthogonal" else [])
    assert os.listdir(tmp_path) == ["w.safetensors"]


def test_streamed_header_matches_the_library(tmp_path, monkeypatch):
    """The hand-written header of the streamed path says what the library's own writer says
    (same tensor entry, same metadata, padded to a multiple of 8 bytes) and the file has exactly
    header + data bytes."""
    monkeypatch.setattr(generate_cmd, "_CHUNK", 100)
    path = tmp_path / "w.safetensors"
    assert run(["generate", "--shape", "3", "5", "7", "--scheme", "he_uniform", "--seed", "1",
                "--name", "layer.0.weight", "--out", str(path)])[0] == 0
    ours, size = header(path)
    with safe_open(str(path), "np") as f:
        meta = f.metadata()
        tensor = f.get_tensor("layer.0.weight")
    ref = tmp_path / "ref.safetensors"
    st_numpy.save_file({"layer.0.weight": tensor}, str(ref), metadata=meta)
    theirs, ref_size = header(ref)
    assert ours == theirs
    assert size % 8 == 0 and ref_size % 8 == 0
    assert os.path.getsize(path) == 8 + size + 3 * 5 * 7 * 4
    assert tensor.tobytes() == W.he_uniform((3, 5, 7), seed=1).tobytes()


def test_streamed_safetensors_memory_is_one_chunk(tmp_path, monkeypatch):
    """2**16 float64 values (512 KiB) in chunks of 2**10: the writer's one buffer holds a chunk;
    the tracemalloc peak stays far below the tensor (NumPy reports its buffers to tracemalloc)."""
    import tracemalloc

    monkeypatch.setattr(generate_cmd, "_CHUNK", 1 << 10)
    path = tmp_path / "big.safetensors"
    tracemalloc.start()
    try:
        code, _ = run(["generate", "--shape", str(1 << 16), "--scheme", "normal", "--seed", "2",
                       "--dtype", "float64", "--out", str(path)])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert code == 0
    assert peak < (1 << 16) * 8 // 4  # a quarter of the tensor; a chunk is 8 KiB
    assert st_numpy.load_file(str(path))["weight"].tobytes() == \
        W.normal((1 << 16,), seed=2, dtype="float64").tobytes()


def test_interrupted_safetensors_write_leaves_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(generate_cmd, "_CHUNK", 100)
    calls = []

    def flaky(*a):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        a[3].fill(0)

    monkeypatch.setattr(generate_cmd, "_draw_chunk", flaky)
    code, _ = run(["generate", "--shape", "1000", "--scheme", "normal", "--seed", "0",
                   "--out", str(tmp_path / "w.safetensors")])
    assert code == 130
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------- bad input
def test_unsupported_dtype_is_a_type_error():
    with pytest.raises(TypeError, match="safetensors output supports dtype float32 or float64"):
        generate_cmd._check_safetensors(np.float16)
    with pytest.raises(TypeError, match="dtype=int32"):
        generate_cmd._check_safetensors("int32")


def test_cli_rejects_other_dtypes(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["generate", "--shape", "4", "--scheme", "zeros", "--dtype", "float16",
                  "--out", str(tmp_path / "w.safetensors")])
    assert e.value.code == 2
    assert "float16" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_missing_safetensors_says_what_to_install(tmp_path, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "safetensors" else real(name, *a))
    code, _ = run(["generate", "--shape", "4", "4", "--scheme", "zeros",
                   "--out", str(tmp_path / "w.safetensors")])
    assert code == 1
    err = capsys.readouterr().err
    assert 'pip install "weightinit[safetensors]"' in err
    assert os.listdir(tmp_path) == []


def test_name_needs_a_safetensors_file(tmp_path, capsys):
    code, _ = run(["generate", "--shape", "4", "--scheme", "zeros", "--name", "w",
                   "--out", str(tmp_path / "w.npy")])
    assert code == 2
    assert "--name" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_too_big_for_the_disk_points_to_zarr(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(common.shutil, "disk_usage",
                        lambda path: SimpleNamespace(total=2**40, used=2**40 - 2**20, free=2**20))
    code, _ = run(["generate", "--shape", "2000", "20000", "--scheme", "normal", "--seed", "0",
                   "--out", str(tmp_path / "w.safetensors")])
    assert code == 2
    err = capsys.readouterr().err
    assert "GiB is free" in err and "--zarr PATH" in err
    assert os.listdir(tmp_path) == []
