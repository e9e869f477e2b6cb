"""p50/p95/p99 and requests/s per request type, from locust's `--csv` stats (the command) or `--json-file`.

locust's own final table shows the same numbers among a dozen columns; this is the short version
`make bench-locust` ends with. The percentiles are locust's (approximated: response times are rounded
into buckets, to the millisecond below 100 ms and to 10 ms below 1 s).

locust 2.47 rewrites `<prefix>_stats.csv` once a second (and flushes it every 5 s), and not once more
at exit: the file misses the run's last second (a 6 s run of 8 users lacked 10 % of its requests).
`--json-file PREFIX` is written at shutdown, after the users stopped, so `read_final_stats` (what
`benchmarks/locust_bench.py` reads) counts every request, as does the final table locust prints
when it is not given `--json-file` (it prints one or the other).

    python -m benchmarks.locust_summary benchmarks/results/locust_stats.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def request_count(path: Path, request_type: str, name: str) -> int | None:
    """The `Request Count` of one row of a stats CSV; None when the file or the row is missing."""
    try:
        rows = read_rows(path)
    except (OSError, ValueError):
        return None
    return next((int(row["Request Count"]) for row in rows if (row["Type"], row["Name"]) == (request_type, name)), None)


def first_failures(path: Path, limit: int = 3) -> list[str]:
    """The first errors of a `<prefix>_failures.csv` as `error (N times)`; [] when the file is missing."""
    try:
        with path.open(newline="") as failures:
            rows = list(csv.DictReader(failures))[:limit]
    except OSError:
        return []
    return [f"{row.get('Error', '?')[:300]} ({row.get('Occurrences', '?')} times)" for row in rows]


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


def response_time_percentile(response_times: dict[int, int], requests: int, fraction: float) -> int:
    """The bucket within which `fraction` of the requests finished: locust's calculate_response_time_percentile.

    Reimplemented rather than imported: importing locust monkey-patches the process with gevent.
    """
    below = int(requests * fraction)
    counted = 0
    for bucket in sorted(response_times, reverse=True):
        counted += response_times[bucket]
        if requests - counted <= below:
            return bucket
    return 0


def steady_rate(requests_per_second: dict[int, int]) -> float | None:
    """Mean requests per whole second, without the first and last seconds (partial); None under 3 s."""
    if not requests_per_second:
        return None
    first, last = min(requests_per_second), max(requests_per_second)
    full = [requests_per_second.get(second, 0) for second in range(first + 1, last)]
    return sum(full) / len(full) if full else None


def final_row(entry: dict[str, Any]) -> dict[str, Any]:
    """One entry of locust's `--json-file` (a serialised StatsEntry) as requests, failures, ms and rates."""
    requests = int(entry["num_requests"])
    timed = requests - int(entry.get("num_none_requests") or 0)
    times = {int(bucket): int(count) for bucket, count in entry["response_times"].items()}
    # locust's total_rps: from the entry's start (the stats reset) to its last request
    seconds = float(entry["last_request_timestamp"] or entry["start_time"]) - float(entry["start_time"])
    per_second = {int(second): int(count) for second, count in entry["num_reqs_per_sec"].items()}
    return {
        "type": entry["method"] or "",
        "name": entry["name"],
        "requests": requests,
        "failures": int(entry["num_failures"]),
        "p50_ms": response_time_percentile(times, timed, 0.50),
        "p95_ms": response_time_percentile(times, timed, 0.95),
        "p99_ms": response_time_percentile(times, timed, 0.99),
        "mean_ms": round(float(entry["total_response_time"]) / timed, 3) if timed else 0.0,
        "max_ms": round(float(entry["max_response_time"]), 3),
        "seconds": round(seconds, 3),
        "req_per_s": round(requests / seconds, 2) if seconds > 0 else 0.0,
        "steady_req_per_s": steady_rate(per_second),
    }


def read_final_stats(path: Path) -> list[dict[str, Any]]:
    """The rows of the `PREFIX.json` that `--json-file PREFIX` writes; ValueError if it is not one."""
    entries = json.loads(path.read_text())
    try:
        return [final_row(entry) for entry in entries]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a locust --json-file (missing {exc})") from exc


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
