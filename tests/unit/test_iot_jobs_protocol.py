"""IoT Jobs requests and rejections: fields, error codes, topics (reference/iot-jobs-mqtt.md §1, §4, §8)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.iot_jobs_support import Rig

DOC = {"type": "new_model", "model_name": "m", "model_version": "2"}


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_get_with_nothing_pending_has_both_arrays_and_no_token(rig: Rig) -> None:  # checklist 1
    reply_topic, reply = rig.send("t1", "get", {})
    assert reply_topic == "$aws/things/t1/jobs/get/accepted"
    assert reply == {"inProgressJobs": [], "queuedJobs": [], "timestamp": int(rig.clock.now())}
    assert isinstance(reply["timestamp"], int)


@pytest.mark.parametrize(
    ("suffix", "good", "bad"),
    [
        ("get", {}, {"clientToken": 5}),  # a non-string token cannot be echoed: checked separately
        ("start-next", {}, {"stepTimeoutInMinutes": 0}),
        ("j1/get", {}, {"executionNumber": 99}),
        ("j1/update", {"status": "IN_PROGRESS"}, {"status": "DONE"}),
    ],
)
def test_client_token_is_echoed_verbatim_on_accepted_and_rejected(
    rig: Rig, suffix: str, good: dict[str, Any], bad: dict[str, Any]
) -> None:  # checklist 2
    rig.job("j1", ["t1"])
    token = "ünï-côdé token / 123"
    reply_topic, reply = rig.send("t1", suffix, {**good, "clientToken": token})
    assert reply_topic.endswith("/accepted") and reply["clientToken"] == token
    if suffix != "get":
        reply_topic, reply = rig.send("t1", suffix, {**bad, "clientToken": token})
        assert reply_topic.endswith("/rejected") and reply["clientToken"] == token


def test_non_string_client_token_is_invalid_request_without_token(rig: Rig) -> None:
    _, reply = rig.send("t1", "get", {"clientToken": 5})
    assert reply["code"] == "InvalidRequest" and "clientToken" not in reply


def test_describe_includes_the_document_unless_told_not_to(rig: Rig) -> None:  # checklist 14
    rig.job("j1", ["t1"], document=DOC)
    _, reply = rig.send("t1", "j1/get", {})
    assert reply["execution"]["jobDocument"] == DOC
    _, reply = rig.send("t1", "j1/get", {"includeJobDocument": False})
    assert "jobDocument" not in reply["execution"]


def test_describe_unknown_job_or_execution_number_is_resource_not_found(rig: Rig) -> None:  # checklist 15, 16
    rig.job("j1", ["t1"])
    reply_topic, reply = rig.send("t1", "nope/get", {})
    assert reply_topic == "$aws/things/t1/jobs/nope/get/rejected"
    assert reply["code"] == "ResourceNotFound" and "executionState" not in reply
    _, reply = rig.send("t1", "j1/get", {"executionNumber": 2})
    assert reply["code"] == "ResourceNotFound"
    _, reply = rig.send("t1", "j1/get", {"executionNumber": 1})
    assert reply["execution"]["executionNumber"] == 1
    _, reply = rig.send("t2", "j1/get", {})
    assert reply["code"] == "ResourceNotFound"


def test_minimal_update_reply_has_only_timestamp_and_token(rig: Rig) -> None:  # checklist 17
    rig.job("j1", ["t1"])
    _, reply = rig.send("t1", "j1/update", {"status": "SUCCEEDED", "clientToken": "c"})
    assert reply == {"timestamp": int(rig.clock.now()), "clientToken": "c"}


def test_update_include_flags_add_state_and_document(rig: Rig) -> None:  # checklist 18
    rig.job("j1", ["t1"], document=DOC)
    _, reply = rig.send(
        "t1",
        "j1/update",
        {"status": "IN_PROGRESS", "includeJobExecutionState": True, "includeJobDocument": True},
    )
    assert reply["executionState"] == {"status": "IN_PROGRESS", "versionNumber": 2}
    assert reply["jobDocument"] == DOC


def test_wrong_expected_version_is_version_mismatch_with_current_state(rig: Rig) -> None:  # checklist 19, 20
    rig.job("j1", ["t1"])
    rig.send("t1", "j1/update", {"status": "IN_PROGRESS", "statusDetails": {"p": "1"}})
    for wrong in (1, "1", 7):
        reply_topic, reply = rig.send("t1", "j1/update", {"status": "SUCCEEDED", "expectedVersion": wrong})
        assert reply_topic.endswith("/rejected") and reply["code"] == "VersionMismatch"
        assert reply["executionState"] == {"status": "IN_PROGRESS", "statusDetails": {"p": "1"}, "versionNumber": 2}
    _, reply = rig.send("t1", "j1/update", {"status": "IN_PROGRESS", "expectedVersion": "2"})
    assert "code" not in reply
    _, reply = rig.send(
        "t1", "j1/update", {"status": "SUCCEEDED", "expectedVersion": 3, "includeJobExecutionState": True}
    )
    assert reply["executionState"]["versionNumber"] == 4


@pytest.mark.parametrize("value", ["two", "2.0", "-1", "", 2.0, True, [2], {"v": 2}])
def test_malformed_expected_version_is_invalid_request(rig: Rig, value: Any) -> None:
    rig.job("j1", ["t1"])
    _, reply = rig.send("t1", "j1/update", {"status": "SUCCEEDED", "expectedVersion": value})
    assert reply["code"] == "InvalidRequest"


def test_update_of_a_terminal_execution_is_invalid_state_transition(rig: Rig) -> None:  # checklist 21
    rig.job("j1", ["t1"])
    rig.send("t1", "j1/update", {"status": "FAILED", "statusDetails": {"why": "disk"}})
    _, reply = rig.send("t1", "j1/update", {"status": "IN_PROGRESS"})
    assert reply["code"] == "InvalidStateTransition"
    assert reply["executionState"] == {"status": "FAILED", "statusDetails": {"why": "disk"}, "versionNumber": 2}


@pytest.mark.parametrize("status", ["QUEUED", "CANCELED", "TIMED_OUT", "REMOVED", "DONE", "succeeded", None, 3])
def test_update_with_a_status_a_device_may_not_set_is_invalid_request(rig: Rig, status: Any) -> None:  # checklist 22
    rig.job("j1", ["t1"])
    body = {} if status is None else {"status": status}
    _, reply = rig.send("t1", "j1/update", body)
    assert reply["code"] == "InvalidRequest" and "executionState" not in reply


@pytest.mark.parametrize(
    "details",
    [
        {"k": 1},
        {"k": None},
        {f"k{i}": "v" for i in range(11)},
        {"a key": "v"},
        {"": "v"},
        {"k" * 129: "v"},
        {"k": ""},
        {"k": "v" * 1025},
        {"k": "line\nbreak"},
        {"k": "zero\u200bwidth"},
        "not-an-object",
        ["k", "v"],
    ],
)
def test_invalid_status_details_are_invalid_request(rig: Rig, details: Any) -> None:  # checklist 23
    rig.job("j1", ["t1"])
    _, reply = rig.send("t1", "j1/update", {"status": "IN_PROGRESS", "statusDetails": details})
    assert reply["code"] == "InvalidRequest"
    _, reply = rig.send("t1", "start-next", {"statusDetails": details})
    assert reply["code"] == "InvalidRequest"
    _, reply = rig.send("t1", "j1/get", {})
    assert reply["execution"]["status"] == "QUEUED" and reply["execution"]["versionNumber"] == 1


def test_status_details_at_the_limits_are_accepted(rig: Rig) -> None:
    rig.job("j1", ["t1"])
    details = {f"k:_-{i}": "v" * 1024 for i in range(9)} | {"K" * 128: "ü"}
    _, reply = rig.send("t1", "j1/update", {"status": "IN_PROGRESS", "statusDetails": details})
    assert "code" not in reply


def test_update_without_status_details_keeps_them_and_with_replaces_them(rig: Rig) -> None:  # checklist 24
    rig.job("j1", ["t1"])
    rig.send("t1", "j1/update", {"status": "IN_PROGRESS", "statusDetails": {"a": "1", "b": "2"}})
    rig.send("t1", "j1/update", {"status": "IN_PROGRESS"})
    _, reply = rig.send("t1", "j1/get", {})
    assert reply["execution"]["statusDetails"] == {"a": "1", "b": "2"}
    rig.send("t1", "j1/update", {"status": "IN_PROGRESS", "statusDetails": {"c": "3"}})
    _, reply = rig.send("t1", "j1/get", {})
    assert reply["execution"]["statusDetails"] == {"c": "3"}
    rig.send("t1", "j1/update", {"status": "IN_PROGRESS", "statusDetails": {}})
    _, reply = rig.send("t1", "j1/get", {})
    assert "statusDetails" not in reply["execution"]


@pytest.mark.parametrize("raw", [b"", b"not json", b"{", b"\xff\xfe", b'{"a":NaN}', b"[" * 100_000])
def test_non_json_payload_is_invalid_json(rig: Rig, raw: bytes) -> None:  # checklist 25
    reply_topic, reply = rig.send("t1", "get", raw=raw)
    assert reply_topic == "$aws/things/t1/jobs/get/rejected"
    assert reply["code"] == "InvalidJson" and set(reply) == {"code", "message", "timestamp"}


@pytest.mark.parametrize("raw", [b"[]", b"3", b'"s"', b"null"])
def test_json_that_is_not_an_object_is_invalid_request(rig: Rig, raw: bytes) -> None:
    _, reply = rig.send("t1", "start-next", raw=raw)
    assert reply["code"] == "InvalidRequest"


@pytest.mark.parametrize("suffix", ["foo", "j1/bogus", "j1/get/more", "get/x", "", "a/b/c/d"])
def test_unknown_operation_is_invalid_topic_on_topic_rejected(rig: Rig, suffix: str) -> None:  # checklist 25
    reply_topic, reply = rig.send("t1", suffix, {"clientToken": "tok"})
    assert reply_topic == f"$aws/things/t1/jobs/{suffix}/rejected"
    assert reply["code"] == "InvalidTopic" and reply["clientToken"] == "tok"


@pytest.mark.parametrize(
    "topic",
    [
        "$aws/things/t1/jobs/get/accepted",
        "$aws/things/t1/jobs/j1/update/rejected",
        "$aws/things/t1/jobs/notify",
        "$aws/things/t1/jobs/notify-next",
        "$aws/things/t1/shadow/update",
        "devices/t1/jobs/get",
    ],
)
def test_replies_notifications_and_foreign_topics_are_ignored(rig: Rig, topic: str) -> None:
    rig.plane.handle("t1", topic, b"{}")
    assert rig.replies == [] and rig.broadcasts == []


@pytest.mark.parametrize(
    ("thing", "suffix"),
    [("bad thing", "get"), ("t" * 129, "get"), ("", "start-next"), ("t1", "bad.job/get"), ("t1", "j" * 65 + "/update")],
)
def test_malformed_names_in_the_topic_are_invalid_request(rig: Rig, thing: str, suffix: str) -> None:
    reply_topic, reply = rig.send(thing, suffix, {"status": "SUCCEEDED"})
    assert reply_topic.endswith("/rejected") and reply["code"] == "InvalidRequest"


def test_next_cannot_be_updated(rig: Rig) -> None:
    rig.job("j1", ["t1"])
    _, reply = rig.send("t1", "$next/update", {"status": "SUCCEEDED"})
    assert reply["code"] == "InvalidRequest"


@pytest.mark.parametrize("step", [0, 10081, -1, -5, "5", 1.5, True])
def test_bad_step_timeouts_on_start_next_are_invalid_request(rig: Rig, step: Any) -> None:  # checklist 35
    rig.job("j1", ["t1"])
    _, reply = rig.send("t1", "start-next", {"stepTimeoutInMinutes": step})
    assert reply["code"] == "InvalidRequest"
    _, reply = rig.send("t1", "j1/get", {})
    assert reply["execution"]["status"] == "QUEUED"


@pytest.mark.parametrize("step", [0, 10081, -2])
def test_bad_step_timeouts_on_update_are_invalid_request(rig: Rig, step: int) -> None:
    rig.job("j1", ["t1"])
    _, reply = rig.send("t1", "j1/update", {"status": "IN_PROGRESS", "stepTimeoutInMinutes": step})
    assert reply["code"] == "InvalidRequest"


@pytest.mark.parametrize(
    ("field", "value"),
    [("executionNumber", "1"), ("executionNumber", 1.0), ("includeJobDocument", "true"), ("includeJobDocument", 1)],
)
def test_wrong_field_types_are_invalid_request(rig: Rig, field: str, value: Any) -> None:
    rig.job("j1", ["t1"])
    _, reply = rig.send("t1", "j1/get", {field: value})
    assert reply["code"] == "InvalidRequest"


def test_null_fields_count_as_absent_and_unknown_fields_are_ignored(rig: Rig) -> None:
    rig.job("j1", ["t1"])
    _, reply = rig.send("t1", "j1/get", {"executionNumber": None, "includeJobDocument": None, "extra": [1]})
    assert reply["execution"]["jobDocument"]


def test_terminal_state_reached_is_switchable() -> None:
    from simulators.iot_jobs import Behaviour

    for switch, expected in ((False, "accepted"), (True, "rejected")):
        rig = Rig(options={"behaviour": Behaviour(terminal_state_reached=switch)})
        rig.job("j1", ["t1"])
        rig.send("t1", "j1/update", {"status": "SUCCEEDED"})
        reply_topic, reply = rig.send("t1", "j1/get", {"clientToken": "t"})
        assert reply_topic.endswith(expected)
        if switch:
            assert reply["code"] == "TerminalStateReached" and "executionState" not in reply
        else:
            assert reply["execution"]["status"] == "SUCCEEDED"


def test_thing_name_can_be_switched_on() -> None:
    from simulators.iot_jobs import Behaviour

    rig = Rig(options={"behaviour": Behaviour(include_thing_name=True)})
    rig.job("j1", ["t1"])
    _, reply = rig.send("t1", "j1/get", {})
    assert reply["execution"]["thingName"] == "t1"


def test_injected_errors_and_throttling_are_documented_rejections() -> None:
    rig = Rig(options={"rate_limit_per_second": 2})
    rig.plane.inject_error("InternalError")
    _, reply = rig.send("t1", "get", {"clientToken": "a"})
    assert reply["code"] == "InternalError" and reply["clientToken"] == "a"
    rig.clock.advance(1)
    codes = [rig.send("t1", "get", {})[1].get("code") for _ in range(3)]
    assert codes == [None, None, "RequestThrottled"]
    rig.clock.advance(1)
    assert "code" not in rig.send("t1", "get", {})[1]


def test_a_simulator_failure_is_answered_with_internal_error(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(thing: str) -> Any:
        raise KeyError("bug")

    monkeypatch.setattr(rig.plane.model, "get_pending", boom)
    _, reply = rig.send("t1", "get", {"clientToken": "z"})
    assert reply["code"] == "InternalError" and reply["clientToken"] == "z"


def test_oversized_payload_is_invalid_request(rig: Rig) -> None:
    _, reply = rig.send("t1", "get", raw=json.dumps({"x": "y" * 140_000}).encode())
    assert reply["code"] == "InvalidRequest"
