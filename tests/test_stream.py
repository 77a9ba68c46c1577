"""Raw generator words: ``weightinit.random.words`` and the ``weightinit stream`` command.

Expected words come from ``philox4x32`` through ``tests/conftest.py::philox_block_words``
(checked against the Random123 known answers in test_philox.py), never from the stream kernel.
The transformed streams are checked by inverting them independently: the packed float32 bits are
unpacked with ``np.unpackbits``, the normal PIT words against SciPy's normal CDF.
"""

import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy import special

from weightinit import cli
from weightinit.cli import stream as stream_cmd
from weightinit import random as R
from weightinit.random import words

from conftest import philox_block_words, uniform_from_words

SEEDS = (0, 1, 0xDEADBEEF, 2**32 + 5, 2**64 - 1)


def reference(seed, offset, count, kind="uniform", stream=0, draw=0):
    """Words offset .. offset + count - 1 rebuilt block by block from philox4x32."""
    first, stop = offset // 4, -(-(offset + count) // 4)
    blocks = np.arange(stop - first, dtype=np.uint64) + np.uint64(first)
    w = philox_block_words(seed, kind, blocks, draw=draw, stream=stream).reshape(-1)
    return w[offset - 4 * first:][:count].astype(np.uint32)


# ----------------------------------------------------------------------------- words()
@pytest.mark.parametrize("seed", SEEDS)
def test_words_match_philox_blocks(seed):
    w = words(4 * 257, seed=seed)
    assert w.dtype == np.uint32 and w.shape == (4 * 257,)
    np.testing.assert_array_equal(w, reference(seed, 0, 4 * 257))


def test_words_every_offset_and_length_serial():
    # Partial first block, whole blocks, partial last block, and a range inside one block.
    full = reference(11, 0, 64, kind="normal", stream=3, draw=2)
    for offset in range(9):
        for count in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 30):
            got = words(count, seed=11, offset=offset, kind="normal", stream=3, draw=2)
            np.testing.assert_array_equal(got, full[offset:offset + count], err_msg=f"{offset=} {count=}")


@pytest.mark.parametrize("offset", [0, 1, 2, 3, 4 * 12345 + 3])
def test_words_parallel_path_matches(offset):
    n = R._PARALLEL_MIN * 4 + 7  # parallel kernel, with ragged ends
    np.testing.assert_array_equal(words(n, seed=9, offset=offset), reference(9, offset, n))


def test_words_high_block_word():
    # Blocks around 2**32 exercise the counter's second word; the last words of the space too.
    offset = 4 * (2**32 - 3) + 1
    np.testing.assert_array_equal(words(40, seed=5, offset=offset), reference(5, offset, 40))
    last = 2**66 - 10
    np.testing.assert_array_equal(words(10, seed=5, offset=last), reference(5, last, 10))


@pytest.mark.parametrize("kind", ["uniform", "normal", "truncated_normal"])
def test_words_kind_stream_draw_select_the_counter(kind):
    np.testing.assert_array_equal(words(12, seed=4, kind=kind, stream=7, draw=9),
                                  reference(4, 0, 12, kind=kind, stream=7, draw=9))
    a = words(12, seed=4, kind=kind)
    assert not np.array_equal(a, words(12, seed=4, kind=kind, stream=1))
    assert not np.array_equal(a, words(12, seed=4, kind=kind, draw=1))


def test_words_are_the_bits_of_uniform():
    # The float32/float64 uniforms are the recipes of conftest.uniform_from_words applied to
    # exactly these words.
    w = words(4 * 1000, seed=21).reshape(-1, 4)
    for dtype in (np.float32, np.float64):
        expect = uniform_from_words(w, dtype).astype(dtype)
        np.testing.assert_array_equal(R.uniform(expect.size, seed=21, dtype=dtype), expect)


def test_words_out_parameter():
    buf = np.zeros(10, np.uint32)
    assert words(10, seed=3, offset=5, out=buf) is buf
    np.testing.assert_array_equal(buf, reference(3, 5, 10))
    with pytest.raises(TypeError, match="`out`"):
        words(10, seed=3, out=np.zeros(10, np.int64))
    with pytest.raises(ValueError, match="`out`"):
        words(10, seed=3, out=np.zeros(11, np.uint32))
    with pytest.raises(ValueError, match="`out`"):
        words(10, seed=3, out=np.zeros(20, np.uint32)[::2])


def test_words_none_seed_is_fresh():
    assert not np.array_equal(words(8), words(8))


@pytest.mark.parametrize("kwargs, exc, name", [
    (dict(count=-1), ValueError, "count"),
    (dict(count=2.0), TypeError, "count"),
    (dict(count=True), TypeError, "count"),
    (dict(count=4, seed=-1), ValueError, "seed"),
    (dict(count=4, seed=2**64), ValueError, "seed"),
    (dict(count=4, offset=-1), ValueError, "offset"),
    (dict(count=4, offset=2**66), ValueError, "offset"),
    (dict(count=4, offset=2**66 - 3), ValueError, "offset"),
    (dict(count=4, kind="gamma"), ValueError, "kind"),
    (dict(count=4, stream=2**30), ValueError, "stream"),
    (dict(count=4, draw=2**32), ValueError, "draw"),
    (dict(count=4, draw=-1), ValueError, "draw"),
])
def test_words_rejects_bad_arguments(kwargs, exc, name):
    kwargs.setdefault("seed", 1)
    count = kwargs.pop("count")
    with pytest.raises(exc, match=f"`{name}`"):
        words(count, **kwargs)


def test_words_empty():
    assert words(0, seed=1).shape == (0,)


# ----------------------------------------------------------------------------- normal PIT
def test_normal_pit_words_known_points():
    z = np.array([-np.inf, -40.0, -8.5, -1.0, 0.0, 1e-300, 1.0, 3.0, 8.5, 40.0, np.inf])
    got = R._normal_pit_words(z).astype(np.int64)
    # floor(2**32 * Phi(z)) with Phi from SciPy, and the two ends: 0 and 2**32 - 1.
    expect = np.minimum(np.floor(special.ndtr(z) * 2.0**32), 2.0**32 - 1).astype(np.int64)
    np.testing.assert_array_equal(got, expect)
    assert got[4] == 2**31 and got[0] == 0 and got[-1] == 2**32 - 1
    assert got[3] == 681419126  # floor(2**32 * 0.15865525393145707), Phi(-1) from tables


def test_normal_pit_words_against_scipy_bulk():
    z = R.normal(R._PARALLEL_MIN * 2, seed=8, dtype=np.float64)  # parallel kernel
    got = R._normal_pit_words(z).astype(np.int64)
    expect = np.floor(special.ndtr(z) * 2.0**32).astype(np.int64)
    # erfc and ndtr may differ in the last ulp, which moves a word across a floor boundary by 1
    # at most; the words are otherwise identical.
    diff = np.abs(got - expect)
    assert diff.max() <= 1
    assert np.count_nonzero(diff) <= z.size * 1e-4


# ----------------------------------------------------------------------------- CLI in-process
def stream(*args):
    """Run ``weightinit stream`` in-process into a bytes buffer: (exit status, uint32 words)."""
    buf = io.BytesIO()
    code = cli.main(["stream", *map(str, args)], stdout=buf)
    return code, np.frombuffer(buf.getvalue(), dtype="<u4")


def test_stream_uniform32_is_words_little_endian():
    code, w = stream("--seed", 5, "--count", 1000)
    assert code == 0
    np.testing.assert_array_equal(w, reference(5, 0, 1000))
    buf = io.BytesIO()
    assert cli.main(["stream", "--seed", "5", "--count", "2"], stdout=buf) == 0
    v = reference(5, 0, 2).tolist()
    assert buf.getvalue() == b"".join(int(x).to_bytes(4, "little") for x in v)


def test_stream_writes_to_the_binary_buffer_of_a_text_stdout():
    raw = io.BytesIO()
    text = io.TextIOWrapper(raw, write_through=True)
    assert cli.main(["stream", "--seed", "5", "--count", "7", "--offset", "3"], stdout=text) == 0
    np.testing.assert_array_equal(np.frombuffer(raw.getvalue(), "<u4"), reference(5, 3, 7))


def test_stream_default_distribution_and_chunks():
    # More than one write chunk, with an offset that is not a multiple of 4.
    n = stream_cmd._STREAM_CHUNK * 2 + 5
    code, w = stream("--seed", 2, "--count", n, "--offset", 6)
    assert code == 0 and w.size == n
    np.testing.assert_array_equal(w, reference(2, 6, n))


def unpack24(w):
    """Split the words' bit string (most significant bit first) into 24-bit integers."""
    bits = np.unpackbits(np.asarray(w, dtype=">u4").view(np.uint8))
    return bits.reshape(-1, 24) @ (1 << np.arange(23, -1, -1))


def test_stream_float32_uniform_packs_all_24_bits():
    code, w = stream("--seed", 13, "--distribution", "float32-uniform", "--count", 3 * 500)
    assert code == 0
    k = unpack24(w)
    np.testing.assert_array_equal(k, R.uniform(2000, seed=13).astype(np.float64) * 2**24)
    assert k.max() >= 2**23 and k.min() < 2**20  # the high bits are really there


@pytest.mark.parametrize("distribution", stream_cmd._STREAM_DISTRIBUTIONS)
def test_stream_offset_is_a_slice_of_the_stream(distribution):
    _, whole = stream("--seed", 17, "--distribution", distribution, "--count", 200)
    for offset in (1, 2, 3, 4, 5, 7, 11):
        _, part = stream("--seed", 17, "--distribution", distribution, "--count", 50,
                         "--offset", offset)
        np.testing.assert_array_equal(part, whole[offset:offset + 50], err_msg=str(offset))


def test_stream_normal_pit_is_the_cdf_of_float64_normals():
    code, w = stream("--seed", 23, "--distribution", "normal-pit", "--count", 5000)
    assert code == 0
    z = R.normal(5000, seed=23, dtype=np.float64)
    expect = np.floor(special.ndtr(z) * 2.0**32).astype(np.int64)
    assert np.abs(w.astype(np.int64) - expect).max() <= 1


def test_stream_count_zero_writes_nothing():
    code, w = stream("--seed", 1, "--count", 0)
    assert code == 0 and w.size == 0


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1", "--count", "4"], "`seed`"),
    (["--seed", str(2**64), "--count", "4"], "`seed`"),
    (["--seed", "1", "--count", "4", "--offset", str(2**66 - 2)], "`offset`"),
    (["--seed", "1", "--distribution", "float32-uniform", "--count", "3",
      "--offset", str(3 * 2**62)], "`offset`"),
    (["--seed", "1", "--distribution", "normal-pit", "--count", "4",
      "--offset", str(2**64 - 2)], "`offset`"),
])
def test_stream_bad_values_exit_2_before_writing(args, message, capsys):
    buf = io.BytesIO()
    assert cli.main(["stream", *args], stdout=buf) == 2
    assert buf.getvalue() == b""
    err = capsys.readouterr().err
    assert err.startswith("weightinit stream: error:") and message in err


@pytest.mark.parametrize("args", [
    [], ["--seed", "x"], ["--seed", "1", "--count", "-3"], ["--seed", "1", "--offset", "-1"],
    ["--seed", "1", "--distribution", "uniform64"],
])
def test_stream_bad_arguments_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["stream", *args], stdout=io.BytesIO())
    assert e.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_stream_refuses_a_terminal(capsys):
    class Terminal(io.BytesIO):
        def isatty(self):
            return True

    buf = Terminal()
    assert cli.main(["stream", "--seed", "1", "--count", "4"], stdout=buf) == 2
    assert buf.getvalue() == b""
    assert "terminal" in capsys.readouterr().err


def test_stream_in_process_interrupt_exits_130(monkeypatch, capsys):
    calls = []

    def interrupted(*a):
        calls.append(a)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return np.zeros(a[3], np.uint32)

    monkeypatch.setattr(stream_cmd, "_stream_words", interrupted)
    buf = io.BytesIO()
    assert cli.main(["stream", "--seed", "1"], stdout=buf) == 130
    assert len(buf.getvalue()) == 4 * stream_cmd._STREAM_CHUNK  # the first chunk went out whole
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- CLI subprocess
def _child(*args, **kw):
    env = dict(os.environ, NUMBA_NUM_THREADS=os.environ.get("NUMBA_NUM_THREADS", "2"))
    return subprocess.Popen([sys.executable, "-m", "weightinit", "stream", *map(str, args)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, **kw)


def test_subprocess_count_output_is_exact():
    p = _child("--seed", 99, "--count", 12345, "--offset", 1)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0 and err == b""
    np.testing.assert_array_equal(np.frombuffer(out, "<u4"), reference(99, 1, 12345))


def test_subprocess_closed_pipe_exits_0_quietly():
    # A battery reads what it needs and closes the pipe: the endless stream must stop with
    # status 0 and print nothing (no BrokenPipeError traceback, no "Exception ignored").
    p = _child("--seed", 1)
    try:
        head = p.stdout.read(3 * 2**20 + 4)  # across several 1 MiB writes
        p.stdout.close()
        code = p.wait(timeout=120)
        err = p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stderr.close()
    np.testing.assert_array_equal(np.frombuffer(head, "<u4")[:1000], reference(1, 0, 1000))
    assert code == 0 and err == b""


def _reset_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # react to Ctrl-C even in a background job


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")
def test_subprocess_ctrl_c_exits_130_without_traceback():
    p = _child("--seed", 1, preexec_fn=_reset_sigint)
    try:
        assert len(p.stdout.read(2**20)) == 2**20  # streaming has begun
        p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            p.stdout.read(2**20)  # keep draining so the writer is never stuck on a full pipe
        code = p.wait(timeout=5)
        err = p.stderr.read().decode()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
    assert code == 130
    assert "Traceback" not in err and "interrupted" in err
