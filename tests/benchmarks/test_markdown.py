"""BENCHMARKS.md sections: a benchmark rewrites its own section and leaves the rest alone."""

from __future__ import annotations

from pathlib import Path

from benchmarks.markdown import HEADER, replace_section, table, write_section


def test_write_section_creates_the_file_with_the_header(tmp_path: Path) -> None:
    target = tmp_path / "BENCHMARKS.md"
    write_section(target, "one", "## One\n\nfirst")
    assert target.read_text() == f"{HEADER}\n<!-- section:one -->\n## One\n\nfirst\n<!-- /section:one -->\n"


def test_rewriting_a_section_keeps_the_other_sections_and_hand_written_text(tmp_path: Path) -> None:
    target = tmp_path / "BENCHMARKS.md"
    write_section(target, "one", "## One\n\nfirst")
    write_section(target, "two", "## Two\n\nsecond")
    target.write_text(target.read_text() + "\nA note kept by hand.\n")

    write_section(target, "one", "## One\n\nrewritten")

    text = target.read_text()
    assert "rewritten" in text and "first" not in text
    assert text.index("## One") < text.index("## Two") < text.index("A note kept by hand.")
    assert text.count("<!-- section:one -->") == 1 and text.count("<!-- /section:one -->") == 1


def test_a_file_without_the_section_gets_it_appended() -> None:
    assert replace_section("# Mine\n", "k", "body") == "# Mine\n\n<!-- section:k -->\nbody\n<!-- /section:k -->\n"


def test_table_aligns_the_first_column_left_and_the_numbers_right() -> None:
    assert table(["a", "b"], [[1, 2]]) == "| a | b |\n|:---|---:|\n| 1 | 2 |"
