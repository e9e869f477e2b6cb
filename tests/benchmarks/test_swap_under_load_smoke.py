"""The swap-under-load benchmark runs end to end with tiny numbers, for every agent configuration.

No timing is asserted: the targets are measured by `make bench`, never by tests (DESIGN.md section 5).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import swap_under_load
from benchmarks.markdown import HEADER

PHASES = {"before", "during", "between", "after", "steady", "all"}


@pytest.mark.slow
def test_tiny_run_swaps_every_configuration_without_failures_and_writes_its_section(tmp_path: Path) -> None:
    out, markdown = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    argv = ["--swaps", "2", "--steady-seconds", "0.5", "--gap-seconds", "0.2", "--rate", "40", "--clients", "2"]
    argv += ["--out", str(out), "--write-markdown", str(markdown)]

    assert swap_under_load.main(argv) == 0

    results = json.loads((out / "swap_under_load.json").read_text())
    assert "benchmarks.swap_under_load --swaps 2" in results["command"]
    assert list(results["configs"]) == ["before", "after", "isolated"]
    for key, config in results["configs"].items():
        assert config["phases"].keys() >= PHASES, key
        assert config["phases"]["all"]["failed"] == 0 and config["failed_samples"] == [], key
        assert config["phases"]["during"]["requests"] + config["phases"]["steady"]["requests"] == len(
            config["samples"]["due_s"]
        )
        assert [swap["to_version"] for swap in config["swaps"]] == [2, 3]
        assert [step["step"] for step in config["steps"]] == ["load", "health_check", "switch", "unload_old"]
        assert all(code == 0 for code in config["agent_exit_codes"]), key  # SIGTERM stopped each agent
    # The swaps really happened: the swapped agent ends with version 3 only; the isolated one's traffic
    # agent still serves version 1, untouched.
    assert results["configs"]["after"]["models_loaded_at_end"] == [["img-classification-3"]]
    assert results["configs"]["isolated"]["models_loaded_at_end"] == [
        ["img-classification-1"],
        ["img-classification-3"],
    ]
    assert results["configs"]["before"]["env"]["EDGESIM_AGENT_GC_FREEZE"] == "false"
    assert results["targets"][0]["met"] is True
    assert results["plot"]["path"] or results["plot"]["reason"]

    text = markdown.read_text()
    assert text.startswith(HEADER)
    assert "<!-- section:swap-under-load -->" in text and "## Swap under load (issue 8)" in text
    assert results["command"] in text and "`isolated`" in text


def test_unknown_configuration_is_refused_with_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        swap_under_load.parse_args(["--configs", "after,fastest"])
    assert exited.value.code == 2
    assert "choose from before, after, isolated" in capsys.readouterr().err
