"""JobsModel: the plain model of the IoT Jobs simulator (no MQTT, no threads, no timers).

Device operations (`get_pending`, `start_next`, `describe`, `update`) and control-plane operations
(`create_job`, `add_thing_to_group`, `cancel_job`, ...) each return an `Outcome`: the reply, the
`notify`/`notify-next` messages it causes, and the state changes for observers. Time comes from the
Clock's `now()` only: the owner calls `advance()` at `next_wakeup()` (JobsDataPlane does that with
Clock timers), which expires timers and runs rollout minutes.
"""

from __future__ import annotations

import json
from typing import Any

from simulators.iot_jobs.control import ControlOperations, not_found
from simulators.iot_jobs.device import DeviceOperations
from simulators.iot_jobs.views import describe_execution, describe_job, execution_summary


class JobsModel(DeviceOperations, ControlOperations):
    """Things, groups, jobs and executions, with the rules of reference/iot-jobs-mqtt.md."""

    def describe_job(self, job_id: str) -> dict[str, Any]:
        """DescribeJob's response shape, with jobProcessDetails."""
        return describe_job(self._job(job_id))

    def get_job_document(self, job_id: str) -> dict[str, Any]:
        """GetJobDocument: the document as a JSON string, placeholders not substituted (§6)."""
        return {"document": json.dumps(self._job(job_id).document)}

    def list_job_executions_for_job(self, job_id: str, status: str | None = None) -> list[dict[str, Any]]:
        """ListJobExecutionsForJob's `executionSummaries`: each thing's newest execution."""
        job = self._job(job_id)
        return [
            {"thingArn": self.thing_arn(e.thing_name), "jobExecutionSummary": execution_summary(e)}
            for e in self.latest_of_job(job)
            if status is None or e.status == status
        ]

    def list_job_executions_for_thing(self, thing: str, status: str | None = None) -> list[dict[str, Any]]:
        """ListJobExecutionsForThing's `executionSummaries`: the thing's newest execution of each job."""
        out = []
        for job_id in self.thing_jobs.get(thing, {}):
            execution = self.latest(job_id, thing)
            if execution is not None and (status is None or execution.status == status):
                out.append({"jobId": job_id, "jobExecutionSummary": execution_summary(execution)})
        return out

    def describe_job_execution(self, job_id: str, thing: str, execution_number: int | None = None) -> dict[str, Any]:
        """DescribeJobExecution's response shape."""
        execution = self.find(job_id, thing, execution_number)
        if execution is None:
            raise not_found(f"no execution of job {job_id} for thing {thing}")
        return {"execution": describe_execution(execution, self.thing_arn(thing), self.now())}
