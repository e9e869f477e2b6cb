"""System V shared memory, as the original agent takes input tensors (`SharedMemoryHandle`).

The client creates a segment (shmget), writes the tensor, and sends its id with an offset and a
size. The agent attaches it read-only for the duration of one request. `size` 0 means "the
tensor's byte length from its metadata": the seed's own client leaves it unset
(seed-behaviours.md section 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sysv_ipc

from system.errors import InvalidArgumentError


@contextmanager
def attached_segment(segment_id: int, offset: int, size: int, expected: int) -> Iterator[memoryview]:
    """A read-only view of `size` bytes (or `expected` if size is 0) at `offset` in the segment.

    The view is valid only inside the block; the segment is detached on exit.
    """
    length = size or expected
    try:
        segment = sysv_ipc.attach(segment_id, flags=sysv_ipc.SHM_RDONLY)
    except (ValueError, OverflowError, sysv_ipc.Error) as exc:
        raise InvalidArgumentError(f"shared memory segment {segment_id} cannot be attached: {exc}") from exc
    view: memoryview | None = None
    try:
        if offset + length > segment.size:
            raise InvalidArgumentError(
                f"shared memory segment {segment_id}: offset {offset} + size {length} exceeds "
                f"the segment's {segment.size} bytes"
            )
        view = memoryview(segment)[offset : offset + length]
        yield view
    finally:
        if view is not None:
            view.release()
        segment.detach()


class SharedMemoryWriter:
    """Client side: one private segment per tensor slot, grown when a bigger tensor comes."""

    def __init__(self) -> None:
        self._segments: dict[int, sysv_ipc.SharedMemory] = {}

    def write(self, slot: int, data: bytes | memoryview) -> tuple[int, int]:
        """Copy `data` into the slot's segment; returns (segment_id, size)."""
        length = len(data)
        segment = self._segments.get(slot)
        if segment is None or segment.size < length:
            if segment is not None:
                self._drop(segment)
            segment = sysv_ipc.SharedMemory(sysv_ipc.IPC_PRIVATE, sysv_ipc.IPC_CREX, size=max(length, 1), mode=0o600)
            self._segments[slot] = segment
        view = memoryview(segment)
        try:
            view[:length] = memoryview(data).cast("B")
        finally:
            view.release()
        return segment.id, length

    @staticmethod
    def _drop(segment: sysv_ipc.SharedMemory) -> None:
        segment.detach()
        segment.remove()

    def close(self) -> None:
        for segment in self._segments.values():
            try:
                self._drop(segment)
            except sysv_ipc.Error:
                continue  # already removed by someone else; nothing left to free
        self._segments.clear()
