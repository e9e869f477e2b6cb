"""The I/O of each OTA step: download, verify, extract, load, health check, switch, unload, roll back.

Every step is idempotent, because after a crash the driver runs the interrupted step again
(`ota_machine.after_restart`): a download keeps its partial file and fetches the rest; extraction
replaces a half-made folder; LOAD adopts or replaces a model already in the agent; UNLOAD_OLD and
ROLLBACK accept a model that is already gone. A step returns a one-line detail, or raises
`StepFailed` (or any `EdgesimError`) with the reason the job will report.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from system.agent.package import read_package
from system.edge.archive import ExtractionLimits, extract_package
from system.edge.health import HealthCheckSettings, check_model
from system.edge.layout import DeviceLayout
from system.edge.models_config import ModelEntry, ModelsConfigFile
from system.edge.ota_machine import JobState, Serving, Step
from system.edge.roster import ModelRoster, ServingModel
from system.errors import (
    EdgesimError,
    ModelAlreadyLoadedError,
    ModelNotFoundError,
    ObjectNotFoundError,
    ObjectStoreError,
    ObjectTooLargeError,
)
from system.ports import FileTransfer, InferenceClient
from system.signing import file_sha256, verify_digest

_log = logging.getLogger(__name__)
StoreFactory = Callable[[str], FileTransfer]  # bucket -> a FileTransfer on it


class StepFailed(EdgesimError):
    """A step could not be done; the message is the reason the job reports."""


@dataclass(frozen=True)
class OtaLimits:
    max_package_bytes: int = 1024**3
    download_attempts: int = 5  # each one resumes where the last stopped
    download_backoff_seconds: float = 0.5
    extraction: ExtractionLimits = field(default_factory=ExtractionLimits)
    require_sha256: bool = False  # refuse documents without a digest


class OtaSteps:
    """Runs one step of a job against the agent, the object store and the device's files."""

    def __init__(
        self,
        client: InferenceClient,
        stores: StoreFactory,
        layout: DeviceLayout,
        roster: ModelRoster,
        config_file: ModelsConfigFile,
        *,
        health: HealthCheckSettings | None = None,
        limits: OtaLimits | None = None,
        signing_key: Ed25519PublicKey | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.stores = stores
        self.layout = layout
        self.roster = roster
        self.config_file = config_file
        self.health = health or HealthCheckSettings()
        self.limits = limits or OtaLimits()
        self.signing_key = signing_key
        self._sleep = sleep

    def run(self, state: JobState) -> str:
        handler = {
            Step.DOWNLOAD: self.download,
            Step.VERIFY: self.verify,
            Step.EXTRACT: self.extract,
            Step.LOAD: self.load,
            Step.HEALTH_CHECK: self.health_check,
            Step.SWITCH: self.switch,
            Step.UNLOAD_OLD: self.unload_old,
            Step.ROLLBACK: self.rollback,
        }.get(state.step)
        if handler is None:
            raise ValueError(f"step {state.step} has no I/O here")
        return handler(state)

    def _archive(self, state: JobState) -> Path:
        return self.layout.download_path(state.job_id, state.execution_number)

    def _package_dir(self, state: JobState) -> Path:
        return self.layout.package_dir(state.model_name, state.version)

    # -- steps ---------------------------------------------------------------------------------

    def download(self, state: JobState) -> str:
        """Fetch the package, resuming after each interrupted attempt, `download_attempts` at most."""
        where = self.package_url(state)
        for attempt in range(1, self.limits.download_attempts + 1):
            try:
                size = self.download_attempt(state)
                return f"{size} bytes from {where}" + (f" after {attempt} attempts" if attempt > 1 else "")
            except ObjectStoreError as exc:
                if attempt == self.limits.download_attempts:
                    raise StepFailed(f"{where}: {exc} (after {attempt} attempts)") from None
                _log.warning(
                    "package download interrupted; resuming",
                    extra={"fields": {"job_id": state.job_id, "attempt": attempt, "error": str(exc)}},
                )
                self._sleep(self.limits.download_backoff_seconds * attempt)
        raise AssertionError("unreachable")

    def download_attempt(self, state: JobState) -> int:
        """One attempt: returns the size, raises StepFailed when retrying cannot help, or the
        ObjectStoreError of an interruption (the bytes received so far stay for the next attempt)."""
        update = state.update
        if self.limits.require_sha256 and update.sha256 is None:
            raise StepFailed("this device requires a sha256 in the job document")
        limit = min(self.limits.max_package_bytes, update.size or self.limits.max_package_bytes)
        where = self.package_url(state)
        try:
            return self.stores(update.bucket).download_file(update.key, self._archive(state), max_bytes=limit)
        except ObjectNotFoundError:
            raise StepFailed(f"{where} does not exist") from None
        except ObjectTooLargeError as exc:
            raise StepFailed(f"{where}: {exc}") from None

    @staticmethod
    def package_url(state: JobState) -> str:
        update = state.update
        return f"s3://{update.bucket}/{update.key}"

    def downloaded_bytes(self, state: JobState) -> int:
        """What an interrupted download left (a resume fetches only the rest)."""
        archive = self._archive(state)
        return archive.stat().st_size if archive.exists() else 0

    def verify(self, state: JobState) -> str:
        update = state.update
        archive = self._archive(state)
        size = archive.stat().st_size
        if update.size is not None and size != update.size:
            raise StepFailed(f"the package is {size} bytes; the job document says {update.size}")
        digest = file_sha256(archive)
        if update.sha256 is not None and digest != update.sha256:
            raise StepFailed(f"sha256 mismatch: the package hashes to {digest}, the job document says {update.sha256}")
        checks = ["sha256 matches" if update.sha256 else "no sha256 in the job document"]
        if self.signing_key is not None:
            if update.signature is None:
                raise StepFailed("the package is not signed and this device requires signatures")
            verify_digest(self.signing_key, update.signature, digest)
            checks.append("Ed25519 signature valid")
        return ", ".join(checks)

    def extract(self, state: JobState) -> str:
        dest = self._package_dir(state)
        self._remove_unless_serving(state, dest)  # a leftover of an earlier, interrupted attempt
        extract_package(self._archive(state), dest, self.limits.extraction)
        package = read_package(str(dest))  # the manifest and every file's sha256, before the agent sees it
        return (
            f"{len(package.manifest.files)} files, {package.size_bytes} bytes, framework {package.manifest.framework}"
        )

    def load(self, state: JobState) -> str:
        dest = self._package_dir(state)
        if not dest.is_dir():
            raise StepFailed(f"the extracted package {dest} is missing")
        loaded = {model.name: model.url for model in self.client.list_models()}
        if state.identifier in loaded:
            # Left by a crash (the agent outlived the app) or loaded from models_config.json at
            # start-up: reload so that the model is exactly the files now on disk.
            self._unload_quietly(state.identifier)
        try:
            self.client.load_model(state.identifier, str(dest))
        except ModelAlreadyLoadedError as exc:
            raise StepFailed(f"{state.identifier} is still loaded after unloading it: {exc}") from None
        return f"loaded as {state.identifier}"

    def health_check(self, state: JobState) -> str:
        dest = self._package_dir(state)
        return check_model(self.client, state.identifier, read_package(str(dest)).manifest, dest, self.health)

    def switch(self, state: JobState) -> str:
        dest = self._package_dir(state)
        serving = ServingModel(
            state.model_name, state.version, state.identifier, dest, read_package(str(dest)).manifest
        )
        config = self.config_file.load()
        self.config_file.save(config.with_model(ModelEntry(state.model_name, state.version, state.identifier)))
        self.roster.switch(serving)
        return f"{state.model_name} now served by {state.identifier}"

    def unload_old(self, state: JobState) -> str:
        previous = state.previous
        if previous is None:
            return "first deployment of this model: nothing to unload"
        gone = not self._unload_quietly(previous.identifier)
        old_dir = self.layout.package_dir(state.model_name, previous.version)
        if old_dir != self._package_dir(state):
            shutil.rmtree(old_dir, ignore_errors=True)
        return f"{previous.identifier} " + ("was already unloaded" if gone else "unloaded") + ", its files removed"

    def rollback(self, state: JobState) -> str:
        """Make the previous model (or none) serve again; unload and delete the new one. Idempotent."""
        actions: list[str] = []
        serving = self.roster.by_name(state.model_name)
        if serving is not None and serving.identifier == state.identifier:
            self._restore(state.model_name, state.previous)
            actions.append("previous model restored")
        if self._unload_quietly(state.identifier):
            actions.append(f"{state.identifier} unloaded")
        dest = self._package_dir(state)
        if self._remove_unless_serving(state, dest):
            actions.append("new files removed")
        self._archive(state).unlink(missing_ok=True)
        return ", ".join(actions) or "nothing to undo"

    def cleanup(self, state: JobState) -> None:
        """After the job: the downloaded archive is no longer needed."""
        self._archive(state).unlink(missing_ok=True)

    # -- helpers -------------------------------------------------------------------------------

    def _restore(self, name: str, previous: Serving | None) -> None:
        config = self.config_file.load()
        if previous is None:
            self.config_file.save(config.without_model(name))
            self.roster.remove(name)
            return
        folder = self.layout.package_dir(name, previous.version)
        self.config_file.save(config.with_model(ModelEntry(name, previous.version, previous.identifier)))
        self.roster.switch(
            ServingModel(name, previous.version, previous.identifier, folder, read_package(str(folder)).manifest)
        )

    def _unload_quietly(self, identifier: str) -> bool:
        """Unload; False when the agent did not have it."""
        try:
            self.client.unload_model(identifier)
        except ModelNotFoundError:
            return False
        return True

    def _remove_unless_serving(self, state: JobState, folder: Path) -> bool:
        serving = self.roster.by_name(state.model_name)
        if serving is not None and serving.package_dir == folder:
            raise StepFailed(f"{folder} holds the serving model; refusing to replace it")
        if not folder.exists():
            return False
        shutil.rmtree(folder)
        return True
