"""``weightinit describe``: list the schemes with their formulas, or describe one for a shape."""

import json
import math

from .. import initializers as _init
from .. import recipes as _recipes
from .common import positive_int, scheme_options


def add_parser(sub):
    d = sub.add_parser("describe", help="list schemes with formulas, or describe one for a shape")
    d.add_argument("scheme", nargs="?", help="scheme name (see `weightinit describe`)")
    d.add_argument("--shape", type=int, nargs="+", help="weight shape, e.g. --shape 512 256")
    scheme_options(d)
    d.add_argument("--recipe", help="describe a recipe's rule for every role "
                   f"({', '.join(_recipes.recipes())}); recipe parameters with -p KEY=VALUE")
    d.add_argument("--layers", type=positive_int, help="number of blocks (with --recipe)")
    d.add_argument("--width", type=positive_int, help="model width d (with --recipe)")
    d.add_argument("--layer", type=int, default=0, help="block index for depth-dependent "
                   "rules (with --recipe; default 0)")
    d.add_argument("--json", action="store_true", help="print JSON instead of text")
    d.set_defaults(run=run)


def _run_recipe(args, stdout):
    if args.scheme is not None:
        raise ValueError("Give either a scheme or `--recipe`, not both.")
    if args.layers is None or args.width is None:
        raise ValueError("`--recipe` needs `--layers` and `--width`, e.g. --layers 12 --width 768")
    rows = _recipes.table(args.recipe, n_layers=args.layers, width=args.width, layer=args.layer,
                          **dict(args.param))
    if args.json:
        print(json.dumps({role: {"distribution": r.distribution, "std": r.std,
                                 "truncation_std": r.truncation, "value": r.value}
                          for role, r in rows.items()}), file=stdout)
        return 0
    print(f"recipe {args.recipe}: {args.layers} layers, width {args.width}, layer {args.layer}",
          file=stdout)
    for role, r in rows.items():
        if r.distribution in ("constant",):
            text = f"constant {r.value:g}"
        elif r.distribution in ("keep", "zero_init"):
            text = r.distribution
        else:
            cut = "untruncated" if r.truncation is None else f"truncated at {r.truncation:.4g} std"
            text = f"{r.distribution:<16} std {r.std:.6g}  {cut}"
        print(f"{role:>13}: {text}", file=stdout)
    return 0


def run(args, stdout):
    if getattr(args, "recipe", None) is not None:
        return _run_recipe(args, stdout)
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
