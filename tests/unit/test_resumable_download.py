"""download_resumable: streaming to disk, resume, restart, and what a broken stream leaves behind."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from system.adapters.resumable_download import download_resumable
from system.errors import ObjectStoreError, ObjectTooLargeError

DATA = bytes(range(256)) * 40  # 10,240 bytes


def _chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_chunks_reach_the_disk_as_they_arrive(tmp_path: Path) -> None:
    dest = tmp_path / "object"
    chunk_size = 64 * 1024  # above io's buffer: each write goes straight to the file
    data = DATA * 64
    seen: list[int] = []

    def fetch(offset: int) -> tuple[int, Iterable[bytes]]:
        def chunks() -> Iterator[bytes]:
            for chunk in _chunks(data, chunk_size):
                seen.append(dest.stat().st_size)  # what is on disk before the next chunk is handed over
                yield chunk

        return offset, chunks()

    assert download_resumable(dest, len(data), fetch, max_bytes=None, what="obj") == len(data)
    assert dest.read_bytes() == data
    assert seen == [index * chunk_size for index in range(len(data) // chunk_size)]


def test_a_short_stream_keeps_the_partial_file_and_the_next_call_resumes(tmp_path: Path) -> None:
    dest = tmp_path / "object"
    asked: list[int] = []

    def broken(offset: int) -> tuple[int, Iterable[bytes]]:
        asked.append(offset)
        return offset, [DATA[offset:4000]]

    with pytest.raises(ObjectStoreError, match="received 4000 of 10240 bytes"):
        download_resumable(dest, len(DATA), broken, max_bytes=None, what="obj")
    assert dest.read_bytes() == DATA[:4000]

    def whole(offset: int) -> tuple[int, Iterable[bytes]]:
        asked.append(offset)
        return offset, _chunks(DATA[offset:])

    download_resumable(dest, len(DATA), whole, max_bytes=None, what="obj")
    assert dest.read_bytes() == DATA
    assert asked == [0, 4000]


def test_an_error_mid_stream_keeps_what_was_written(tmp_path: Path) -> None:
    dest = tmp_path / "object"

    def failing(offset: int) -> tuple[int, Iterable[bytes]]:
        def chunks() -> Iterator[bytes]:
            yield DATA[:3000]
            raise ObjectStoreError("connection reset")

        return offset, chunks()

    with pytest.raises(ObjectStoreError, match="connection reset"):
        download_resumable(dest, len(DATA), failing, max_bytes=None, what="obj")
    assert dest.read_bytes() == DATA[:3000]


def test_a_server_that_ignores_the_range_rewrites_from_the_start(tmp_path: Path) -> None:
    dest = tmp_path / "object"
    dest.write_bytes(b"\xff" * 500)
    download_resumable(dest, len(DATA), lambda offset: (0, _chunks(DATA)), max_bytes=None, what="obj")
    assert dest.read_bytes() == DATA


def test_max_bytes_is_checked_before_dest_is_touched(tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "object"

    def never(offset: int) -> tuple[int, Iterable[bytes]]:
        raise AssertionError("fetched although too large")

    with pytest.raises(ObjectTooLargeError, match="10240 bytes, more than the 10239 allowed"):
        download_resumable(dest, len(DATA), never, max_bytes=10239, what="obj")
    assert not dest.parent.exists()


def test_an_empty_object_makes_an_empty_file(tmp_path: Path) -> None:
    dest = tmp_path / "empty"

    def never(offset: int) -> tuple[int, Iterable[bytes]]:
        raise AssertionError("nothing to fetch")

    assert download_resumable(dest, 0, never, max_bytes=0, what="obj") == 0
    assert dest.read_bytes() == b""


def test_an_unwritable_destination_is_an_object_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(ObjectStoreError, match="cannot write obj"):
        download_resumable(blocker / "object", 3, lambda offset: (offset, [b"abc"]), max_bytes=None, what="obj")
