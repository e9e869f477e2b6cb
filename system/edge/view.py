"""What the web UI reads from a running device: one narrow interface, so the UI can be tested alone."""

from __future__ import annotations

from typing import Any, Protocol

from system.edge.results import InferenceResult


class DeviceView(Protocol):
    def status(self) -> dict[str, Any]:
        """Thing name, profile, uptime, agent/MQTT health, the OTA job in progress, counters."""
        ...

    def models(self) -> list[dict[str, Any]]:
        """Serving models (`ServingModel.to_dict()`), with the application each serves."""
        ...

    def latest_result(self) -> InferenceResult | None: ...

    def recent_results(self, limit: int) -> list[InferenceResult]:
        """Newest first, at most `limit`."""
        ...

    def jobs(self) -> list[dict[str, Any]]:
        """OTA job history, newest first: job id, model, version, outcome, reason, timestamps, steps."""
        ...

    def predict_image(self, data: bytes, name: str) -> InferenceResult:
        """Run both applications on an uploaded image; ValueError when it cannot be decoded."""
        ...

    def metrics_text(self) -> str:
        """Prometheus text exposition of the device's metrics."""
        ...

    def generation(self) -> int:
        """Moves whenever the serving models change (the page refreshes model info then)."""
        ...
