"""`edgesim cloud up` as a user runs it: a process serving boto3 and MQTT devices until SIGTERM."""

from __future__ import annotations

import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from simulators.cloud import BrokerAddress, SimulatedCloud
from simulators.cloud_cli import READY, _device_mqtt
from simulators.mosquitto import find_mosquitto
from simulators.moto_env import offline_session
from system.adapters.paho_bus import PahoMessageBus
from system.adapters.tls import TlsFiles
from system.errors import MessageBusError
from tests.mqtt_fixtures import NO_MOSQUITTO, Collector

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = {
    "type": "new_model",
    "model_name": "img-classification",
    "model_version": "2",
    "model_package_bucket": "b",
    "model_package_key": "models/img-classification-2.tar.gz",
}


class Output:
    """The lines a process prints, read on a thread so a test can wait for one with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._ended = False
        threading.Thread(target=self._pump, args=(process,), daemon=True).start()

    def _pump(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, wanted: str, timeout: float) -> str:
        """Everything printed up to the line `wanted` (fails after `timeout` s or at the end of output)."""
        deadline = time.monotonic() + timeout
        while wanted not in self.lines:
            assert not self._ended, f"the output ended without {wanted!r}: {self.lines}"
            line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            if line is None:
                self._ended = True
            else:
                self.lines.append(line)
        return "\n".join(self.lines)


def test_cloud_up_serves_boto3_and_an_mqtt_device_then_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """Its own broker (the default): the device connects with what device.json names, over mutual TLS."""
    if find_mosquitto() is None:
        pytest.skip(NO_MOSQUITTO)
    state = tmp_path / "state"
    command = [sys.executable, "-m", "system.cli", "--log-format", "text", "cloud", "up"]
    command += ["--moto-port", "0", "--state", str(state)]
    with (tmp_path / "stderr.log").open("w") as stderr:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True)
    device: PahoMessageBus | None = None
    try:
        output = Output(process)
        printed = output.wait_for(READY, timeout=30)
        match = re.search(r"moto endpoint +(http://127\.0\.0\.1:\d+)", printed)
        assert match, printed
        endpoint = match.group(1)
        summary: dict[str, Any] = json.loads((state / "cloud.json").read_text())
        assert summary["moto_endpoint"] == endpoint and summary["broker"].startswith("mqtts://127.0.0.1:")
        assert (Path(summary["files"]["private_key"]).stat().st_mode & 0o777) == 0o600
        assert (state.stat().st_mode & 0o777) == 0o700  # the local CA's key is in it
        thing, topic = summary["thing_name"], f"$aws/things/{summary['thing_name']}/jobs"
        mqtt = json.loads(Path(summary["files"]["device_config"]).read_text())["mqtt"]
        assert mqtt["url"] == summary["broker"] and "allow_plaintext" not in mqtt
        broker = BrokerAddress.parse(mqtt["url"])
        with pytest.raises(MessageBusError):  # no certificate, no connection
            PahoMessageBus(broker.host, broker.port, f"{thing}-plain").connect(timeout=2.0)

        files = TlsFiles(**{name: Path(path) for name, path in mqtt["tls"].items()})
        device = PahoMessageBus(broker.host, broker.port, thing, files, operation_timeout=5.0)
        notify_next, started = Collector(), Collector()
        device.subscribe(f"{topic}/notify-next", notify_next)
        device.subscribe(f"{topic}/start-next/accepted", started)
        device.connect(timeout=5.0)
        iot = offline_session(summary["region"]).client("iot", endpoint_url=endpoint)
        job_id = f"ota-{uuid.uuid4().hex[:8]}"
        created = time.monotonic()
        iot.create_job(jobId=job_id, targets=[summary["thing_group_arn"]], document=json.dumps(DOCUMENT))
        notified = json.loads(notify_next.wait_for(1, timeout=1.0)[0].payload)
        assert time.monotonic() - created < 1.0
        assert notified["execution"]["jobId"] == job_id and notified["execution"]["jobDocument"] == DOCUMENT

        device.publish(f"{topic}/start-next", b'{"clientToken": "dev"}', qos=1)
        assert json.loads(started.wait_for(1)[0].payload)["execution"]["status"] == "IN_PROGRESS"
        deadline = time.monotonic() + 3.0
        while iot.describe_job_execution(jobId=job_id, thingName=thing)["execution"]["status"] != "IN_PROGRESS":
            assert time.monotonic() < deadline, "boto3 never saw the device start the job"
            time.sleep(0.02)

        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0, (tmp_path / "stderr.log").read_text()[-2000:]
        assert time.monotonic() - stopping < 5.0
        output.wait_for("edgesim cloud stopped", timeout=1.0)
    finally:
        if device is not None:
            device.close()
        if process.poll() is None:
            process.kill()
            process.wait(5)


def test_cloud_up_help_says_it_needs_a_real_broker() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "system.cli", "cloud", "up", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0
    for option in ("--profile", "--broker", "--ca", "--cert", "--key", "--moto-port", "--state", "--project"):
        assert option in result.stdout
    assert "no network" in result.stdout and "mutual TLS" in result.stdout and "allow_plaintext" in result.stdout


def test_a_plain_broker_of_yours_gets_a_device_config_that_allows_plaintext_and_a_tls_one_none() -> None:
    plain = SimulatedCloud("local", mqtt_url="mqtt://127.0.0.1:1883")
    assert _device_mqtt(plain, "press-7") == {"url": "mqtt://127.0.0.1:1883", "allow_plaintext": True}
    yours = SimulatedCloud("local", mqtt_url="mqtts://broker.example:8883", tls=TlsFiles(Path("ca.pem")))
    assert _device_mqtt(yours, "press-7") is None  # its CA is not ours: we cannot issue the device a certificate
