"""Agent Predict returns what the model computes, for every runtime and both input transports."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import FRAMEWORKS

TOLERANCE = 1e-5


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_agent_output_equals_direct_tf_call(start_agent, zoo, framework: str) -> None:
    _, client = start_agent()
    client.load_model("clf", str(zoo.packages[framework]))
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.random((1, 32, 32, 3), dtype=np.float32)
        expected = zoo.model(x, training=False).numpy()
        out = client.predict("clf", x)
        assert list(out) == ["output_0"]
        assert out["output_0"].shape == (1, 2) and out["output_0"].dtype == np.float32
        np.testing.assert_allclose(out["output_0"], expected, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_shared_memory_input_gives_the_same_output_as_byte_data(start_agent, zoo, framework: str) -> None:
    _, client = start_agent()
    client.load_model("clf", str(zoo.packages[framework]))
    x = np.random.default_rng(2).random((1, 32, 32, 3), dtype=np.float32)
    by_bytes = client.predict("clf", x)["output_0"]
    by_shm = client.predict("clf", x, shared_memory=True)["output_0"]
    np.testing.assert_array_equal(by_bytes, by_shm)
    # The segment is reused and rewritten: a new input must give a new answer.
    y = np.random.default_rng(3).random((1, 32, 32, 3), dtype=np.float32)
    np.testing.assert_array_equal(
        client.predict("clf", y, shared_memory=True)["output_0"], client.predict("clf", y)["output_0"]
    )


def test_uint8_model_takes_uint8_bytes(start_agent, zoo) -> None:
    _, client = start_agent()
    client.load_model("clf-u8", str(zoo.uint8_package))
    x = np.random.default_rng(4).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    expected = zoo.uint8_model(x, training=False).numpy()
    np.testing.assert_allclose(client.predict("clf-u8", x)["output_0"], expected, atol=TOLERANCE, rtol=0)


def test_named_and_positional_inputs_are_equivalent(start_agent, zoo) -> None:
    _, client = start_agent()
    client.load_model("clf", str(zoo.packages["tensorflow"]))
    x = np.random.default_rng(5).random((1, 32, 32, 3), dtype=np.float32)
    np.testing.assert_array_equal(
        client.predict("clf", {"input_image": x})["output_0"], client.predict("clf", [x])["output_0"]
    )
