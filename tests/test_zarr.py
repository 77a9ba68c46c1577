"""``weightinit generate --zarr`` and weightinit.dask.write_zarr: chunked, resumable, atomic.

Expected values are the in-memory schemes (checked elsewhere against independent references)
and the ``--out`` .npy output of the same command.
"""

import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

import weightinit as W  # noqa: E402
import weightinit.dask as WD  # noqa: E402
from weightinit import cli  # noqa: E402


def run(argv):
    out = io.StringIO()
    return cli.main(argv, stdout=out), out.getvalue()


def entries(directory):
    return sorted(os.listdir(directory))


def read(path):
    return zarr.open_array(str(path), mode="r")


CASES = [
    ("he_normal", []), ("glorot_uniform", ["-p", "gain=2"]),
    ("truncated_normal", ["-p", "std=0.5", "-p", "low=-0.3", "-p", "high=1"]),
    ("variance_scaling", ["-p", "mode=fan_out", "-p", "distribution=uniform"]),
    ("constant", ["-p", "value=0.25"]), ("zeros", []), ("orthogonal", ["-p", "gain=1.5"]),
    ("eye", []),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("scheme, argv", CASES, ids=[c[0] for c in CASES])
def test_zarr_equals_npy(tmp_path, scheme, argv, dtype):
    # 50 x 71: 0.004 MiB = 4194 bytes per chunk -> 14 rows (float32) or 7 rows (float64) per
    # chunk, a ragged last chunk, and chunk starts inside Philox blocks.
    common = ["generate", "--shape", "50", "71", "--scheme", scheme, "--seed", "99",
              "--dtype", dtype] + argv
    assert run(common + ["--out", str(tmp_path / "w.npy")])[0] == 0
    code, text = run(common + ["--zarr", str(tmp_path / "w.zarr"), "--chunk-mib", "0.004"])
    assert code == 0
    a = read(tmp_path / "w.zarr")
    rows = 4194 // (71 * np.dtype(dtype).itemsize)
    assert a.chunks == (rows, 71) and a.dtype == np.dtype(dtype)
    assert f"{-(-50 // rows)} chunks" in text and "seed=99" in text
    np.testing.assert_array_equal(a[...], np.load(tmp_path / "w.npy"))
    assert entries(tmp_path) == ["w.npy", "w.zarr"]


def test_attributes_format_and_codecs(tmp_path):
    path = tmp_path / "w.zarr"
    code, _ = run(["generate", "--shape", "30", "20", "--scheme", "he_normal", "-p",
                   "mode=fan_out", "--seed", str(2**64 - 1), "--layout", "keras",
                   "--zarr", str(path)])
    assert code == 0
    attrs = dict(read(path).attrs)
    assert attrs == {"format": "weightinit-zarr/1", "scheme": "he_normal", "shape": [30, 20],
                     "dtype": "float32", "layout": "keras", "params": {"mode": "fan_out"},
                     "chunks": [30, 20], "seed": 2**64 - 1,
                     "weightinit_version": W.__version__, "complete": True, "chunks_done": 1}
    np.testing.assert_array_equal(read(path)[...], W.he_normal(
        (30, 20), mode="fan_out", layout="keras", seed=2**64 - 1))
    if int(zarr.__version__.split(".")[0]) >= 3:  # the library default: format v3, no compressor
        meta = json.loads((path / "zarr.json").read_text())
        assert meta["zarr_format"] == 3
        assert [c["name"] for c in meta["codecs"]] == ["bytes"]


def test_offset_parameter_and_1d(tmp_path):
    path = tmp_path / "o.zarr"
    assert run(["generate", "--shape", "1000", "--scheme", "normal", "-p", "offset=7",
                "--seed", "3", "--zarr", str(path), "--chunk-mib", "0.001"])[0] == 0
    a = read(path)
    assert a.chunks == (262,)  # 1048 bytes / 4
    np.testing.assert_array_equal(a[...], W.normal((1000,), seed=3, offset=7))


def test_library_write_zarr_returns_info(tmp_path):
    seen = []
    info = WD.write_zarr(tmp_path / "w.zarr", (20, 10), "he_uniform", seed=1, chunk_bytes=200,
                         progress=lambda done, total: seen.append((done, total)))
    assert info == {"path": str(tmp_path / "w.zarr"), "seed": 1, "shape": (20, 10),
                    "dtype": "float32", "chunks": (5, 10), "nbytes": 800, "chunks_total": 4,
                    "resumed_from": 0}
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    attrs = WD.read_zarr_attrs(tmp_path / "w.zarr")
    assert attrs["complete"] is True and attrs["seed"] == 1 and attrs["scheme"] == "he_uniform"
    assert WD.read_zarr_attrs(tmp_path / "missing.zarr") is None
    zarr.open_array(str(tmp_path / "other.zarr"), mode="w", shape=(2,), dtype="f4")
    assert WD.read_zarr_attrs(tmp_path / "other.zarr") is None  # not written by weightinit


# ----------------------------------------------------------------------------- interruption
def _interrupt_after(monkeypatch, n, exc=KeyboardInterrupt):
    """Make the n+1-th chunk fill raise ``exc``; return the list of filled chunk boxes."""
    real = WD._fill_block
    calls = []

    def flaky(plan, seed, offset, shape, location, out):
        if len(calls) == n:
            raise exc()
        calls.append(tuple(map(tuple, location)))
        return real(plan, seed, offset, shape, location, out)

    monkeypatch.setattr(WD, "_fill_block", flaky)
    return calls


@pytest.mark.parametrize("explicit_seed", [True, False])
def test_interrupted_write_is_invisible_and_resumes(tmp_path, monkeypatch, capsys, explicit_seed):
    path = tmp_path / "w.zarr"
    argv = ["generate", "--shape", "40", "25", "--scheme", "glorot_normal", "--zarr", str(path),
            "--chunk-mib", "0.0005"] + (["--seed", "8"] if explicit_seed else [])  # 5 rows/chunk
    calls = _interrupt_after(monkeypatch, 3)
    assert run(argv)[0] == 130
    assert "run the same command again to resume" in capsys.readouterr().err
    assert not path.exists()  # never mistaken for a finished array
    part = tmp_path / "w.zarr.part"
    attrs = dict(read(part).attrs)
    assert attrs["complete"] is False and attrs["chunks_done"] == 3
    assert entries(tmp_path) == ["w.zarr.part"]

    monkeypatch.undo()
    calls = _interrupt_after(monkeypatch, 10**9)  # count only
    code, text = run(argv)
    assert code == 0
    assert "resumed after 3 of 8 chunks" in text
    assert calls == [((r, r + 5), (0, 25)) for r in range(15, 40, 5)]  # only the rest
    seed = int(text.split("seed=")[1].split()[0])
    if explicit_seed:
        assert seed == 8
    assert dict(read(path).attrs)["complete"] is True
    np.testing.assert_array_equal(read(path)[...], W.glorot_normal((40, 25), seed=seed))
    assert entries(tmp_path) == ["w.zarr"]


def test_failure_keeps_part_and_leftover_temporaries_are_removed(tmp_path, monkeypatch):
    path = tmp_path / "w.zarr"
    argv = ["generate", "--shape", "40", "25", "--scheme", "he_normal", "--seed", "1",
            "--zarr", str(path), "--chunk-mib", "0.0005"]
    _interrupt_after(monkeypatch, 2, exc=lambda: ValueError("disk on fire"))
    assert run(argv)[0] == 2
    monkeypatch.undo()
    part = tmp_path / "w.zarr.part"
    junk = part / "c" / "0" / "0.0123abcd.partial"  # what a killed zarr 3 chunk write leaves
    junk.parent.mkdir(parents=True, exist_ok=True)
    junk.write_bytes(b"half a chunk")
    assert run(argv)[0] == 0
    assert not (path / "c" / "0" / "0.0123abcd.partial").exists()
    np.testing.assert_array_equal(read(path)[...], W.he_normal((40, 25), seed=1))


def test_killed_process_leaves_only_a_resumable_part(tmp_path):
    # A real SIGKILL in the middle of a write (each chunk slowed to 50 ms so the kill lands
    # mid-way); then the same command, in this process, resumes and finishes the array.
    path = tmp_path / "k.zarr"
    argv = ["generate", "--shape", "64", "100", "--scheme", "he_normal", "--seed", "5",
            "--zarr", str(path), "--chunk-mib", "0.0015"]  # 3 rows of 400 bytes per chunk: 22
    script = ("import sys, time\n"
              "import weightinit.dask as D\n"
              "from weightinit import cli\n"
              "real = D._fill_block\n"
              "D._fill_block = lambda *a: (time.sleep(0.05), real(*a))[1]\n"
              "sys.exit(cli.main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, "-c", script] + argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    part = tmp_path / "k.zarr.part"
    deadline = time.monotonic() + 60
    done = 0
    try:
        while time.monotonic() < deadline and done < 4:
            time.sleep(0.02)
            try:  # the metadata files are replaced atomically: read them without zarr
                if (part / "zarr.json").exists():  # format v3 (zarr 3)
                    done = json.loads((part / "zarr.json").read_text())["attributes"]["chunks_done"]
                else:  # format v2 (zarr 2)
                    done = json.loads((part / ".zattrs").read_text())["chunks_done"]
            except (OSError, ValueError, KeyError):
                pass  # not created yet
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert 4 <= done < 22, "the write was not caught in the middle"
    assert not path.exists()
    assert dict(read(tmp_path / "k.zarr.part").attrs)["complete"] is False
    code, text = run(argv)
    assert code == 0 and "resumed after" in text
    np.testing.assert_array_equal(read(path)[...], W.he_normal((64, 100), seed=5))
    assert entries(tmp_path) == ["k.zarr"]


# ----------------------------------------------------------------------------- policies
def test_existing_path_is_never_replaced(tmp_path, capsys):
    path = tmp_path / "w.zarr"
    path.mkdir()
    (path / "mine.txt").write_text("keep me")
    code, _ = run(["generate", "--shape", "4", "4", "--scheme", "he_normal", "--zarr", str(path)])
    assert code == 2
    assert "already exists" in capsys.readouterr().err
    assert (path / "mine.txt").read_text() == "keep me" and entries(path) == ["mine.txt"]
    assert entries(tmp_path) == ["w.zarr"]  # no .part started
    # a finished array is not replaced either, even by the identical command
    argv = ["generate", "--shape", "4", "4", "--scheme", "he_normal", "--seed", "1",
            "--zarr", str(tmp_path / "x.zarr")]
    assert run(argv)[0] == 0
    assert run(argv)[0] == 2


def test_part_with_other_arguments_is_refused(tmp_path, monkeypatch, capsys):
    path = tmp_path / "w.zarr"
    base = ["generate", "--shape", "40", "25", "--scheme", "he_normal", "--zarr", str(path),
            "--chunk-mib", "0.0005"]
    _interrupt_after(monkeypatch, 2)
    assert run(base + ["--seed", "1"])[0] == 130
    monkeypatch.undo()
    capsys.readouterr()
    for other in (["--seed", "2"], ["--seed", "1", "--dtype", "float64"],
                  ["--seed", "1", "-p", "mode=fan_out"], ["--seed", "1", "--chunk-mib", "0.001"]):
        assert run(base[:-2] + other + (["--chunk-mib", "0.0005"] if "--chunk-mib" not in other
                                        else []))[0] == 2
        assert "interrupted write with other arguments" in capsys.readouterr().err
    assert dict(read(tmp_path / "w.zarr.part").attrs)["chunks_done"] == 2  # untouched


def test_foreign_part_directory_is_refused(tmp_path, capsys):
    (tmp_path / "w.zarr.part").mkdir()
    (tmp_path / "w.zarr.part" / "notes.txt").write_text("mine")
    code, _ = run(["generate", "--shape", "4", "4", "--scheme", "he_normal", "--zarr",
                   str(tmp_path / "w.zarr")])
    assert code == 2
    assert "not weightinit's interrupted write" in capsys.readouterr().err
    assert entries(tmp_path / "w.zarr.part") == ["notes.txt"]


@pytest.mark.parametrize("argv, message", [
    (["--scheme", "nonsense"], "Unknown `scheme`"),
    (["--scheme", "he_normal", "-p", "gain=2"], "gain"),
    (["--scheme", "he_normal", "--seed", "-1"], "`seed`"),
    (["--scheme", "truncated_normal", "-p", "low=1", "-p", "high=0"], "`low`"),
])
def test_bad_arguments_touch_nothing(tmp_path, capsys, argv, message):
    code, _ = run(["generate", "--shape", "30", "20", "--zarr", str(tmp_path / "w.zarr")] + argv)
    assert code == 2
    assert message in capsys.readouterr().err
    assert entries(tmp_path) == []


def test_out_and_zarr_are_exclusive_and_one_is_required(tmp_path, capsys):
    for extra in ([], ["--out", str(tmp_path / "a.npy"), "--zarr", str(tmp_path / "a.zarr")]):
        with pytest.raises(SystemExit) as info:
            cli.main(["generate", "--shape", "3", "--scheme", "zeros"] + extra)
        assert info.value.code == 2
    assert entries(tmp_path) == []


def test_missing_directory(tmp_path, capsys):
    code, _ = run(["generate", "--shape", "3", "3", "--scheme", "zeros", "--zarr",
                   str(tmp_path / "no" / "w.zarr")])
    assert code == 2 and "does not exist" in capsys.readouterr().err


def test_each_chunk_is_on_disk_before_it_is_counted(tmp_path, monkeypatch):
    # chunks_done must never count a chunk that a power failure could still lose: the chunk
    # file is fsynced while chunks_done still excludes it.
    real = WD._fsync_chunk
    seen = []

    def spy(arr, root, coords):
        seen.append((coords, dict(arr.attrs)["chunks_done"],
                     os.path.exists(os.path.join(root, *_key(arr, coords)))))
        return real(arr, root, coords)

    monkeypatch.setattr(WD, "_fsync_chunk", spy)
    WD.write_zarr(tmp_path / "w.zarr", (20, 10), "he_normal", seed=1, chunk_bytes=200)
    assert seen == [((i, 0), i, True) for i in range(4)]


def _key(arr, coords):
    try:
        return arr.metadata.encode_chunk_key(coords).split("/")  # zarr 3
    except AttributeError:
        return [arr._chunk_key(coords)]  # zarr 2


@pytest.mark.parametrize("missing", ["dask", "zarr"])
def test_missing_extra_exits_1_with_install_advice(tmp_path, monkeypatch, capsys, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` now fails
    if missing == "dask":  # forget the imported module, so that the CLI imports it again
        monkeypatch.delitem(sys.modules, "weightinit.dask")
        monkeypatch.delattr(W, "dask")
    else:
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: None if name == "zarr" else real(name, *a))
    code, _ = run(["generate", "--shape", "4", "4", "--scheme", "zeros", "--zarr",
                   str(tmp_path / "w.zarr")])
    assert code == 1
    assert 'pip install "weightinit[dask]"' in capsys.readouterr().err
    assert entries(tmp_path) == []
