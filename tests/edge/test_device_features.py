"""The device beyond the OTA flows: signed packages, data capture to S3, telemetry, metrics, start-up."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families

from system.edge.models_config import ModelsConfigFile
from system.errors import ConfigError
from system.ports import Message
from system.signing import public_key_pem, sign_digest
from tests.edge.test_ota_flows import assert_consistent, deploy_and_wait, eventually, reason
from tests.edge_world import EdgeWorld, tar_folder

# Every feature on both profiles: in-process fakes, and Mosquitto + the moto server over loopback.
pytestmark = pytest.mark.parametrize("world", ["fake", "local"], indirect=True)


@pytest.fixture
def signing_key(world: EdgeWorld) -> tuple[Ed25519PrivateKey, object]:
    key = Ed25519PrivateKey.generate()
    path = world.root / "signing.pem"
    path.write_bytes(public_key_pem(key))
    return key, path


def test_signed_package_installs_and_a_bad_or_missing_signature_does_not(world: EdgeWorld, signing_key: tuple) -> None:
    key, path = signing_key
    device = world.start_device(signing_public_key=path)
    document = world.document("img-classification", "1")
    document["signature"] = sign_digest(key, document["sha256"])
    assert deploy_and_wait(world, document)["status"] == "SUCCEEDED"

    forged = world.document("img-classification", "2")
    forged["signature"] = sign_digest(Ed25519PrivateKey.generate(), forged["sha256"])
    execution = deploy_and_wait(world, forged)
    assert execution["status"] == "FAILED" and "signature does not match" in reason(execution)

    unsigned = deploy_and_wait(world, world.document("img-classification", "3"))
    assert unsigned["status"] == "REJECTED" and "signed" in reason(unsigned)
    assert_consistent(world, device, {"img-classification": "1"})


def test_captures_land_in_s3_in_the_edge_manager_layout(world: EdgeWorld) -> None:
    device = world.start_device(agent=world.agent(capture_to_s3=True), capture_fraction=1.0)
    assert deploy_and_wait(world, world.document("img-classification", "1"))["status"] == "SUCCEEDED"
    eventually(lambda: device.engine.captures >= 3, what="captures")
    prefix = "edge-agent-inference-data-capture/line-1/img-classification-1/"
    records = lambda: [k for k in world.store.list_keys(prefix) if k.endswith(".jsonl")]  # noqa: E731
    eventually(lambda: bool(records()), what="capture records in S3")
    key = records()[0]  # (tensors above the embed limit are objects of their own beside it)
    assert re.match(rf"{prefix}\d{{4}}/\d{{2}}/\d{{2}}/\d{{2}}/", key), key
    record = json.loads(world.store.get_bytes(key).splitlines()[0])
    assert {"deviceFleetInputs", "deviceFleetOutputs"} <= set(record.get("eventData", record))


def test_telemetry_batches_reach_the_broker(world: EdgeWorld) -> None:
    received: list[Message] = []
    watcher = world.cloud.device_bus(world.thing, client_id=f"{world.thing}-watcher")
    watcher.subscribe(f"edgesim/{world.thing}/telemetry/#", received.append)
    watcher.connect()
    device = world.start_device()
    assert deploy_and_wait(world, world.document("img-classification", "1"))["status"] == "SUCCEEDED"
    eventually(
        lambda: {m.topic.rsplit("/", 1)[1] for m in received} >= {"ota", "inference", "metrics"}, what="telemetry"
    )
    ota = [json.loads(m.payload) for m in received if m.topic.endswith("/ota")]
    entries = [e for batch in ota for e in batch["entries"]]
    assert any(e.get("outcome") == "SUCCEEDED" and e["step"] == "done" for e in entries)
    assert all(batch["thing"] == world.thing and "dropped_total" in batch for batch in ota)
    metrics = {f.name: f for f in text_string_to_metric_families(device.metrics_text())}
    assert "edgesim_inferences" in metrics and "edgesim_model_info" in metrics
    assert any(s.labels.get("identifier") == "img-classification-1" for s in metrics["edgesim_model_info"].samples)


def test_a_seed_models_config_is_loaded_and_rewritten_in_the_seed_shape(world: EdgeWorld) -> None:
    device = world.start_device()
    assert deploy_and_wait(world, world.document("img-classification", "1"))["status"] == "SUCCEEDED"
    device.stop()
    path = device.layout.models_config
    seed_style = {
        "mappings": {"image-classification-app": "img-classification", "image-segmentation-app": "unet"},
        "models": [{"name": "img-classification", "version": "1", "identifier": "img-classification-1"}],
        "note": "kept as it was",
    }
    path.write_text(json.dumps(seed_style))
    restarted = world.start_device()
    assert [m.identifier for m in restarted.roster.all()] == ["img-classification-1"]
    assert deploy_and_wait(world, world.document("unet", "1"))["status"] == "SUCCEEDED"
    saved = json.loads(path.read_text())
    assert saved["note"] == "kept as it was" and saved["mappings"] == seed_style["mappings"]
    assert saved["models"] == [
        {"name": "img-classification", "version": "1", "identifier": "img-classification-1"},
        {"name": "unet", "version": "1", "identifier": "unet-1"},
    ]
    assert ModelsConfigFile(path).load().entry("unet") is not None


def test_start_up_unloads_models_the_config_does_not_name(world: EdgeWorld) -> None:
    agent = world.agent()
    _, client = agent
    stray = world.packages.folder("img-classification", "7")
    client.load_model("stray-model", str(stray))
    device = world.start_device(agent=agent)
    assert device.startup is not None and device.startup.unloaded == ["stray-model"]
    assert client.list_models() == []


def test_a_long_download_does_not_block_mqtt(world: EdgeWorld) -> None:
    """While a step runs on the OTA worker, the bus still answers: notify and pings go through."""
    device = world.start_device()
    gate_entered, release = [], []
    real_download = device.steps.download

    def slow_download(state):  # type: ignore[no-untyped-def]
        gate_entered.append(time.monotonic())
        deadline = time.monotonic() + 10
        while not release and time.monotonic() < deadline:
            time.sleep(0.02)
        return real_download(state)

    device.steps.download = slow_download  # type: ignore[method-assign]
    job_id = world.deploy(world.document("img-classification", "1"))
    eventually(lambda: bool(gate_entered), what="the download to start")
    # The bus is free: a second job's notify reaches the device and the jobs API answers it.
    second = world.deploy(world.document("unet", "1"))
    assert device.jobs_client.describe(second)["status"] == "QUEUED"
    assert device.backends.bus.connected
    release.append(True)
    assert world.wait_job(job_id)["status"] == "SUCCEEDED"
    assert world.wait_job(second)["status"] == "SUCCEEDED"


def test_archive_larger_than_the_limit_fails_before_download(world: EdgeWorld) -> None:
    device = world.start_device(max_package_bytes=1000)
    execution = deploy_and_wait(world, world.document("img-classification", "1"))
    assert execution["status"] == "FAILED" and "1000 allowed" in reason(execution)
    assert not any(device.layout.downloads.glob("*"))
    assert tar_folder  # (the archive helper is shared with the flow tests)


def test_a_web_port_in_use_fails_the_start_cleanly(world: EdgeWorld) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}"):
            world.start_device(web_enabled=True, web_port=port)
    device = world.start_device()  # nothing of the failed start is left behind: the next one works
    assert deploy_and_wait(world, world.document("img-classification", "1"))["status"] == "SUCCEEDED"
    assert_consistent(world, device, {"img-classification": "1"})
