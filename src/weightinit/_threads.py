"""Thread policy for the parallel kernels.

Numba's OpenMP layer keeps its worker threads spinning after a parallel region; between our
kernels and a BLAS call (orthogonal alternates them) those spinning threads starve BLAS's own
(a simulation layer once took three times as long). Unless the user chose a threading layer
(``NUMBA_THREADING_LAYER``), weightinit therefore selects Numba's ``workqueue`` layer, whose
workers sleep. That layer must not be entered from two threads at once, so every parallel
launch holds :data:`LOCK`. (The simulation runs its own team of threads with serial kernels; see
``simulation._Team``.)
"""

import os
import threading

import numba

LOCK = threading.RLock()


def configure():
    """Select the workqueue layer if nothing else was chosen and none has started yet."""
    if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = "workqueue"
