"""Safe extraction of a downloaded model package archive (`.tar`, `.tar.gz`, any tar compression).

The seed called `tarfile.extractall` on whatever S3 returned, with no path filter, straight into
the live model folder (seed-behaviours.md section 2). Here every member is checked before a byte is
written: no absolute path, no `..`, no device or FIFO, links only to files inside the package,
at most `max_files` members and `max_bytes` declared bytes (checked header by header, so a
compression bomb is refused at its first oversized header, not after decompressing it).
Extraction goes to a fresh folder beside `dest` and is renamed into place only when complete, so a
failure or a crash never leaves a half-extracted package where a loadable one is expected.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from system.errors import EdgesimError


class ArchiveError(EdgesimError):
    """The archive is corrupt, truncated, or breaks one of the extraction rules (the message says which)."""


@dataclass(frozen=True)
class ExtractionLimits:
    max_files: int = 10_000
    max_bytes: int = 2 * 1024**3  # the sum of the members' declared sizes


def _check_member(member: tarfile.TarInfo, names: dict[str, tarfile.TarInfo], earlier: set[str]) -> None:
    """Refuse `member` unless it is a plain file, folder or safe link of the package.

    `names` maps every member's normalised path to it; `earlier` holds those before `member`.
    """
    name = member.name
    path = PurePosixPath(name)
    if not name or path.is_absolute() or name.startswith("/") or "\\" in name:
        raise ArchiveError(f"member {name!r}: absolute or malformed path")
    if ".." in path.parts:
        raise ArchiveError(f"member {name!r}: '..' would leave the package folder")
    if member.isdev() or member.isfifo():
        raise ArchiveError(f"member {name!r}: device and FIFO files are not allowed")
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        resolved = target if member.islnk() else path.parent / target
        key = _normalise(resolved).as_posix()
        if target.is_absolute() or ".." in _normalise(resolved).parts or key not in names:
            raise ArchiveError(f"member {name!r}: link to {member.linkname!r} leaves the package or points nowhere")
        if member.islnk() and key not in earlier:  # tar links to a file already extracted, never ahead
            raise ArchiveError(f"member {name!r}: hard link to {member.linkname!r}, which does not come before it")
        # Only to a file (or, for a symlink, a folder) of the package: a link to a link could form a loop.
        pointed = names[key]
        if not (pointed.isfile() or (member.issym() and pointed.isdir())):
            raise ArchiveError(f"member {name!r}: link to {member.linkname!r}, which is not a file of the package")
    elif not (member.isfile() or member.isdir()):
        raise ArchiveError(f"member {name!r}: unsupported member type")


def _names(members: list[tarfile.TarInfo]) -> dict[str, tarfile.TarInfo]:
    """Each member by its normalised path. A path given twice is refused (a folder may repeat): the later
    member would replace the earlier one on disk, a file by a link for instance, after the checks."""
    names: dict[str, tarfile.TarInfo] = {}
    for member in members:
        key = _normalise(PurePosixPath(member.name)).as_posix()
        known = names.get(key)
        if known is not None and not (known.isdir() and member.isdir()):
            raise ArchiveError(f"member {member.name!r}: the path is in the archive twice")
        names[key] = member
    return names


def _normalise(path: PurePosixPath) -> PurePosixPath:
    parts: list[str] = []
    for part in path.parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return PurePosixPath("..", *path.parts)
            parts.pop()
        else:
            parts.append(part)
    return PurePosixPath(*parts)


def _members_within(tar: tarfile.TarFile, name: str, limits: ExtractionLimits) -> list[tarfile.TarInfo]:
    """The members, read header by header, refused the moment the count or declared size is over.

    Reaching the next header means reading (and, compressed, decompressing) the data before it, so a
    check after `getmembers()` would come too late: a gzip bomb, one member declaring terabytes of
    zeros, would be decompressed in full first. Here the oversized header stops the reading.
    """
    members: list[tarfile.TarInfo] = []
    declared = 0
    while (member := tar.next()) is not None:
        members.append(member)
        if len(members) > limits.max_files:
            raise ArchiveError(f"{name}: more than the {limits.max_files} members allowed")
        if member.isfile():
            declared += member.size
            if declared > limits.max_bytes:
                raise ArchiveError(f"{name}: {declared} bytes declared, more than the {limits.max_bytes} allowed")
    return members


def extract_package(archive: Path, dest: Path, limits: ExtractionLimits | None = None) -> Path:
    """Extract `archive` into `dest` (which must not exist yet); returns `dest`."""
    limits = limits or ExtractionLimits()
    if dest.exists():
        raise ArchiveError(f"{dest} already exists; refusing to extract over it")
    staging = dest.with_name(f".{dest.name}.extracting-{uuid.uuid4().hex[:8]}")
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            members = _members_within(tar, archive.name, limits)
            names = _names(members)
            earlier: set[str] = set()
            for member in members:
                _check_member(member, names, earlier)
                earlier.add(_normalise(PurePosixPath(member.name)).as_posix())
            staging.mkdir(parents=True)
            # The "data" filter repeats the path checks and drops ownership and unsafe modes.
            tar.extractall(staging, filter="data")
        os.replace(staging, dest)
    except (tarfile.TarError, EOFError, OSError, ValueError, KeyError) as exc:  # KeyError: tarfile's link lookup
        raise ArchiveError(f"{archive.name}: cannot extract: {exc}") from exc
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return dest
