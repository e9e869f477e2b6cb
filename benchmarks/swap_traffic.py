"""Steady Predict traffic for the swap-under-load benchmark: an open loop at a fixed rate.

Each of `clients` threads has its own `GrpcEdgeAgentClient` and a schedule: request k is due at
`t0 + (k + phase) / per_thread_rate`. A request's latency is measured from when it was due, not
from when it was sent, so a stall that delays the following requests counts against all of them
(a closed loop would just send fewer requests during a stall and hide it: "coordinated omission").

Every request asks the `ModelRoster` which model serves the classification application, as the
device's inference engine does, and follows the engine's rule when a swap races it: a NOT_FOUND
for a model the roster no longer serves is retried once with the one it now serves
(`system/edge/inference.py`). Such retries are counted; any other error is a failed request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from system.adapters.agent_client import GrpcEdgeAgentClient
from system.edge.roster import APP_CLASSIFICATION, ModelRoster
from system.errors import EdgesimError, ModelNotFoundError


@dataclass(frozen=True)
class Sample:
    """One request: when it was due and sent (seconds on the traffic's clock), how it went."""

    due_s: float
    sent_s: float
    latency_ms: float  # from due to answered
    service_ms: float  # from sent to answered
    model: str  # the identifier that answered (or was last tried)
    retried: bool
    error: str = ""


class SteadyTraffic:
    """`clients` threads sending Predicts at `rate` per second in all, until `stop()`."""

    def __init__(
        self,
        client_factory: Callable[[], GrpcEdgeAgentClient],
        roster: ModelRoster,
        x: np.ndarray,
        *,
        rate: float,
        clients: int,
        input_name: str,
    ) -> None:
        if rate <= 0 or clients < 1:
            raise ValueError("rate must be positive and clients at least 1")
        self._clients = [client_factory() for _ in range(clients)]
        self._roster = roster
        self._inputs = {input_name: x}
        self._period = clients / rate
        self._stop = threading.Event()
        self._samples: list[list[Sample]] = [[] for _ in range(clients)]
        self._threads: list[threading.Thread] = []
        self.t0 = 0.0

    def now(self) -> float:
        """Seconds since the traffic started (the clock every `Sample` uses)."""
        return time.perf_counter() - self.t0

    def start(self) -> SteadyTraffic:
        for client in self._clients:
            self._predict(client)  # every connection open and warm before the schedule starts
        self.t0 = time.perf_counter()
        for index, client in enumerate(self._clients):
            phase = index / len(self._clients)  # spread the threads' requests over the period
            thread = threading.Thread(
                target=self._run, args=(client, phase, self._samples[index]), name=f"traffic-{index}", daemon=True
            )
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> list[Sample]:
        """Stop sending, wait for the threads, close the clients; returns every sample by due time."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        for client in self._clients:
            client.close()
        return sorted((s for samples in self._samples for s in samples), key=lambda s: s.due_s)

    def _run(self, client: GrpcEdgeAgentClient, phase: float, out: list[Sample]) -> None:
        k = 0
        while not self._stop.is_set():
            due = (k + phase) * self._period
            wait = due - self.now()
            if wait > 0 and self._stop.wait(wait):
                return
            sent = self.now()
            model, retried, error = self._predict(client)
            done = self.now()
            out.append(Sample(due, sent, (done - due) * 1000, (done - sent) * 1000, model, retried, error))
            k += 1

    def _predict(self, client: GrpcEdgeAgentClient) -> tuple[str, bool, str]:
        """One request as the inference engine makes it; returns (model, retried, error)."""
        serving = self._roster.for_app(APP_CLASSIFICATION)
        if serving is None:
            return "", False, "no model serves the classification application"
        try:
            client.predict(serving.identifier, self._inputs)
            return serving.identifier, False, ""
        except ModelNotFoundError as exc:
            current = self._roster.for_app(APP_CLASSIFICATION)
            if current is None or current.identifier == serving.identifier:
                return serving.identifier, False, f"NOT_FOUND: {exc}"
            serving = current
        except EdgesimError as exc:
            return serving.identifier, False, f"{type(exc).__name__}: {exc}"
        try:
            client.predict(serving.identifier, self._inputs)
            return serving.identifier, True, ""
        except EdgesimError as exc:
            return serving.identifier, True, f"{type(exc).__name__}: {exc}"
