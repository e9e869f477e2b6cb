"""Coverage-guided fuzzing campaign: every atheris target (tests/reliability/atheris_targets.py) in a
process of its own, bounded in runs and seconds, counted.

Each target starts from its seed corpus (valid inputs) in a temporary folder and runs until
`--runs` inputs or `--seconds`, whichever comes first. A crash (an escaped exception or a failed
property) leaves its input as `crash-<sha1>` in `--crashes` and makes the campaign exit 1 with the
target's traceback; reproduce it with
`python -m tests.reliability.atheris_targets <target> <crash file>`. `--results FILE` writes the
counts for RELIABILITY.md (`make reliability` does).

    python -m benchmarks.atheris_campaign [--runs 20000] [--seconds 60] [--targets archive,image]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("archive", "image", "job_document", "manifest", "jobs_payload")
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_EXECUTED = re.compile(r"^#(\d+)\s", re.MULTILINE)


@dataclass(frozen=True)
class TargetResult:
    target: str
    runs: int
    seconds: float
    crashed: bool
    crash_files: list[str]
    tail: str  # the last lines of the fuzzer's output (the traceback, on a crash)


def available() -> bool:
    """Whether atheris is installed (Linux x86_64 wheels only: the dev extra installs it there)."""
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def run_target(target: str, *, runs: int, seconds: int, crashes: Path) -> TargetResult:
    """One target in its own process (libFuzzer ends the process it runs in)."""
    crashes.mkdir(parents=True, exist_ok=True)
    before = set(crashes.iterdir())
    with tempfile.TemporaryDirectory(prefix=f"es-atheris-{target}-") as scratch:
        corpus, arena = Path(scratch) / "corpus", Path(scratch) / "arena"
        corpus.mkdir()  # empty: the target writes its seeds into it
        arena.mkdir()
        command = [sys.executable, "-m", "tests.reliability.atheris_targets", target, f"-runs={runs}",
                   f"-max_total_time={seconds}", "-timeout=20", "-rss_limit_mb=4096", "-print_final_stats=0",
                   f"-artifact_prefix={crashes}/", str(corpus)]  # fmt: skip
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path, "EDGESIM_ATHERIS_ARENA": str(arena)}
        started = time.monotonic()
        finished = subprocess.run(
            command, cwd=crashes, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False
        )
        elapsed = time.monotonic() - started
    output = finished.stdout + finished.stderr
    done = _DONE.search(output)
    executed = [int(n) for n in _EXECUTED.findall(output)]
    count = int(done.group(1)) if done else max(executed, default=0)
    new_crashes = sorted(str(path) for path in set(crashes.iterdir()) - before)
    crashed = finished.returncode != 0 or bool(new_crashes)
    tail = "\n".join(line for line in output.splitlines() if not line.startswith("INFO: Instrumenting"))[-3000:]
    return TargetResult(target, count, round(elapsed, 1), crashed, new_crashes, tail if crashed else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20000, help="inputs per target (default 20000)")
    parser.add_argument("--seconds", type=int, default=60, help="time limit per target (default 60)")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated (default {','.join(TARGETS)})")
    parser.add_argument("--crashes", type=Path, default=Path("out/atheris"), help="where crash inputs go")
    parser.add_argument("--results", type=Path, help="write the counts here as JSON (for RELIABILITY.md)")
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        parser.error(f"unknown targets {unknown}; known: {', '.join(TARGETS)}")
    if not available():
        print("atheris_campaign: atheris is not installed (Linux x86_64 only); nothing run", file=sys.stderr)
        return 2
    results = []
    for target in targets:
        result = run_target(target, runs=args.runs, seconds=args.seconds, crashes=args.crashes.resolve())
        verdict = f"CRASHED: {', '.join(result.crash_files) or 'exit status'}" if result.crashed else "no crash"
        print(f"atheris {target}: {result.runs} runs in {result.seconds} s, {verdict}", flush=True)
        if result.crashed:
            print(result.tail, file=sys.stderr)
        results.append(result)
    if args.results is not None:
        args.results.parent.mkdir(parents=True, exist_ok=True)
        summary = {"runs": sum(r.runs for r in results), "targets": [asdict(r) for r in results]}
        args.results.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if any(r.crashed for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
