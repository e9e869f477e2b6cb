"""A moto-server cloud and the cloud.json `edgesim cloud up` would write for it (the local profile)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simulators.cloud import SimulatedCloud
from simulators.moto_env import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY


@contextmanager
def moto_server_cloud(folder: Path) -> Iterator[tuple[SimulatedCloud, Path]]:
    """moto as a real HTTP server (the broker stays in-process: these tests need none) and its cloud.json."""
    with SimulatedCloud("local", mqtt="fake") as cloud:
        project = cloud.project
        summary = {
            "moto_endpoint": cloud.endpoint_url,
            "region": cloud.region,
            "credentials": {"aws_access_key_id": FAKE_ACCESS_KEY_ID, "aws_secret_access_key": FAKE_SECRET_ACCESS_KEY},
            "bucket": project.bucket,
            "registry_groups": list(project.registry_groups),
            "thing_group_arn": project.thing_group_arn,
        }
        path = folder / "cloud.json"
        path.write_text(json.dumps(summary))
        yield cloud, path
