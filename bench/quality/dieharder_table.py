"""A dieharder report as a markdown table, with the re-runs of its WEAK/FAILED results.

    python bench/quality/dieharder_table.py REPORT [RERUNS]

REPORT is the output of ``dieharder -a`` (default table format); RERUNS the file
``run_batteries.sh`` writes beside it: for each re-examined result a comment line
``# <test> ntup=<n>, <how>`` followed by dieharder's result row(s).
"""

import sys
from collections import Counter


def rows(lines):
    """dieharder result rows: (name, ntup, tsamples, psamples, p-value text, assessment)."""
    out = []
    for line in lines:
        cells = [c.strip() for c in line.split("|")]
        if len(cells) == 6 and not line.lstrip().startswith("#") and cells[1].isdigit():
            out.append(tuple(cells))
    return out


def reruns(path):
    """{(name, ntup): ["p (assessment), how", ...]} from a re-run file."""
    found = {}
    if not path:
        return found
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        return found
    how = None
    for line in lines:
        if line.startswith("# "):
            how = line[2:].split(", ", 1)[1]
            continue
        for name, ntup, _, psamples, p, verdict in rows([line]):
            found.setdefault((name, ntup), []).append(f"{p} {verdict} ({how}, {psamples} p-samples)")
    return found


def main(argv):
    if not argv or len(argv) > 2:
        sys.exit(__doc__)
    results = rows(open(argv[0]).read().splitlines())
    again = reruns(argv[1] if len(argv) > 1 else None)
    counts = Counter(r[5] for r in results)
    print(f"{len(results)} results: {counts['PASSED']} PASSED, {counts['WEAK']} WEAK, "
          f"{counts['FAILED']} FAILED\n")
    print("| # | test | ntup | tsamples | psamples | p-value | assessment | re-run |")
    print("|---:|---|---:|---:|---:|---:|---|---|")
    for i, (name, ntup, ts, ps, p, verdict) in enumerate(results, 1):
        note = "; ".join(again.get((name, ntup), [])) if verdict != "PASSED" else ""
        print(f"| {i} | {name} | {ntup} | {ts} | {ps} | {p} | {verdict} | {note} |")


if __name__ == "__main__":
    main(sys.argv[1:])
