"""ObjectStore and FileTransfer on a local folder: the original agent's "Disk" capture destination."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

from system.adapters.resumable_download import download_resumable
from system.errors import ObjectNotFoundError, ObjectStoreError

CHUNK_SIZE = 1024 * 1024


class LocalFolderObjectStore:
    """Objects are files under `root`; writes are atomic (temp file, fsync, rename).

    Transfers stream in `chunk_size` pieces and resume like S3's ranged reads (by seeking).
    """

    def __init__(self, root: str | Path, *, chunk_size: int = CHUNK_SIZE) -> None:
        self.root = Path(root)
        self.chunk_size = chunk_size

    def _path(self, key: str) -> Path:
        pure = PurePosixPath(key)
        if not key or pure.is_absolute() or ".." in pure.parts:
            raise ObjectStoreError(f"invalid object key {key!r}")
        return self.root.joinpath(*pure.parts)

    def _write_atomically(self, key: str, chunks: Iterable[bytes]) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            with tmp.open("wb") as stream:
                for chunk in chunks:
                    stream.write(chunk)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise ObjectStoreError(f"cannot write {key}: {exc}") from exc

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write_atomically(key, (data,))

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"no object {key}") from exc
        except OSError as exc:
            raise ObjectStoreError(f"cannot read {key}: {exc}") from exc

    def list_keys(self, prefix: str = "") -> list[str]:
        if not self.root.exists():
            return []
        keys = (
            path.relative_to(self.root).as_posix()
            for path in self.root.rglob("*")
            if path.is_file() and not path.name.startswith(".")
        )
        return sorted(key for key in keys if key.startswith(prefix))

    def size(self, key: str) -> int:
        path = self._path(key)
        try:
            return path.stat().st_size
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"no object {key}") from exc
        except OSError as exc:
            raise ObjectStoreError(f"cannot stat {key}: {exc}") from exc

    def _read_from(self, key: str, offset: int) -> Iterator[bytes]:
        try:
            with self._path(key).open("rb") as stream:
                stream.seek(offset)
                while chunk := stream.read(self.chunk_size):
                    yield chunk
        except FileNotFoundError as exc:
            raise ObjectNotFoundError(f"no object {key}") from exc
        except OSError as exc:
            raise ObjectStoreError(f"cannot read {key}: {exc}") from exc

    def download_file(self, key: str, dest: Path, *, max_bytes: int | None = None) -> int:
        return download_resumable(
            dest,
            self.size(key),
            lambda offset: (offset, self._read_from(key, offset)),
            max_bytes=max_bytes,
            what=f"object {key}",
        )

    def upload_file(self, path: Path, key: str) -> None:
        try:
            with path.open("rb") as source:
                self._write_atomically(key, iter(lambda: source.read(self.chunk_size), b""))
        except OSError as exc:
            raise ObjectStoreError(f"cannot read {path} to upload it as {key}: {exc}") from exc
