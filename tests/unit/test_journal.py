"""The OTA journal: the job in progress and the finished ones survive a restart; a bad file is set aside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from system.edge.journal import SCHEMA, Journal
from system.edge.ota_machine import JobOffer, JobState, Outcome, Policy, Serving, Step, advance, begin
from system.edge.versions import Version

POLICY = Policy(frozenset({"img-classification", "unet"}), Version.parse("1.0"))


def offer(job_id: str = "ota-unet-2", execution_number: int = 1, version: str = "2") -> JobOffer:
    document = {
        "type": "new_model",
        "model_name": "unet",
        "model_version": version,
        "model_package_bucket": "edgesim-bucket",
        "model_package_key": f"models/unet-{version}.tar.gz",
    }
    return JobOffer(job_id, execution_number, "IN_PROGRESS", document)


def started(job_id: str = "ota-unet-2", execution_number: int = 1) -> JobState:
    state = begin(offer(job_id, execution_number), {"unet": Serving("1", "unet-1")}, POLICY, now=100.0)
    assert state.step is Step.DOWNLOAD
    return state


def run_to(state: JobState, step: Step) -> JobState:
    """Advance through successful steps until `state.step` is `step`."""
    while state.step is not step:
        state = advance(state, True, f"{state.step} ok", now=state.started_at + len(state.history))
    return state


def finished(job_id: str = "ota-unet-2", execution_number: int = 1) -> JobState:
    return run_to(started(job_id, execution_number), Step.DONE)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "ota" / "journal.json"


def test_a_new_journal_is_empty_and_writes_nothing(path: Path) -> None:
    journal = Journal(path)
    assert journal.current is None and journal.finished() == []
    assert not path.exists()


def test_the_current_job_survives_a_restart_with_its_whole_state(path: Path) -> None:
    state = run_to(started(), Step.LOAD)
    Journal(path).save(state)
    reopened = Journal(path).current
    assert reopened == state
    assert reopened is not None and reopened.previous == Serving("1", "unet-1")
    assert [record.step for record in reopened.history] == ["accepted", "download", "verify", "extract"]


def test_each_save_replaces_the_current_state(path: Path) -> None:
    journal = Journal(path)
    state = started()
    journal.save(state)
    journal.save(advance(state, True, "downloaded", now=101.0))
    reopened = Journal(path).current
    assert reopened is not None and reopened.step is Step.VERIFY


def test_a_done_job_moves_to_finished_and_clears_current(path: Path) -> None:
    journal = Journal(path)
    journal.save(run_to(started(), Step.REPORT))
    done = finished()
    journal.save(done)
    assert journal.current is None and journal.finished() == [done]
    reopened = Journal(path)
    assert reopened.current is None and reopened.finished() == [done]
    assert reopened.finished()[0].outcome is Outcome.SUCCEEDED


def test_a_rejected_job_is_journaled_as_finished_too(path: Path) -> None:
    rejected = begin(offer(version="1"), {"unet": Serving("1", "unet-1")}, POLICY, now=100.0)
    assert rejected.outcome is Outcome.REJECTED
    journal = Journal(path)
    journal.save(rejected)
    journal.save(advance(rejected, True, "reported", now=101.0))
    [done] = Journal(path).finished()
    assert done.outcome is Outcome.REJECTED and "not newer" in done.reason


def test_finished_jobs_are_bounded_by_keep_oldest_dropped(path: Path) -> None:
    journal = Journal(path, keep=3)
    for number in range(1, 6):
        journal.save(finished(f"job-{number}"))
    names = ["job-3", "job-4", "job-5"]
    assert [s.job_id for s in journal.finished()] == names
    assert [s.job_id for s in Journal(path, keep=3).finished()] == names


def test_a_smaller_keep_trims_the_finished_jobs_on_load(path: Path) -> None:
    journal = Journal(path)
    for number in range(1, 6):
        journal.save(finished(f"job-{number}"))
    assert [s.job_id for s in Journal(path, keep=2).finished()] == ["job-4", "job-5"]


def test_a_job_finished_twice_is_kept_once_as_the_latest(path: Path) -> None:
    journal = Journal(path)
    journal.save(finished("job-1"))
    journal.save(finished("job-2"))
    again = finished("job-1")
    journal.save(again)
    assert [s.job_id for s in journal.finished()] == ["job-2", "job-1"]


def test_find_finished_matches_job_id_and_execution_number(path: Path) -> None:
    journal = Journal(path)
    first, second = finished("job-1", 1), finished("job-1", 2)
    journal.save(first)
    journal.save(second)
    reopened = Journal(path)
    assert reopened.find_finished("job-1", 1) == first
    assert reopened.find_finished("job-1", 2) == second
    assert reopened.find_finished("job-1", 3) is None
    assert reopened.find_finished("job-2", 1) is None


def test_a_job_in_progress_is_not_found_among_the_finished(path: Path) -> None:
    journal = Journal(path)
    journal.save(started("job-1"))
    assert journal.find_finished("job-1", 1) is None


def test_finished_returns_a_copy(path: Path) -> None:
    journal = Journal(path)
    journal.save(finished())
    journal.finished().clear()
    assert len(journal.finished()) == 1


def test_the_file_is_the_documented_schema(path: Path) -> None:
    Journal(path).save(started())
    raw = json.loads(path.read_text())
    assert raw["schema"] == SCHEMA and raw["finished"] == [] and raw["current"]["step"] == "download"
    assert sorted(p.name for p in path.parent.iterdir()) == ["journal.json"]  # no temp file left


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "",
        "[]",
        '"a string"',
        json.dumps({"schema": "edgesim.ota-journal/0", "current": None, "finished": []}),
        json.dumps({"current": None, "finished": []}),
        json.dumps({"schema": SCHEMA, "current": {"job_id": "job-1"}, "finished": []}),
        json.dumps({"schema": SCHEMA, "current": None, "finished": [{"step": "nowhere"}]}),
    ],
    ids=[
        "bad-json",
        "empty",
        "array",
        "string",
        "old-schema",
        "no-schema",
        "incomplete-current",
        "bad-finished",
    ],
)
def test_an_unreadable_journal_is_set_aside_and_the_journal_starts_empty(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(content)
    journal = Journal(path)
    assert journal.current is None and journal.finished() == []
    assert not path.exists()
    assert (path.parent / "journal.json.unreadable").read_text() == content


def test_after_setting_a_file_aside_the_journal_writes_a_fresh_one(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    journal = Journal(path)
    state = started()
    journal.save(state)
    assert Journal(path).current == state
    assert (path.parent / "journal.json.unreadable").read_text() == "{not json"
