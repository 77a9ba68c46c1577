"""weightinit installed in a read-only location still imports and draws (weightinit/_cache.py).

Each test copies the package to a temporary folder, removes every write permission
(``chmod -R a-w``) and runs a fresh interpreter with ``PYTHONPATH`` pointing there, no
``NUMBA_CACHE_DIR`` and no ``XDG_CACHE_HOME``. Root ignores permission bits, so when the tests
run as root the child process first drops the capabilities that let it (CAP_DAC_OVERRIDE,
CAP_DAC_READ_SEARCH, CAP_FOWNER) from its bounding set; after ``exec`` it is then bound by the
permission bits like any user. Every child checks that it really cannot write into the package
before it imports it; if it can, the test is skipped.
"""

import ctypes
import json
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

import weightinit as W

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux permissions and prctl")

PACKAGE = os.path.dirname(W.__file__)
_PR_CAPBSET_DROP = 24
_CAPS = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER

_CHILD = r"""
import json, os, sys
pkg = sys.argv[1]
try:
    open(os.path.join(pkg, "weightinit", "write-probe"), "w").close()
except OSError:
    pass
else:
    print(json.dumps({"writable": True}))
    raise SystemExit(0)
try:
    import weightinit as W
except ImportError as e:
    print(json.dumps({"writable": False, "import_error": str(e)}))
    raise SystemExit(0)
from weightinit import _cache
import numba
w = W.he_normal((64, 48), seed=7)
print(json.dumps({"writable": False, "file": W.__file__, "fallback": _cache.FALLBACK_DIR,
                  "cache_dir": numba.config.CACHE_DIR, "values": w.ravel().tolist()}))
"""


# Resolved here, not in the forked child (which must not load libraries).
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None


def _drop_privileges():
    """Runs in the child between fork and exec: only plain system calls."""
    for cap in _CAPS:
        if _PRCTL(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def _make_read_only(path):
    for root, dirs, files in os.walk(path):
        for name in files:
            p = os.path.join(root, name)
            os.chmod(p, os.stat(p).st_mode & ~0o222)
        os.chmod(root, os.stat(root).st_mode & ~0o222)


def _make_writable(path):
    for root, dirs, files in os.walk(path):
        os.chmod(root, os.stat(root).st_mode | stat.S_IWUSR)
        for name in files:
            p = os.path.join(root, name)
            os.chmod(p, os.stat(p).st_mode | stat.S_IWUSR)


@pytest.fixture
def read_only(tmp_path):
    """(package folder on PYTHONPATH, read-only home, writable temporary dir), all made read-only
    where stated and made writable again afterwards so they can be removed."""
    pkg, home, tmp = tmp_path / "site", tmp_path / "home", tmp_path / "tmp"
    shutil.copytree(PACKAGE, pkg / "weightinit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc", "*.pyc"))
    home.mkdir()
    tmp.mkdir()
    _make_read_only(pkg)
    _make_read_only(home)
    yield pkg, home, tmp
    _make_writable(pkg)
    _make_writable(home)


def _run(pkg, home, tmp, extra=""):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NUMBA_") and k not in ("XDG_CACHE_HOME", "PYTHONPATH")}
    env.update(PYTHONPATH=str(pkg), HOME=str(home), TMPDIR=str(tmp), NUMBA_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-c", extra + _CHILD, str(pkg)], env=env, cwd=str(tmp),
                          capture_output=True, text=True, timeout=300,
                          preexec_fn=_drop_privileges if os.geteuid() == 0 else None)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    if info["writable"]:
        pytest.skip("could not make a folder read-only for the child process")
    return info, proc.stderr


def _expected():
    return W.he_normal((64, 48), seed=7).ravel()


def _check_values(info, pkg):
    assert info["file"] == str(pkg / "weightinit" / "__init__.py")  # the read-only copy
    np.testing.assert_array_equal(np.array(info["values"], np.float32), _expected())


def test_read_only_package_with_writable_home_uses_the_user_cache(read_only):
    pkg, home, tmp = read_only
    _make_writable(home)
    info, err = _run(pkg, home, tmp)
    _check_values(info, pkg)
    assert info["fallback"] is None  # Numba found its own cache: nothing was changed
    cached = [f for _, _, files in os.walk(home / ".cache" / "numba") for f in files]
    assert any(f.endswith(".nbi") for f in cached), cached
    assert not any(p.name.startswith("weightinit-numba-cache") for p in tmp.iterdir())


def test_read_only_package_and_home_fall_back_to_a_private_temporary_cache(read_only):
    pkg, home, tmp = read_only
    info, err = _run(pkg, home, tmp)
    _check_values(info, pkg)
    private = tmp / f"weightinit-numba-cache-{os.getuid()}"
    assert info["fallback"] == info["cache_dir"] == str(private)
    assert stat.S_IMODE(private.stat().st_mode) & 0o077 == 0  # closed to other users
    cached = [f for _, _, files in os.walk(private) for f in files]
    assert any(f.endswith(".nbi") for f in cached), cached  # kept for the next process
    assert not (home / ".cache").exists()


def test_a_foreign_private_cache_path_is_not_used(read_only):
    # Something else (here a plain file; in practice another user's folder) holds the private
    # name: a fresh temporary folder is used instead and removed when the process exits.
    pkg, home, tmp = read_only
    blocker = tmp / f"weightinit-numba-cache-{os.getuid()}"
    blocker.write_text("not a directory")
    info, err = _run(pkg, home, tmp)
    _check_values(info, pkg)
    assert info["fallback"] not in (None, str(blocker))
    assert os.path.dirname(info["fallback"]) == str(tmp)
    assert not os.path.exists(info["fallback"])  # removed at exit
    assert sorted(p.name for p in tmp.iterdir()) == [blocker.name]


def test_nothing_writable_is_a_clear_import_error(read_only):
    pkg, home, tmp = read_only
    _make_read_only(tmp)
    try:
        # tempfile.tempdir set: the temporary directory is taken as given (read-only here)
        # instead of searched for among /tmp, /var/tmp and the working directory.
        extra = f"import tempfile; tempfile.tempdir = {str(tmp)!r}\n"
        info, err = _run(pkg, home, tmp, extra=extra)
    finally:
        _make_writable(tmp)
    assert "cannot import its Numba kernels" in info["import_error"]
    assert "NUMBA_CACHE_DIR" in info["import_error"]
