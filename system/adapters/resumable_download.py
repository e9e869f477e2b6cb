"""Resumable streaming of one object into a local file, shared by every FileTransfer backend.

The rules (the `FileTransfer.download_file` contract in `system/ports.py`):
- `max_bytes` is checked against the object's size before `dest` is touched;
- bytes already in `dest` are kept when there are no more of them than the object has (a partial
  download) and only the rest is fetched; a `dest` longer than the object is restarted from 0;
- chunks go straight to disk, never gathered in memory; the file is fsynced at the end;
- a failure mid-stream leaves the bytes written so far in `dest`, so the next call resumes.

Keeping a prefix is only safe when it came from the same object: S3 pins the version it reads
with `IfMatch`, but nothing here can tell a partial file of an older version from one of the
current version. Callers that care verify a digest afterwards (the job document's `sha256`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from system.errors import ObjectStoreError, ObjectTooLargeError

# A fetch returns the offset its chunks start at (normally the one asked for; 0 when a server
# ignored the range and sent the whole object) and the chunks themselves.
Fetch = Callable[[int], tuple[int, Iterable[bytes]]]


def download_resumable(dest: Path, size: int, fetch: Fetch, *, max_bytes: int | None, what: str) -> int:
    """Bring `dest` to the object's `size` bytes, fetching only what it lacks; returns `size`."""
    if max_bytes is not None and size > max_bytes:
        raise ObjectTooLargeError(f"{what} is {size} bytes, more than the {max_bytes} allowed")
    try:
        have = dest.stat().st_size if dest.exists() else 0
        offset = have if have <= size else 0
        dest.parent.mkdir(parents=True, exist_ok=True)
        with dest.open("r+b" if dest.exists() else "wb") as stream:
            if offset < size:
                start, chunks = fetch(offset)
                stream.truncate(start)
                stream.seek(start)
                for chunk in chunks:
                    stream.write(chunk)
            else:
                stream.truncate(size)
            stream.flush()
            os.fsync(stream.fileno())
        final = dest.stat().st_size
    except OSError as exc:
        raise ObjectStoreError(f"cannot write {what} to {dest}: {exc}") from exc
    if final != size:
        raise ObjectStoreError(f"{what}: received {final} of {size} bytes; the partial file is kept for a resume")
    return size
