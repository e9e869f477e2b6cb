"""A light device's network link to the object store: planned outages and cut transfers.

The MQTT side of a partition is the simulated broker's (`broker.faults.partition`); this is the
HTTP side, for the package download. `Link.outages` are clock windows in which the device reaches
nothing. A download that an outage interrupts is cut for real: `LinkedS3Client` wraps the boto3
client of the device's `S3ObjectStore`, and while `Link.cut(n)` is in force a GetObject body
yields `n` bytes and then fails the way a dropped connection does (botocore's `ReadTimeoutError`),
so the adapter's own resume path (a ranged GET of the rest) is what a retry exercises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ReadTimeoutError


class Link:
    def __init__(self) -> None:
        self.outages: list[tuple[float, float]] = []  # [start, end) in clock seconds
        self._budget: int | None = None  # bytes the current transfer may still receive
        self.cuts = 0  # transfers an outage broke
        self.resumes = 0  # ranged GETs: downloads that continued where a broken one stopped

    def add_outage(self, start: float, end: float) -> None:
        self.outages.append((start, end))
        self.outages.sort()

    def outage_between(self, start: float, end: float) -> tuple[float, float] | None:
        """The first outage overlapping [start, end), if any."""
        for begin, finish in self.outages:
            if begin < end and finish > start:
                return max(begin, start), finish
        return None

    def up_at(self, moment: float) -> float:
        """When the link is up again at or after `moment`."""
        for begin, finish in self.outages:
            if begin <= moment < finish:
                moment = finish
        return moment

    @contextmanager
    def cut(self, after: int | None) -> Iterator[None]:
        """Within the block, a transfer fails after `after` bytes (None: no cut)."""
        self._budget = after
        try:
            yield
        finally:
            self._budget = None

    def take(self, wanted: int) -> int:
        """How many of `wanted` bytes get through; raises when the budget ran out."""
        if self._budget is None:
            return wanted
        if self._budget <= 0:
            self.cuts += 1
            raise ReadTimeoutError(endpoint_url="s3 (simulated outage)")
        granted = min(wanted, self._budget)
        self._budget -= granted
        return granted


class LinkedS3Client:
    """A boto3 S3 client whose GetObject bodies go through a `Link`; everything else passes through."""

    def __init__(self, client: Any, link: Link) -> None:
        self._client = client
        self._link = link

    def get_object(self, **request: Any) -> dict[str, Any]:
        self._link.take(0)  # an outage from the start refuses the request itself
        response: dict[str, Any] = self._client.get_object(**request)
        if "Range" in request:
            self._link.resumes += 1
        response["Body"] = _LinkedBody(response["Body"], self._link)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class _LinkedBody:
    def __init__(self, body: Any, link: Link) -> None:
        self._body = body
        self._link = link

    def iter_chunks(self, chunk_size: int = 1024) -> Iterator[bytes]:
        for chunk in self._body.iter_chunks(chunk_size):
            granted = self._link.take(len(chunk))
            yield chunk[:granted]
            if granted < len(chunk):
                self._link.take(1)  # raises: the connection dropped mid-chunk

    def close(self) -> None:
        self._body.close()
