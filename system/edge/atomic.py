"""Write a file so that a crash at any instant leaves either the old or the new content, never a mix.

The seed wrote models_config.json only on a clean exit, so a kill lost every OTA-installed version
(seed-behaviours.md section 3). Here state files go through `write_json_atomically`: write a temp
file in the same folder, fsync it, rename it over the target (atomic on POSIX), then fsync the
folder so the rename itself survives a power cut.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from system.killpoints import kill_point


def write_bytes_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        kill_point(f"atomic.{path.name}.before-rename")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    kill_point(f"atomic.{path.name}.after-rename")
    _fsync_folder(path.parent)


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove the temp files an atomic write of `path` left behind (a kill between write and rename).

    Never read, they only take space; call it before this process writes `path`, while nothing else
    does (a device at start-up). Returns what it removed.
    """
    removed = []
    for temp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            temp.unlink()
        except FileNotFoundError:
            continue
        removed.append(temp)
    return removed


def write_json_atomically(path: Path, value: Any) -> None:
    write_bytes_atomically(path, (json.dumps(value, indent=2, sort_keys=False) + "\n").encode())


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # some filesystems do not allow opening a folder; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass  # not supported on this filesystem (e.g. some network mounts): nothing more to do
    finally:
        os.close(fd)
