"""ObjectStore on a local folder: the original agent's "Disk" capture destination."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from system.errors import ObjectNotFoundError, ObjectStoreError


class LocalFolderObjectStore:
    """Objects are files under `root`; writes are atomic (temp file, fsync, rename)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        pure = PurePosixPath(key)
        if not key or pure.is_absolute() or ".." in pure.parts:
            raise ObjectStoreError(f"invalid object key {key!r}")
        return self.root.joinpath(*pure.parts)

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            with tmp.open("wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise ObjectStoreError(f"cannot write {key}: {exc}") from exc

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
