"""The `fake` profile of `edgesim device run`: a simulated cloud and the agent, all in this process.

Registered as the `edgesim.device_profiles` entry point `fake`, so that `system` finds it without
importing the fakes. The device's thing is created in the simulated cloud (and added to the
project's thing group) when it is not the seeded one. Limitation: the simulated cloud lives and
dies with the device process, so jobs for it come from code in the same process (scenarios),
not from another terminal; use the `local` profile (`edgesim cloud up`) for that.
"""

from __future__ import annotations

from dataclasses import replace

from simulators.camera import SyntheticCamera
from simulators.cloud import SimulatedCloud
from system.adapters.agent_client import GrpcEdgeAgentClient
from system.agent.server import EdgeAgent
from system.config import Settings
from system.edge.backends import build_source
from system.edge.device import DeviceBackends
from system.edge.device_config import DeviceConfig


def fake_device_backends(config: DeviceConfig, settings: Settings) -> DeviceBackends:
    cloud = SimulatedCloud("fake").start()
    try:
        project = cloud.project
        if config.thing_name != project.thing_name:
            iot = cloud.client("iot")
            iot.create_thing(thingName=config.thing_name)
            iot.add_thing_to_thing_group(thingGroupName=project.thing_group_name, thingName=config.thing_name)
        config.root.mkdir(parents=True, exist_ok=True)
        agent_settings = replace(settings.agent, socket_path=str(config.root / "agent.sock"), address="")
        agent_settings = replace(agent_settings, capture=replace(agent_settings.capture, destination="Cloud"))
        agent = EdgeAgent(agent_settings, capture_store=cloud.object_store())
        client = GrpcEdgeAgentClient(agent.start())
    except BaseException:
        cloud.stop()
        raise
    source = build_source(config) if config.source.type == "folder" else SyntheticCamera(seed=config.source.seed)
    return DeviceBackends(
        bus=cloud.device_bus(config.thing_name),
        stores=cloud.object_store,
        client=client,
        source=source,
        agent_target=client.target,
        closers=[cloud.stop, agent.stop, client.close],
    )
