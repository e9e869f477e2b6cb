"""What a benchmark ran on (CPU, cores, OS, the versions of the libraries that matter) and how it was invoked."""

from __future__ import annotations

import os
import platform
import shlex
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("tensorflow-cpu", "tensorflow", "grpcio", "protobuf", "numpy", "sysv-ipc")


def cpu_model() -> str:
    """The `model name` of /proc/cpuinfo (Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_description() -> dict[str, Any]:
    """A JSON-ready description of this machine and the installed library versions."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = {name: v for name in _PACKAGES if (v := _version(name)) is not None}
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gb": _memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
    }


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def command_line(module: str, argv: Sequence[str]) -> str:
    """How a benchmark was invoked, with the interpreter relative to the working directory when inside it."""
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd() + os.sep) else sys.executable
    return shlex.join([python, "-m", module, *argv])


def summary_line(machine: dict[str, Any]) -> str:
    """One line for a report, e.g. `AMD EPYC, 2 cores, 23.5 GB, Linux 6.1, Python 3.11.7, ...`."""
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items())
    memory = f", {machine['memory_gb']} GB RAM" if machine.get("memory_gb") else ""
    cpu = f"{machine['cpu_model']}, {machine['cores']} cores{memory}"
    return f"{cpu}, {machine['os']}, Python {machine['python']}, {versions}"
