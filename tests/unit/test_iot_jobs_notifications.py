"""IoT Jobs notifications, reply routing and payload shapes (reference/iot-jobs-mqtt.md §5, §8)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from tests.unit.iot_jobs_support import Rig

DOC = {"type": "new_model", "model_name": "m", "model_version": "2"}


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_replies_go_to_the_requester_only_and_notifications_to_everyone(rig: Rig) -> None:  # checklist 3
    rig.job("j1", ["t1"])
    rig.clear()
    rig.plane.handle("console-client", "$aws/things/t1/jobs/j1/update", b'{"status":"SUCCEEDED"}')
    assert [(who, t) for who, t, _ in rig.replies] == [("console-client", "$aws/things/t1/jobs/j1/update/accepted")]
    assert sorted(t for t, _ in rig.broadcasts) == ["$aws/things/t1/jobs/notify", "$aws/things/t1/jobs/notify-next"]


def test_without_a_reply_callback_replies_are_published(rig: Rig) -> None:
    published: list[str] = []
    from simulators.iot_jobs import JobsDataPlane

    plane = JobsDataPlane(rig.clock, publish=lambda t, p: published.append(t))
    plane.handle("t1", "$aws/things/t1/jobs/get", b"{}")
    assert published == ["$aws/things/t1/jobs/get/accepted"]


def test_new_job_sends_one_notify_and_one_notify_next(rig: Rig) -> None:  # checklist 5, 6
    rig.job("j1", ["t1"], document=DOC)
    now = int(rig.clock.now())
    assert rig.notes("t1", "notify") == [
        {
            "timestamp": now,
            "jobs": {
                "QUEUED": [
                    {"jobId": "j1", "queuedAt": now, "lastUpdatedAt": now, "executionNumber": 1, "versionNumber": 1}
                ]
            },
        }
    ]
    assert rig.notes("t1", "notify-next") == [
        {
            "timestamp": now,
            "execution": {
                "jobId": "j1",
                "jobDocument": DOC,
                "status": "QUEUED",
                "queuedAt": now,
                "lastUpdatedAt": now,
                "versionNumber": 1,
                "executionNumber": 1,
            },
        }
    ]
    # notify first on creation, as live
    assert [t.rsplit("/", 1)[1] for t, _ in rig.broadcasts] == ["notify", "notify-next"]


def test_second_queued_job_lists_both_without_notify_next(rig: Rig) -> None:  # checklist 7
    rig.job("j1", ["t1"])
    rig.clock.advance(5)
    rig.clear()
    rig.job("j2", ["t1"])
    (notify,) = rig.notes("t1", "notify")
    assert [s["jobId"] for s in notify["jobs"]["QUEUED"]] == ["j1", "j2"]
    assert rig.notes("t1", "notify-next") == []


def test_start_next_starts_the_oldest_queued_silently(rig: Rig) -> None:  # checklist 8, 9, 10
    rig.job("j1", ["t1"], document=DOC)
    rig.clock.advance(3)
    rig.job("j2", ["t1"])
    rig.clock.advance(4)
    rig.clear()
    _, reply = rig.send("t1", "start-next", {"statusDetails": {"step": "download"}})
    execution = reply["execution"]
    assert execution["jobId"] == "j1" and execution["status"] == "IN_PROGRESS"
    assert execution["versionNumber"] == 2 and execution["startedAt"] == int(rig.clock.now())
    assert execution["jobDocument"] == DOC and execution["statusDetails"] == {"step": "download"}
    assert "thingName" not in execution
    assert rig.broadcasts == []
    _, again = rig.send("t1", "start-next", {"statusDetails": {"step": "ignored"}})
    assert again["execution"] == execution | {"lastUpdatedAt": execution["lastUpdatedAt"]}
    assert again["execution"]["versionNumber"] == 2
    assert rig.broadcasts == []


def test_start_next_and_describe_next_with_nothing_pending_have_no_execution(rig: Rig) -> None:  # checklist 11, 12
    _, reply = rig.send("t1", "start-next", {"clientToken": "a"})
    assert reply == {"timestamp": int(rig.clock.now()), "clientToken": "a"}
    reply_topic, reply = rig.send("t1", "$next/get", {})
    assert reply_topic == "$aws/things/t1/jobs/$next/get/accepted"
    assert reply == {"timestamp": int(rig.clock.now())}


def test_describe_next_prefers_in_progress_over_older_queued(rig: Rig) -> None:  # checklist 13, 28
    rig.job("j1", ["t1"])
    rig.clock.advance(1)
    rig.job("j2", ["t1"])
    rig.clear()
    rig.send("t1", "j2/update", {"status": "IN_PROGRESS"})
    assert rig.notes("t1", "notify") == []
    (nxt,) = rig.notes("t1", "notify-next")
    assert nxt["execution"]["jobId"] == "j2" and nxt["execution"]["status"] == "IN_PROGRESS"
    _, reply = rig.send("t1", "$next/get", {})
    assert reply["execution"]["jobId"] == "j2"


def test_head_completion_sends_remainder_and_new_head(rig: Rig) -> None:  # checklist 26
    rig.job("j1", ["t1"])
    rig.clock.advance(1)
    rig.job("j2", ["t1"], document=DOC)
    rig.send("t1", "start-next", {})
    rig.clear()
    rig.send("t1", "j1/update", {"status": "SUCCEEDED"})
    (notify,) = rig.notes("t1", "notify")
    assert list(notify["jobs"]) == ["QUEUED"] and [s["jobId"] for s in notify["jobs"]["QUEUED"]] == ["j2"]
    (nxt,) = rig.notes("t1", "notify-next")
    assert nxt["execution"]["jobId"] == "j2" and nxt["execution"]["status"] == "QUEUED"
    assert nxt["execution"]["jobDocument"] == DOC


def test_last_pending_completion_sends_empty_notify_and_bare_notify_next(rig: Rig) -> None:  # checklist 27
    rig.job("j1", ["t1"])
    rig.send("t1", "start-next", {})
    rig.clear()
    rig.send("t1", "j1/update", {"status": "SUCCEEDED"})
    now = int(rig.clock.now())
    assert rig.notes("t1", "notify") == [{"timestamp": now, "jobs": {}}]
    assert rig.notes("t1", "notify-next") == [{"timestamp": now}]


def test_in_progress_detail_update_bumps_version_silently(rig: Rig) -> None:  # checklist 29
    rig.job("j1", ["t1"])
    rig.send("t1", "start-next", {})
    rig.clear()
    _, reply = rig.send(
        "t1", "j1/update", {"status": "IN_PROGRESS", "statusDetails": {"p": "50"}, "includeJobExecutionState": True}
    )
    assert reply["executionState"] == {"status": "IN_PROGRESS", "statusDetails": {"p": "50"}, "versionNumber": 3}
    assert rig.broadcasts == []


def test_rejecting_a_non_head_queued_execution_sends_notify_only(rig: Rig) -> None:  # checklist 30
    rig.job("j1", ["t1"])
    rig.job("j2", ["t1"])
    rig.clear()
    rig.send("t1", "j2/update", {"status": "REJECTED"})
    (notify,) = rig.notes("t1", "notify")
    assert [s["jobId"] for s in notify["jobs"]["QUEUED"]] == ["j1"]
    assert rig.notes("t1", "notify-next") == []


def test_notify_and_get_list_ten_in_progress_first(rig: Rig) -> None:  # checklist 31
    for i in range(12):
        rig.job(f"j{i:02d}", ["t1"])
        rig.clock.advance(1)
    rig.send("t1", "j05/update", {"status": "IN_PROGRESS"})
    rig.clear()
    rig.job("j12", ["t1"])
    (notify,) = rig.notes("t1", "notify")
    assert [s["jobId"] for s in notify["jobs"]["IN_PROGRESS"]] == ["j05"]
    assert [s["jobId"] for s in notify["jobs"]["QUEUED"]] == [f"j{i:02d}" for i in range(11) if i != 5][:9]
    assert notify["jobs"]["IN_PROGRESS"][0]["startedAt"] >= notify["jobs"]["IN_PROGRESS"][0]["queuedAt"]
    _, reply = rig.send("t1", "get", {})
    assert len(reply["inProgressJobs"]) + len(reply["queuedJobs"]) == 10
    assert [s["jobId"] for s in reply["inProgressJobs"]] == ["j05"]


def _times(value: Any) -> list[Any]:
    names = ("timestamp", "queuedAt", "startedAt", "lastUpdatedAt")
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k in names]
        return found + [t for k, v in value.items() if k not in names for t in _times(v)]
    if isinstance(value, list):
        return [t for v in value for t in _times(v)]
    return []


def test_every_time_value_is_integer_epoch_seconds(rig: Rig) -> None:  # checklist 44
    rig.clock.advance(0.75)
    rig.job("j1", ["t1"], timeout={"inProgressTimeoutInMinutes": 5})
    rig.job("j2", ["t1"])
    for suffix, body in [
        ("get", {}),
        ("start-next", {"stepTimeoutInMinutes": 2}),
        ("$next/get", {}),
        ("j1/update", {"status": "IN_PROGRESS", "includeJobExecutionState": True}),
        ("j1/update", {"status": "SUCCEEDED", "expectedVersion": 99}),
        ("j1/update", {"status": "SUCCEEDED"}),
        ("j2/get", {}),
        ("nope/get", {}),
    ]:
        rig.send("t1", suffix, body)
        rig.clock.advance(0.4)
    payloads = [p for _, _, p in rig.replies] + [p for _, p in rig.broadcasts]
    times = [t for p in payloads for t in _times(p)]
    assert len(times) > 20
    for value in times:
        assert type(value) is int and value < 10**10
        datetime.fromtimestamp(value)


def test_oversized_document_is_refused_and_nothing_reaches_the_device(rig: Rig) -> None:  # checklist 45
    from system.errors import JobsError

    with pytest.raises(JobsError) as refused:
        rig.job("big", ["t1"], document={"blob": "x" * 32768})
    assert refused.value.code == "InvalidRequestException"
    assert rig.broadcasts == []
    _, reply = rig.send("t1", "get", {})
    assert reply["queuedJobs"] == []
    rig.job("fits", ["t1"], document={"b": "x" * (32768 - len('{"b":""}'))})


def test_presigned_url_placeholders_are_signed_for_devices_only() -> None:
    rig = Rig(options={"signer": lambda url: f"https://signed.example/{url.rsplit('/', 1)[1]}?sig=1"})
    doc = {"url": "${aws:iot:s3-presigned-url:https://s3.amazonaws.com/bucket/model.tar.gz}", "n": [1]}
    rig.job("j1", ["t1"], document=doc)
    (nxt,) = rig.notes("t1", "notify-next")
    assert nxt["execution"]["jobDocument"] == {"url": "https://signed.example/model.tar.gz?sig=1", "n": [1]}
    assert json.loads(rig.plane.get_job_document("j1")["document"]) == doc
