"""The ports the product needs: small protocols named for what the domain does.

Real adapters live in `system/adapters/`; in-process fakes in `simulators/`. Issue 3 needs the
object store (capture data); the message bus, jobs control and model registry come with the
cloud issue.
"""

from __future__ import annotations

from typing import Protocol


class ObjectStore(Protocol):
    """A flat key -> bytes store: S3, a local folder, or an in-memory fake.

    Keys use "/" separators and never start with "/". Errors are `ObjectStoreError`s;
    `get_bytes` of a missing key raises `ObjectNotFoundError`.
    """

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def list_keys(self, prefix: str = "") -> list[str]: ...
