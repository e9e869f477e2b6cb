"""System V shared memory, as the original agent takes input tensors (`SharedMemoryHandle`).

The client creates a segment (shmget), writes the tensor, and sends its id with an offset and a
size. `size` 0 means "the tensor's byte length from its metadata": the seed's own client leaves it
unset (seed-behaviours.md section 1).

The agent keeps segments attached between requests (`SharedMemoryReader`): attaching anew costs a
page fault per 4 KB page on first touch, about 0.4 ms for a 224x224x3 float32 image, which is
most of what shared memory is meant to save. A cached attachment is dropped once its segment is
marked for removal (the client called IPC_RMID), when the cache is full, and when the agent stops.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import sysv_ipc

from system.errors import InvalidArgumentError

SHM_DEST = 0o1000  # shm_perm.mode bit: the segment is removed once the last process detaches


@dataclass
class _Attachment:
    segment: sysv_ipc.SharedMemory
    view: memoryview
    users: int = 0  # requests copying out of it right now

    def detach(self) -> bool:
        """Detach unless a request is reading it; False if it must wait."""
        if self.users:
            return False
        self.view.release()
        self.segment.detach()
        return True


class SharedMemoryReader:
    """Copies tensors out of client segments, which it keeps attached (bounded, LRU).

    The bytes are copied out rather than viewed in place: a numpy array built on a view of the
    mapping cannot be tracked, and one that outlived a detach would read unmapped memory. A copy
    of hot memory costs tens of microseconds; re-attaching cost hundreds.
    """

    def __init__(self, capacity: int = 32) -> None:
        self._capacity = capacity
        self._attached: OrderedDict[int, _Attachment] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, segment_id: int, offset: int, size: int, expected: int) -> bytes:
        """`size` bytes (or `expected` if size is 0) at `offset` in the segment."""
        length = size or expected
        with self._lock:
            entry = self._checkout(segment_id)
        try:
            if offset + length > entry.segment.size:
                raise InvalidArgumentError(
                    f"shared memory segment {segment_id}: offset {offset} + size {length} exceeds "
                    f"the segment's {entry.segment.size} bytes"
                )
            return entry.view[offset : offset + length].tobytes()
        finally:
            with self._lock:
                entry.users -= 1
                if self._attached.get(segment_id) is not entry:
                    entry.detach()  # dropped from the cache while this request read it

    def _checkout(self, segment_id: int) -> _Attachment:
        entry = self._attached.get(segment_id)
        if entry is not None and entry.segment.mode & SHM_DEST:
            del self._attached[segment_id]  # the client removed it; a new segment may reuse the id
            entry.detach()
            entry = None
        if entry is None:
            try:
                segment = sysv_ipc.attach(segment_id, flags=sysv_ipc.SHM_RDONLY)
            except (ValueError, OverflowError, sysv_ipc.Error) as exc:
                raise InvalidArgumentError(f"shared memory segment {segment_id} cannot be attached: {exc}") from exc
            entry = _Attachment(segment, memoryview(segment))
            self._attached[segment_id] = entry
            self._evict()
        self._attached.move_to_end(segment_id)
        entry.users += 1
        return entry

    def _evict(self) -> None:
        for segment_id in list(self._attached):
            if len(self._attached) <= self._capacity:
                return
            entry = self._attached.pop(segment_id)
            entry.detach()  # if a request is reading it, that request detaches it when done

    def close(self) -> None:
        with self._lock:
            while self._attached:
                _, entry = self._attached.popitem()
                entry.detach()


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
