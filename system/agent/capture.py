"""CaptureData: an asynchronous bounded buffer flushed in batches to an ObjectStore.

Behaviour of the original agent (seed-behaviours.md section 1, CONFIG.md): requests wait in an
in-memory buffer of `buffer_size`; a batch is written when `batch_size` requests are waiting or
`push_period_seconds` have passed, whichever comes first. Layout (DESIGN.md section 3.5):

    <folder_prefix>/<fleet>/<model>/YYYY/MM/DD/HH/<device>-<batch id>.jsonl

one JSON object per capture and line, with `eventMetadata`, `deviceFleetInputs`,
`deviceFleetOutputs`, `deviceFleetAuxiliaryInputs` and `deviceFleetAuxiliaryOutputs`. Each entry
has `name`, `encoding`, `mode` and `observedContentType` (e.g. `Tensor[FLOAT32; 1, 224, 224, 3]`);
data up to `base64_embed_limit_kb` is embedded as base64 in `data`, larger data goes to a
separate object named in `dataRef`:

    .../HH/tensors/<capture_id>-<input|output|auxinput|auxoutput>-<index>.bin

Status per capture id: IN_PROGRESS when accepted, then SUCCESS or FAILURE after its batch is
written. Ids are remembered for the last `status_history` captures (for status and reuse).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from system.config import CaptureSettings
from system.errors import (
    CaptureAlreadyExistsError,
    CaptureNotFoundError,
    EdgesimError,
    ResourceExhaustedError,
)
from system.killpoints import kill_point
from system.logs import fields
from system.ports import ObjectStore

log = logging.getLogger(__name__)

IN_PROGRESS, SUCCESS, FAILURE = "IN_PROGRESS", "SUCCESS", "FAILURE"


@dataclass(frozen=True)
class CapturedItem:
    """One tensor or auxiliary datum of a capture."""

    name: str
    data: bytes
    content_type: str  # observedContentType, e.g. "Tensor[FLOAT32; 1, 2]" or "JSON"
    encoding: str = "BASE64"


@dataclass(frozen=True)
class CaptureRecord:
    model_name: str
    capture_id: str
    inference_time: float  # epoch seconds
    inputs: list[CapturedItem] = field(default_factory=list)
    outputs: list[CapturedItem] = field(default_factory=list)
    aux_inputs: list[CapturedItem] = field(default_factory=list)
    aux_outputs: list[CapturedItem] = field(default_factory=list)


class CaptureService:
    """Accepts captures, flushes them from a background thread, tracks their status."""

    def __init__(
        self,
        settings: CaptureSettings,
        store: ObjectStore,
    ) -> None:
        self._settings = settings
        self._store = store
        self._buffer: deque[CaptureRecord] = deque()
        self._status: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._flushing = 0  # records taken from the buffer but not yet written
        self._thread = threading.Thread(target=self._run, name="capture-flusher", daemon=True)
        self._thread.start()

    def submit(self, record: CaptureRecord) -> None:
        with self._lock:
            if self._closing:
                raise ResourceExhaustedError("the agent is shutting down; capture refused")
            if record.capture_id in self._status:
                raise CaptureAlreadyExistsError(f"capture_id '{record.capture_id}' was already used")
            if len(self._buffer) >= self._settings.buffer_size:
                raise ResourceExhaustedError(
                    f"capture buffer full ({self._settings.buffer_size} requests waiting); retry later"
                )
            self._buffer.append(record)
            self._remember(record.capture_id, IN_PROGRESS)
            if len(self._buffer) >= self._settings.batch_size:
                self._wake.notify()

    def status(self, capture_id: str) -> str:
        with self._lock:
            state = self._status.get(capture_id)
        if state is None:
            raise CaptureNotFoundError(f"no capture with id '{capture_id}'")
        return state

    def close(self, timeout: float = 30.0) -> None:
        """Flush what is buffered, then stop the flusher."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        self._thread.join(timeout)

    def _remember(self, capture_id: str, state: str) -> None:
        self._status[capture_id] = state
        self._status.move_to_end(capture_id)
        while len(self._status) > self._settings.status_history:
            if next(iter(self._status.values())) == IN_PROGRESS:
                break  # never forget a capture that is still waiting
            self._status.popitem(last=False)

    def _run(self) -> None:
        period = self._settings.push_period_seconds
        deadline = time.monotonic() + period
        while True:
            with self._lock:
                while not self._closing and len(self._buffer) < self._settings.batch_size:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wake.wait(remaining)
                batch = [self._buffer.popleft() for _ in range(min(len(self._buffer), self._settings.batch_size))]
                closing_and_empty = self._closing and not self._buffer
            if batch:
                self._write_batch(batch)
            if time.monotonic() >= deadline or batch:
                deadline = time.monotonic() + period
            if closing_and_empty:
                return

    def _write_batch(self, batch: list[CaptureRecord]) -> None:
        kill_point("capture.batch.before-write")
        groups: dict[str, list[CaptureRecord]] = {}
        for record in batch:
            groups.setdefault(self._folder(record), []).append(record)
        for folder, records in groups.items():
            try:
                lines = [json.dumps(self._entry(folder, r), separators=(",", ":")) for r in records]
                key = f"{folder}/{self._settings.device_name}-{uuid.uuid4().hex}.jsonl"
                self._store.put_bytes(key, ("\n".join(lines) + "\n").encode())
                kill_point("capture.batch.written")
                outcome = SUCCESS
            except EdgesimError as exc:
                log.error("capture batch write failed", extra=fields(folder=folder, count=len(records), error=str(exc)))
                outcome = FAILURE
            with self._lock:
                for record in records:
                    self._status[record.capture_id] = outcome
            log.debug("capture batch written", extra=fields(folder=folder, count=len(records), outcome=outcome))

    def _folder(self, record: CaptureRecord) -> str:
        stamp = datetime.fromtimestamp(record.inference_time, UTC).strftime("%Y/%m/%d/%H")
        s = self._settings
        return f"{s.folder_prefix}/{s.fleet_name}/{record.model_name}/{stamp}"

    def _entry(self, folder: str, record: CaptureRecord) -> dict[str, Any]:
        def items(kind: str, mode: str, values: list[CapturedItem]) -> list[dict[str, Any]]:
            out = []
            for index, item in enumerate(values):
                entry: dict[str, Any] = {
                    "name": item.name,
                    "encoding": item.encoding,
                    "mode": mode,
                    "observedContentType": item.content_type,
                }
                if len(item.data) <= self._settings.base64_embed_limit_kb * 1024:
                    entry["data"] = base64.b64encode(item.data).decode()
                else:
                    ref = f"{folder}/tensors/{record.capture_id}-{kind}-{index}.bin"
                    self._store.put_bytes(ref, item.data)
                    entry["dataRef"] = ref
                out.append(entry)
            return out

        inference_time = datetime.fromtimestamp(record.inference_time, UTC)
        return {
            "eventMetadata": {
                "eventId": record.capture_id,
                "inferenceTime": inference_time.isoformat().replace("+00:00", "Z"),
                "deviceName": self._settings.device_name,
                "deviceFleetName": self._settings.fleet_name,
                "modelName": record.model_name,
            },
            "eventVersion": "0",
            "deviceFleetInputs": items("input", "INPUT", record.inputs),
            "deviceFleetOutputs": items("output", "OUTPUT", record.outputs),
            "deviceFleetAuxiliaryInputs": items("auxinput", "INPUT", record.aux_inputs),
            "deviceFleetAuxiliaryOutputs": items("auxoutput", "OUTPUT", record.aux_outputs),
        }
