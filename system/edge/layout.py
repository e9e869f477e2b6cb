"""Where a device keeps its files, under one root (the seed's `$SM_EDGE_AGENT_HOME`).

<root>/models_config.json          the serving models (seed shape), unless placed elsewhere
<root>/model/dev/<name>/<version>/  extracted model packages (the seed's folder scheme)
<root>/ota/journal.json             the OTA journal
<root>/ota/downloads/               package archives being downloaded (kept across restarts)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DeviceLayout:
    root: Path
    models_config_path: Path | None = None

    @property
    def models_config(self) -> Path:
        return self.models_config_path or self.root / "models_config.json"

    @property
    def models(self) -> Path:
        return self.root / "model" / "dev"

    def package_dir(self, name: str, version: str) -> Path:
        return self.models / name / version

    @property
    def journal(self) -> Path:
        return self.root / "ota" / "journal.json"

    @property
    def downloads(self) -> Path:
        return self.root / "ota" / "downloads"

    def download_path(self, job_id: str, execution_number: int) -> Path:
        return self.downloads / f"{job_id}.{execution_number}.tar.gz"
