"""InMemoryObjectStore: the ObjectStore and FileTransfer ports in a dict."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from system.adapters.resumable_download import download_resumable
from system.errors import ObjectNotFoundError, ObjectStoreError

CHUNK_SIZE = 1024 * 1024


class InMemoryObjectStore:
    """Objects in a dict, guarded by a lock.

    Limits: no persistence, no size limit, no eventual consistency, no versions or ETags (a
    resumed download trusts the partial file), no multipart (an upload is one put); fault
    injection (`fail_puts`) is a simple count of puts to refuse. It records each download's
    starting offset in `downloads` so tests can see a resume happen.
    """

    def __init__(self, *, chunk_size: int = CHUNK_SIZE) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail_puts = 0  # the next N puts (and uploads) raise ObjectStoreError
        self.downloads: list[tuple[str, int]] = []  # (key, offset) of each fetch download_file made
        self.chunk_size = chunk_size
        self._lock = threading.Lock()

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._lock:
            if self.fail_puts > 0:
                self.fail_puts -= 1
                raise ObjectStoreError(f"injected failure writing {key}")
            self.objects[key] = bytes(data)

    def get_bytes(self, key: str) -> bytes:
        with self._lock:
            if key not in self.objects:
                raise ObjectNotFoundError(f"no object {key}")
            return self.objects[key]

    def list_keys(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(k for k in self.objects if k.startswith(prefix))

    def size(self, key: str) -> int:
        return len(self.get_bytes(key))

    def _chunks(self, data: bytes, offset: int) -> Iterator[bytes]:
        view = memoryview(data)
        for start in range(offset, len(data), self.chunk_size):
            yield bytes(view[start : start + self.chunk_size])

    def download_file(self, key: str, dest: Path, *, max_bytes: int | None = None) -> int:
        data = self.get_bytes(key)  # one snapshot: a concurrent put cannot mix two versions

        def fetch(offset: int) -> tuple[int, Iterator[bytes]]:
            with self._lock:
                self.downloads.append((key, offset))
            return offset, self._chunks(data, offset)

        return download_resumable(dest, len(data), fetch, max_bytes=max_bytes, what=f"object {key}")

    def upload_file(self, path: Path, key: str) -> None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ObjectStoreError(f"cannot read {path} to upload it as {key}: {exc}") from exc
        self.put_bytes(key, data)
