"""README's "edge device in one minute": `edgesim cloud up`, then `edgesim device run` on the
device.json it writes, then an OTA job made with plain boto3 against the printed endpoint."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from simulators.cloud_cli import READY
from simulators.moto_env import offline_session
from tests.edge.test_device_process import DeviceProcess
from tests.edge_fixtures import export_classifier_package
from tests.edge_world import tar_folder
from tests.mqtt_fixtures import StartMosquitto
from tests.scenarios.test_cloud_up import ROOT, Output


def test_a_device_from_cloud_up_takes_an_ota_job_made_with_boto3(
    start_mosquitto: StartMosquitto, tmp_path: Path
) -> None:
    mosquitto = start_mosquitto()
    state = Path(f"/tmp/es-{uuid.uuid4().hex[:8]}")  # short: the agent's unix socket lives under it
    command = [sys.executable, "-m", "system.cli", "--log-format", "text", "cloud", "up"]
    command += ["--broker", mosquitto.url, "--moto-port", "0", "--state", str(state)]
    cloud = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    device: DeviceProcess | None = None
    try:
        Output(cloud).wait_for(READY, timeout=30)
        summary = json.loads((state / "cloud.json").read_text())
        config = Path(summary["files"]["device_config"])
        assert json.loads(config.read_text())["thing_name"] == summary["thing_name"]
        device = DeviceProcess(config)

        archive = tar_folder(export_classifier_package(tmp_path / "package", "3"))
        session = offline_session(summary["region"])
        s3 = session.client("s3", endpoint_url=summary["moto_endpoint"])
        iot = session.client("iot", endpoint_url=summary["moto_endpoint"])
        s3.put_object(Bucket=summary["bucket"], Key="models/img-classification-3.tar.gz", Body=archive)
        document = {
            "type": "new_model",
            "model_name": "img-classification",
            "model_version": "3",
            "model_package_bucket": summary["bucket"],
            "model_package_key": "models/img-classification-3.tar.gz",
            "sha256": hashlib.sha256(archive).hexdigest(),
        }
        job_id = f"ota-{uuid.uuid4().hex[:8]}"
        iot.create_job(jobId=job_id, targets=[summary["thing_group_arn"]], document=json.dumps(document))
        deadline, status = time.monotonic() + 60, "not created yet"
        while status not in ("SUCCEEDED", "FAILED", "REJECTED"):
            assert time.monotonic() < deadline, f"the job is still {status}:\n" + "".join(device.output[-30:])
            time.sleep(0.1)
            try:  # the group's executions appear once the data plane has taken the job (a poll away)
                execution = iot.describe_job_execution(jobId=job_id, thingName=summary["thing_name"])
            except iot.exceptions.ResourceNotFoundException:
                continue
            status = execution["execution"]["status"]
        assert status == "SUCCEEDED"
        models = device.get("/api/models")["models"]
        assert [(m["name"], m["version"]) for m in models] == [("img-classification", "3")]
    finally:
        if device is not None:
            try:
                assert device.stop(signal.SIGTERM) == 0
            finally:  # never leave a device holding its web port for the tests after this one
                if device.process.poll() is None:
                    device.process.kill()
                    device.process.wait(10)
        cloud.send_signal(signal.SIGTERM)
        cloud.wait(10)
        subprocess.run(["rm", "-rf", str(state)], check=False)
