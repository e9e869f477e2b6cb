"""TlsFiles: the PEM files an MQTT client needs for TLS, with or without a client certificate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from system.errors import ConfigError


@dataclass(frozen=True)
class TlsFiles:
    """`ca` verifies the broker; `cert` and `key` (both or neither) prove the client's identity.

    AWS IoT Core and a Mosquitto with `require_certificate true` need the client pair (mutual TLS);
    the certificate's subject CN is the identity when `use_identity_as_username` is on.
    """

    ca: Path
    cert: Path | None = None
    key: Path | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ConfigError("a client certificate needs its key, and a key its certificate")
