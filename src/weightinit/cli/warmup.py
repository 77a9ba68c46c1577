"""``weightinit warmup``: compile (and cache) every kernel, with the time of each part."""

from .. import _warmup as W
from .common import positive_int


def add_parser(sub):
    w = sub.add_parser(
        "warmup", help="compile (and cache) every kernel: generators and simulation",
        description="Compile every kernel for the given dtypes and activations into Numba's "
                    "on-disk cache (NUMBA_CACHE_DIR), so that later processes only load them. "
                    "Prints the seconds per part.")
    w.add_argument("--dtype", nargs="+", choices=W.DTYPES, default=list(W.DTYPES),
                   help="dtypes to compile for (default both)")
    w.add_argument("--activation", nargs="+", choices=W.ACTIVATIONS, default=list(W.ACTIVATIONS),
                   help="simulation activations to compile for (default all)")
    w.add_argument("--no-simulation", action="store_true",
                   help="only the generators (and, for float64, stream and lsuv)")
    w.add_argument("--jobs", "-j", type=positive_int, default=None,
                   help="processes compiling at once (default: one per usable core)")
    w.add_argument("--quiet", action="store_true", help="print nothing")
    w.set_defaults(run=run)


def run(args, stdout):
    def show(part, seconds):
        print(f"{part:<32} {seconds:7.2f} s", file=stdout, flush=True)

    times = W.warmup(args.dtype, () if args.no_simulation else args.activation,
                     progress=None if args.quiet else show, jobs=args.jobs)
    if not args.quiet:
        print(f"{'total':<32} {times['total']:7.2f} s", file=stdout)
    return 0
