"""Property tests of the IoT Jobs simulator: no illegal transition, no undocumented rejection, no crash."""

from __future__ import annotations

import json
import logging
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from system.errors import JobsError
from tests.unit.iot_jobs_support import Rig, topic

# reference/iot-jobs-mqtt.md §3.2, written out again here so the test does not trust the code's table.
LEGAL = {
    (None, "QUEUED"),
    ("QUEUED", "IN_PROGRESS"),
    ("QUEUED", "REJECTED"),
    ("QUEUED", "SUCCEEDED"),
    ("QUEUED", "FAILED"),
    ("QUEUED", "CANCELED"),
    ("QUEUED", "REMOVED"),
    ("IN_PROGRESS", "IN_PROGRESS"),
    ("IN_PROGRESS", "SUCCEEDED"),
    ("IN_PROGRESS", "FAILED"),
    ("IN_PROGRESS", "REJECTED"),
    ("IN_PROGRESS", "TIMED_OUT"),
    ("IN_PROGRESS", "CANCELED"),
}
DOCUMENTED = {
    "InvalidTopic",
    "InvalidJson",
    "InvalidRequest",
    "InvalidStateTransition",
    "ResourceNotFound",
    "VersionMismatch",
    "RequestThrottled",
    "TerminalStateReached",
}  # InternalError is documented too, but here it could only mean a simulator bug
THINGS = ("t0", "t1", "t2")
JOBS = ("j0", "j1", "j2")
STATUSES = ("IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED", "QUEUED", "CANCELED", "TIMED_OUT", "bogus")
FIELDS = (
    "clientToken",
    "status",
    "statusDetails",
    "expectedVersion",
    "executionNumber",
    "includeJobDocument",
    "includeJobExecutionState",
    "stepTimeoutInMinutes",
)


def _setup() -> Rig:
    rig = Rig()
    for thing in ("t0", "t1"):
        rig.plane.add_thing_to_group(thing, "g")
    rig.job(
        "j0",
        THINGS,
        timeout={"inProgressTimeoutInMinutes": 3},
        retry={"criteriaList": [{"failureType": "ALL", "numberOfRetries": 2}]},
    )
    rig.job(
        "j1",
        groups=["g"],
        target_selection="CONTINUOUS",
        rollout={"maximumPerMinute": 1},
        abort={
            "criteriaList": [
                {"failureType": "ALL", "action": "CANCEL", "thresholdPercentage": 60, "minNumberOfExecutedThings": 2}
            ]
        },
    )
    rig.job("j2", ["t2"], groups=["g"], retry={"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 1}]})
    return rig


# Mostly well-formed requests, so that sequences get far; a sprinkle of bad values.
statuses = st.sampled_from(["SUCCEEDED", "IN_PROGRESS", "FAILED", "SUCCEEDED", "FAILED", "REJECTED", *STATUSES])
versions = st.sampled_from([None, None, None, None, 1, 2, 3, "2"])
numbers = st.sampled_from([None, None, None, None, 1, 2, 3])
steps = st.sampled_from([None, None, None, -1, 1, 2, 0])
details = st.sampled_from([None, None, {"a": "x"}, {"a": "x", "b": "y"}, {"bad key": "x"}, {"a": ""}])
things = st.sampled_from(THINGS)
jobs = st.sampled_from(JOBS)
ACTIONS: dict[str, st.SearchStrategy[tuple[Any, ...]]] = {
    "update": st.tuples(st.just("update"), things, jobs, statuses, versions, numbers, steps),
    "update-head": st.tuples(st.just("update-head"), things, statuses, steps),
    "start-next": st.tuples(st.just("start-next"), things, steps, details),
    "describe": st.tuples(st.just("describe"), things, st.sampled_from([*JOBS, "$next"])),
    "get": st.tuples(st.just("get"), things),
    "advance": st.tuples(st.just("advance"), st.sampled_from([1, 30, 60, 61, 200])),
    "cancel_job": st.tuples(st.just("cancel_job"), jobs, st.booleans()),
    "cancel_execution": st.tuples(st.just("cancel_execution"), jobs, things, st.booleans()),
    "delete_execution": st.tuples(st.just("delete_execution"), jobs, things, st.sampled_from([1, 2]), st.booleans()),
    "join": st.tuples(st.just("join"), things),
    "leave": st.tuples(st.just("leave"), things),
}
# Weighted towards device requests so that sequences get far before an operator cancels everything.
WEIGHTS = {"update": 4, "update-head": 6, "start-next": 4, "advance": 3, "describe": 1, "get": 1, "join": 1, "leave": 1}
actions = st.sampled_from([k for k in ACTIONS for _ in range(WEIGHTS.get(k, 1))]).flatmap(ACTIONS.__getitem__)


def _body(*pairs: tuple[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in pairs if v is not None}


def _perform(rig: Rig, action: tuple[Any, ...]) -> None:
    kind = action[0]
    try:
        if kind == "update":
            _, thing, job, status, version, number, step = action
            body = _body(("status", status), ("expectedVersion", version), ("executionNumber", number))
            rig.send(thing, f"{job}/update", body | _body(("stepTimeoutInMinutes", step)))
        elif kind == "update-head":  # what a device does: update the execution it is working on
            _, thing, status, step = action
            head = rig.send(thing, "$next/get", {"includeJobDocument": False})[1].get("execution")
            if head is not None:
                body = _body(("status", status), ("expectedVersion", head["versionNumber"]))
                rig.send(thing, f"{head['jobId']}/update", body | _body(("stepTimeoutInMinutes", step)))
        elif kind == "start-next":
            rig.send(action[1], "start-next", _body(("stepTimeoutInMinutes", action[2]), ("statusDetails", action[3])))
        elif kind == "describe":
            rig.send(action[1], f"{action[2]}/get", {})
        elif kind == "get":
            rig.send(action[1], "get", {})
        elif kind == "advance":
            rig.clock.advance(action[1])
        elif kind == "cancel_job":
            rig.plane.cancel_job(action[1], force=action[2])
        elif kind == "cancel_execution":
            rig.plane.cancel_job_execution(action[1], action[2], force=action[3])
        elif kind == "delete_execution":
            rig.plane.delete_job_execution(action[1], action[2], action[3], force=action[4])
        elif kind == "join":
            rig.plane.add_thing_to_group(action[1], "g")
        else:
            rig.plane.remove_thing_from_group(action[1], "g")
    except JobsError:
        pass  # control-plane refusals are part of the game


def _check_transitions(rig: Rig) -> None:
    last: dict[tuple[str, str, int], tuple[str, int]] = {}
    for change in rig.changes:
        if change.thing_name is None:
            continue
        ex = change.execution
        assert ex is not None
        key = (ex.job_id, ex.thing_name, ex.execution_number)
        if change.deleted:
            assert last.pop(key)[0] == ex.status
            continue
        previous = last.get(key)
        assert (previous[0] if previous else None, ex.status) in LEGAL, (key, previous, ex.status)
        assert ex.version_number == (previous[1] + 1 if previous else 1)
        if previous is None:
            older = [k[2] for k in last if k[:2] == key[:2]]
            assert ex.execution_number == max(older, default=0) + 1
            assert all(last[(*key[:2], n)][0] not in ("QUEUED", "IN_PROGRESS") for n in older)
        last[key] = (ex.status, ex.version_number)


def _check_messages(rig: Rig) -> None:
    for _, reply_topic, reply in rig.replies:
        if reply_topic.endswith("/rejected"):
            assert reply["code"] in DOCUMENTED, reply
            assert ("executionState" in reply) == (reply["code"] in ("VersionMismatch", "InvalidStateTransition"))
    for note_topic, payload in rig.broadcasts:
        if note_topic.endswith("/notify"):
            listed = [e for entries in payload["jobs"].values() for e in entries]
            assert len(listed) <= 10 and all(v for v in payload["jobs"].values())
            assert len({e["jobId"] for e in listed}) == len(listed)
        else:
            assert set(payload) <= {"timestamp", "execution"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(actions, min_size=5, max_size=50))
def test_random_request_sequences_never_make_an_illegal_transition(sequence: list[tuple[Any, ...]]) -> None:
    rig = _setup()
    for action in sequence:
        _perform(rig, action)
    _check_transitions(rig)
    _check_messages(rig)
    for thing in THINGS:  # at most one pending execution per job and thing, and `get` agrees with the model
        _, pending = rig.send(thing, "get", {})
        listed = [s["jobId"] for s in pending["inProgressJobs"] + pending["queuedJobs"]]
        assert len(listed) == len(set(listed))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
request_topics = st.one_of(
    st.sampled_from(["get", "start-next", "j0/get", "j0/update", "$next/get", "$next/update", "nope/update"]),
    st.text(alphabet="abj0$/+-_.# ", max_size=12),
).map(lambda suffix: topic("t0", suffix))


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _answer_only_documented(rig: Rig, request_topic: str, payload: bytes) -> None:
    errors = _Errors()
    logging.getLogger("simulators.iot_jobs").addHandler(errors)
    try:
        before = len(rig.replies)
        rig.plane.handle("t0", request_topic, payload)
    finally:
        logging.getLogger("simulators.iot_jobs").removeHandler(errors)
    assert errors.records == []
    for _, reply_topic, reply in rig.replies[before:]:
        assert reply_topic in (f"{request_topic}/accepted", f"{request_topic}/rejected")
        if reply_topic.endswith("/rejected"):
            assert reply["code"] in DOCUMENTED
            assert set(reply) <= {"code", "message", "clientToken", "timestamp", "executionState"}


@settings(max_examples=300, deadline=None)
@given(request_topics, st.binary(max_size=64))
def test_random_bytes_only_get_documented_rejections(request_topic: str, payload: bytes) -> None:
    _answer_only_documented(_setup(), request_topic, payload)


@settings(max_examples=300, deadline=None)
@given(request_topics, st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5))
def test_random_json_fields_only_get_documented_answers(request_topic: str, body: dict[str, Any]) -> None:
    _answer_only_documented(_setup(), request_topic, json.dumps(body).encode())
