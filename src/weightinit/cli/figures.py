"""``weightinit figures``: regenerate the figures of the docs and their numbers.json.

The recipes (one per figure, grouped by the doc they feed) are in :mod:`weightinit.doc_figures`;
this module only runs them and writes the files."""

import json
import os
import time

from .. import __version__
from .. import doc_figures
from .common import Outputs, import_plotting, json_text, progress_option, want_progress


def add_parser(sub):
    f = sub.add_parser(
        "figures", help="regenerate the figures of docs/simulation.md, docs/frameworks.md and "
        "docs/recipes.md and their numbers.json",
        description="Run every simulation behind docs/simulation.md (and the LSUV figure of "
        "docs/frameworks.md, the recipe figures of docs/recipes.md) and write the figures and "
        "numbers.json (the key per-layer statistics and theory values quoted by the docs).")
    f.add_argument("--out", default=os.path.join("docs", "figures"),
                   help="output directory (created if missing; default docs/figures)")
    f.add_argument("--only", nargs="+", metavar="KEY", choices=[k for k, _ in doc_figures.FIGURES],
                   help="regenerate only these figures (keys of numbers.json: "
                   f"{', '.join(k for k, _ in doc_figures.FIGURES)}); the other entries of an "
                   "existing numbers.json are kept")
    progress_option(f)
    f.set_defaults(run=run)


def run(args, stdout):
    plotting = import_plotting()
    out = args.out
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out} exists and is not a directory.")
    os.makedirs(out, exist_ok=True)
    outputs = Outputs()
    sizes = dict(doc_figures.FIGURE_SIZES)
    ctx = doc_figures.FigureContext(out, plotting, outputs, want_progress(args), sizes)
    numbers = {"generated_by": f"weightinit {__version__}: weightinit figures",
               "notes": "Values rounded to 6 significant digits; null = NaN (undefined), "
               '"inf" = infinite. layers.<stat>[i] is layer i + 1. theory = mean-field '
               "prediction (SimulationResult.theory()) for the same run.",
               "seed": doc_figures.SEED, "sizes": dict(sizes), "figures": {}}
    figures = doc_figures.FIGURES
    if args.only:
        figures = [(k, b) for k, b in figures if k in args.only]
        old = os.path.join(out, "numbers.json")
        if os.path.exists(old):
            with open(old) as f:
                kept = json.load(f).get("figures", {})
            numbers["figures"] = {k: (kept.get(k) if k not in args.only else None)
                                  for k, _ in doc_figures.FIGURES if k in kept or k in args.only}
    t_all = time.perf_counter()
    try:
        for k, (key, build) in enumerate(figures, 1):
            t0 = time.perf_counter()
            entry = build(ctx)
            numbers["figures"][key] = entry
            print(f"[{k}/{len(figures)}] {key}: {', '.join(entry['files'])} "
                  f"({time.perf_counter() - t0:.1f} s)", file=stdout)
        outputs.text(json_text(numbers, indent=1), os.path.join(out, "numbers.json"))
        outputs.publish()
    finally:
        outputs.discard()
    print(f"wrote {len(outputs.published)} files to {out} in {time.perf_counter() - t_all:.0f} s",
          file=stdout)
    return 0
