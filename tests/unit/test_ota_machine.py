"""The pure OTA state machine: every transition and failure branch, with no I/O."""

from __future__ import annotations

import pytest

from system.edge.ota_machine import (
    MAX_INTERRUPTIONS,
    JobOffer,
    JobState,
    Outcome,
    Policy,
    Serving,
    Step,
    advance,
    after_restart,
    begin,
    ended_in_cloud,
)
from system.edge.versions import Version

POLICY = Policy(frozenset({"img-classification", "unet"}), Version.parse("1.0"))
HAPPY_PATH = [
    Step.DOWNLOAD,
    Step.VERIFY,
    Step.EXTRACT,
    Step.LOAD,
    Step.HEALTH_CHECK,
    Step.SWITCH,
    Step.UNLOAD_OLD,
    Step.REPORT,
    Step.DONE,
]


def offer(version: object = "2", name: str = "unet", **extra: object) -> JobOffer:
    document = {
        "type": "new_model",
        "model_name": name,
        "model_version": version,
        "model_package_bucket": "edgesim-bucket",
        "model_package_key": f"models/{name}-{version}.tar.gz",
        **extra,
    }
    return JobOffer("job-1", 1, "IN_PROGRESS", document)


def started(version: object = "2", serving: dict[str, Serving] | None = None) -> JobState:
    state = begin(offer(version), serving or {}, POLICY, now=100.0)
    assert state.step is Step.DOWNLOAD and state.outcome is None
    return state


def test_first_deployment_walks_every_step_to_succeeded() -> None:
    state = started()
    seen = [state.step]
    while state.step is not Step.DONE:
        state = advance(state, True, f"{state.step} ok", now=101.0)
        seen.append(state.step)
    assert seen == HAPPY_PATH
    assert state.outcome is Outcome.SUCCEEDED and state.reason == "" and state.finished_at == 101.0
    assert state.identifier == "unet-2" and state.previous is None


def test_upgrade_records_the_previous_model() -> None:
    state = started("1.10", {"unet": Serving("1.9", "unet-1-9")})
    assert state.previous == Serving("1.9", "unet-1-9")
    assert state.identifier == "unet-1-10"


@pytest.mark.parametrize(
    ("version", "serving"),
    [("1", "1"), ("1.0", "1"), ("1.9", "1.10"), ("1.2.3", "1.10"), ("0.9", "1")],
)
def test_version_not_newer_is_rejected(version: str, serving: str) -> None:
    state = begin(offer(version), {"unet": Serving(serving, "unet-x")}, POLICY, now=1.0)
    assert (state.step, state.outcome) == (Step.REPORT, Outcome.REJECTED)
    assert "not newer" in state.reason and serving in state.reason


@pytest.mark.parametrize(
    ("document_change", "reason"),
    [
        ({"model_version": "v2"}, "cannot be ordered"),
        ({"model_version": None}, "model version"),
        ({"type": "firmware"}, "not supported"),
        ({"model_package_key": ""}, "model_package_key"),
        ({"model_package_bucket": "Bad_Bucket"}, "bucket"),
        ({"sha256": "abc"}, "sha256"),
    ],
)
def test_unusable_document_is_rejected_with_the_reason(document_change: dict[str, object], reason: str) -> None:
    job = offer()
    document = {**job.document, **document_change}
    state = begin(JobOffer(job.job_id, 1, "IN_PROGRESS", document), {}, POLICY, now=1.0)
    assert (state.step, state.outcome) == (Step.REPORT, Outcome.REJECTED)
    assert reason in state.reason


def test_unknown_model_is_rejected() -> None:
    state = begin(offer(name="yolo"), {}, POLICY, now=1.0)
    assert state.outcome is Outcome.REJECTED and "'yolo' is not served" in state.reason


def test_agent_too_old_is_rejected() -> None:
    state = begin(offer(min_agent_version="2.1"), {}, POLICY, now=1.0)
    assert state.outcome is Outcome.REJECTED and "2.1" in state.reason


def test_unsigned_package_is_rejected_when_signatures_are_required() -> None:
    policy = Policy(POLICY.supported_models, POLICY.agent_version, require_signature=True)
    state = begin(offer(), {}, policy, now=1.0)
    assert state.outcome is Outcome.REJECTED and "signed" in state.reason


def test_rejected_job_reports_then_is_done() -> None:
    state = begin(offer(name="yolo"), {}, POLICY, now=1.0)
    done = advance(state, True, "reported", now=2.0)
    assert done.step is Step.DONE and done.outcome is Outcome.REJECTED


@pytest.mark.parametrize(
    "failing", [Step.DOWNLOAD, Step.VERIFY, Step.EXTRACT, Step.LOAD, Step.HEALTH_CHECK, Step.SWITCH]
)
def test_failure_before_the_switch_rolls_back_then_fails(failing: Step) -> None:
    state = started()
    while state.step is not failing:
        state = advance(state, True, "", now=1.0)
    state = advance(state, False, "boom", now=2.0)
    assert (state.step, state.outcome) == (Step.ROLLBACK, Outcome.FAILED)
    assert state.reason.endswith(": boom")
    state = advance(state, True, "undone", now=3.0)
    assert (state.step, state.outcome, state.reason.endswith("boom")) == (Step.REPORT, Outcome.FAILED, True)
    assert advance(state, True, "", now=4.0).step is Step.DONE


def test_failed_rollback_is_part_of_the_reason() -> None:
    state = advance(started(), False, "no such key", now=1.0)
    state = advance(state, False, "agent gone", now=2.0)
    assert state.outcome is Outcome.FAILED and "rollback incomplete: agent gone" in state.reason


def test_unload_of_the_old_model_failing_still_succeeds_with_a_warning() -> None:
    state = started("2", {"unet": Serving("1", "unet-1")})
    while state.step is not Step.UNLOAD_OLD:
        state = advance(state, True, "", now=1.0)
    state = advance(state, False, "agent timeout", now=2.0)
    assert state.outcome is Outcome.SUCCEEDED and "agent timeout" in state.reason


def test_journal_round_trip_keeps_everything() -> None:
    state = advance(advance(started("2", {"unet": Serving("1", "unet-1")}), True, "x", 1.0), True, "y", 2.0)
    assert JobState.from_dict(state.to_dict()) == state


@pytest.mark.parametrize(
    ("crashed_in", "resumes_at"),
    [
        (Step.DOWNLOAD, Step.DOWNLOAD),
        (Step.VERIFY, Step.VERIFY),
        (Step.EXTRACT, Step.VERIFY),
        (Step.LOAD, Step.LOAD),
        (Step.HEALTH_CHECK, Step.LOAD),
        (Step.SWITCH, Step.LOAD),
        (Step.UNLOAD_OLD, Step.UNLOAD_OLD),
        (Step.REPORT, Step.REPORT),
    ],
)
def test_restart_resumes_at_a_safe_step(crashed_in: Step, resumes_at: Step) -> None:
    state = started()
    while state.step is not crashed_in:
        state = advance(state, True, "", now=1.0)
    resumed = after_restart(state, now=5.0)
    assert resumed.step is resumes_at and resumed.interruptions == 1
    assert resumed.history[-1].step == "restart"


def test_job_that_keeps_crashing_the_device_is_rolled_back() -> None:
    state = advance(advance(advance(started(), True, "", 1.0), True, "", 1.0), True, "", 1.0)
    assert state.step is Step.LOAD
    for _ in range(MAX_INTERRUPTIONS):
        state = after_restart(state, now=2.0)
        assert state.step is Step.LOAD
    state = after_restart(state, now=3.0)
    assert (state.step, state.outcome) == (Step.ROLLBACK, Outcome.FAILED)
    assert "interrupted" in state.reason


def test_done_job_is_left_alone_after_restart() -> None:
    state = started()
    while state.step is not Step.DONE:
        state = advance(state, True, "", now=1.0)
    assert after_restart(state, now=9.0) == state


def test_job_ended_in_the_cloud_before_the_switch_rolls_back_without_report() -> None:
    state = advance(started(), True, "", 1.0)
    ended = ended_in_cloud(state, "CANCELED", now=2.0)
    assert (ended.step, ended.report, ended.outcome) == (Step.ROLLBACK, False, Outcome.FAILED)
    assert "CANCELED" in ended.reason


def test_job_ended_in_the_cloud_after_the_switch_keeps_the_new_model() -> None:
    state = started()
    while state.step is not Step.UNLOAD_OLD:
        state = advance(state, True, "", now=1.0)
    ended = ended_in_cloud(state, "TIMED_OUT", now=2.0)
    assert (ended.step, ended.report) == (Step.UNLOAD_OLD, False)
    assert advance(ended, True, "", 3.0).outcome is Outcome.SUCCEEDED


def test_status_details_respect_the_aws_limits() -> None:
    state = advance(started(), False, "line one\nline two " + "x" * 5000, now=1.0)
    details = state.status_details()
    assert len(details) <= 10
    assert all(1 <= len(v) <= 1024 and "\n" not in v for v in details.values())
    assert details["step"] == "rollback" and details["outcome"] == "FAILED"
