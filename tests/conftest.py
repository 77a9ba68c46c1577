"""Shared fixtures and helpers for the weightinit test suite.

Expected values in these tests never come from the code under test alone: Philox words are
checked against the Random123 known-answer vectors (test_philox.py) before they are used here to
rebuild values independently of the fill kernels.
"""

import io
import os

import numpy as np
import pytest

from weightinit import random as _random
from weightinit.random import philox4x32

#: The thresholds the package ships (before the autouse fixture below pins them).
SHIPPED_PARALLEL_FROM = dict(_random.PARALLEL_FROM)

#: Distribution codes in the counter's last word (``stream << 2 | kind``), as documented in
#: weightinit/random.py.
KIND = {"uniform": 0, "normal": 1, "truncated_normal": 2}


def slow_scale():
    """The multiplier for slow-test sample sizes, from WEIGHTINIT_SLOW_SCALE (default 1.0)."""
    text = os.environ.get("WEIGHTINIT_SLOW_SCALE", "1.0")
    try:
        scale = float(text)
    except ValueError:
        raise pytest.UsageError(f"WEIGHTINIT_SLOW_SCALE must be a number, got {text!r}") from None
    if not (scale > 0 and np.isfinite(scale)):
        raise pytest.UsageError(f"WEIGHTINIT_SLOW_SCALE must be positive and finite, got {text!r}")
    return scale


def slow_sample_size(base=10**8, minimum=10**5):
    """``base`` samples scaled by WEIGHTINIT_SLOW_SCALE, never fewer than ``minimum``."""
    return max(minimum, int(round(base * slow_scale())))


@pytest.fixture(autouse=True)
def parallel_from_2_16(monkeypatch):
    """Every test runs with the parallel fill build from 2**16 values for every distribution
    and dtype, the size the tests' "parallel" cases are written for. The shipped thresholds
    (``weightinit.random.PARALLEL_FROM``, up to 2**20) only decide speed; values never depend
    on the build, and ``test_random.py`` checks the shipped table itself."""
    from weightinit import random as R

    monkeypatch.setattr(R, "PARALLEL_FROM", {k: 1 << 16 for k in R.PARALLEL_FROM})


@pytest.fixture
def slow_size():
    """Function ``n(base=10**8)``: the slow-test sample size for this run."""
    return slow_sample_size


def philox_block_words(seed, kind, blocks, *, draw=0, stream=0):
    """Philox4x32-10 output words for the given block indices, as uint64 array of shape (n, 4).

    The counter is ``(block_lo, block_hi, draw, stream << 2 | kind)`` and the key is
    ``(seed & 0xffffffff, seed >> 32)`` (weightinit/random.py module docstring).
    """
    b = np.asarray(blocks, dtype=np.uint64).reshape(-1)
    ctr = np.empty((b.size, 4), dtype=np.uint32)
    ctr[:, 0] = b & np.uint64(0xFFFFFFFF)
    ctr[:, 1] = b >> np.uint64(32)
    ctr[:, 2] = draw
    ctr[:, 3] = (stream << 2) | (KIND[kind] if isinstance(kind, str) else int(kind))
    key = np.empty((b.size, 2), dtype=np.uint32)
    key[:, 0] = seed & 0xFFFFFFFF
    key[:, 1] = seed >> 32
    return philox4x32(ctr, key).astype(np.uint64)


@pytest.fixture
def words():
    """Function ``words(seed, kind, blocks, draw=0, stream=0)``: see :func:`philox_block_words`."""
    return philox_block_words


#: Elements one Philox block yields for the uniform distribution (weightinit/kernels/fill.py).
UNIFORM_PER_BLOCK = {np.dtype(np.float32): 5, np.dtype(np.float64): 2}


def uniform_from_words(w, dtype):
    """U[0, 1) values from Philox words (an (n, 4) array, one row per block), per the recipes
    in weightinit/kernels/fill.py, in element order.

    float32: five 24-bit values per block: ``w[j] >> 8`` for j = 0..3, then the low bytes
    ``(w0 & 255) << 16 | (w1 & 255) << 8 | (w2 & 255)``, times ``2**-24``. float64: two words
    (hi, lo) per element, 53 bits = ``(hi >> 5) * 2**26 + (lo >> 6)``, times ``2**-53``.
    """
    w = np.asarray(w, dtype=np.uint64).reshape(-1, 4)
    if np.dtype(dtype) == np.float32:
        b = np.uint64(0xFF)
        low = ((w[:, 0] & b) << np.uint64(16)) | ((w[:, 1] & b) << np.uint64(8)) | (w[:, 2] & b)
        k = np.concatenate([w >> np.uint64(8), low[:, None]], axis=1)
        return k.astype(np.float64).reshape(-1) * 2.0**-24
    hi, lo = w[:, 0::2].reshape(-1), w[:, 1::2].reshape(-1)
    k = (hi >> np.uint64(5)) * np.uint64(1 << 26) + (lo >> np.uint64(6))
    return k.astype(np.float64) * 2.0**-53


def uniform_reference(seed, n, dtype, *, offset=0, draw=0, stream=0):
    """Elements ``offset .. offset + n - 1`` of a U[0, 1) draw, rebuilt from Philox words."""
    per = UNIFORM_PER_BLOCK[np.dtype(dtype)]
    first, stop = offset // per, -(-(offset + n) // per)
    blocks = np.arange(stop - first, dtype=np.uint64) + np.uint64(first)
    w = philox_block_words(seed, "uniform", blocks, draw=draw, stream=stream)
    return uniform_from_words(w, dtype)[offset - first * per:][:n].astype(dtype)


@pytest.fixture
def uniform_ref():
    """Function ``uniform_ref(words, dtype)``: see :func:`uniform_from_words`."""
    return uniform_from_words


@pytest.fixture
def uniform_values():
    """Function ``uniform_values(seed, n, dtype, offset=0, draw=0, stream=0)``: see
    :func:`uniform_reference`."""
    return uniform_reference


def run_cli(argv):
    """(exit code, stdout) of ``weightinit.cli.main``; argparse errors (SystemExit) count as
    their code."""
    from weightinit import cli

    out = io.StringIO()
    try:
        code = cli.main(argv, stdout=out)
    except SystemExit as e:
        code = e.code
    return code, out.getvalue()
