"""One line per resource step of provisioning or destroying, reported as it happens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Step:
    """`status`: created, exists, updated, deleted, absent, kept, skipped or warning."""

    status: str
    kind: str
    name: str
    detail: str = ""

    def line(self) -> str:
        text = f"{self.status:<8} {self.kind:<20} {self.name}"
        return f"{text}  ({self.detail})" if self.detail else text


Reporter = Callable[[Step], None]


class StepLog:
    """Keeps every step and passes each one on to `reporter` at once (e.g. print)."""

    def __init__(self, reporter: Reporter | None = None) -> None:
        self.steps: list[Step] = []
        self._reporter = reporter

    def __call__(self, status: str, kind: str, name: str, detail: str = "") -> None:
        step = Step(status, kind, name, detail)
        self.steps.append(step)
        if self._reporter is not None:
            self._reporter(step)

    def with_status(self, status: str) -> list[Step]:
        return [step for step in self.steps if step.status == status]
