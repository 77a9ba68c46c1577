"""Interrupting the command line never leaves a partial file.

A real ``python -m weightinit`` process is started on a job that takes several seconds, its
stderr on a pseudo-terminal so that the progress bar is drawn; once the bar appears the process
gets SIGINT (Ctrl-C) or SIGTERM. It must exit with 130 or 143, print exactly one line besides the
progress bar, and leave the output directory as it was: no output file, no ``.part`` file.
(``tests/test_cli.py`` and ``tests/test_cli_simulate.py`` raise KeyboardInterrupt in-process at
chosen points; these tests send the real signals.)
"""

import os
import select
import signal
import subprocess
import struct
import sys
import time

import pytest

pty = pytest.importorskip("pty")  # POSIX only
fcntl = pytest.importorskip("fcntl")
termios = pytest.importorskip("termios")

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGTERM") or os.name != "posix",
                                reason="needs POSIX signals and pseudo-terminals")

#: generate: 2**29 float32 values (2 GiB, 32 chunks of 2**24) take several seconds to stream.
GENERATE = ["generate", "--shape", str(2**29), "--scheme", "normal", "--seed", "3"]
#: simulate: 300 layers of 512 units for 4000 samples take several seconds.
SIMULATE = ["simulate", "--activation", "tanh", "--scheme", "glorot_normal", "--depth", "300",
            "--width", "512", "--samples", "4000", "--progress"]


def _reset_signals():
    # The child must react to Ctrl-C even if this test runs with SIGINT ignored (a background
    # job), which a child inherits: with the default disposition Python installs its
    # KeyboardInterrupt handler.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _ignored():
    return signal.SIG_IGN in (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))


def _interrupt(argv, cwd, sig, label, timeout=90.0):
    """Run ``python -m weightinit *argv``, send ``sig`` once ``label`` shows on its terminal
    stderr, and return (exit code, stderr text, stdout text, seconds from signal to exit)."""
    try:
        master, slave = pty.openpty()
    except OSError as e:
        pytest.skip(f"no pseudo-terminal available: {e}")
    # A terminal of 24 x 120 characters (a fresh pseudo-terminal reports 0 x 0, where tqdm
    # draws a bar of width 0).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    env = dict(os.environ, NUMBA_NUM_THREADS=os.environ.get("NUMBA_NUM_THREADS", "2"))
    proc = subprocess.Popen([sys.executable, "-m", "weightinit", *argv], cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                            env=env, preexec_fn=_reset_signals if _ignored() else None)
    os.close(slave)
    err = b""
    sent = None
    deadline = time.monotonic() + timeout
    try:
        while True:
            if sent is None and label.encode() in err:
                proc.send_signal(sig)
                sent = time.monotonic()
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no exit within {timeout} s (signal sent: {sent is not None}); "
                            f"stderr so far: {err[-500:]!r}")
            ready, _, _ = select.select([master], [], [], min(left, 0.05))
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    break
                err += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
        out = proc.stdout.read().decode()
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert sent is not None, f"the progress bar never appeared; exit {code}, stderr {err!r}"
    return code, err.decode(errors="replace"), out, time.monotonic() - sent


def _lines(text):
    """The lines a terminal would keep: progress updates (carriage-return rewrites) dropped."""
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        kept = line.split("\r")[-1].strip()
        if kept and not kept.startswith(("generate:", "simulate:")):
            lines.append(kept)
    return lines


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "terminated")],
                         ids=["SIGINT", "SIGTERM"])
def test_generate_interrupted_leaves_no_file(tmp_path, sig, code, word):
    (tmp_path / "keep.txt").write_text("unrelated file")
    before = sorted(os.listdir(tmp_path))
    rc, err, out, reaction = _interrupt(GENERATE + ["--out", "w.npy"], tmp_path, sig,
                                        "generate:")
    assert rc == code, err
    assert _lines(err) == [f"weightinit generate: {word}; no output written"], err
    assert "Traceback" not in err
    assert out == ""
    assert sorted(os.listdir(tmp_path)) == before  # no w.npy, no .weightinit-*.npy.part
    assert reaction < 10  # stops within a chunk or two, not after the whole tensor


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "terminated")],
                         ids=["SIGINT", "SIGTERM"])
def test_simulate_interrupted_leaves_no_file(tmp_path, sig, code, word):
    pytest.importorskip("matplotlib")
    before = sorted(os.listdir(tmp_path))
    rc, err, out, reaction = _interrupt(SIMULATE + ["--json", "out.json", "--plot", "out.png"],
                                        tmp_path, sig, "simulate:")
    assert rc == code, err
    assert _lines(err) == [f"weightinit simulate: {word}; no output written"], err
    assert "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == before  # no out.json, out.png or .part files
    assert reaction < 10
