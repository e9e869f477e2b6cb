"""Bring the agent in line with models_config.json when the device starts.

After a clean stop, a crash or a power cut the file names exactly the models that were serving
(it is written atomically at every switch), so start-up loads those and nothing else: a model the
agent still holds from before (an agent that outlived the app) is adopted when it is the same
package, and anything else it holds is unloaded, except what the journaled job in progress still
needs. The seed forgot OTA-installed versions on any unclean exit and got ALREADY_EXISTS for models
the agent still held (seed-behaviours.md section 6, items 25 and 27).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from system.agent.package import read_package
from system.edge.layout import DeviceLayout
from system.edge.models_config import ModelsConfig
from system.edge.ota_machine import JobState
from system.edge.roster import ModelRoster, ServingModel
from system.errors import EdgesimError, ModelNotFoundError
from system.ports import InferenceClient

_log = logging.getLogger(__name__)


@dataclass
class StartupReport:
    loaded: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    unloaded: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def restore_models(
    client: InferenceClient,
    config: ModelsConfig,
    layout: DeviceLayout,
    roster: ModelRoster,
    job: JobState | None,
) -> StartupReport:
    report = StartupReport()
    in_agent = {model.name: model.url for model in client.list_models()}
    wanted: set[str] = set()
    for entry in config.models:
        if not roster.supports(entry.name):
            report.problems.append(f"{entry.identifier}: model {entry.name!r} is not in the mappings; not loaded")
            continue
        folder = layout.package_dir(entry.name, entry.version)
        try:
            package = read_package(str(folder))
            _load(client, entry.identifier, folder, in_agent, report)
        except EdgesimError as exc:
            report.problems.append(f"{entry.identifier}: {exc}")
            _log.error(
                "a configured model could not be loaded",
                extra={"fields": {"model": entry.identifier, "error": str(exc)}},
            )
            continue
        wanted.add(entry.identifier)
        roster.switch(ServingModel(entry.name, entry.version, entry.identifier, folder, package.manifest))
    keep = set(wanted)
    if job is not None:
        keep.add(job.identifier)
        if job.previous is not None:
            keep.add(job.previous.identifier)
    for identifier in sorted(set(in_agent) - keep):
        try:
            client.unload_model(identifier)
            report.unloaded.append(identifier)
        except ModelNotFoundError:
            pass
    _log.info("models restored", extra={"fields": vars(report)})
    return report


def _load(
    client: InferenceClient, identifier: str, folder: Path, in_agent: dict[str, str], report: StartupReport
) -> None:
    url = in_agent.get(identifier)
    if url is not None and Path(url.removeprefix("file://")) == folder:
        report.adopted.append(identifier)
        return
    if url is not None:
        client.unload_model(identifier)
    client.load_model(identifier, str(folder))
    report.loaded.append(identifier)
