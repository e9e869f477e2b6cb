"""ObjectStore + FileTransfer: one body per behaviour, on every backend.

Backends: InMemoryObjectStore, LocalFolderObjectStore, S3ObjectStore on moto in-process and on
the moto server (real HTTP). For S3 a botocore event hook records the GetObject ranges, the bytes
each response carried, and the multipart calls, so the tests can see the wire behaviour too;
the in-memory fake records its download offsets itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from simulators.moto_env import MotoEnvironment
from simulators.object_store import InMemoryObjectStore
from system.adapters.local_object_store import LocalFolderObjectStore
from system.adapters.s3_object_store import MIB, S3ObjectStore
from system.errors import ObjectNotFoundError, ObjectStoreError, ObjectTooLargeError

BACKENDS = ("memory", "folder", "s3-inprocess", "s3-server")


@dataclass
class S3Calls:
    """What an S3 client was asked: GetObject ranges and sizes, multipart calls."""

    get_ranges: list[str | None] = field(default_factory=list)
    get_lengths: list[int] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def attach(self, client: Any) -> None:
        events = client.meta.events
        events.register("provide-client-params.s3.*", self._on_params)
        events.register("after-call.s3.GetObject", self._on_get)

    def _on_params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append(model.name)
        if model.name == "GetObject":
            self.get_ranges.append(params.get("Range"))

    def _on_get(self, parsed: dict[str, Any], **_: Any) -> None:
        self.get_lengths.append(int(parsed.get("ContentLength", 0)))


@dataclass
class StoreUnderTest:
    name: str
    store: Any
    s3: S3Calls | None = None

    def download_offsets(self) -> list[int] | None:
        """Where each fetch of a download started, for backends that can tell."""
        if isinstance(self.store, InMemoryObjectStore):
            return [offset for _, offset in self.store.downloads]
        if self.s3 is not None:
            return [int(r.removeprefix("bytes=").rstrip("-")) if r else 0 for r in self.s3.get_ranges]
        return None


@pytest.fixture(params=BACKENDS)
def make_store(
    request: pytest.FixtureRequest, tmp_path: Path, unique_name: Callable[[str], str]
) -> Iterator[Callable[..., StoreUnderTest]]:
    """Factory: a fresh, empty store of this backend; S3 options apply to S3 only."""
    made: list[tuple[Any, str]] = []
    environments: list[MotoEnvironment] = []

    def factory(**s3_options: Any) -> StoreUnderTest:
        backend: str = request.param
        if backend == "memory":
            return StoreUnderTest(backend, InMemoryObjectStore())
        if backend == "folder":
            return StoreUnderTest(backend, LocalFolderObjectStore(tmp_path / unique_name("objects")))
        if backend == "s3-server":
            env = request.getfixturevalue("moto_server")
        else:
            env = MotoEnvironment("inprocess").start()
            environments.append(env)
        client = env.client("s3")
        bucket = unique_name("bucket")
        client.create_bucket(Bucket=bucket)
        made.append((client, bucket))
        calls = S3Calls()
        calls.attach(client)
        return StoreUnderTest(backend, S3ObjectStore(client, bucket, **s3_options), calls)

    yield factory
    for client, bucket in made:
        if not environments:  # the shared server keeps its state: empty and delete the bucket
            for key in S3ObjectStore(client, bucket).list_keys():
                client.delete_object(Bucket=bucket, Key=key)
            client.delete_bucket(Bucket=bucket)
    for env in environments:
        env.stop()


def test_put_then_get_returns_the_same_bytes(make_store: Callable[..., StoreUnderTest]) -> None:
    store = make_store().store
    store.put_bytes("captures/a.bin", b"\x00\x01payload")
    store.put_bytes("captures/a.bin", b"second")
    assert store.get_bytes("captures/a.bin") == b"second"


def test_list_keys_filters_by_prefix_sorts_and_crosses_pages(make_store: Callable[..., StoreUnderTest]) -> None:
    store = make_store(page_size=2).store
    for key in ("m/3", "m/1", "m/2", "m/10", "n/1"):
        store.put_bytes(key, b"x")
    assert store.list_keys("m/") == ["m/1", "m/10", "m/2", "m/3"]
    assert store.list_keys() == ["m/1", "m/10", "m/2", "m/3", "n/1"]
    assert store.list_keys("absent/") == []


def test_a_missing_key_raises_object_not_found(make_store: Callable[..., StoreUnderTest], tmp_path: Path) -> None:
    store = make_store().store
    dest = tmp_path / "dest.bin"
    with pytest.raises(ObjectNotFoundError):
        store.get_bytes("nothing/here")
    with pytest.raises(ObjectNotFoundError):
        store.size("nothing/here")
    with pytest.raises(ObjectNotFoundError):
        store.download_file("nothing/here", dest)
    assert not dest.exists()


def test_size_is_the_object_length(make_store: Callable[..., StoreUnderTest]) -> None:
    store = make_store().store
    store.put_bytes("a", b"12345")
    store.put_bytes("empty", b"")
    assert (store.size("a"), store.size("empty")) == (5, 0)


def test_download_streams_the_object_to_a_file(make_store: Callable[..., StoreUnderTest], tmp_path: Path) -> None:
    under_test = make_store(chunk_size=64 * 1024)
    data = os.urandom(3 * MIB + 17)
    under_test.store.put_bytes("packages/model.tar.gz", data)
    dest = tmp_path / "deep" / "model.tar.gz"
    assert under_test.store.download_file("packages/model.tar.gz", dest) == len(data)
    assert dest.read_bytes() == data
    assert under_test.download_offsets() in (None, [0])


def test_download_resumes_after_a_partial_file(make_store: Callable[..., StoreUnderTest], tmp_path: Path) -> None:
    under_test = make_store()
    data = os.urandom(MIB + 5)
    under_test.store.put_bytes("pkg", data)
    dest = tmp_path / "pkg"
    kept = 400_000
    # Bytes unlike the object's: if they survive, the download did not fetch them again.
    dest.write_bytes(b"\xaa" * kept)
    assert under_test.store.download_file("pkg", dest) == len(data)
    assert dest.read_bytes() == b"\xaa" * kept + data[kept:]
    assert under_test.download_offsets() in (None, [kept])
    if under_test.s3 is not None:
        assert under_test.s3.get_ranges == [f"bytes={kept}-"]
        assert under_test.s3.get_lengths == [len(data) - kept]


def test_download_restarts_when_the_file_is_longer_than_the_object(
    make_store: Callable[..., StoreUnderTest], tmp_path: Path
) -> None:
    under_test = make_store()
    under_test.store.put_bytes("small", b"new content")
    dest = tmp_path / "small"
    dest.write_bytes(b"an older and longer file")
    assert under_test.store.download_file("small", dest) == len(b"new content")
    assert dest.read_bytes() == b"new content"
    assert under_test.download_offsets() in (None, [0])


def test_download_of_a_complete_file_fetches_nothing(make_store: Callable[..., StoreUnderTest], tmp_path: Path) -> None:
    under_test = make_store()
    under_test.store.put_bytes("done", b"complete")
    dest = tmp_path / "done"
    dest.write_bytes(b"complete")
    assert under_test.store.download_file("done", dest) == 8
    assert dest.read_bytes() == b"complete"
    assert under_test.download_offsets() in (None, [])


def test_max_bytes_refuses_a_bigger_object_before_writing(
    make_store: Callable[..., StoreUnderTest], tmp_path: Path
) -> None:
    under_test = make_store()
    under_test.store.put_bytes("big", b"x" * 1000)
    fresh, partial = tmp_path / "fresh", tmp_path / "partial"
    partial.write_bytes(b"x" * 10)
    with pytest.raises(ObjectTooLargeError):
        under_test.store.download_file("big", fresh, max_bytes=999)
    with pytest.raises(ObjectTooLargeError):
        under_test.store.download_file("big", partial, max_bytes=999)
    assert not fresh.exists()
    assert partial.read_bytes() == b"x" * 10
    assert under_test.download_offsets() in (None, [])
    assert under_test.store.download_file("big", fresh, max_bytes=1000) == 1000


def test_upload_file_above_the_threshold_goes_in_parts(
    make_store: Callable[..., StoreUnderTest], tmp_path: Path
) -> None:
    under_test = make_store(multipart_threshold=5 * MIB)
    source = tmp_path / "upload.bin"
    data = os.urandom(6 * MIB)
    source.write_bytes(data)
    under_test.store.upload_file(source, "uploads/big.bin")
    assert under_test.store.size("uploads/big.bin") == len(data)
    assert under_test.store.get_bytes("uploads/big.bin") == data
    if under_test.s3 is not None:
        assert under_test.s3.calls.count("CreateMultipartUpload") == 1
        assert under_test.s3.calls.count("UploadPart") == 2  # 5 MiB + 1 MiB
        assert under_test.s3.calls.count("CompleteMultipartUpload") == 1


def test_upload_file_below_the_threshold_is_one_put(make_store: Callable[..., StoreUnderTest], tmp_path: Path) -> None:
    under_test = make_store(multipart_threshold=5 * MIB)
    source = tmp_path / "small.bin"
    source.write_bytes(b"small")
    under_test.store.upload_file(source, "uploads/small.bin")
    assert under_test.store.get_bytes("uploads/small.bin") == b"small"
    if under_test.s3 is not None:
        assert "CreateMultipartUpload" not in under_test.s3.calls
        assert under_test.s3.calls.count("PutObject") == 1


def test_upload_of_a_missing_file_raises_object_store_error(
    make_store: Callable[..., StoreUnderTest], tmp_path: Path
) -> None:
    store = make_store().store
    with pytest.raises(ObjectStoreError):
        store.upload_file(tmp_path / "absent.bin", "uploads/absent.bin")
    assert store.list_keys("uploads/") == []
