"""BENCHMARKS.md as a set of sections, each owned and rewritten by one benchmark script.

A section sits between `<!-- section:KEY -->` and `<!-- /section:KEY -->`. Writing a section
replaces only the text between its markers, appends it when the file lacks it, and creates the
file (with a short header) when there is none, so benchmarks can be added one at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HEADER = """# Benchmarks

Measured by `make bench` (each benchmark is a plain script under `benchmarks/`; its raw numbers go to
`benchmarks/results/`). Each section below is rewritten by its script: change the script, not the numbers.
"""


def _markers(key: str) -> tuple[str, str]:
    return f"<!-- section:{key} -->", f"<!-- /section:{key} -->"


def replace_section(text: str, key: str, body: str) -> str:
    """`text` with section `key` set to `body` (replaced in place, or appended at the end)."""
    begin, end = _markers(key)
    block = f"{begin}\n{body.strip()}\n{end}"
    start = text.find(begin)
    stop = text.find(end, start + len(begin)) if start >= 0 else -1
    if start >= 0 and stop >= 0:
        return text[:start] + block + text[stop + len(end) :]
    return f"{text.rstrip()}\n\n{block}\n"


def write_section(path: str | Path, key: str, body: str) -> None:
    """Set section `key` of the markdown file at `path`, creating the file if needed."""
    target = Path(path)
    text = target.read_text() if target.exists() else HEADER
    target.write_text(replace_section(text, key, body))


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; the first column is left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def publish(
    results: dict[str, Any],
    json_path: Path,
    *,
    markdown: Path | None,
    section: str,
    render: Callable[[dict[str, Any]], str],
) -> None:
    """The end of every benchmark: the JSON file, its BENCHMARKS.md section, the targets on stdout."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    results["json_path"] = str(json_path)
    json_path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {json_path}")
    if markdown is not None:
        write_section(markdown, section, render(results))
        print(f"markdown: section {section} of {markdown}")
    for target in results["targets"]:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
        print(f"target {target['target']} {target['limit']}: {target['measured']} -> {verdict}")
    print(f"done in {results['runtime_seconds']:.0f} s")
