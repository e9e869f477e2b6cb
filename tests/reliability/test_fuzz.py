"""Fuzzing every input a device or the jobs plane takes from outside, with hypothesis.

Property everywhere: no crash, no hang, only the documented error, nothing written outside the
device folder. Inputs: job documents, executions from start-next, IoT Jobs request payloads on the
data plane, model package manifests, package archives (traversal, absolute paths, links out of the
folder, devices, FIFOs, huge declared sizes, truncated and corrupt streams), uploaded images (the
device's decoder and the web API). Predict tensors are fuzzed in tests/agent/test_predict_fuzz.py.

`EDGESIM_FUZZ_EXAMPLES` sets the examples per test (default 100; `make reliability` runs more), and
`EDGESIM_FUZZ_RESULTS` names a JSON file that receives how many examples ran and how many archives
were refused.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulators.iot_jobs.model import JobsModel
from simulators.iot_jobs.protocol import JobsProtocol
from system.agent.package import parse_manifest
from system.clock import WallClock
from system.edge.archive import ArchiveError, ExtractionLimits, extract_package
from system.edge.job_document import JobDocumentError, parse_job_document
from system.edge.jobs_client import IotJobsDeviceClient
from system.edge.ota_machine import JobOffer
from system.edge.web.app import create_app
from system.errors import JobsError
from system.ports import JobSpec, Message
from system.preprocessing import decode_image
from tests.reliability.reporting import Report, register
from tests.web_fakes import FakeDeviceView, png_bytes

EXAMPLES = int(os.environ.get("EDGESIM_FUZZ_EXAMPLES", "100"))
# print_blob off and short examples: a failing archive is printed whole, and can be megabytes.
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=False)
COUNTS: Counter[str] = Counter()  # examples run per input, and archives refused

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def _near(valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Documents close to a valid one: each field kept, dropped or replaced by any JSON value."""
    return st.fixed_dictionaries({}, optional={key: st.just(value) | json_values for key, value in valid.items()}).map(
        lambda d: d
    )


VALID_DOCUMENT = {
    "type": "new_model",
    "model_name": "img-classification",
    "model_version": "2",
    "model_package_bucket": "bucket-1",
    "model_package_key": "models/m.tar.gz",
    "sha256": "ab" * 32,
    "size": 10,
}


@FUZZ
@given(document=_near(VALID_DOCUMENT) | json_values)
def test_a_job_document_is_an_update_or_a_job_document_error(document: Any) -> None:
    COUNTS["job documents"] += 1
    try:
        update = parse_job_document(document)
    except JobDocumentError as exc:
        assert str(exc)  # the REJECTED reason the device reports
        return
    assert update.model_name and update.bucket and update.key


@pytest.fixture(scope="module")
def plane() -> JobsProtocol:
    """The data plane's protocol with a thing and a job, so requests reach its real paths."""
    model = JobsModel(WallClock(), region="us-east-1", account="123456789012")
    model.create_thing("press-7")
    arn = "arn:aws:iot:us-east-1:123456789012:thing/press-7"
    model.create_job(JobSpec(job_id="j-1", targets=[arn], document=VALID_DOCUMENT))
    return JobsProtocol(model)


OPERATIONS = ["get", "start-next", "j-1/get", "j-1/update", "$next/get", "j-1/unknown", "notify"]


@FUZZ
@given(
    operation=st.sampled_from(OPERATIONS),
    payload=st.binary(max_size=64)
    | json_values.map(lambda v: json.dumps(v).encode())
    | _near({"clientToken": "t", "status": "IN_PROGRESS", "expectedVersion": 1, "executionNumber": 1,
             "statusDetails": {"a": "b"}, "stepTimeoutInMinutes": 5, "includeJobDocument": True}).map(
        lambda v: json.dumps(v).encode()),
)  # fmt: skip
def test_the_jobs_plane_answers_any_payload_with_a_documented_code(
    plane: JobsProtocol, operation: str, payload: bytes
) -> None:
    COUNTS["jobs requests"] += 1
    for message in plane.handle("press-7", f"$aws/things/press-7/jobs/{operation}", payload):
        body = json.loads(message.payload)
        assert body.get("code") != "InternalError", body  # InternalError would be a simulator bug


@FUZZ
@given(raw=json_values | _near({"schema": "edgesim.model-package/1", "name": "m", "version": "1",
                                "framework": "tensorflow", "model": "saved_model", "files": {},
                                "inputs": [{"name": "x", "dtype": "float32", "shape": [1, 2]}],
                                "outputs": [{"name": "y", "dtype": "float32", "shape": [1, 2]}]}))  # fmt: skip
def test_a_manifest_is_a_manifest_or_a_value_error(raw: Any) -> None:
    COUNTS["manifests"] += 1
    try:
        parse_manifest(raw)
    except ValueError as exc:  # read_package turns it into FAILED_PRECONDITION naming the problem
        assert str(exc)


class AnsweringBus:
    """A MessageBus fake for the device's jobs client: each request is answered at once with `reply`
    (its payload gets the request's clientToken unless `keep_token` is off), on `reply_topic`."""

    def __init__(self) -> None:
        self.handlers: dict[str, Any] = {}
        self.reply: dict[str, Any] | bytes = {}
        self.reply_suffix = "accepted"
        self.keep_token = True

    def subscribe(self, topic_filter: str, handler: Any, qos: int = 1) -> AnsweringBus:
        self.handlers[topic_filter] = handler
        return self  # the Subscription: the client never cancels during a test

    def cancel(self) -> None:
        pass

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        token = json.loads(payload)["clientToken"]
        body = (
            self.reply
            if isinstance(self.reply, bytes)
            else json.dumps({**self.reply, **({"clientToken": token} if self.keep_token else {})}).encode()
        )
        reply_topic = f"{topic}/{self.reply_suffix}"
        handler = self.handlers.get(reply_topic)
        if handler is not None:
            handler(Message(reply_topic, body, 1, False))


@FUZZ
@given(
    reply=json_values.filter(lambda v: isinstance(v, dict)) | st.binary(max_size=40)
    | _near({"execution": {"jobId": "j-1", "executionNumber": 1, "status": "IN_PROGRESS",
                           "jobDocument": VALID_DOCUMENT}, "code": "InvalidRequest", "message": "m"}),
    suffix=st.sampled_from(["accepted", "rejected"]),
    keep_token=st.booleans(),
    notification=st.binary(max_size=40) | json_values.map(lambda v: json.dumps(v).encode()),
)  # fmt: skip
def test_the_device_takes_any_jobs_payload_as_a_result_or_a_jobs_error(
    reply: Any, suffix: str, keep_token: bool, notification: bytes
) -> None:
    COUNTS["jobs payloads (device)"] += 1
    bus = AnsweringBus()
    bus.reply, bus.reply_suffix, bus.keep_token = reply, suffix, keep_token
    heard: list[Any] = []
    client = IotJobsDeviceClient(bus, "press-7", timeout=0.05, on_notify_next=heard.append, on_notify=heard.append)  # type: ignore[arg-type]
    for topic in ("$aws/things/press-7/jobs/notify-next", "$aws/things/press-7/jobs/notify"):
        bus.handlers[topic](Message(topic, notification, 1, False))  # never raises: bad payloads are dropped
    assert all(isinstance(payload, dict) for payload in heard)
    try:
        execution = client.start_next()
    except JobsError as exc:
        assert exc.code  # Timeout (no usable reply) or the code the rejection carried
        return
    if execution is not None:
        try:
            JobOffer.from_execution(execution)
        except JobsError as exc:
            assert exc.code == "InvalidExecution"


# -- archives ----------------------------------------------------------------------------------

NAMES = st.sampled_from(
    ["model.bin", "saved_model/variables/v", "../escape", "../../etc/passwd", "/abs/path", "a/../../b",
     "./ok", "dir/", "", ".", "a//b", "x" * 300, "link", "dev", "fifo"]
) | st.text(min_size=1, max_size=30)  # fmt: skip
KINDS = st.sampled_from(["file", "dir", "symlink", "hardlink", "chr", "blk", "fifo"])
TYPES = {
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "chr": tarfile.CHRTYPE,
    "blk": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}
LINK_TARGETS = st.sampled_from(["model.bin", "../outside", "/etc/passwd", "saved_model/../../x", "missing"])


@st.composite
def archives(draw: st.DrawFn) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for _ in range(draw(st.integers(1, 6))):
            info = tarfile.TarInfo(draw(NAMES))
            kind = draw(KINDS)
            data = b""
            if kind == "file":
                data = draw(st.binary(max_size=64))
                info.size = len(data)
            else:
                info.type = TYPES[kind]
                info.linkname = draw(LINK_TARGETS) if kind in ("symlink", "hardlink") else ""
            info.mode = draw(st.sampled_from([0o644, 0o755, 0o4755, 0o777]))
            tar.addfile(info, io.BytesIO(data) if kind == "file" else None)
    raw = buffer.getvalue()
    form = draw(st.sampled_from(["tar", "gz", "truncated-gz", "corrupt", "huge-declared"]))
    if form == "gz":
        raw = _gzip(raw)
    elif form == "truncated-gz":
        raw = _gzip(raw)[: draw(st.integers(0, max(0, len(_gzip(raw)) - 1)))]
    elif form == "corrupt":
        position = draw(st.integers(0, len(raw) - 1))
        raw = raw[:position] + bytes([raw[position] ^ 0xFF]) + raw[position + 1 :]
    elif form == "huge-declared":
        raw = _huge_declared()
    return raw, form


def _gzip(raw: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=31)
    return compressor.compress(raw) + compressor.flush()


def _huge_declared() -> bytes:
    """A member claiming 1 TiB (the data is not there): refused by its declared size, never read."""
    info = tarfile.TarInfo("model.bin")
    info.size = 1 << 40
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    return header + b"\0" * 1024


@pytest.fixture(scope="module")
def arena() -> Iterator[Path]:
    """Shared by the examples: each works in a folder of its own and checks only what it added."""
    with tempfile.TemporaryDirectory(prefix="es-fuzz-") as folder:
        yield Path(folder)


def _snapshot(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@FUZZ
@given(archive=archives())
def test_an_archive_extracts_inside_its_folder_or_is_refused(arena: Path, archive: tuple[bytes, str]) -> None:
    raw, form = archive
    COUNTS["archives"] += 1
    case = Path(tempfile.mkdtemp(dir=arena))
    package = case / "package.tar"
    package.write_bytes(raw)
    device = case / "device"  # the device folder: extraction goes to device/model, nothing else changes
    device.mkdir()
    before = _snapshot(arena)
    dest = device / "model"
    try:
        extract_package(package, dest, ExtractionLimits(max_files=50, max_bytes=1 << 20))
    except ArchiveError as exc:
        COUNTS["archives refused"] += 1
        assert str(exc)
        assert not dest.exists() and not [p for p in device.iterdir()], "a refused archive left files"
    else:
        assert form != "huge-declared"
        for path in dest.rglob("*"):
            if path.is_symlink():  # strict: a loop or a dangling link fails here too
                assert (path.parent / os.readlink(path)).resolve(strict=True).is_relative_to(dest.resolve())
            assert path.is_dir() or path.is_file() or path.is_symlink(), f"{path} is a device or a FIFO"
            assert not path.stat(follow_symlinks=False).st_mode & 0o6000, f"{path} kept a setuid/setgid bit"
    after = _snapshot(arena) - before
    assert all(entry.startswith(str(case.relative_to(arena))) for entry in after), f"written outside: {after}"
    outside = {e for e in after if not e.startswith(str((device).relative_to(arena)))}
    assert outside <= {str(package.relative_to(arena))}, f"written outside the device folder: {outside}"


# -- uploaded images ---------------------------------------------------------------------------


@st.composite
def images(draw: st.DrawFn) -> bytes:
    fmt = draw(st.sampled_from(["PNG", "JPEG", "BMP", "GIF", "TIFF"]))
    size = (draw(st.integers(1, 40)), draw(st.integers(1, 40)))
    data = png_bytes(size=size, fmt=fmt)
    cut = draw(st.sampled_from(["whole", "truncated", "flipped", "random"]))
    if cut == "truncated":
        return data[: draw(st.integers(0, len(data) - 1))]
    if cut == "flipped":
        position = draw(st.integers(0, len(data) - 1))
        return data[:position] + bytes([data[position] ^ 0x5A]) + data[position + 1 :]
    if cut == "random":
        return draw(st.binary(max_size=256))
    return data


@FUZZ
@given(data=images())
def test_the_device_decodes_an_upload_or_raises_value_error(data: bytes) -> None:
    COUNTS["images"] += 1
    try:
        image = decode_image(data, "the upload")
    except ValueError as exc:
        assert "cannot decode the upload" in str(exc)
        return
    assert image.size[0] > 0 and image.size[1] > 0


@pytest.fixture(scope="module")
def web() -> Any:
    view = FakeDeviceView()

    def predict_image(data: bytes, name: str) -> Any:
        decode_image(data, f"the uploaded image {name!r}")  # the real device's decoder, then a canned result
        return view.predict_result or FakeDeviceView().predict_image(png_bytes(), name)

    view.predict_image = predict_image  # type: ignore[method-assign]
    return create_app(view, max_upload_bytes=4096).test_client()


@FUZZ
@given(
    data=images() | st.binary(min_size=4000, max_size=5000),
    content_type=st.sampled_from(["image/png", "image/jpeg", "application/octet-stream", "text/plain",
                                  "multipart/form-data", "application/json", ""]),
    multipart=st.booleans(),
)  # fmt: skip
def test_the_web_api_answers_any_upload_with_a_json_4xx_or_a_result(
    web: Any, data: bytes, content_type: str, multipart: bool
) -> None:
    COUNTS["uploads"] += 1
    if multipart:
        response = web.post(
            "/api/predict", data={"image": (io.BytesIO(data), "x.png")}, content_type="multipart/form-data"
        )
    else:
        response = web.post("/api/predict", data=data, content_type=content_type)
    assert response.status_code in (200, 400, 413, 415), response.status_code
    body = response.get_json()
    assert body is not None and (response.status_code == 200 or body["status"] == response.status_code)


def _examples() -> int:
    return sum(v for k, v in COUNTS.items() if k != "archives refused")


register(
    "fuzz",
    Report(
        env="EDGESIM_FUZZ_RESULTS",
        ran=lambda: _examples() > 0,
        line=lambda: f"fuzz examples run: {_examples()} ({dict(COUNTS)})",
        results=lambda: {"examples": _examples(), "per_input": dict(COUNTS)},
    ),
)
