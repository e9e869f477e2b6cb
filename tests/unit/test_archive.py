"""Safe package extraction: every unsafe archive is refused, nothing is written outside, no half state."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from system.edge.archive import ArchiveError, ExtractionLimits, extract_package


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], compress: bool = True) -> Path:
    with tarfile.open(path, "w:gz" if compress else "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def file_member(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def test_a_good_package_is_extracted(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "pkg.tar.gz", [file_member("manifest.json", b"{}"), file_member("m/model.tflite")])
    dest = extract_package(archive, tmp_path / "out")
    assert (dest / "manifest.json").read_bytes() == b"{}" and (dest / "m" / "model.tflite").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (file_member("/etc/cron.d/evil"), "absolute"),
        (file_member("../outside.txt"), "'..'"),
        (file_member("a/../../outside.txt"), "'..'"),
        (special("link", tarfile.SYMTYPE, "/etc/passwd"), "link"),
        (special("link", tarfile.SYMTYPE, "../../etc/passwd"), "link"),
        (special("hard", tarfile.LNKTYPE, "/etc/passwd"), "link"),
        (special("dev", tarfile.CHRTYPE), "device"),
        (special("blk", tarfile.BLKTYPE), "device"),
        (special("fifo", tarfile.FIFOTYPE), "FIFO"),
    ],
)
def test_unsafe_members_are_refused_and_nothing_is_written(tmp_path: Path, member: tuple, reason: str) -> None:
    archive = make_tar(tmp_path / "evil.tar.gz", [file_member("manifest.json"), member])
    with pytest.raises(ArchiveError, match=reason):
        extract_package(archive, tmp_path / "out" / "pkg")
    assert not (tmp_path / "out" / "pkg").exists()
    assert not (tmp_path / "outside.txt").exists()
    assert not list(tmp_path.rglob(".*extracting*"))  # no staging folder left behind


def test_links_inside_the_package_are_allowed(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "ok.tar",
        [file_member("a/real.bin", b"data"), special("a/alias", tarfile.SYMTYPE, "real.bin")],
        compress=False,
    )
    dest = extract_package(archive, tmp_path / "out")
    assert (dest / "a" / "alias").read_bytes() == b"data"


def test_a_hard_link_follows_its_file(tmp_path: Path) -> None:
    members = [file_member("real.bin", b"data"), special("hard", tarfile.LNKTYPE, "real.bin")]
    archive = make_tar(tmp_path / "ok.tar", members, compress=False)
    assert (extract_package(archive, tmp_path / "out") / "hard").read_bytes() == b"data"


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        # Found by make reliability's fuzzing: tarfile looked the target up before the link and raised
        # KeyError, which escaped as an unknown error instead of a refusal.
        ([special("model.bin", tarfile.LNKTYPE, "model.bin"), file_member("model.bin")], "twice"),
        ([special("hard", tarfile.LNKTYPE, "real.bin"), file_member("real.bin")], "does not come before it"),
        ([file_member("model.bin"), special("model.bin", tarfile.SYMTYPE, "other.bin"), file_member("other.bin")],
         "twice"),
    ],
)  # fmt: skip
def test_a_path_given_twice_or_a_hard_link_ahead_of_its_file_is_refused(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], reason: str
) -> None:
    archive = make_tar(tmp_path / "evil.tar", members, compress=False)
    with pytest.raises(ArchiveError, match=reason):
        extract_package(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_folder_may_be_listed_twice(tmp_path: Path) -> None:
    folder = tarfile.TarInfo("m")
    folder.type = tarfile.DIRTYPE
    again = tarfile.TarInfo("m/")
    again.type = tarfile.DIRTYPE
    archive = make_tar(tmp_path / "ok.tar", [(folder, None), (again, None), file_member("m/a.bin")], compress=False)
    assert (extract_package(archive, tmp_path / "out") / "m" / "a.bin").exists()


def test_file_count_and_size_caps(tmp_path: Path) -> None:
    many = make_tar(tmp_path / "many.tar.gz", [file_member(f"f{i}") for i in range(6)])
    with pytest.raises(ArchiveError, match="more than the 5 members allowed"):
        extract_package(many, tmp_path / "a", ExtractionLimits(max_files=5))
    big = make_tar(tmp_path / "big.tar.gz", [file_member("blob", b"\0" * 4096)])
    with pytest.raises(ArchiveError, match="4096 bytes declared"):
        extract_package(big, tmp_path / "b", ExtractionLimits(max_bytes=4095))


def test_a_compression_bomb_is_refused_by_its_declared_size(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "bomb.tar.gz", [file_member("zeros", b"\0" * (8 * 1024 * 1024))])
    assert archive.stat().st_size < 64 * 1024  # tiny on disk, 8 MB inside
    with pytest.raises(ArchiveError, match="declared"):
        extract_package(archive, tmp_path / "out", ExtractionLimits(max_bytes=1024 * 1024))
    assert not (tmp_path / "out").exists()


def test_a_bomb_is_refused_at_its_header_without_decompressing_its_data(tmp_path: Path) -> None:
    """A member declaring 1 TiB, its data cut short: reading past it would need the whole terabyte (or
    hit the end of the stream); the header alone must be enough to refuse it."""
    header = tarfile.TarInfo("zeros")
    header.size = 1 << 40
    archive = tmp_path / "bomb.tar.gz"
    archive.write_bytes(gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT) + b"\0" * (1 << 20)))
    with pytest.raises(ArchiveError, match=f"{1 << 40} bytes declared"):
        extract_package(archive, tmp_path / "out", ExtractionLimits(max_bytes=1 << 30))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_archives_are_refused(tmp_path: Path, damage: str) -> None:
    good = make_tar(tmp_path / "good.tar.gz", [file_member("manifest.json", b"{}" * 5000)]).read_bytes()
    data = {"truncated": good[: len(good) // 2], "garbage": b"not a tar at all" * 10, "empty": b""}[damage]
    archive = tmp_path / "bad.tar.gz"
    archive.write_bytes(data)
    with pytest.raises(ArchiveError, match="cannot extract"):
        extract_package(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_existing_destination_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "live").mkdir()
    (tmp_path / "live" / "model").write_text("serving")
    archive = make_tar(tmp_path / "pkg.tar.gz", [file_member("model", b"new")])
    with pytest.raises(ArchiveError, match="already exists"):
        extract_package(archive, tmp_path / "live")
    assert (tmp_path / "live" / "model").read_text() == "serving"


def test_gzip_of_plain_bytes_is_not_a_package(tmp_path: Path) -> None:
    archive = tmp_path / "x.tar.gz"
    archive.write_bytes(gzip.compress(b"hello"))
    with pytest.raises(ArchiveError):
        extract_package(archive, tmp_path / "out")
