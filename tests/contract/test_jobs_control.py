"""JobsControl: one body per behaviour, on moto in-process and on the moto server.

moto keeps no execution state machine (feasibility.md section 4): these tests pin what the
control plane stores and reports, not how executions progress (the jobs data plane owns that).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from simulators.moto_env import MotoEnvironment
from system.adapters.iot_jobs_control import IotJobsControl
from system.errors import JobsError
from system.ports import JobSpec

DOCUMENT = {
    "type": "new_model",
    "model_name": "img-classification",
    "model_version": "3",
    "model_package_bucket": "sm-edge-workshop-demo-123456789012",
    "model_package_key": "models/img-classification-3.tar.gz",
}
ROLLOUT = {
    "exponentialRate": {
        "baseRatePerMinute": 5,
        "incrementFactor": 2.0,
        "rateIncreaseCriteria": {"numberOfSucceededThings": 2},
    },
    "maximumPerMinute": 50,
}
ABORT = {
    "criteriaList": [
        {"failureType": "FAILED", "action": "CANCEL", "thresholdPercentage": 20.0, "minNumberOfExecutedThings": 5}
    ]
}
TIMEOUT = {"inProgressTimeoutInMinutes": 30}
RETRY = {"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 2}]}


@pytest.fixture
def make_things(moto_env: MotoEnvironment, unique_name: Callable[[str], str]) -> Callable[[int], list[str]]:
    """Factory: `n` new things; returns their ARNs (they go with the environment's state)."""
    iot = moto_env.client("iot")

    def factory(n: int) -> list[str]:
        return [str(iot.create_thing(thingName=unique_name("edge-device"))["thingArn"]) for _ in range(n)]

    return factory


@pytest.fixture
def jobs(moto_env: MotoEnvironment) -> IotJobsControl:
    return IotJobsControl(moto_env.client("iot"), page_size=1)  # one per page: pagination is exercised


def _thing_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _spec(job_id: str, targets: list[str], **overrides: Any) -> JobSpec:
    return JobSpec(job_id=job_id, targets=targets, document=DOCUMENT, **overrides)


def test_create_job_with_every_config_is_described_back(
    jobs: IotJobsControl, make_things: Callable[[int], list[str]], unique_name: Callable[[str], str]
) -> None:
    targets = make_things(2)
    job_id = unique_name("job")
    spec = _spec(
        job_id,
        targets,
        target_selection="SNAPSHOT",
        description="img-classification v3",
        rollout=ROLLOUT,
        abort=ABORT,
        timeout=TIMEOUT,
        retry=RETRY,
    )
    created = jobs.create_job(spec)
    assert created["jobId"] == job_id
    assert created["jobArn"].endswith(f":job/{job_id}")
    job = jobs.describe_job(job_id)
    assert job["jobId"] == job_id
    assert job["targets"] == targets
    assert job["targetSelection"] == "SNAPSHOT"
    assert job["description"] == "img-classification v3"
    assert job["jobExecutionsRolloutConfig"] == ROLLOUT
    assert job["abortConfig"] == ABORT
    assert job["timeoutConfig"] == TIMEOUT
    assert job["jobExecutionsRetryConfig"] == RETRY
    assert job["status"] == "QUEUED"


def test_the_job_document_is_sent_as_json(
    moto_env: MotoEnvironment,
    jobs: IotJobsControl,
    make_things: Callable[[int], list[str]],
    unique_name: Callable[[str], str],
) -> None:
    job_id = unique_name("job")
    jobs.create_job(_spec(job_id, make_things(1)))
    document = moto_env.client("iot").get_job_document(jobId=job_id)["document"]
    assert json.loads(document) == DOCUMENT


def test_list_job_executions_covers_every_target_and_filters_by_status(
    jobs: IotJobsControl, make_things: Callable[[int], list[str]], unique_name: Callable[[str], str]
) -> None:
    targets = make_things(3)
    job_id = unique_name("job")
    jobs.create_job(_spec(job_id, targets))
    executions = jobs.list_job_executions_for_job(job_id)
    assert sorted(e["thingArn"] for e in executions) == sorted(targets)
    assert {e["jobExecutionSummary"]["status"] for e in executions} == {"QUEUED"}
    jobs.cancel_job_execution(job_id, _thing_name(targets[0]))
    assert [e["thingArn"] for e in jobs.list_job_executions_for_job(job_id, status="CANCELED")] == [targets[0]]
    assert len(jobs.list_job_executions_for_job(job_id, status="QUEUED")) == 2


def test_describe_job_execution_of_a_queued_thing(
    jobs: IotJobsControl, make_things: Callable[[int], list[str]], unique_name: Callable[[str], str]
) -> None:
    (target,) = make_things(1)
    job_id = unique_name("job")
    jobs.create_job(_spec(job_id, [target]))
    execution = jobs.describe_job_execution(job_id, _thing_name(target))
    assert (execution["jobId"], execution["thingArn"], execution["status"]) == (job_id, target, "QUEUED")
    assert "executionNumber" in execution


def test_cancel_job_with_force_and_a_comment(
    jobs: IotJobsControl, make_things: Callable[[int], list[str]], unique_name: Callable[[str], str]
) -> None:
    job_id = unique_name("job")
    jobs.create_job(_spec(job_id, make_things(1)))
    jobs.cancel_job(job_id, force=True, comment="bad model")
    job = jobs.describe_job(job_id)
    assert (job["status"], job["forceCanceled"], job["comment"]) == ("CANCELED", True, "bad model")


def test_cancel_job_execution_of_a_queued_execution(
    jobs: IotJobsControl, make_things: Callable[[int], list[str]], unique_name: Callable[[str], str]
) -> None:
    first, second = make_things(2)
    job_id = unique_name("job")
    jobs.create_job(_spec(job_id, [first, second]))
    jobs.cancel_job_execution(job_id, _thing_name(first))
    assert jobs.describe_job_execution(job_id, _thing_name(first))["status"] == "CANCELED"
    assert jobs.describe_job_execution(job_id, _thing_name(second))["status"] == "QUEUED"


def test_describing_an_unknown_job_raises_resource_not_found(
    jobs: IotJobsControl, unique_name: Callable[[str], str]
) -> None:
    with pytest.raises(JobsError) as raised:
        jobs.describe_job(unique_name("no-such-job"))
    assert raised.value.code == "ResourceNotFoundException"


def test_describing_an_unknown_execution_raises_resource_not_found(
    jobs: IotJobsControl, make_things: Callable[[int], list[str]], unique_name: Callable[[str], str]
) -> None:
    job_id = unique_name("job")
    jobs.create_job(_spec(job_id, make_things(1)))
    with pytest.raises(JobsError) as raised:
        jobs.describe_job_execution(job_id, unique_name("not-a-target"))
    assert raised.value.code == "ResourceNotFoundException"


def test_canceling_an_unknown_execution_raises_jobs_error(
    jobs: IotJobsControl, make_things: Callable[[int], list[str]], unique_name: Callable[[str], str]
) -> None:
    # AWS answers ResourceNotFoundException; moto 5.2.5 fails with a KeyError (in process) or an
    # HTTP 500 (server). Whatever comes back, callers get a JobsError with a code.
    job_id = unique_name("job")
    jobs.create_job(_spec(job_id, make_things(1)))
    with pytest.raises(JobsError) as raised:
        jobs.cancel_job_execution(job_id, unique_name("not-a-target"))
    assert raised.value.code in ("ResourceNotFoundException", "InternalFailureException", "500")
