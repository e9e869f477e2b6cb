"""IoT Jobs execution lifecycle: transitions, timers, retries, cancel and delete (reference §3, §6)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from system.errors import JobsError
from tests.unit.iot_jobs_support import Rig

DEVICE_STATUSES = ("IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED")


def _queued(rig: Rig) -> None:
    rig.job("j1", ["t1"])


def _in_progress(rig: Rig) -> None:
    rig.job("j1", ["t1"])
    rig.send("t1", "j1/update", {"status": "IN_PROGRESS"})


def _device(status: str) -> Callable[[Rig], None]:
    def build(rig: Rig) -> None:
        rig.job("j1", ["t1"])
        rig.send("t1", "j1/update", {"status": status})

    return build


def _timed_out(rig: Rig) -> None:
    rig.job("j1", ["t1"])
    rig.send("t1", "start-next", {"stepTimeoutInMinutes": 1})
    rig.clock.advance(60)


def _canceled(rig: Rig) -> None:
    rig.job("j1", ["t1"])
    rig.plane.cancel_job_execution("j1", "t1")


def _removed(rig: Rig) -> None:
    rig.plane.add_thing_to_group("t1", "g")
    rig.job("j1", groups=["g"], target_selection="CONTINUOUS")
    rig.plane.remove_thing_from_group("t1", "g")


STARTS = {
    "QUEUED": _queued,
    "IN_PROGRESS": _in_progress,
    "SUCCEEDED": _device("SUCCEEDED"),
    "FAILED": _device("FAILED"),
    "REJECTED": _device("REJECTED"),
    "TIMED_OUT": _timed_out,
    "CANCELED": _canceled,
    "REMOVED": _removed,
}


@pytest.mark.parametrize("target", DEVICE_STATUSES)
@pytest.mark.parametrize("start", list(STARTS))
def test_device_transition_table(start: str, target: str) -> None:
    rig = Rig()
    STARTS[start](rig)
    _, before = rig.send("t1", "j1/get", {})
    assert before["execution"]["status"] == start
    reply_topic, reply = rig.send("t1", "j1/update", {"status": target, "includeJobExecutionState": True})
    if start in ("QUEUED", "IN_PROGRESS"):
        assert reply_topic.endswith("/accepted")
        assert reply["executionState"]["status"] == target
        assert reply["executionState"]["versionNumber"] == before["execution"]["versionNumber"] + 1
    else:
        assert reply["code"] == "InvalidStateTransition"
        assert reply["executionState"]["status"] == start
        _, after = rig.send("t1", "j1/get", {})
        assert after["execution"] == before["execution"]


def test_step_timer_times_out_with_notifications_then_updates_are_refused() -> None:  # checklist 32
    rig = Rig()
    rig.job("j1", ["t1"])
    rig.job("j2", ["t1"])
    rig.send("t1", "start-next", {"stepTimeoutInMinutes": 1})
    rig.clear()
    rig.clock.advance(59)
    assert rig.broadcasts == []
    rig.clock.advance(1)
    assert [s["jobId"] for s in rig.notes("t1", "notify")[0]["jobs"]["QUEUED"]] == ["j2"]
    assert rig.notes("t1", "notify-next")[0]["execution"]["jobId"] == "j2"
    _, reply = rig.send("t1", "j1/update", {"status": "SUCCEEDED"})
    assert reply["code"] == "InvalidStateTransition" and reply["executionState"]["status"] == "TIMED_OUT"
    assert reply["executionState"]["versionNumber"] == 3


def test_minus_one_discards_the_step_timer_but_not_the_in_progress_timer() -> None:  # checklist 33
    rig = Rig()
    rig.job("j1", ["t1"], timeout={"inProgressTimeoutInMinutes": 10})
    rig.send("t1", "start-next", {"stepTimeoutInMinutes": 1})
    rig.send("t1", "j1/update", {"status": "IN_PROGRESS", "stepTimeoutInMinutes": -1})
    rig.clock.advance(120)
    assert rig.send("t1", "j1/get", {})[1]["execution"]["status"] == "IN_PROGRESS"
    rig.clock.advance(479)
    assert rig.send("t1", "j1/get", {})[1]["execution"]["status"] == "IN_PROGRESS"
    rig.clock.advance(1)
    assert rig.send("t1", "j1/get", {})[1]["execution"]["status"] == "TIMED_OUT"


def test_a_step_timer_cannot_outlive_the_in_progress_bound() -> None:  # checklist 34
    rig = Rig()
    rig.job("j1", ["t1"], timeout={"inProgressTimeoutInMinutes": 3})
    rig.send("t1", "start-next", {})
    rig.clock.advance(120)
    rig.send("t1", "j1/update", {"status": "IN_PROGRESS", "stepTimeoutInMinutes": 30})
    rig.clock.advance(59)
    assert rig.send("t1", "j1/get", {})[1]["execution"]["status"] == "IN_PROGRESS"
    rig.clock.advance(1)
    assert rig.send("t1", "j1/get", {})[1]["execution"]["status"] == "TIMED_OUT"


def test_a_new_step_value_replaces_the_old_and_an_update_without_keeps_it() -> None:
    rig = Rig()
    rig.job("j1", ["t1"])
    rig.send("t1", "start-next", {"stepTimeoutInMinutes": 2})
    rig.clock.advance(60)
    rig.send("t1", "j1/update", {"status": "IN_PROGRESS", "stepTimeoutInMinutes": 5})  # now due at +360
    rig.clock.advance(200)
    rig.send("t1", "j1/update", {"status": "IN_PROGRESS", "statusDetails": {"p": "1"}})  # keeps +360
    rig.clock.advance(99)
    assert rig.send("t1", "j1/get", {})[1]["execution"]["status"] == "IN_PROGRESS"
    rig.clock.advance(1)
    assert rig.send("t1", "j1/get", {})[1]["execution"]["status"] == "TIMED_OUT"


def test_step_timer_set_by_an_update_to_in_progress() -> None:
    rig = Rig()
    rig.job("j1", ["t1"])
    rig.send("t1", "j1/update", {"status": "IN_PROGRESS", "stepTimeoutInMinutes": 1})
    rig.clock.advance(60)
    assert rig.send("t1", "j1/get", {})[1]["execution"]["status"] == "TIMED_OUT"


def test_in_progress_timeout_applies_from_the_start_of_each_execution() -> None:
    rig = Rig()
    rig.job("j1", ["t1", "t2"], timeout={"inProgressTimeoutInMinutes": 2})
    rig.send("t1", "start-next", {})
    rig.clock.advance(60)
    rig.send("t2", "start-next", {})
    rig.clock.advance(60)
    assert rig.send("t1", "j1/get", {})[1]["execution"]["status"] == "TIMED_OUT"
    assert rig.send("t2", "j1/get", {})[1]["execution"]["status"] == "IN_PROGRESS"
    rig.clock.advance(60)
    assert rig.send("t2", "j1/get", {})[1]["execution"]["status"] == "TIMED_OUT"
    assert rig.plane.describe_job("j1")["job"]["status"] == "COMPLETED"


def test_queued_executions_never_time_out() -> None:
    rig = Rig()
    rig.job("j1", ["t1"], timeout={"inProgressTimeoutInMinutes": 1})
    rig.clock.advance(3600)
    assert rig.send("t1", "j1/get", {})[1]["execution"]["status"] == "QUEUED"


def test_approximate_seconds_before_timed_out_counts_down_only_while_a_timer_runs() -> None:  # checklist 36
    rig = Rig()
    rig.job("j1", ["t1"], timeout={"inProgressTimeoutInMinutes": 5})
    assert "approximateSecondsBeforeTimedOut" not in rig.send("t1", "j1/get", {})[1]["execution"]
    _, reply = rig.send("t1", "start-next", {"stepTimeoutInMinutes": 2})
    assert reply["execution"]["approximateSecondsBeforeTimedOut"] == 120
    rig.clock.advance(30)
    assert rig.send("t1", "j1/get", {})[1]["execution"]["approximateSecondsBeforeTimedOut"] == 90
    rig.send("t1", "j1/update", {"status": "IN_PROGRESS", "stepTimeoutInMinutes": -1})
    assert rig.send("t1", "j1/get", {})[1]["execution"]["approximateSecondsBeforeTimedOut"] == 270
    rig.send("t1", "j1/update", {"status": "SUCCEEDED"})
    assert "approximateSecondsBeforeTimedOut" not in rig.send("t1", "j1/get", {})[1]["execution"]
    assert "approximateSecondsBeforeTimedOut" not in rig.plane.describe_job_execution("j1", "t1")["execution"]


def test_step_timeout_with_retry_requeues_a_new_execution() -> None:
    rig = Rig()
    rig.job(
        "j1",
        ["t1"],
        timeout={"inProgressTimeoutInMinutes": 60},
        retry={"criteriaList": [{"failureType": "TIMED_OUT", "numberOfRetries": 1}]},
    )
    rig.send("t1", "start-next", {"stepTimeoutInMinutes": 1, "statusDetails": {"a": "b"}})
    rig.clear()
    rig.clock.advance(60)
    now = int(rig.clock.now())
    (notify,) = rig.notes("t1", "notify")
    assert notify["jobs"] == {
        "QUEUED": [{"jobId": "j1", "queuedAt": now, "lastUpdatedAt": now, "executionNumber": 2, "versionNumber": 1}]
    }
    (nxt,) = rig.notes("t1", "notify-next")
    assert nxt["execution"]["executionNumber"] == 2 and nxt["execution"]["status"] == "QUEUED"
    assert "statusDetails" not in nxt["execution"]
    _, reply = rig.send("t1", "j1/get", {"executionNumber": 1})
    assert reply["execution"]["status"] == "TIMED_OUT"
    _, reply = rig.send("t1", "j1/update", {"status": "IN_PROGRESS", "executionNumber": 1})
    assert reply["code"] == "InvalidStateTransition"
    rig.send("t1", "start-next", {"stepTimeoutInMinutes": 1})
    rig.clock.advance(60)
    assert rig.send("t1", "j1/get", {})[1]["execution"]["executionNumber"] == 2  # no retries left
    summary = rig.plane.list_job_executions_for_job("j1")[0]["jobExecutionSummary"]
    assert summary["status"] == "TIMED_OUT" and summary["retryAttempt"] == 1
    assert rig.plane.describe_job("j1")["job"]["jobProcessDetails"]["numberOfTimedOutThings"] == 2


def test_timed_out_is_not_retried_without_a_timeout_config() -> None:
    rig = Rig()
    rig.job("j1", ["t1"], retry={"criteriaList": [{"failureType": "ALL", "numberOfRetries": 3}]})
    rig.send("t1", "start-next", {"stepTimeoutInMinutes": 1})
    rig.clock.advance(60)
    assert rig.send("t1", "get", {})[1]["queuedJobs"] == []


def test_failed_is_retried_at_most_n_times_and_rejected_never() -> None:  # checklist 40
    rig = Rig()
    rig.job("j1", ["t1", "t2"], retry={"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 2}]})
    for number in (1, 2, 3):
        rig.clear()
        _, reply = rig.send("t1", "start-next", {})
        assert reply["execution"]["executionNumber"] == number
        assert reply["execution"]["versionNumber"] == 2
        rig.send("t1", "j1/update", {"status": "FAILED"})
        if number < 3:
            assert rig.notes("t1", "notify")[0]["jobs"]["QUEUED"][0]["executionNumber"] == number + 1
            assert rig.notes("t1", "notify-next")[0]["execution"]["executionNumber"] == number + 1
        else:
            assert rig.notes("t1", "notify") == [{"timestamp": int(rig.clock.now()), "jobs": {}}]
    rig.send("t2", "j1/update", {"status": "REJECTED"})
    assert rig.send("t2", "get", {})[1]["queuedJobs"] == []
    details = rig.plane.describe_job("j1")["job"]["jobProcessDetails"]
    assert details["numberOfFailedThings"] == 3 and details["numberOfRejectedThings"] == 1
    assert rig.plane.describe_job("j1")["job"]["status"] == "COMPLETED"


def test_all_criterion_covers_failed_and_timed_out() -> None:
    rig = Rig()
    rig.job(
        "j1",
        ["t1"],
        timeout={"inProgressTimeoutInMinutes": 1},
        retry={"criteriaList": [{"failureType": "ALL", "numberOfRetries": 2}]},
    )
    rig.send("t1", "j1/update", {"status": "FAILED"})
    rig.send("t1", "start-next", {})
    rig.clock.advance(60)
    _, reply = rig.send("t1", "j1/get", {})
    assert reply["execution"]["executionNumber"] == 3 and reply["execution"]["status"] == "QUEUED"
    rig.send("t1", "j1/update", {"status": "FAILED"})
    assert rig.send("t1", "get", {})[1]["queuedJobs"] == []


def test_cancel_job_without_force_cancels_only_queued() -> None:  # checklist 37
    rig = Rig()
    rig.job("j1", ["t1", "t2"])
    rig.send("t1", "start-next", {})
    rig.clear()
    rig.plane.cancel_job("j1", comment="bad model", reason_code="OPERATOR")
    assert rig.notes("t2", "notify") == [{"timestamp": int(rig.clock.now()), "jobs": {}}]
    assert rig.notes("t2", "notify-next") == [{"timestamp": int(rig.clock.now())}]
    assert rig.notes("t1") == []
    assert rig.send("t2", "j1/get", {})[1]["execution"]["status"] == "CANCELED"
    _, reply = rig.send("t1", "j1/update", {"status": "SUCCEEDED", "includeJobExecutionState": True})
    assert reply["executionState"]["status"] == "SUCCEEDED"
    job = rig.plane.describe_job("j1")["job"]
    assert (job["status"], job["comment"], job["reasonCode"], job["forceCanceled"]) == (
        "CANCELED",
        "bad model",
        "OPERATOR",
        False,
    )


def test_cancel_job_with_force_cancels_in_progress_too() -> None:  # checklist 38
    rig = Rig()
    rig.job("j1", ["t1"])
    rig.send("t1", "start-next", {})
    rig.plane.cancel_job("j1", force=True)
    _, reply = rig.send("t1", "j1/update", {"status": "SUCCEEDED"})
    assert reply["code"] == "InvalidStateTransition" and reply["executionState"]["status"] == "CANCELED"
    assert rig.send("t1", "j1/get", {})[1]["execution"]["status"] == "CANCELED"
    assert rig.plane.describe_job_execution("j1", "t1")["execution"]["forceCanceled"] is True
    assert rig.plane.describe_job("j1")["job"]["forceCanceled"] is True


def test_cancel_after_cancel_can_add_force_and_completed_jobs_refuse() -> None:
    rig = Rig()
    rig.job("j1", ["t1"])
    rig.send("t1", "start-next", {})
    rig.plane.cancel_job("j1")
    rig.plane.cancel_job("j1", force=True)
    assert rig.send("t1", "j1/get", {})[1]["execution"]["status"] == "CANCELED"
    rig.job("j2", ["t1"])
    rig.send("t1", "j2/update", {"status": "SUCCEEDED"})
    with pytest.raises(JobsError) as refused:
        rig.plane.cancel_job("j2")
    assert refused.value.code == "InvalidStateTransitionException"


def test_cancel_job_execution_rules() -> None:
    rig = Rig()
    rig.job("j1", ["t1", "t2"])
    rig.send("t1", "start-next", {})
    with pytest.raises(JobsError) as refused:
        rig.plane.cancel_job_execution("j1", "t1")
    assert refused.value.code == "InvalidStateTransitionException"
    with pytest.raises(JobsError) as refused:
        rig.plane.cancel_job_execution("j1", "t2", expected_version=5)
    assert refused.value.code == "VersionConflictException"
    with pytest.raises(JobsError) as refused:
        rig.plane.cancel_job_execution("j1", "t2", status_details={"bad key": "v"})
    assert refused.value.code == "InvalidRequestException"
    rig.plane.cancel_job_execution("j1", "t2", expected_version=1, status_details={"why": "ops"})
    execution = rig.send("t2", "j1/get", {})[1]["execution"]
    assert (execution["status"], execution["statusDetails"], execution["versionNumber"]) == (
        "CANCELED",
        {"why": "ops"},
        2,
    )
    with pytest.raises(JobsError) as refused:
        rig.plane.cancel_job_execution("j1", "t2")
    assert refused.value.code == "InvalidStateTransitionException"
    rig.plane.cancel_job_execution("j1", "t1", force=True)
    assert rig.send("t1", "j1/update", {"status": "SUCCEEDED"})[1]["code"] == "InvalidStateTransition"
    with pytest.raises(JobsError) as refused:
        rig.plane.cancel_job_execution("j1", "t9")
    assert refused.value.code == "ResourceNotFoundException"


def test_delete_job_execution_with_force_then_resource_not_found() -> None:  # checklist 39
    rig = Rig()
    rig.job("j1", ["t1"])
    rig.send("t1", "start-next", {})
    with pytest.raises(JobsError) as refused:
        rig.plane.delete_job_execution("j1", "t1", 1)
    assert refused.value.code == "InvalidStateTransitionException"
    rig.clear()
    rig.plane.delete_job_execution("j1", "t1", 1, force=True)
    assert rig.notes("t1", "notify") == [{"timestamp": int(rig.clock.now()), "jobs": {}}]
    deleted = rig.changes[-2]
    assert deleted.deleted and deleted.execution is not None and deleted.execution.status == "IN_PROGRESS"
    assert rig.changes[-1].thing_name is None and rig.changes[-1].job_status == "COMPLETED"
    assert rig.send("t1", "j1/get", {})[1]["code"] == "ResourceNotFound"
    assert rig.send("t1", "j1/update", {"status": "SUCCEEDED"})[1]["code"] == "ResourceNotFound"
    with pytest.raises(JobsError) as refused:
        rig.plane.describe_job_execution("j1", "t1")
    assert refused.value.code == "ResourceNotFoundException"


def test_delete_job_needs_a_finished_job_or_force() -> None:
    rig = Rig()
    rig.job("j1", ["t1"])
    with pytest.raises(JobsError) as refused:
        rig.plane.delete_job("j1")
    assert refused.value.code == "InvalidStateTransitionException"
    rig.clear()
    rig.plane.delete_job("j1", force=True)
    assert rig.notes("t1", "notify-next") == [{"timestamp": int(rig.clock.now())}]
    assert rig.send("t1", "j1/get", {})[1]["code"] == "ResourceNotFound"
    with pytest.raises(JobsError) as refused:
        rig.plane.describe_job("j1")
    assert refused.value.code == "ResourceNotFoundException"
    rig.job("j1", ["t1"])  # the id can be reused
    assert rig.send("t1", "j1/get", {})[1]["execution"]["executionNumber"] == 1


def test_observer_sees_every_execution_change_in_order() -> None:
    rig = Rig()
    rig.job("j1", ["t1"])
    rig.send("t1", "start-next", {})
    rig.send("t1", "j1/update", {"status": "SUCCEEDED", "statusDetails": {"v": "2"}})
    seen = [(c.thing_name, c.execution.status if c.execution else None, c.job_status) for c in rig.changes]
    assert seen == [
        (None, None, "IN_PROGRESS"),
        ("t1", "QUEUED", "IN_PROGRESS"),
        ("t1", "IN_PROGRESS", "IN_PROGRESS"),
        ("t1", "SUCCEEDED", "IN_PROGRESS"),
        (None, None, "COMPLETED"),
    ]
    last = rig.changes[3].execution
    assert last is not None and dict(last.status_details) == {"v": "2"} and last.version_number == 3
    described = rig.plane.describe_job_execution("j1", "t1")["execution"]
    assert described["statusDetails"] == {"detailsMap": {"v": "2"}} and described["versionNumber"] == 3
    assert described["thingArn"].endswith(":thing/t1")
