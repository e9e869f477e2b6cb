"""Concurrency rules: parallel models, loads and unloads never fail another model's Predicts,
an UnLoad waits for its model's in-flight Predicts, and stop() lets in-flight calls finish."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from system.adapters.agent_client import GrpcEdgeAgentClient
from system.errors import EdgesimError, ModelNotFoundError
from tests.agent.helpers import SlowRuntime, slow_opener

X = np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)


def test_load_and_unload_of_b_never_fail_predicts_on_a(start_agent, zoo) -> None:
    agent, client = start_agent()
    client.load_model("model-a", str(zoo.packages["tensorflow"]))
    stop = threading.Event()
    results = {"ok": 0, "failed": []}  # type: dict

    def hammer() -> None:
        with GrpcEdgeAgentClient(agent.target) as own:
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    own.predict("model-a", X)
                    results["ok"] += 1
                except EdgesimError as exc:
                    results["failed"].append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for _ in range(4):
        for framework in ("tensorflow", "keras", "tflite"):
            client.load_model("model-b", str(zoo.packages[framework]))
            client.predict("model-b", X)
            client.unload_model("model-b")
    stop.set()
    for thread in threads:
        thread.join()
    assert results["failed"] == []
    assert results["ok"] > 20


def test_unload_waits_for_in_flight_predicts_then_later_ones_are_not_found(start_agent, zoo) -> None:
    runtimes: list[SlowRuntime] = []
    agent, client = start_agent(runtime_opener=slow_opener(0.5, runtimes), warmup=False)
    client.load_model("slow", str(zoo.packages["tflite"]))
    with ThreadPoolExecutor(2) as pool:
        predicting = pool.submit(client.predict, "slow", X)
        assert runtimes[0].started.wait(5)
        started = time.monotonic()
        unloading = pool.submit(client.unload_model, "slow")
        out = predicting.result(10)
        unloading.result(10)
        waited = time.monotonic() - started
    assert out["output_0"].shape == (1, 2)
    assert runtimes[0].closed
    assert waited >= 0.3  # it waited for the in-flight Predict, not closed under it
    with pytest.raises(ModelNotFoundError):
        client.predict("slow", X)


def test_predicts_on_different_models_run_in_parallel(start_agent, zoo) -> None:
    runtimes: list[SlowRuntime] = []
    _, client = start_agent(runtime_opener=slow_opener(0.6, runtimes), warmup=False)
    client.load_model("one", str(zoo.packages["tflite"]))
    client.load_model("two", str(zoo.packages["onnx"]))
    started = time.monotonic()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda name: client.predict(name, X), ["one", "two"]))
    assert time.monotonic() - started < 1.1  # serialised it would take 1.2 s or more


def test_stop_lets_in_flight_predicts_finish(start_agent, zoo) -> None:
    runtimes: list[SlowRuntime] = []
    agent, client = start_agent(runtime_opener=slow_opener(0.5, runtimes), warmup=False)
    client.load_model("slow", str(zoo.packages["tflite"]))
    with ThreadPoolExecutor(1) as pool:
        predicting = pool.submit(client.predict, "slow", X)
        assert runtimes[0].started.wait(5)
        agent.stop(grace=5.0)
        assert predicting.result(10)["output_0"].shape == (1, 2)
    assert runtimes[0].closed
