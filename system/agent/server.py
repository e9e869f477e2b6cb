"""The Edge Agent process: gRPC server, health service, socket handling, graceful stop.

`EdgeAgent` is the agent's composition root: it builds the model table, the capture service
and the servicer from `AgentSettings` and an ObjectStore for captures.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from concurrent import futures
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from system.adapters.local_object_store import LocalFolderObjectStore
from system.agent.capture import CaptureService
from system.agent.malloc import keep_large_buffers_on_heap
from system.agent.models import ModelTable, RuntimeOpener
from system.agent.runtimes import open_runtime
from system.agent.servicer import AgentServicer
from system.agent.shared_memory import SharedMemoryReader
from system.config import AgentSettings
from system.errors import ConfigError
from system.logs import fields
from system.ports import ObjectStore
from system.proto import agent_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = "AWS.SageMaker.Edge.Agent"


def _socket_in_use(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _prepare_socket(path: str) -> None:
    """Refuse to start over a live agent; remove a stale socket left by a crash."""
    target = Path(path)
    if not target.exists() and not target.is_symlink():
        target.parent.mkdir(parents=True, exist_ok=True)
        return
    if target.is_symlink() or not target.is_socket():
        raise ConfigError(f"{path} exists and is not a socket; refusing to replace it")
    if _socket_in_use(path):
        raise ConfigError(f"another agent is already serving on {path}")
    target.unlink()


def default_capture_store(settings: AgentSettings) -> ObjectStore:
    """The "Disk" destination; "Cloud" needs an ObjectStore from the composition root."""
    if settings.capture.destination == "Cloud":
        raise ConfigError("capture destination Cloud needs an object store (S3); pass one to EdgeAgent or use Disk")
    return LocalFolderObjectStore(settings.capture.disk_path)


class EdgeAgent:
    """A running agent. `start()` binds and serves; `stop()` drains calls, captures and models."""

    def __init__(
        self,
        settings: AgentSettings,
        capture_store: ObjectStore | None = None,
        runtime_opener: RuntimeOpener = open_runtime,
    ) -> None:
        """`runtime_opener` is where simulators install fault-injecting runtimes (tests)."""
        settings.validate()
        self.settings = settings
        self.models = ModelTable(settings, runtime_opener)
        self.capture = CaptureService(settings.capture, capture_store or default_capture_store(settings))
        self._health = health.HealthServicer()
        max_bytes = settings.max_message_mb * 1024 * 1024
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="agent-rpc"),
            options=[
                ("grpc.max_send_message_length", max_bytes),
                ("grpc.max_receive_message_length", max_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        self._shared_memory = SharedMemoryReader()
        agent_pb2_grpc.add_AgentServicer_to_server(
            AgentServicer(settings, self.models, self.capture, self._shared_memory), self._server
        )
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self.target = ""
        self._socket_path = ""  # set once this agent owns the socket file, so stop() never removes another's
        self._stopped = threading.Event()

    def start(self) -> str:
        """Bind and start serving; returns the target clients dial (e.g. unix:///tmp/edge_agent)."""
        keep_large_buffers_on_heap()
        if self.settings.address:
            port = self._server.add_insecure_port(self.settings.address)
            if port == 0:
                raise ConfigError(f"cannot listen on {self.settings.address}")
            host = self.settings.address.rsplit(":", 1)[0]
            self.target = f"{host}:{port}"
            self._server.start()
        else:
            path = self.settings.socket_path
            _prepare_socket(path)
            # The socket is created owner-only: anyone who can connect can load and run models.
            old_umask = os.umask(0o177)
            try:
                self._server.add_insecure_port(f"unix://{path}")
                self._server.start()
            finally:
                os.umask(old_umask)
            os.chmod(path, 0o600)
            self._socket_path = path
            self.target = f"unix://{path}"
        for service in ("", SERVICE_NAME):
            self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("agent serving", extra=fields(target=self.target, pid=os.getpid()))
        return self.target

    def stop(self, grace: float | None = None) -> None:
        """Graceful stop: refuse new calls, let in-flight ones finish, flush captures, free models."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.settings.grace_seconds if grace is None else grace
        self._health.enter_graceful_shutdown()
        self._server.stop(grace).wait()
        self.capture.close()
        self.models.unload_all()
        self._shared_memory.close()
        if self._socket_path:
            with contextlib.suppress(FileNotFoundError):  # grpc may have removed it already
                os.unlink(self._socket_path)
        log.info("agent stopped", extra=fields(target=self.target))

    def serve_until_signal(self) -> None:
        """Run until SIGTERM or SIGINT, then stop gracefully."""
        received = threading.Event()

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("signal received, stopping", extra=fields(signal=signal.Signals(signum).name))
            received.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not received.wait(0.5):  # in slices: see system/edge/device_cli.py (a signal may land elsewhere)
                pass
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
