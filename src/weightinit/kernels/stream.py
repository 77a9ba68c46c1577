"""Raw Philox output words, and the probability-integral transform of normals to words.

``words_*`` write the four 32-bit output words of consecutive Philox4x32-10 blocks in block
order: output element ``i`` is word ``(first + i) % 4`` of block ``blk0 + (first + i) // 4`` under
counter ``(block_lo, block_hi, s0, s1)`` and key ``(k0, k1)``, the same counters the fill kernels
use. They feed external statistical test batteries (``weightinit stream``) and
:func:`weightinit.random.words`. Kernels assume validated input and never raise.
"""

import math
import types as pytypes

import numpy as np
from numba import njit, prange

from .philox import MASK32, SHIFT32, U64, philox4x32_10

_JIT = dict(cache=True, nogil=True)
U32 = np.uint32
_FOUR = U64(4)
_THREE = U64(3)
_TWO32 = 4294967296.0
_TOP = 4294967295.0
_INV_SQRT2 = 0.7071067811865476


def _words_py(out, blk0, first, k0, k1, s0, s1):
    """Fill the 1-D uint32 ``out`` with the words from word ``first`` (0..3) of block ``blk0``.

    The whole blocks run through the (parallel) hot loop; the partial blocks at either end are
    computed whole and copied in part, so any start gives the same words.
    """
    n = U64(out.size)
    head = min((_FOUR - first) & _THREE, n)  # words taken from the partial first block
    nb = (n - head) // _FOUR
    b1 = blk0 + (U64(1) if first != U64(0) else U64(0))  # first whole block
    for b in prange(nb):
        blk = b1 + U64(b)
        w0, w1, w2, w3 = philox4x32_10(blk & MASK32, blk >> SHIFT32, s0, s1, k0, k1)
        j = head + U64(b) * _FOUR
        out[j] = U32(w0)
        out[j + U64(1)] = U32(w1)
        out[j + U64(2)] = U32(w2)
        out[j + U64(3)] = U32(w3)
    if head:  # words first..first + head - 1 of block blk0
        w = philox4x32_10(blk0 & MASK32, blk0 >> SHIFT32, s0, s1, k0, k1)
        for t in range(head):
            out[t] = U32(w[first + U64(t)])
    tail = n - head - nb * _FOUR  # leading words of the block after the whole ones
    if tail:
        blk = b1 + nb
        w = philox4x32_10(blk & MASK32, blk >> SHIFT32, s0, s1, k0, k1)
        j = head + nb * _FOUR
        for t in range(tail):
            out[j + U64(t)] = U32(w[t])


def _pit_py(z, out):
    """``out[i] = floor(2**32 * Phi(z[i]))`` (capped at 2**32 - 1), Phi the standard normal CDF.

    For exact N(0, 1) input the words are uniform on [0, 2**32) (probability-integral
    transform); float64 erfc is accurate to ~1e-16, far below the 2**-32 word width.
    """
    for i in prange(z.size):
        p = 0.5 * math.erfc(-z[i] * _INV_SQRT2)
        out[i] = U32(min(math.floor(p * _TWO32), _TOP))


def _copy(py, name):
    fn = pytypes.FunctionType(py.__code__, globals(), name)
    fn.__qualname__ = name
    fn.__doc__ = py.__doc__
    return fn


# One module-level copy per (function, parallel) with its own name, so each has its own on-disk
# cache entry (the same function compiled twice with different flags would share one).
words_serial = njit(**_JIT)(_copy(_words_py, "words_serial"))
words_parallel = njit(parallel=True, **_JIT)(_copy(_words_py, "words_parallel"))
pit_serial = njit(**_JIT)(_copy(_pit_py, "pit_serial"))
pit_parallel = njit(parallel=True, **_JIT)(_copy(_pit_py, "pit_parallel"))
