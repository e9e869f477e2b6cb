"""Link: planned outages and cut transfers; `LinkedS3Client` under the real S3 adapter, on moto."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ReadTimeoutError

from simulators.cloud import SimulatedCloud
from simulators.fleet.link import Link, LinkedS3Client
from system.adapters.s3_object_store import S3ObjectStore
from system.errors import ObjectStoreError

SIZE = 10_000


# -- outage arithmetic -------------------------------------------------------------------------


def test_outage_between_finds_the_first_overlapping_window_clipped_at_the_start() -> None:
    link = Link()
    link.add_outage(50.0, 60.0)
    link.add_outage(10.0, 20.0)  # added out of order: kept sorted
    assert link.outages == [(10.0, 20.0), (50.0, 60.0)]
    assert link.outage_between(0.0, 10.0) is None  # [start, end): touching is not overlapping
    assert link.outage_between(20.0, 50.0) is None
    assert link.outage_between(5.0, 15.0) == (10.0, 20.0)
    assert link.outage_between(15.0, 16.0) == (15.0, 20.0)  # already down: from now
    assert link.outage_between(19.0, 70.0) == (19.0, 20.0)  # the first of two
    assert link.outage_between(30.0, 55.0) == (50.0, 60.0)


def test_up_at_is_the_end_of_the_outage_covering_the_moment() -> None:
    link = Link()
    link.add_outage(10.0, 20.0)
    link.add_outage(20.0, 30.0)  # back to back: down until 30
    link.add_outage(40.0, 45.0)
    assert link.up_at(5.0) == 5.0
    assert link.up_at(10.0) == 30.0
    assert link.up_at(25.0) == 30.0
    assert link.up_at(30.0) == 30.0  # the end is exclusive
    assert link.up_at(44.9) == 45.0


def test_take_grants_the_budget_then_raises_and_counts_the_cut() -> None:
    link = Link()
    assert link.take(10**9) == 10**9  # no cut in force
    with link.cut(100):
        assert link.take(60) == 60
        assert link.take(60) == 40
        with pytest.raises(ReadTimeoutError):
            link.take(1)
    assert link.cuts == 1
    assert link.take(5) == 5  # the cut ends with its block


# -- LinkedS3Client under S3ObjectStore -----------------------------------------------------------


@pytest.fixture
def stored(cloud: SimulatedCloud) -> tuple[str, bytes]:
    data = os.urandom(SIZE)
    key = f"link/{uuid.uuid4().hex}.bin"
    cloud.object_store().put_bytes(key, data)
    return key, data


def linked_store(cloud: SimulatedCloud, link: Link, chunk_size: int = 1024) -> S3ObjectStore:
    return S3ObjectStore(LinkedS3Client(cloud.client("s3"), link), cloud.project.bucket, chunk_size=chunk_size)


@pytest.mark.parametrize("cut_after", [1, 1000, 1024, 3000, SIZE - 1], ids=lambda n: f"cut-after-{n}")
def test_a_cut_download_keeps_exactly_the_bytes_received_then_resumes_with_a_range(
    cloud: SimulatedCloud, stored: tuple[str, bytes], tmp_path: Path, cut_after: int
) -> None:
    key, data = stored
    link = Link()
    store = linked_store(cloud, link)
    dest = tmp_path / "package.bin"
    with link.cut(cut_after), pytest.raises(ObjectStoreError):
        store.download_file(key, dest)
    assert dest.read_bytes() == data[:cut_after]
    assert (link.cuts, link.resumes) == (1, 0)

    assert store.download_file(key, dest) == SIZE
    assert link.resumes == 1
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_cut_at_zero_refuses_the_request_and_leaves_no_bytes(
    cloud: SimulatedCloud, stored: tuple[str, bytes], tmp_path: Path
) -> None:
    key, data = stored
    link = Link()
    store = linked_store(cloud, link)
    dest = tmp_path / "package.bin"
    with link.cut(0), pytest.raises(ObjectStoreError):
        store.download_file(key, dest)
    assert not dest.exists() or dest.stat().st_size == 0
    assert store.download_file(key, dest) == SIZE
    assert link.resumes == 0  # nothing to resume from: a plain GET
    assert dest.read_bytes() == data


def test_two_cuts_then_a_full_resume(cloud: SimulatedCloud, stored: tuple[str, bytes], tmp_path: Path) -> None:
    key, data = stored
    link = Link()
    store = linked_store(cloud, link, chunk_size=700)
    dest = tmp_path / "package.bin"
    for budget, have in ((2500, 2500), (4000, 6500)):
        with link.cut(budget), pytest.raises(ObjectStoreError):
            store.download_file(key, dest)
        assert dest.stat().st_size == have
    store.download_file(key, dest)
    assert (link.cuts, link.resumes) == (2, 2)
    assert dest.read_bytes() == data


def test_a_budget_covering_the_object_is_no_cut(
    cloud: SimulatedCloud, stored: tuple[str, bytes], tmp_path: Path
) -> None:
    key, data = stored
    link = Link()
    with link.cut(SIZE):
        assert linked_store(cloud, link).download_file(key, tmp_path / "package.bin") == SIZE
    assert (link.cuts, link.resumes) == (0, 0)
    assert (tmp_path / "package.bin").read_bytes() == data


def test_other_calls_pass_through_to_the_client(cloud: SimulatedCloud, stored: tuple[str, bytes]) -> None:
    key, _ = stored
    link = Link()
    with link.cut(0):  # only GetObject bodies go through the link
        assert linked_store(cloud, link).size(key) == SIZE
    assert link.cuts == 0
