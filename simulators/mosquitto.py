"""MosquittoProcess: a real Mosquitto broker of our own on a free loopback port, over TCP or mutual TLS.

Tests and scenarios of the `local` profile start one per need instead of sharing the machine's
broker on 1883: it writes a config in a folder of its own, starts `mosquitto -c`, waits until the
port accepts connections, and stops the process (SIGTERM, then SIGKILL) on `stop()`. `restart()`
keeps the port, so clients can reconnect to it. The config follows feasibility.md section 5:
`per_listener_settings true`, `set_tcp_nodelay true` (without it a QoS 1 request/response costs
44-88 ms), `persistence false`, and for TLS `require_certificate true` with
`use_identity_as_username true` (the client certificate's CN is the username an ACL sees).

Started as root, Mosquitto drops privileges to user `mosquitto` and then cannot read keys in a
private temp folder: the config names the current user (`user root` keeps root; for anyone else the
option has no effect). Mosquitto's log goes to `mosquitto.log` in the folder.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from simulators.certificates import TlsMaterial
from system.errors import MessageBusError

_FALLBACK_BINARY = "/usr/sbin/mosquitto"  # Debian puts it outside a normal user's PATH
PRIVILEGED_IDENTITY = "cloud"  # the IoT Jobs data plane's certificate CN (simulators/cloud.JOBS_IDENTITY)
# Per-thing authorization on a TLS listener with `use_identity_as_username` (%u = the client
# certificate's CN = the thing name): Mosquitto's version of the simulated broker's ThingPolicy.
# A device reads and writes its own jobs topics and its own telemetry, nothing else; the data plane
# (CN "cloud") everything. Mosquitto applies a read rule to delivery, not to SUBSCRIBE: a device may
# subscribe to another thing's topics and simply receives nothing.
THING_ACL = f"""user {PRIVILEGED_IDENTITY}
topic readwrite #
topic readwrite $aws/#

pattern readwrite $aws/things/%u/#
pattern readwrite edgesim/%u/#
"""


def find_mosquitto() -> str | None:
    """The mosquitto executable, or None when it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return _FALLBACK_BINARY if os.access(_FALLBACK_BINARY, os.X_OK) else None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class MosquittoProcess:
    """One Mosquitto with one listener on `host`: plain TCP, or mutual TLS when `tls` is given.

    `acl` is the text of an ACL file for the listener (e.g. `pattern readwrite $aws/things/%u/#`),
    `extra_config` lines are appended to the listener's section (e.g. `message_size_limit 1000`).
    `client_cas` are more CA certificates (PEM files) that client certificates may chain to, besides
    the material's CA (e.g. the issuer of moto's IoT certificates, for a device bundle).
    """

    def __init__(
        self,
        folder: Path,
        *,
        tls: TlsMaterial | None = None,
        acl: str | None = None,
        extra_config: str = "",
        port: int = 0,
        host: str = "127.0.0.1",
        binary: str | None = None,
        client_cas: tuple[Path, ...] = (),
    ) -> None:
        if client_cas and tls is None:
            raise MessageBusError("client_cas are for a TLS listener: give tls too")
        self.folder = folder
        self.tls = tls
        self.client_cas = client_cas
        self.acl = acl
        self.extra_config = extra_config
        self.host = host
        self.port = port
        self.binary = binary or find_mosquitto()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.folder / "mosquitto.log"

    def start(self, timeout: float = 10.0) -> MosquittoProcess:
        """Start and wait until the port accepts connections; a port lost to a race is re-picked."""
        if self.binary is None:
            raise MessageBusError("mosquitto is not installed (apt-get install mosquitto)")
        chosen = self.port == 0
        for _ in range(3 if chosen else 1):
            if chosen:
                self.port = free_port(self.host)
            if self._launch(timeout):
                return self
            if chosen and "Address already in use" in self._log_tail():
                continue
            break
        raise MessageBusError(f"mosquitto did not start on {self.host}:{self.port}: {self._log_tail()}")

    def stop(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def restart(self, timeout: float = 10.0) -> None:
        """Stop, then start again on the same port (clients see their connection drop)."""
        self.stop()
        self.start(timeout)

    def __enter__(self) -> MosquittoProcess:
        return self.start() if not self.running else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def config_text(self) -> str:
        lines = [
            "per_listener_settings true",
            "set_tcp_nodelay true",
            "persistence false",
            f"user {getpass.getuser()}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
        ]
        if self.tls is not None:
            lines += [
                f"cafile {self._cafile(self.tls.ca_cert)}",
                f"certfile {self.tls.server_cert}",
                f"keyfile {self.tls.server_key}",
                "require_certificate true",
                "use_identity_as_username true",
            ]
        if self.acl is not None:
            acl_path = self.folder / "acl"
            acl_path.write_text(self.acl)
            lines.append(f"acl_file {acl_path}")
        if self.extra_config:
            lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    def _cafile(self, ca_cert: Path) -> Path:
        """The material's CA, or one file with it and `client_cas` (Mosquitto takes one cafile)."""
        if not self.client_cas:
            return ca_cert
        combined = self.folder / "client-cas.pem"
        combined.write_bytes(b"".join(path.read_bytes().rstrip(b"\n") + b"\n" for path in (ca_cert, *self.client_cas)))
        return combined

    def _launch(self, timeout: float) -> bool:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "mosquitto.conf"
        config.write_text(self.config_text())
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(self.binary), "-c", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                return False
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
                return True
            time.sleep(0.01)
        self.stop()
        return False

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:].strip()
        except FileNotFoundError:
            return "(no log)"
