"""InMemoryObjectStore: the ObjectStore port in a dict.

Limits: no persistence, no size limit, no eventual consistency; fault injection (`fail_puts`)
is a simple count of puts to refuse.
"""

from __future__ import annotations

import threading

from system.errors import ObjectNotFoundError, ObjectStoreError


class InMemoryObjectStore:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.fail_puts = 0  # the next N puts raise ObjectStoreError
        self._lock = threading.Lock()

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._lock:
            if self.fail_puts > 0:
                self.fail_puts -= 1
                raise ObjectStoreError(f"injected failure writing {key}")
            self.objects[key] = bytes(data)

    def get_bytes(self, key: str) -> bytes:
        with self._lock:
            if key not in self.objects:
                raise ObjectNotFoundError(f"no object {key}")
            return self.objects[key]

    def list_keys(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(k for k in self.objects if k.startswith(prefix))
