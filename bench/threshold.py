"""Where the parallel fill build starts to beat the serial one, per distribution and dtype: the
break-even points behind ``weightinit.random``'s thresholds (docs/performance.md section 6).

For n = 2**13 .. 2**21 values it times the serial and the parallel build alternately on the same
preallocated array (best of ``REPS`` calls each, several rounds) and prints the speed-up of the
parallel build and the break-even: the smallest n from which the parallel build is at least as
fast at every larger n measured. Run: ``python bench/threshold.py [reps]``.
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import peers  # noqa: E402

SIZES = [1 << k for k in range(13, 22)]
REPS = 30


def best(fn, reps):
    t = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t


def speedups(dist, dtype, reps):
    out = []
    for n in SIZES:
        a = np.empty(n, dtype)
        run = peers._weightinit(dist, a)
        times = {"serial": float("inf"), "parallel": float("inf")}
        for _ in range(3):  # alternate the builds so that drifting load hits both alike
            for build in times:
                with peers.forced_build(build):
                    run()
                    times[build] = min(times[build], best(run, reps))
        out.append(times["serial"] / times["parallel"])
    return out


def break_even(ups):
    for i in range(len(ups)):
        if all(u >= 1.0 for u in ups[i:]):
            return SIZES[i]
    return None


def main(reps=REPS):
    model, flags = peers.cpu()
    print(f"CPU: {model}; SIMD: {', '.join(flags)}\n")
    print("| distribution | dtype | " + " | ".join(f"2^{n.bit_length() - 1}" for n in SIZES)
          + " | break-even |")
    print("|---|---|" + "---|" * (len(SIZES) + 1))
    for dtype in ("float32", "float64"):
        for dist in peers.DISTS:
            ups = speedups(dist, dtype, reps)
            be = break_even(ups)
            print(f"| {dist} | {dtype} | " + " | ".join(f"{u:.2f}" for u in ups)
                  + f" | {'2^%d' % (be.bit_length() - 1) if be else '> 2^21'} |", flush=True)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
