"""Who may publish and subscribe where: an AWS IoT policy, reduced to what edgesim's devices need.

`ThingPolicy` stands for the usual device policy built on the `${iot:Connection.Thing.ThingName}`
policy variable: a device identity (its certificate's thing) may publish to and subscribe under its
own `$aws/things/<thing>/` and under a few shared prefixes; privileged identities (the cloud side,
the jobs data plane) may do anything. A subscription is allowed only when its filter stays inside an
allowed prefix, so `$aws/things/+/jobs/#` or `#` is refused to a device. `AllowAll` is the default
of a broker without a policy (like Mosquitto without an ACL file).

Limits: no `iot:Connect` check (any identity may use any client id), no `iot:Receive` (a granted
subscription receives everything it matches), no deny statements or other policy variables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal, Protocol

Action = Literal["publish", "subscribe"]

# AWS IoT thing names: 1-128 of [a-zA-Z0-9:_-] (iot-jobs-mqtt.md section 0). Anything else can
# never own a `$aws/things/...` namespace, and a "+" in an identity must not become a wildcard.
_THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")


class Policy(Protocol):
    def allows(self, identity: str, action: Action, topic: str) -> bool:
        """Whether `identity` may publish to the topic name, or subscribe to the topic filter."""
        ...


class AllowAll:
    """Every identity may do everything."""

    def allows(self, identity: str, action: Action, topic: str) -> bool:
        return True


class ThingPolicy:
    """Devices stay under `$aws/things/<identity>/`, their telemetry under `edgesim/<identity>/`, and
    `shared_prefixes`; `privileged` go anywhere (the device IoT policy of `moto_seed.device_policy`)."""

    def __init__(self, shared_prefixes: Iterable[str] = (), privileged: Iterable[str] = ()) -> None:
        self.shared_prefixes = tuple(shared_prefixes)
        self.privileged = frozenset(privileged)
        for prefix in self.shared_prefixes:
            if not prefix or "+" in prefix or "#" in prefix:
                raise ValueError(f"a policy prefix must be a non-empty literal topic prefix, not {prefix!r}")

    def allows(self, identity: str, action: Action, topic: str) -> bool:
        if identity in self.privileged:
            return True
        if topic.startswith(self.shared_prefixes):
            return True
        return bool(_THING_NAME.fullmatch(identity)) and topic.startswith(
            (f"$aws/things/{identity}/", f"edgesim/{identity}/")
        )
