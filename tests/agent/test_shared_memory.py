"""SharedMemoryReader keeps segments attached between requests without leaking or going stale."""

from __future__ import annotations

import pytest
import sysv_ipc

from system.agent.shared_memory import SharedMemoryReader
from system.errors import InvalidArgumentError


@pytest.fixture
def segments():
    made: list[sysv_ipc.SharedMemory] = []

    def make(data: bytes) -> sysv_ipc.SharedMemory:
        segment = sysv_ipc.SharedMemory(sysv_ipc.IPC_PRIVATE, sysv_ipc.IPC_CREX, size=len(data), mode=0o600)
        segment.write(data)
        made.append(segment)
        return segment

    yield make
    for segment in made:
        try:
            segment.detach()
            segment.remove()
        except sysv_ipc.Error:
            continue  # the test removed it already


def test_reads_see_the_current_contents_through_a_kept_attachment(segments) -> None:
    reader = SharedMemoryReader()
    segment = segments(b"a" * 64)
    assert reader.read(segment.id, 0, 0, 64) == b"a" * 64
    assert segment.number_attached == 2  # the creator and the reader's kept attachment
    segment.write(b"b" * 64)
    assert reader.read(segment.id, 8, 16, 64) == b"b" * 16
    reader.close()
    assert segment.number_attached == 1


def test_a_removed_segment_is_let_go(segments) -> None:
    reader = SharedMemoryReader()
    old = segments(b"x" * 32)
    assert reader.read(old.id, 0, 32, 32) == b"x" * 32
    old.detach()
    old.remove()  # marked for removal: it lives on only while the reader keeps it attached
    with pytest.raises(InvalidArgumentError, match="cannot be attached"):
        reader.read(old.id, 0, 32, 32)  # the reader saw the removal and detached: it is gone


def test_the_cache_is_bounded(segments) -> None:
    reader = SharedMemoryReader(capacity=2)
    made = [segments(bytes([i]) * 16) for i in range(5)]
    for i, segment in enumerate(made):
        assert reader.read(segment.id, 0, 16, 16) == bytes([i]) * 16
    assert [s.number_attached for s in made] == [1, 1, 1, 2, 2]
    reader.close()
    assert all(s.number_attached == 1 for s in made)


def test_out_of_bounds_is_invalid_argument(segments) -> None:
    reader = SharedMemoryReader()
    segment = segments(b"z" * 10)
    with pytest.raises(InvalidArgumentError, match="exceeds"):
        reader.read(segment.id, 4, 8, 8)
    reader.close()
