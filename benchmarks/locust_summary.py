"""p50/p95/p99 and requests/s per request type, from the `<prefix>_stats.csv` locust writes with `--csv`.

locust's own final table shows the same numbers among a dozen columns; this is the short version
`make bench-locust` ends with. The percentiles are locust's (approximated: rounded into buckets).
locust rewrites the CSV every 2 s and not once more at exit, so it may miss the run's last second or
two; the final table locust prints counts everything.

    python -m benchmarks.locust_summary benchmarks/results/locust_stats.csv
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

COLUMNS = ("Type", "Name", "Request Count", "Failure Count", "50%", "95%", "99%", "Requests/s")
HEADER = ("type", "name", "requests", "failures", "p50 ms", "p95 ms", "p99 ms", "req/s")


def read_rows(path: Path) -> list[dict[str, str]]:
    """The stats rows (the `Aggregated` one last, as locust writes it); ValueError if a column is missing."""
    with path.open(newline="") as stats:
        rows = list(csv.DictReader(stats))
    missing = [c for c in COLUMNS if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"{path}: not a locust stats CSV (no column {missing[0]!r})")
    return rows


def render(rows: Sequence[dict[str, str]]) -> str:
    """A plain-text table, one line per request type and name."""
    cells = [HEADER] + [
        (row["Type"] or "", row["Name"], *(row[c] for c in COLUMNS[2:7]), f"{float(row['Requests/s']):.1f}")
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
    lines = [
        "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in cells
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.locust_summary", description=__doc__)
    parser.add_argument("stats_csv", type=Path, help="the _stats.csv of a locust run (--csv PREFIX)")
    args = parser.parse_args(argv)
    try:
        rows = read_rows(args.stats_csv)
    except (OSError, ValueError) as exc:
        print(f"locust_summary: {exc}", file=sys.stderr)
        return 1
    print(render(rows) if rows else f"{args.stats_csv}: no requests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
