"""Kill a device at a chosen OTA step, in-process, as a SIGKILL would.

The OTA worker dies at the step (`DeviceKilled` is no `Exception`: nothing in the device catches
it, as nothing survives a SIGKILL); `crash` then drops the rest of the device without any
shutdown work that touches its files. Only the fake and local profiles' in-process devices can be
killed this way; a device process is killed with a real SIGKILL (tests/edge/test_device_process.py).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from system.edge.device import DeviceApp
from system.edge.ota_machine import JobState, Step


class DeviceKilled(BaseException):
    """Not an Exception: nothing in the device catches it, as nothing survives a SIGKILL."""


def quiet_kills() -> None:
    """Keep the dying worker's traceback off the console (Python prints uncaught thread exceptions)."""
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not DeviceKilled:
            previous(args)

    threading.excepthook = hook


def kill_at(device: DeviceApp, step: Step) -> None:
    """The device dies when its OTA worker reaches `step` (mid-download for DOWNLOAD)."""
    if step is Step.DOWNLOAD:
        _kill_mid_download(device)
        return
    real_run = device.steps.run

    def run(state: JobState) -> str:
        if state.step is step:
            raise DeviceKilled(f"killed at {step}")
        return real_run(state)

    device.steps.run = run  # type: ignore[method-assign]


def _kill_mid_download(device: DeviceApp) -> None:
    """The download stops half-way: the partial file stays on disk, as after a kill."""
    real_stores = device.steps.stores

    class HalfStore:
        def __init__(self, bucket: str) -> None:
            self.store: Any = real_stores(bucket)

        def download_file(self, key: str, dest: Path, *, max_bytes: int | None = None) -> int:
            data = self.store.get_bytes(key)
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data[: len(data) // 2])
            raise DeviceKilled("killed during the download")

        def size(self, key: str) -> int:
            return int(self.store.size(key))

        def upload_file(self, path: Path, key: str) -> None:
            self.store.upload_file(path, key)

    device.steps.stores = HalfStore


def crash(device: DeviceApp, timeout: float = 30.0) -> None:
    """Wait for the kill to have happened, then drop the device (sockets, threads; no file writes)."""
    deadline = time.monotonic() + timeout
    while device.driver.running:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the OTA worker of {device.config.thing_name} did not die within {timeout} s")
        time.sleep(0.02)
    device.stop()
