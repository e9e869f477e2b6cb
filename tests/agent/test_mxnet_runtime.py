"""MXNet models are served through a worker process under .venv-mxnet (mxnet 1.9.1 needs numpy < 1.24).

The reference output comes from MXNet itself, computed when the model is built in .venv-mxnet;
the agent must return the same numbers through gRPC, its worker and the pipe protocol.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from system.adapters.agent_client import GrpcEdgeAgentClient
from system.agent.package import write_manifest
from system.agent.runtimes.mxnet import MxnetRuntime
from system.agent.server import EdgeAgent
from system.agent.tensors import TensorSpec
from system.config import default_mxnet_python
from system.errors import AgentInternalError, PackageRejectedError

MXNET_PYTHON = os.environ.get("EDGESIM_MXNET_PYTHON") or default_mxnet_python()

pytestmark = pytest.mark.skipif(
    not MXNET_PYTHON or not Path(MXNET_PYTHON).is_file(),
    reason=f"no MXNet Python at {MXNET_PYTHON or '.venv-mxnet/bin/python'}: run `make mxnet` "
    "or set EDGESIM_MXNET_PYTHON",
)

# Runs under .venv-mxnet: a small Gluon CNN, exported, with its own output on a fixed input.
BUILD_SCRIPT = textwrap.dedent(
    """
    import sys
    import mxnet as mx
    import numpy as np
    from mxnet import gluon

    out = sys.argv[1]
    mx.random.seed(11)
    np.random.seed(11)
    net = gluon.nn.HybridSequential()
    net.add(
        gluon.nn.Conv2D(8, kernel_size=3, activation="relu"),
        gluon.nn.Conv2D(8, kernel_size=3),
        gluon.nn.Activation("relu"),
        gluon.nn.GlobalAvgPool2D(),
        gluon.nn.Dense(2),
    )
    net.initialize(mx.init.Xavier())
    net.hybridize()
    x = np.random.RandomState(5).uniform(-1, 1, (1, 3, 32, 32)).astype("float32")
    y = net(mx.nd.array(x)).asnumpy()
    net.export(out + "/pkg/model", epoch=0)
    np.save(out + "/input.npy", x)
    np.save(out + "/output.npy", y)
    """
)

INPUTS = [TensorSpec("data", "FLOAT32", (1, 3, 32, 32))]
OUTPUTS = [TensorSpec("logits", "FLOAT32", (1, 2))]
OPTIONS = {"symbol": "model-symbol.json", "params": "model-0000.params"}


def _write_manifest(folder: Path) -> None:
    write_manifest(
        folder,
        name="mx-clf",
        version="1",
        framework="mxnet",
        model="model-symbol.json",
        inputs=INPUTS,
        outputs=OUTPUTS,
        options=OPTIONS,
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with pkg/ (the MXNet package), input.npy and output.npy (MXNet's own result)."""
    root = tmp_path_factory.mktemp("mxnet")
    (root / "pkg").mkdir()
    subprocess.run([MXNET_PYTHON, "-c", BUILD_SCRIPT, str(root)], check=True, timeout=300)
    _write_manifest(root / "pkg")
    return root


AgentFactory = Callable[..., tuple[EdgeAgent, GrpcEdgeAgentClient]]


@pytest.fixture
def mx_agent(start_agent: AgentFactory) -> AgentFactory:
    """The shared agent factory, with this machine's MXNet Python unless a test gives another."""

    def factory(mxnet_python: str = MXNET_PYTHON) -> tuple[EdgeAgent, GrpcEdgeAgentClient]:
        return start_agent(mxnet_python=mxnet_python)

    return factory


def _worker_pids() -> set[int]:
    """This process's live MXNet worker children (Linux /proc)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...
        if int(fields[1]) == os.getpid() and b"mxnet_worker.py" in cmdline and fields[0] != "Z":
            pids.add(int(entry.name))
    return pids


def _runtime(agent: EdgeAgent, name: str) -> MxnetRuntime:
    runtime = agent.models.get(name).runtime
    assert isinstance(runtime, MxnetRuntime)
    return runtime


def test_predict_matches_mxnet(exported: Path, mx_agent: AgentFactory) -> None:
    _, client = mx_agent()
    info = client.load_model("mx", str(exported / "pkg"))
    assert [s.name for s in info.inputs] == ["data"]
    x, expected = np.load(exported / "input.npy"), np.load(exported / "output.npy")

    got = client.predict("mx", x)

    assert list(got) == ["logits"]
    assert got["logits"].shape == (1, 2)
    np.testing.assert_allclose(got["logits"], expected, rtol=0, atol=1e-5)
    # A second call through the same worker gives the same answer.
    np.testing.assert_allclose(client.predict("mx", x)["logits"], expected, rtol=0, atol=1e-5)
    client.unload_model("mx")


def test_unload_stops_the_worker(exported: Path, mx_agent: AgentFactory) -> None:
    agent, client = mx_agent()
    client.load_model("mx", str(exported / "pkg"))
    pid = _runtime(agent, "mx").pid
    assert pid in _worker_pids()

    client.unload_model("mx")

    assert pid not in _worker_pids()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # exited and reaped


def test_corrupt_params_are_rejected_by_the_worker(exported: Path, mx_agent: AgentFactory, tmp_path: Path) -> None:
    package = Path(shutil.copytree(exported / "pkg", tmp_path / "bad"))
    params = package / "model-0000.params"
    params.write_bytes(b"not an MXNet parameter file" + bytes(range(256)) * 4)
    _write_manifest(package)  # fresh checksums, so the load gets past verification to the worker
    _, client = mx_agent()
    before = _worker_pids()

    with pytest.raises(PackageRejectedError, match="cannot load MXNet model") as caught:
        client.load_model("bad", str(package))

    assert "Invalid NDArray file format" in caught.value.message
    assert _worker_pids() == before  # the failed worker did not linger


def test_missing_mxnet_python_is_rejected(exported: Path, mx_agent: AgentFactory, tmp_path: Path) -> None:
    _, client = mx_agent(mxnet_python=str(tmp_path / "no-such-venv" / "bin" / "python"))

    with pytest.raises(PackageRejectedError, match="make mxnet"):
        client.load_model("mx", str(exported / "pkg"))


def test_a_dead_worker_is_reported(exported: Path, mx_agent: AgentFactory) -> None:
    agent, client = mx_agent()
    client.load_model("mx", str(exported / "pkg"))
    os.kill(_runtime(agent, "mx").pid, signal.SIGKILL)
    x = np.load(exported / "input.npy")

    with pytest.raises(AgentInternalError, match=r"MXNet worker .* exited"):
        client.predict("mx", x)
    with pytest.raises(AgentInternalError, match="reload"):
        client.predict("mx", x)
    client.unload_model("mx")  # still unloads cleanly
