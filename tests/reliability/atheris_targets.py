"""Coverage-guided fuzzing with atheris (libFuzzer) of the parsers that take bytes from outside.

hypothesis (test_fuzz.py) generates inputs from a shape we describe; atheris mutates raw bytes and
keeps those that reach new branches of our code, so it finds the header layouts and byte sequences
no strategy describes. The targets are the inputs where that adds value: package archives (tar and
gzip framing), uploaded images (PIL's decoders behind `decode_image`), job documents and package
manifests as JSON text, and any payload on the IoT Jobs topics. Each target checks the same
property as its hypothesis test: a result or the documented error, and, for archives, nothing
written outside the extraction folder.

One process runs one target (libFuzzer owns the process and ends it):

    python -m tests.reliability.atheris_targets archive -runs=20000 -max_total_time=60 [CORPUS_DIR]

An empty corpus folder gets `write_seeds(target, folder)`: valid inputs to start from (a package
tar.gz, PNG/JPEG/BMP/GIF/TIFF images, a job document, a manifest, jobs requests), since mutating a
valid header reaches the deep branches far sooner than random bytes. The parsers below ours
(tarfile, gzip, Pillow and its format plugins) are instrumented too, so that coverage of their
branches guides the mutations. An escaped exception or a failed property makes atheris print the
traceback, write the input to `crash-<sha1>`, and exit non-zero. `benchmarks/atheris_campaign.py`
runs every target and counts the runs (`make reliability`).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["system", "simulators", "tarfile", "gzip", "PIL"]):
    import gzip  # noqa: F401 - tarfile's gzip framing, imported here so that it is instrumented
    import tarfile

    from PIL import Image

    Image.init()  # imports every format plugin (the decoders) now, so that they are instrumented

    from simulators.iot_jobs.model import JobsModel
    from simulators.iot_jobs.protocol import JobsProtocol
    from system.agent.package import parse_manifest
    from system.clock import WallClock
    from system.edge.archive import ArchiveError, ExtractionLimits, extract_package
    from system.edge.job_document import JobDocumentError, parse_job_document
    from system.ports import JobSpec
    from system.preprocessing import decode_image

# libFuzzer ends the process without Python's clean-up: the campaign gives a folder it removes itself.
_ARENA = Path(tempfile.mkdtemp(prefix="es-atheris-", dir=os.environ.get("EDGESIM_ATHERIS_ARENA")))
_LIMITS = ExtractionLimits(max_files=50, max_bytes=1 << 20)


def _json(data: bytes) -> object | None:
    try:
        value: object = json.loads(data)
        return value
    except ValueError:  # not JSON at all: the device reports that before parsing (job_document.py)
        return None


def archive(data: bytes) -> None:
    """An archive extracts inside its folder, or is refused with ArchiveError and leaves nothing."""
    case = Path(tempfile.mkdtemp(dir=_ARENA))
    try:
        package, dest = case / "package.tar", case / "device" / "model"
        package.write_bytes(data)
        dest.parent.mkdir()
        try:
            extract_package(package, dest, _LIMITS)
        except ArchiveError as exc:
            assert str(exc) and not dest.exists(), "a refused archive left files"
        else:
            for path in dest.rglob("*"):
                if path.is_symlink():
                    assert (path.parent / os.readlink(path)).resolve(strict=True).is_relative_to(dest.resolve())
                assert path.is_dir() or path.is_file() or path.is_symlink(), f"{path} is a device or a FIFO"
        written = {p.name for p in case.iterdir()} | {p.name for p in (case / "device").iterdir()}
        assert written <= {"package.tar", "device", "model"}, f"written outside the device folder: {written}"
        assert {p.name for p in _ARENA.iterdir()} == {case.name}, "written outside the case folder"
    finally:
        shutil.rmtree(case, ignore_errors=True)


def image(data: bytes) -> None:
    try:
        decoded = decode_image(data, "the upload")
    except ValueError as exc:
        assert "cannot decode the upload" in str(exc), exc
        return
    assert decoded.size[0] > 0 and decoded.size[1] > 0


def job_document(data: bytes) -> None:
    try:
        update = parse_job_document(_json(data))
    except JobDocumentError as exc:
        assert str(exc)
        return
    assert update.model_name and update.bucket and update.key


def manifest(data: bytes) -> None:
    try:
        parse_manifest(_json(data))
    except ValueError as exc:
        assert str(exc)


_OPERATIONS = ("get", "start-next", "j-1/get", "j-1/update", "$next/get", "j-1/unknown")


def _plane() -> JobsProtocol:
    """The data plane's protocol with a thing and a job, so that requests reach its real paths."""
    model = JobsModel(WallClock(), region="us-east-1", account="123456789012")
    model.create_thing("press-7")
    document = {"type": "new_model", "model_name": "m", "model_version": "2",
                "model_package_bucket": "b", "model_package_key": "k"}  # fmt: skip
    model.create_job(JobSpec(job_id="j-1", targets=["arn:aws:iot:us-east-1:123456789012:thing/press-7"],
                             document=document))  # fmt: skip
    return JobsProtocol(model)


_PLANE = _plane()  # this module only ever runs in a fuzzing process of its own


def jobs_payload(data: bytes) -> None:
    """The data plane answers any request with a documented code, never InternalError."""
    if not data:
        return
    operation = _OPERATIONS[data[0] % len(_OPERATIONS)]
    for message in _PLANE.handle("press-7", f"$aws/things/press-7/jobs/{operation}", data[1:]):
        body = json.loads(message.payload)
        assert body.get("code") != "InternalError", body


def planted(data: bytes) -> None:
    """A known bug, for the test that proves a crash is caught and reported."""
    if data[:2] == b"!!":
        raise RuntimeError("planted bug reached")


def _package_tar_gz() -> bytes:
    manifest = json.dumps({"schema": "edgesim.model-package/1", "name": "m", "version": "1"}).encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("manifest.json", manifest), ("model/weights.bin", b"\0" * 64)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("model/current")
        link.type, link.linkname = tarfile.SYMTYPE, "weights.bin"
        tar.addfile(link)
    return buffer.getvalue()


def _images() -> list[bytes]:
    encoded = []
    for fmt in ("PNG", "JPEG", "BMP", "GIF", "TIFF"):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 4), (90, 120, 30)).save(buffer, format=fmt)
        encoded.append(buffer.getvalue())
    return encoded


def seeds(target: str) -> list[bytes]:
    """Valid inputs of `target` to start the corpus from."""
    document = {"type": "new_model", "model_name": "m", "model_version": "2", "model_package_bucket": "b",
                "model_package_key": "models/m.tar.gz", "sha256": "ab" * 32, "size": 10}  # fmt: skip
    manifest = {"schema": "edgesim.model-package/1", "name": "m", "version": "1", "framework": "tensorflow",
                "model": "saved_model", "files": {},
                "inputs": [{"name": "x", "dtype": "float32", "shape": [1, 2]}],
                "outputs": [{"name": "y", "dtype": "float32", "shape": [1, 2]}]}  # fmt: skip
    request = {"clientToken": "t", "status": "IN_PROGRESS", "expectedVersion": 1, "statusDetails": {"a": "b"}}
    by_target: dict[str, list[bytes]] = {
        "archive": [_package_tar_gz()],
        "image": _images(),
        "job_document": [json.dumps(document).encode()],
        "manifest": [json.dumps(manifest).encode()],
        "jobs_payload": [bytes([n]) + json.dumps(request).encode() for n in range(len(_OPERATIONS))],
        "planted": [b"?"],
    }
    return by_target[target]


def write_seeds(target: str, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds(target):
        (folder / hashlib.sha1(seed).hexdigest()).write_bytes(seed)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "archive": archive,
    "image": image,
    "job_document": job_document,
    "manifest": manifest,
    "jobs_payload": jobs_payload,
}


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in (*TARGETS, "planted"):
        raise SystemExit(f"usage: python -m {__spec__.name if __spec__ else 'atheris_targets'} "
                         f"{{{','.join(TARGETS)}}} [libFuzzer options] [corpus folder]")  # fmt: skip
    name = argv[1]
    folders = [Path(arg) for arg in argv[2:] if not arg.startswith("-")]
    if folders and folders[0].is_dir() and not any(folders[0].iterdir()):
        write_seeds(name, folders[0])  # an empty corpus folder starts from the valid inputs
    atheris.Setup([argv[0], *argv[2:]], TARGETS.get(name, planted))
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
