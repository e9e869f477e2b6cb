"""IoT Jobs rollout, abort, thing groups and CreateJob validation on the virtual clock (reference §6)."""

from __future__ import annotations

from typing import Any

import pytest

from system.errors import JobsError
from system.ports import JobSpec
from tests.unit.iot_jobs_support import Rig, group_arn, thing_arn

THINGS = [f"dev-{i:03d}" for i in range(100)]


def _fleet(rig: Rig, group: str = "fleet", things: list[str] = THINGS) -> None:
    for thing in things:
        rig.plane.add_thing_to_group(thing, group)


def _queued_things(rig: Rig) -> set[str]:
    return {t.split("/")[2] for t, p in rig.broadcasts if t.endswith("/notify") and p["jobs"].get("QUEUED")}


def _per_minute(rig: Rig, minutes: int) -> list[int]:
    counts = [len(_queued_things(rig))]
    for _ in range(minutes):
        rig.clear()
        rig.clock.advance(60)
        counts.append(len(_queued_things(rig)))
    return counts


def test_maximum_per_minute_notifies_exactly_that_many_each_simulated_minute() -> None:
    rig = Rig()
    _fleet(rig)
    rig.job("ota", groups=["fleet"], rollout={"maximumPerMinute": 10})
    assert _per_minute(rig, 11) == [10] * 10 + [0, 0]
    executions = rig.plane.list_job_executions_for_job("ota")
    assert len(executions) == 100
    queued_at = sorted(e["jobExecutionSummary"]["queuedAt"].timestamp() for e in executions)
    assert queued_at[0] + 540 == queued_at[-1]


def test_rollout_does_not_notify_faster_within_a_minute() -> None:  # checklist 42
    rig = Rig()
    rig.job("ota", [f"t{i}" for i in range(5)], rollout={"maximumPerMinute": 2})
    assert len(_queued_things(rig)) == 2
    rig.clear()
    rig.clock.advance(59)
    assert _queued_things(rig) == set()
    rig.clock.advance(1)
    assert len(_queued_things(rig)) == 2
    rig.clear()
    rig.clock.advance(60)
    assert len(_queued_things(rig)) == 1
    assert len(rig.plane.list_job_executions_for_job("ota")) == 5
    assert rig.plane.describe_job("ota")["job"]["jobProcessDetails"]["numberOfQueuedThings"] == 5


def test_a_thing_not_yet_rolled_out_sees_nothing() -> None:
    rig = Rig()
    rig.job("ota", ["a", "b"], rollout={"maximumPerMinute": 1})
    assert rig.send("b", "get", {})[1] == {"inProgressJobs": [], "queuedJobs": [], "timestamp": int(rig.clock.now())}
    assert rig.send("b", "ota/get", {})[1]["code"] == "ResourceNotFound"
    assert rig.plane.describe_job("ota")["job"]["jobProcessDetails"]["processingTargets"]


def test_exponential_rate_grows_with_notified_things_up_to_the_maximum() -> None:
    rig = Rig()
    _fleet(rig)
    rollout = {
        "maximumPerMinute": 50,
        "exponentialRate": {
            "baseRatePerMinute": 2,
            "incrementFactor": 2,
            "rateIncreaseCriteria": {"numberOfNotifiedThings": 4},
        },
    }
    rig.job("ota", groups=["fleet"], rollout=rollout)
    # notified: 2, 4 (1 step), 8 (2 steps), 16 (4 steps -> 32), 48 (12 steps, capped at 50), rest
    assert _per_minute(rig, 6) == [2, 2, 4, 8, 32, 50, 2]


def test_exponential_rate_on_succeeded_things() -> None:
    rig = Rig()
    _fleet(rig, things=THINGS[:40])
    rollout = {
        "exponentialRate": {
            "baseRatePerMinute": 1,
            "incrementFactor": 1.5,
            "rateIncreaseCriteria": {"numberOfSucceededThings": 2},
        }
    }
    rig.job("ota", groups=["fleet"], rollout=rollout)
    counts = []
    for _ in range(8):
        things = sorted(_queued_things(rig))
        counts.append(len(things))
        for thing in things:
            rig.send(thing, "ota/update", {"status": "SUCCEEDED"})
        rig.clear()
        rig.clock.advance(60)
    # succeeded before each minute: 0, 1 -> 1; 2, 3 -> 1.5 -> 1; 4 -> 2.25 -> 2; 6 -> 3.375 -> 3;
    # 9 -> 1.5**4 = 5.06 -> 5; 14 -> 1.5**7 = 17.09 -> 17
    assert counts == [1, 1, 1, 1, 2, 3, 5, 17]


def test_abort_cancels_remaining_queued_at_the_threshold_and_in_progress_keep_going() -> None:
    rig = Rig()
    _fleet(rig)
    abort = {
        "criteriaList": [
            {"failureType": "REJECTED", "action": "CANCEL", "thresholdPercentage": 50, "minNumberOfExecutedThings": 1},
            {"failureType": "FAILED", "action": "CANCEL", "thresholdPercentage": 20, "minNumberOfExecutedThings": 20},
        ]
    }
    rig.job("ota", groups=["fleet"], abort=abort)
    for thing in THINGS[:30]:
        rig.send(thing, "start-next", {})
    for i, thing in enumerate(THINGS[:20]):  # every fifth device fails: 20 %
        assert rig.plane.describe_job("ota")["job"]["status"] == "IN_PROGRESS", f"aborted early at {i}"
        rig.clear()
        rig.send(thing, "ota/update", {"status": "FAILED" if i % 5 == 4 else "SUCCEEDED"})
    job = rig.plane.describe_job("ota")["job"]
    assert job["status"] == "CANCELED" and job["reasonCode"] == "ABORT_CRITERIA_MET" and job["comment"]
    details = job["jobProcessDetails"]
    assert (details["numberOfCanceledThings"], details["numberOfInProgressThings"]) == (70, 10)
    assert (details["numberOfSucceededThings"], details["numberOfFailedThings"]) == (16, 4)
    assert _queued_things(rig) == set()
    assert len(rig.notes(kind="notify")) == 71  # the 20th device and the 70 canceled ones
    assert rig.send(THINGS[50], "ota/get", {})[1]["execution"]["status"] == "CANCELED"
    for thing in THINGS[20:30]:  # IN_PROGRESS executions continue and can still report
        _, reply = rig.send(thing, "ota/update", {"status": "SUCCEEDED", "includeJobExecutionState": True})
        assert reply["executionState"]["status"] == "SUCCEEDED"
    assert rig.plane.describe_job("ota")["job"]["jobProcessDetails"]["numberOfSucceededThings"] == 26


def test_abort_at_fifty_percent_after_two_and_it_stops_the_rollout() -> None:  # checklist 41
    rig = Rig()
    abort = {
        "criteriaList": [
            {"failureType": "FAILED", "action": "CANCEL", "thresholdPercentage": 50, "minNumberOfExecutedThings": 2}
        ]
    }
    rig.job("ota", [f"t{i}" for i in range(10)], abort=abort, rollout={"maximumPerMinute": 4})
    rig.send("t0", "start-next", {})
    rig.send("t3", "start-next", {})
    rig.send("t1", "ota/update", {"status": "FAILED"})
    assert rig.plane.describe_job("ota")["job"]["status"] == "IN_PROGRESS"  # 1 executed < minimum 2
    rig.send("t2", "ota/update", {"status": "SUCCEEDED"})
    assert rig.plane.describe_job("ota")["job"]["status"] == "CANCELED"
    assert rig.send("t0", "ota/get", {})[1]["execution"]["status"] == "IN_PROGRESS"
    rig.clear()
    rig.clock.advance(600)
    assert rig.broadcasts == []
    assert rig.send("t9", "get", {})[1]["queuedJobs"] == []
    assert rig.send("t3", "ota/update", {"status": "SUCCEEDED"})[0].endswith("/accepted")


def test_abort_cancels_a_retry_it_follows() -> None:
    rig = Rig()
    rig.job(
        "ota",
        ["t0", "t1"],
        retry={"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 3}]},
        abort={
            "criteriaList": [
                {"failureType": "ALL", "action": "CANCEL", "thresholdPercentage": 100, "minNumberOfExecutedThings": 1}
            ]
        },
    )
    rig.send("t0", "ota/update", {"status": "FAILED"})
    execution = rig.send("t0", "ota/get", {})[1]["execution"]
    assert (execution["executionNumber"], execution["status"]) == (2, "CANCELED")


def test_group_targets_expand_to_member_things_once_each() -> None:
    rig = Rig()
    _fleet(rig, "g1", ["a", "b", "c"])
    _fleet(rig, "g2", ["c", "d"])
    rig.job("ota", ["a", "z"], ["g1", "g2"])
    assert _queued_things(rig) == {"a", "b", "c", "d", "z"}
    assert len(rig.plane.list_job_executions_for_job("ota")) == 5
    assert [e["jobId"] for e in rig.plane.list_job_executions_for_thing("c")] == ["ota"]
    rig.clear()
    rig.plane.add_thing_to_group("e", "g1")  # SNAPSHOT: later members get nothing
    rig.plane.remove_thing_from_group("b", "g1")  # ... and leavers keep their execution
    assert rig.broadcasts == []
    assert rig.send("b", "ota/get", {})[1]["execution"]["status"] == "QUEUED"


def test_continuous_job_reaches_a_thing_added_later_and_removes_it_when_it_leaves() -> None:  # checklist 43
    rig = Rig()
    _fleet(rig, "line", ["a"])
    rig.job("ota", groups=["line"], target_selection="CONTINUOUS", rollout={"maximumPerMinute": 1})
    rig.clear()
    rig.plane.add_thing_to_group("late", "line")
    (notify,) = rig.notes("late", "notify")
    assert notify["jobs"]["QUEUED"][0]["jobId"] == "ota"
    rig.clear()
    rig.plane.remove_thing_from_group("late", "line")
    assert rig.notes("late", "notify") == [{"timestamp": int(rig.clock.now()), "jobs": {}}]
    assert rig.send("late", "ota/get", {})[1]["execution"]["status"] == "REMOVED"
    rig.plane.add_thing_to_group("late", "line")
    assert rig.send("late", "ota/get", {})[1]["execution"]["executionNumber"] == 2
    rig.send("a", "ota/update", {"status": "SUCCEEDED"})
    rig.send("late", "ota/update", {"status": "SUCCEEDED"})
    details = rig.plane.describe_job("ota")["job"]
    assert details["status"] == "IN_PROGRESS"  # continuous jobs never complete
    assert details["jobProcessDetails"]["numberOfRemovedThings"] == 1


def test_continuous_joiners_bypass_the_rollout_rate() -> None:
    rig = Rig()
    _fleet(rig, "line", ["a", "b", "c"])
    rig.job("ota", groups=["line"], target_selection="CONTINUOUS", rollout={"maximumPerMinute": 1})
    assert _queued_things(rig) == {"a"}
    rig.plane.add_thing_to_group("new", "line")
    assert _queued_things(rig) == {"a", "new"}
    rig.plane.remove_thing_from_group("c", "line")
    rig.clock.advance(600)
    assert _queued_things(rig) == {"a", "new", "b"}


def test_in_progress_execution_survives_leaving_a_continuous_group() -> None:
    rig = Rig()
    _fleet(rig, "line", ["a"])
    rig.job("ota", groups=["line"], target_selection="CONTINUOUS")
    rig.send("a", "start-next", {})
    rig.plane.remove_thing_from_group("a", "line")
    assert rig.send("a", "ota/update", {"status": "SUCCEEDED"})[0].endswith("/accepted")


def test_snapshot_job_over_an_empty_group_is_completed_at_once() -> None:
    rig = Rig()
    rig.plane.create_thing_group("empty")
    rig.job("ota", groups=["empty"])
    assert rig.plane.describe_job("ota")["job"]["status"] == "COMPLETED"


@pytest.mark.parametrize(
    "spec",
    [
        {"rollout": {"maximumPerMinute": 0}},
        {"rollout": {"maximumPerMinute": 1001}},
        {"rollout": {"maximumPerMinute": "10"}},
        {"rollout": {"maximumPerMinute": True}},
        {"rollout": {"maxPerMinute": 10}},
        {"rollout": {"exponentialRate": {"baseRatePerMinute": 5, "incrementFactor": 2}}},
        {"rollout": {"exponentialRate": {"baseRatePerMinute": 0, "incrementFactor": 2, "rateIncreaseCriteria": {}}}},
        *[
            {"rollout": {"exponentialRate": {"baseRatePerMinute": b, "incrementFactor": f, "rateIncreaseCriteria": c}}}
            for b, f, c in [
                (1001, 2, {"numberOfNotifiedThings": 1}),
                (5, 1.0, {"numberOfNotifiedThings": 1}),
                (5, 5.1, {"numberOfNotifiedThings": 1}),
                (5, 1.55, {"numberOfNotifiedThings": 1}),
                (5, 2, {}),
                (5, 2, {"numberOfNotifiedThings": 1, "numberOfSucceededThings": 1}),
                (5, 2, {"numberOfNotifiedThings": 0}),
            ]
        ],
        {
            "rollout": {
                "exponentialRate": {
                    "baseRatePerMinute": 5,
                    "incrementFactor": 2,
                    "rateIncreaseCriteria": {"numberOfNotifiedThings": 1},
                    "maximumPerMinute": 10,  # the docs' mistaken nesting
                }
            }
        },
        {"abort": {"criteriaList": []}},
        *[
            {"abort": {"criteriaList": [criterion]}}
            for criterion in [
                {"failureType": "FAILED", "action": "STOP", "thresholdPercentage": 10, "minNumberOfExecutedThings": 1},
                {"failureType": "ANY", "action": "CANCEL", "thresholdPercentage": 10, "minNumberOfExecutedThings": 1},
                {
                    "failureType": "FAILED",
                    "action": "CANCEL",
                    "thresholdPercentage": 101,
                    "minNumberOfExecutedThings": 1,
                },
                {
                    "failureType": "FAILED",
                    "action": "CANCEL",
                    "thresholdPercentage": 1.005,
                    "minNumberOfExecutedThings": 1,
                },
                {
                    "failureType": "FAILED",
                    "action": "CANCEL",
                    "thresholdPercentage": 10,
                    "minNumberOfExecutedThings": 0,
                },
                {"failureType": "FAILED", "action": "CANCEL", "thresholdPercentage": 10},
            ]
        ],
        {"timeout": {"inProgressTimeoutInMinutes": 0}},
        {"timeout": {"inProgressTimeoutInMinutes": 10081}},
        {"retry": {"criteriaList": []}},
        {"retry": {"criteriaList": [{"failureType": "REJECTED", "numberOfRetries": 1}]}},
        {"retry": {"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 11}]}},
        {
            "retry": {
                "criteriaList": [
                    {"failureType": "FAILED", "numberOfRetries": 6},
                    {"failureType": "TIMED_OUT", "numberOfRetries": 5},
                ]
            }
        },
        {
            "retry": {
                "criteriaList": [
                    {"failureType": "FAILED", "numberOfRetries": 1},
                    {"failureType": "FAILED", "numberOfRetries": 1},
                ]
            }
        },
        {"retry": {"criteriaList": [{"failureType": t, "numberOfRetries": 1} for t in ("FAILED", "TIMED_OUT", "ALL")]}},
        {"target_selection": "SOMETIMES"},
        {"targets": []},
        {"targets": ["arn:aws:iot:us-east-1:123456789012:certificate/abc"]},
        {"targets": ["thing-name"]},
        {"job_id": "bad id"},
        {"job_id": "x" * 65},
        {"document": ["not", "an", "object"]},
        {"document": {"f": float("nan")}},
    ],
)
def test_invalid_create_job_input_is_refused(spec: dict[str, Any]) -> None:
    rig = Rig()
    fields: dict[str, Any] = {"job_id": "ota", "targets": [thing_arn("t1")], "document": {"a": 1}}
    fields.update(spec)
    with pytest.raises(JobsError) as refused:
        rig.plane.create_job(JobSpec(**fields))
    assert refused.value.code == "InvalidRequestException"
    assert rig.broadcasts == [] and rig.plane.model.jobs == {}


def test_boundary_configs_are_accepted_and_echoed_by_describe_job() -> None:
    rig = Rig()
    configs: dict[str, Any] = {
        "rollout": {
            "maximumPerMinute": 1000,
            "exponentialRate": {
                "baseRatePerMinute": 1000,
                "incrementFactor": 5,
                "rateIncreaseCriteria": {"numberOfSucceededThings": 1},
            },
        },
        "abort": {
            "criteriaList": [
                {"failureType": t, "action": "CANCEL", "thresholdPercentage": 99.99, "minNumberOfExecutedThings": 1}
                for t in ("FAILED", "REJECTED", "TIMED_OUT", "ALL")
            ]
        },
        "timeout": {"inProgressTimeoutInMinutes": 10080},
        "retry": {
            "criteriaList": [
                {"failureType": "FAILED", "numberOfRetries": 5},
                {"failureType": "TIMED_OUT", "numberOfRetries": 5},
            ]
        },
    }
    rig.job("ota", ["t1"], groups=["g"], **configs)
    job = rig.plane.describe_job("ota")["job"]
    assert job["jobExecutionsRolloutConfig"] == configs["rollout"]
    assert job["abortConfig"] == configs["abort"] and job["timeoutConfig"] == configs["timeout"]
    assert job["jobExecutionsRetryConfig"] == configs["retry"]
    assert job["targets"] == [thing_arn("t1"), group_arn("g")]
    with pytest.raises(JobsError) as refused:
        rig.job("ota", ["t1"])
    assert refused.value.code == "ResourceAlreadyExistsException"


def test_abort_basis_can_count_notified_things_instead_of_completed_ones() -> None:
    from simulators.iot_jobs import Behaviour

    abort = {
        "criteriaList": [
            {"failureType": "FAILED", "action": "CANCEL", "thresholdPercentage": 10, "minNumberOfExecutedThings": 5}
        ]
    }
    statuses = {}
    for basis in ("completed", "notified"):
        rig = Rig(options={"behaviour": Behaviour(abort_basis=basis)})
        rig.job("ota", [f"t{i}" for i in range(10)], abort=abort)
        rig.send("t0", "ota/update", {"status": "FAILED"})  # 1 of 1 completed, 1 of 10 notified
        statuses[basis] = rig.plane.describe_job("ota")["job"]["status"]
    assert statuses == {"completed": "IN_PROGRESS", "notified": "CANCELED"}
