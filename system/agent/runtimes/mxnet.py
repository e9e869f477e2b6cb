"""MXNet runtime: each model runs in its own worker process, under the Python of `.venv-mxnet`.

mxnet 1.9.1, the last release, only imports with numpy < 1.24 and the agent runs numpy 2, so the
two cannot share a process. `MxnetRuntime` starts `mxnet_worker.py` with the Python named by
`AgentSettings.mxnet_python` (`make mxnet` builds one; EDGESIM_MXNET_PYTHON overrides it) and
exchanges length-prefixed messages with it over pipes (the framing is described in
mxnet_worker.py). A worker serves one request at a time, so `run` calls are serialised by a
lock. The worker's stderr is logged line by line and its tail is quoted when it dies.

Package: framework "mxnet", `model` the symbol JSON, `options` {"symbol": "model-symbol.json",
"params": "model-0000.params"} (what `HybridBlock.export(prefix, epoch=0)` writes); the
manifest's input names are the symbol's data inputs (Gluon calls its single input "data").
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import struct
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Any

import numpy as np

from system.agent.package import VerifiedPackage
from system.agent.runtimes import check_declared
from system.agent.tensors import TensorSpec, dtype_name_of
from system.errors import PackageRejectedError
from system.logs import fields

log = logging.getLogger(__name__)

WORKER_SCRIPT = Path(__file__).with_name("mxnet_worker.py")
READY_TIMEOUT = 120.0  # importing mxnet and loading the params; slow on a small device
RUN_TIMEOUT = 300.0
CLOSE_TIMEOUT = 5.0
_HEADER = struct.Struct(">I")  # the 4-byte big-endian length before each JSON header
_READ_CHUNK = 1 << 20


class MxnetWorkerError(RuntimeError):
    """The worker died, timed out or broke the protocol: the model must be unloaded and reloaded."""


def _option_file(package: VerifiedPackage, key: str, default: str | None = None) -> Path:
    """A file named by the manifest's options; it must be one of the package's verified files."""
    value = package.manifest.options.get(key, default)
    if not isinstance(value, str) or value not in package.manifest.files:
        raise PackageRejectedError(
            f"package '{package.folder}': options.{key} must name one of the package's files, not {value!r}"
        )
    return package.folder / value


def _spec(raw: dict[str, Any], url: str) -> TensorSpec:
    """An output the worker reports ({dtype, shape}); MXNet output names are internal, so none."""
    try:
        dtype = dtype_name_of(np.dtype(raw["dtype"]))
    except (TypeError, ValueError) as exc:
        raise PackageRejectedError(f"package '{url}': MXNet model output: {exc}") from exc
    return TensorSpec("", dtype, tuple(int(d) for d in raw["shape"]))


class MxnetRuntime:
    def __init__(
        self,
        package: VerifiedPackage,
        python: str,
        *,
        ready_timeout: float = READY_TIMEOUT,
        run_timeout: float = RUN_TIMEOUT,
    ) -> None:
        manifest = package.manifest
        self._url = url = str(package.folder)
        self._python = python
        symbol = _option_file(package, "symbol", manifest.model)
        params = _option_file(package, "params")
        if not python or not Path(python).is_file():
            where = f" ({python} does not exist)" if python else ""
            raise PackageRejectedError(
                f"package '{url}': MXNet models run under a separate Python with mxnet 1.9.1, and none is "
                f"configured{where}; run `make mxnet` to build .venv-mxnet, or set EDGESIM_MXNET_PYTHON"
            )
        inputs = [{"name": s.name, "dtype": s.numpy_dtype.str, "shape": list(s.shape)} for s in manifest.inputs]
        # -I (isolated): no PYTHONPATH or user site from the agent's environment (they could bring
        # numpy 2), and no script folder on sys.path (this module would shadow mxnet).
        command = [python, "-I", str(WORKER_SCRIPT), str(symbol), str(params), json.dumps(inputs)]
        try:
            self._proc = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except OSError as exc:
            raise PackageRejectedError(f"package '{url}': cannot start the MXNet worker with {python}: {exc}") from exc
        assert self._proc.stdin is not None and self._proc.stdout is not None and self._proc.stderr is not None
        self._stdin: IO[bytes] = self._proc.stdin
        self._stdout_fd = self._proc.stdout.fileno()
        self._lock = threading.Lock()  # one request at a time on the pipes
        self._closed = False
        self._broken = ""  # why the worker is unusable, once it is
        self._run_timeout = run_timeout
        self._stderr_tail: deque[str] = deque(maxlen=20)
        self._stderr_thread = threading.Thread(
            target=self._log_stderr, args=(self._proc.stderr,), name=f"mxnet-stderr-{self.pid}", daemon=True
        )
        self._stderr_thread.start()
        try:
            ready = self._start(ready_timeout)
            check_declared("output", manifest.outputs, [_spec(out, url) for out in ready["outputs"]], url)
        except BaseException:
            self._kill()
            raise
        log.info("mxnet worker ready", extra=fields(pid=self.pid, package=url, mxnet=ready.get("mxnet_version")))

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _start(self, timeout: float) -> dict[str, Any]:
        try:
            header, _ = self._receive(timeout)
        except MxnetWorkerError as exc:
            raise PackageRejectedError(f"package '{self._url}': the MXNet worker did not start: {exc}") from exc
        if header.get("type") == "error":
            message = str(header.get("message"))
            if "No module named" in message:
                message += f" in {self._python}; run `make mxnet` or set EDGESIM_MXNET_PYTHON to .venv-mxnet's Python"
            raise PackageRejectedError(f"package '{self._url}': cannot load MXNet model: {message}")
        if header.get("type") != "ready" or not isinstance(header.get("outputs"), list):
            raise PackageRejectedError(f"package '{self._url}': unexpected first message from the MXNet worker")
        return header

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        arrays = [np.ascontiguousarray(a) for a in inputs]
        header = {
            "type": "run",
            "inputs": [{"dtype": a.dtype.str, "shape": list(a.shape), "nbytes": a.nbytes} for a in arrays],
        }
        with self._lock:
            if self._closed:
                raise MxnetWorkerError("the model is unloaded; its MXNet worker is stopped")
            if self._broken:
                raise MxnetWorkerError(self._broken)
            try:
                self._send(header, [a.reshape(-1).view(np.uint8).data for a in arrays])
                reply, payloads = self._receive(self._run_timeout)
            except (OSError, MxnetWorkerError) as exc:  # BrokenPipeError, end of output, timeout
                reason = str(exc) if isinstance(exc, MxnetWorkerError) else self._exit_reason()
                self._broken = f"{reason}; unload and reload the model"
                self._kill()
                raise MxnetWorkerError(self._broken) from exc
        if reply.get("type") == "error":
            raise RuntimeError(f"MXNet: {reply.get('message')}")
        return [
            np.frombuffer(data, dtype=np.dtype(spec["dtype"])).reshape(spec["shape"])
            for spec, data in zip(reply["outputs"], payloads, strict=True)
        ]

    def close(self) -> None:
        """Ask the worker to exit; kill it if it has not after CLOSE_TIMEOUT seconds."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._proc.poll() is None:
                    self._send({"type": "close"}, [])
                self._stdin.close()
            except OSError:
                pass  # already gone
            try:
                self._proc.wait(timeout=CLOSE_TIMEOUT)
            except subprocess.TimeoutExpired:
                log.warning("mxnet worker ignored close; killing it", extra=fields(pid=self.pid, package=self._url))
                self._kill()
            self._finish()

    # Pipes ---------------------------------------------------------------------------------
    def _send(self, header: dict[str, Any], payloads: list[memoryview]) -> None:
        body = json.dumps(header).encode()
        self._stdin.write(_HEADER.pack(len(body)) + body)
        for data in payloads:
            self._stdin.write(data)
        self._stdin.flush()

    def _receive(self, timeout: float) -> tuple[dict[str, Any], list[bytes]]:
        """One message from the worker: its header and the bytes of the tensors it lists."""
        deadline = time.monotonic() + timeout
        (length,) = _HEADER.unpack(self._read_exact(_HEADER.size, deadline, timeout))
        try:
            header = json.loads(self._read_exact(length, deadline, timeout))
            specs = header.get("outputs", []) if header.get("type") == "ok" else []
            sizes = [int(spec["nbytes"]) for spec in specs]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise MxnetWorkerError(f"the MXNet worker broke the protocol: {exc}") from exc
        return header, [self._read_exact(size, deadline, timeout) for size in sizes]

    def _read_exact(self, size: int, deadline: float, timeout: float) -> bytes:
        data = bytearray()
        while len(data) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise MxnetWorkerError(f"the MXNet worker (pid {self.pid}) did not answer within {timeout:.0f} s")
            readable, _, _ = select.select([self._stdout_fd], [], [], remaining)
            if not readable:
                continue
            chunk = os.read(self._stdout_fd, min(size - len(data), _READ_CHUNK))
            if not chunk:
                raise MxnetWorkerError(self._exit_reason())
            data += chunk
        return bytes(data)

    # Process -------------------------------------------------------------------------------
    def _exit_reason(self) -> str:
        try:
            code: int | None = self._proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            code = None
        self._stderr_thread.join(timeout=1.0)  # let the last stderr lines arrive
        what = f"exited with code {code}" if code is not None else "closed its output"
        tail = " | ".join(list(self._stderr_tail)[-5:])
        return f"the MXNet worker (pid {self.pid}) {what}" + (f"; its last stderr lines: {tail}" if tail else "")

    def _kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._finish()

    def _finish(self) -> None:
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # a broken pipe cannot be flushed
                    stream.close()
        self._stderr_thread.join(timeout=1.0)

    def _log_stderr(self, stream: IO[bytes]) -> None:
        """Log each stderr line of the worker (mxnet's own warnings, tracebacks) and keep the tail."""
        with stream:
            for raw in stream:
                line = raw.decode(errors="replace").rstrip()
                if line:
                    self._stderr_tail.append(line)
                    log.info("mxnet worker stderr", extra=fields(pid=self.pid, package=self._url, line=line))
