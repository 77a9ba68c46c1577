"""``weightinit describe``: list the schemes with their formulas, or describe one for a shape."""

import json
import math

from .. import initializers as _init
from .common import scheme_options


def add_parser(sub):
    d = sub.add_parser("describe", help="list schemes with formulas, or describe one for a shape")
    d.add_argument("scheme", nargs="?", help="scheme name (see `weightinit describe`)")
    d.add_argument("--shape", type=int, nargs="+", help="weight shape, e.g. --shape 512 256")
    scheme_options(d)
    d.add_argument("--json", action="store_true", help="print JSON instead of text")
    d.set_defaults(run=run)


def run(args, stdout):
    if args.scheme is None:
        width = max(map(len, _init.REGISTRY))
        for name in _init.schemes():
            print(f"{name:<{width}}  {_init.FORMULAS[name]}", file=stdout)
        aliases = ", ".join(f"{a} = {t}" for a, t in _init.ALIASES.items())
        print(f"\naliases: {aliases}", file=stdout)
        return 0
    if not args.shape:
        raise ValueError("`--shape` is required to describe a scheme, e.g. --shape 512 256")
    info = _init.describe(tuple(args.shape), args.scheme, layout=args.layout, **dict(args.param))
    if args.json:
        def plain(v):  # JSON has no inf: an unbounded normal's bound is written as null
            if isinstance(v, tuple):
                return list(v)
            return None if isinstance(v, float) and not math.isfinite(v) else v

        print(json.dumps({k: plain(v) for k, v in info.items()}), file=stdout)
    else:
        for k, v in info.items():
            print(f"{k:>12}: {v:.6g}" if isinstance(v, float) else f"{k:>12}: {v}", file=stdout)
    return 0
