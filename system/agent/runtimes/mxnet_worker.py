"""MXNet model worker: serves one Gluon-exported model over stdin/stdout.

Why a separate process: mxnet 1.9.1 (the last release) only imports with numpy < 1.24, and the
agent's venv has numpy 2. So the agent (`system.agent.runtimes.mxnet`) starts this script under
the Python of `.venv-mxnet` (`make mxnet`), one process per loaded model, and talks to it
through pipes. This file must therefore import nothing but the standard library, numpy and
mxnet: it runs by file path, without the `system` package on its path.

Usage: python -I mxnet_worker.py SYMBOL_JSON PARAMS_FILE INPUTS_JSON
where INPUTS_JSON is [{"name", "dtype" (numpy dtype string, e.g. "<f4"), "shape" (-1: dynamic)}].

Framing, both directions: a 4-byte big-endian length, a UTF-8 JSON header of that length, then
the raw C-order bytes of each tensor the header lists ({dtype, shape, nbytes}), in order.
  worker -> agent at start: {"type": "ready", "inputs": [...], "outputs": [{dtype, shape}], ...}
                            or {"type": "error", "message"} (then the worker exits 1)
  agent -> worker: {"type": "run", "inputs": [{dtype, shape, nbytes}]} + bytes, or {"type": "close"}
  worker -> agent: {"type": "ok", "outputs": [{dtype, shape, nbytes}]} + bytes, or {"type": "error", "message"}
The worker exits on "close" or when its stdin reaches end of file (the agent went away).
"""

from __future__ import annotations

import json
import os
import struct
import sys
import warnings
from pathlib import Path
from typing import IO, Any

# Running by file path puts this folder first on sys.path, and it holds the agent's `mxnet.py`
# runtime, which would shadow the real mxnet. The agent runs us with -I (no script folder on the
# path); this guards a manual run as well.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

_HEADER = struct.Struct(">I")
Header = dict[str, Any]  # a message's JSON header
Message = tuple[Header, list[bytes]]  # a header and its tensors' bytes


def read_message(stream: IO[bytes]) -> Message | None:
    """One message from `stream`: (header dict, list of payload bytes), or None at end of file."""
    prefix = stream.read(_HEADER.size)
    if len(prefix) < _HEADER.size:
        return None
    (length,) = _HEADER.unpack(prefix)
    body = stream.read(length)
    if len(body) != length:
        return None  # the agent died mid-message
    header = json.loads(body.decode("utf-8"))
    payloads = []
    for spec in header.get("inputs", ()):
        data = stream.read(spec["nbytes"])
        if len(data) != spec["nbytes"]:
            return None  # the agent died mid-message
        payloads.append(data)
    return header, payloads


def write_message(stream: IO[bytes], header: Header, payloads: list[bytes] | None = None) -> None:
    body = json.dumps(header).encode("utf-8")
    stream.write(_HEADER.pack(len(body)))
    stream.write(body)
    for data in payloads or ():
        stream.write(data)
    stream.flush()


def describe(exc: BaseException) -> str:
    """A one-line reason: MXNetError's text is a C++ traceback whose last line says what failed."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    prefix = f"{type(exc).__name__}: "
    return (text if text.startswith(prefix) else prefix + text)[:2000]


def tensor_info(array: Any) -> Header:
    return {"dtype": array.dtype.str, "shape": list(array.shape), "nbytes": array.nbytes}


def load(mx: Any, np: Any, symbol_file: str, params_file: str, inputs: list[Header]) -> tuple[Any, Header]:
    """Load the model and infer its outputs for the declared inputs; returns (block, ready header)."""
    names = [spec["name"] for spec in inputs]
    symbol = mx.sym.load(symbol_file)
    unknown = [name for name in names if name not in symbol.list_inputs()]
    if unknown:
        raise ValueError(f"the symbol has no input named {', '.join(unknown)}")
    with warnings.catch_warnings():
        # imports() warns that it cannot type the data inputs before it sees them: expected.
        warnings.simplefilter("ignore", UserWarning)
        block = mx.gluon.SymbolBlock.imports(symbol_file, names, params_file, ctx=mx.cpu())
    block.hybridize(static_alloc=True)
    # Legacy MXNet shapes use 0 for an unknown dimension; the agent uses -1.
    shapes = {spec["name"]: tuple(d if d >= 0 else 0 for d in spec["shape"]) for spec in inputs}
    _, out_shapes, _ = symbol.infer_shape_partial(**shapes)
    _, out_types, _ = symbol.infer_type(**{spec["name"]: np.dtype(spec["dtype"]) for spec in inputs})
    outputs = [
        {"dtype": np.dtype(dtype).str, "shape": [d if d > 0 else -1 for d in shape]}
        for shape, dtype in zip(out_shapes, out_types, strict=True)
    ]
    return block, {"type": "ready", "inputs": inputs, "outputs": outputs, "mxnet_version": mx.__version__}


def run(mx: Any, np: Any, block: Any, header: Header, payloads: list[bytes]) -> Message:
    arrays = [
        mx.nd.array(np.frombuffer(data, dtype=spec["dtype"]).reshape(spec["shape"]), dtype=spec["dtype"])
        for spec, data in zip(header["inputs"], payloads, strict=True)
    ]
    result = block(*arrays)
    outputs = result if isinstance(result, (list, tuple)) else [result]
    arrays = [np.ascontiguousarray(out.asnumpy()) for out in outputs]  # asnumpy waits for the engine
    return {"type": "ok", "outputs": [tensor_info(a) for a in arrays]}, [a.tobytes() for a in arrays]


def main(argv: list[str]) -> int:
    # The protocol owns the real stdout; anything else printing to fd 1 (mxnet, C libraries)
    # is sent to stderr, which the agent logs.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdin = sys.stdin.buffer
    try:
        symbol_file, params_file, inputs_json = argv[1:4]
        import mxnet as mx
        import numpy as np

        block, ready = load(mx, np, symbol_file, params_file, json.loads(inputs_json))
    except Exception as exc:  # noqa: BLE001 - any load failure is reported to the agent
        write_message(out, {"type": "error", "message": describe(exc)})
        return 1
    write_message(out, ready)
    while True:
        message = read_message(stdin)
        if message is None or message[0].get("type") == "close":
            return 0
        header, payloads = message
        if header.get("type") != "run":
            write_message(out, {"type": "error", "message": f"unknown request type {header.get('type')!r}"})
            continue
        try:
            reply, data = run(mx, np, block, header, payloads)
        except Exception as exc:  # noqa: BLE001 - a failed run is reported; the worker keeps serving
            reply, data = {"type": "error", "message": describe(exc)}, []
        write_message(out, reply, data)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
