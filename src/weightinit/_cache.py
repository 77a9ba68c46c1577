"""Numba's on-disk cache when the package is installed in a read-only location.

Every kernel is compiled with ``cache=True``. Numba chooses a cache directory when a kernel is
*decorated*, i.e. when its module is imported: ``NUMBA_CACHE_DIR`` if set and writable, else the
``__pycache__`` folder beside the kernel's source, else the user-wide cache
(``$XDG_CACHE_HOME/numba`` or ``~/.cache/numba``). If none of them is writable, decorating raises
``RuntimeError: cannot cache function ...: no locator available``, so ``import weightinit`` would
fail for a read-only install (a system ``site-packages``, a container image) run by a user
without a writable home directory.

:func:`configure` runs in :mod:`weightinit.kernels` before any kernel module is imported. It asks
Numba itself (its ``FunctionCache``, the object a ``cache=True`` decoration builds) whether a
cache can be located for a function in the kernels' directory. Only if not, it sets
``numba.config.CACHE_DIR`` to a private per-user directory in the system temporary directory
(``weightinit-numba-cache-<uid>``: created with mode 0700 and used only if it is a real directory
owned by this user and closed to others, since Numba's cache files are pickles), or, failing
that, to a fresh temporary directory removed at exit. The environment and every other Numba
setting are left alone.
"""

import atexit
import os
import shutil
import stat
import tempfile

import numba

#: The directory :func:`configure` chose for Numba's cache, or None if Numba found its own.
FALLBACK_DIR = None


def _locatable(probe):
    """True if Numba can locate a writable cache for ``probe`` (a function beside the kernels)."""
    from numba.core.caching import FunctionCache

    try:
        FunctionCache(probe)
    except RuntimeError:  # "cannot cache function ...: no locator available for file ..."
        return False
    return True


def _private_dir():
    """``<tmp>/weightinit-numba-cache-<uid>`` if it is (or can be made) a directory that only
    this user can write; otherwise None."""
    uid = os.getuid() if hasattr(os, "getuid") else None
    name = f"weightinit-numba-cache-{'user' if uid is None else uid}"
    path = os.path.join(tempfile.gettempdir(), name)
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or (st.st_mode & 0o022):
        return None
    if uid is not None and st.st_uid != uid:
        return None
    return path


def _fresh_dir():
    path = tempfile.mkdtemp(prefix="weightinit-numba-cache-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def configure(probe):
    """Make sure the kernels can be decorated with ``cache=True``; return the directory set, if any.

    ``probe`` is any plain function defined in the kernels' package (its source file locates
    the cache exactly as the kernels' own files do).
    """
    global FALLBACK_DIR
    try:
        if _locatable(probe):
            return None
    except ImportError:  # a Numba without this module: leave caching to Numba
        return None
    previous = numba.config.CACHE_DIR
    for choose in (_private_dir, _fresh_dir):
        try:
            path = choose()
        except OSError:
            path = None
        if path is None:
            continue
        numba.config.CACHE_DIR = path
        if _locatable(probe):
            FALLBACK_DIR = path
            return path
    numba.config.CACHE_DIR = previous
    raise ImportError(
        "weightinit cannot import its Numba kernels: they are compiled with cache=True and no "
        "directory for Numba's cache is writable (NUMBA_CACHE_DIR, the package's __pycache__, "
        "the user cache directory and the temporary directory were tried). Set NUMBA_CACHE_DIR "
        "to a writable directory.")
