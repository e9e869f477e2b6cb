"""Settings: one place reads the environment; profiles, overrides and the original agent config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from system.config import AgentSettings, load_settings
from system.errors import ConfigError


def test_defaults_are_the_fake_profile_and_the_original_socket() -> None:
    settings = load_settings({})
    assert settings.profile == "fake"
    assert settings.agent.socket_path == "/tmp/edge_agent"
    assert settings.agent.target == "unix:///tmp/edge_agent"
    assert settings.backend_for("mqtt") == "fake"


def test_profile_and_per_port_override() -> None:
    settings = load_settings({"EDGESIM_PROFILE": "local", "EDGESIM_MQTT_BACKEND": "fake"})
    assert settings.backend_for("mqtt") == "fake"
    assert settings.backend_for("object_store") == "local"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EDGESIM_PROFILE": "prod"}, "EDGESIM_PROFILE"),
        ({"EDGESIM_AGENT_MAX_MODELS": "many"}, "EDGESIM_AGENT_MAX_MODELS"),
        ({"EDGESIM_AGENT_MAX_MODELS": "0"}, "max_models"),
        ({"EDGESIM_AGENT_ACCEPT_FLOAT32_PAYLOADS": "maybe"}, "true or false"),
        ({"EDGESIM_AGENT_LOAD_SWITCH_INTERVAL_MS": "fast"}, "EDGESIM_AGENT_LOAD_SWITCH_INTERVAL_MS"),
        ({"EDGESIM_AGENT_LOAD_SWITCH_INTERVAL_MS": "-1"}, "load_switch_interval_ms"),
        ({"EDGESIM_AGENT_LOAD_SWITCH_INTERVAL_MS": "5000"}, "load_switch_interval_ms"),
        ({"EDGESIM_AGENT_LOAD_SWITCH_INTERVAL_MS": "nan"}, "load_switch_interval_ms"),
        ({"EDGESIM_AGENT_GC_FREEZE": "sometimes"}, "EDGESIM_AGENT_GC_FREEZE"),
        ({"EDGESIM_CAPTURE_DESTINATION": "Tape"}, "Disk or Cloud"),
        ({"EDGESIM_CAPTURE_BATCH_SIZE": "50"}, "must not exceed"),
    ],
)
def test_bad_settings_are_refused_with_the_variable_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_load_switch_interval_and_gc_freeze_default_to_fast_loads() -> None:
    agent = load_settings({}).agent
    assert agent.load_switch_interval_ms == 0.5
    assert agent.gc_freeze is True


def test_load_switch_interval_and_gc_freeze_are_read_from_the_environment() -> None:
    agent = load_settings({"EDGESIM_AGENT_LOAD_SWITCH_INTERVAL_MS": "0", "EDGESIM_AGENT_GC_FREEZE": "false"}).agent
    assert agent.load_switch_interval_ms == 0.0
    assert agent.gc_freeze is False
    agent = load_settings({"EDGESIM_AGENT_LOAD_SWITCH_INTERVAL_MS": "1000", "EDGESIM_AGENT_GC_FREEZE": "on"}).agent
    assert agent.load_switch_interval_ms == 1000.0
    assert agent.gc_freeze is True


def test_out_of_range_load_switch_interval_is_refused_by_validate() -> None:
    with pytest.raises(ConfigError, match="between 0 and 1000"):
        AgentSettings(load_switch_interval_ms=-1).validate()


def test_original_agent_config_file_sets_capture(tmp_path: Path) -> None:
    config = tmp_path / "config_edge_device.json"
    config.write_text(
        json.dumps(
            {
                "sagemaker_edge_core_device_name": "edge-device-1",
                "sagemaker_edge_core_device_fleet_name": "defect-detection-p",
                "sagemaker_edge_core_capture_data_destination": "Disk",
                "sagemaker_edge_core_capture_data_disk_path": "/var/capture",
                "sagemaker_edge_core_folder_prefix": "edge-agent-inference-data-capture",
                "sagemaker_edge_core_capture_data_buffer_size": 30,
                "sagemaker_edge_core_capture_data_batch_size": 10,
                "sagemaker_edge_core_capture_data_push_period_seconds": 4000,
                "sagemaker_edge_core_capture_data_base64_embed_limit": 2,
                "sagemaker_edge_log_verbose": False,
            }
        )
    )
    agent = AgentSettings.from_agent_config_file(config)
    assert agent.capture.device_name == "edge-device-1"
    assert agent.capture.fleet_name == "defect-detection-p"
    assert agent.capture.disk_path == "/var/capture"
    assert agent.capture.push_period_seconds == 4000.0
    assert agent.capture.base64_embed_limit_kb == 2
    agent.validate()


def test_unreadable_agent_config_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        AgentSettings.from_agent_config_file(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        AgentSettings.from_agent_config_file(tmp_path / "missing.json")
