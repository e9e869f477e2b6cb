"""Training and the edge turn an image into the same tensor: one function, the manifest's parameters.

The seed trained on BGR, stretched images and served RGB images whose padding it dropped; here
the pipeline's prepared arrays, the edge package's manifest and the device's inference engine all
go through `system.preprocessing.preprocess` with the same `Preprocessing`. Checked on
non-square images, where padding matters.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simulators.object_store import InMemoryObjectStore
from simulators.surfaces import write_dataset
from system.agent.package import Preprocessing
from system.cloud.dataset import load_split
from system.cloud.prepare import prepare_classification, publish_seed_layout
from system.edge.image_source import Frame
from system.edge.inference import InferenceEngine
from system.edge.roster import ModelRoster, ServingModel
from system.preprocessing import load_image
from tests.edge_fixtures import export_classifier_package


class RecordingClient:
    """An agent that records the tensor it is asked to classify."""

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []

    def predict(
        self, name: str, inputs: dict[str, np.ndarray], *, shared_memory: bool = False
    ) -> dict[str, np.ndarray]:
        self.seen.append(next(iter(inputs.values())))
        return {"probabilities": np.array([[0.7, 0.3]], dtype=np.float32)}

    def capture_data(self, *args: object, **kwargs: object) -> str:
        return "unused"

    def load_model(self, name: str, url: str) -> None: ...

    def unload_model(self, name: str) -> None: ...

    def list_models(self) -> list[object]:
        return []


def test_the_pipeline_and_the_device_make_the_same_tensor_from_a_non_square_image(tmp_path: Path) -> None:
    write_dataset(tmp_path / "data", 24, 8, defect_rate=0.3, seed=9, size=(64, 160))  # 64 x 160: not square
    samples = load_split(tmp_path / "data", "train") + load_split(tmp_path / "data", "test")
    store = InMemoryObjectStore()
    publish_seed_layout(samples, store)
    params = Preprocessing(height=48, width=48)
    prepared = prepare_classification(store, "", params, seed=0, augment_copies=0)

    package = export_classifier_package(tmp_path / "package", "1", size=48)
    from system.agent.package import read_package

    manifest = read_package(str(package)).manifest
    assert manifest.preprocessing.pad_to_square and manifest.preprocessing.channel_order == "RGB"
    roster = ModelRoster()
    roster.switch(ServingModel("img-classification", "1", "img-classification-1", package, manifest))
    client = RecordingClient()
    engine = InferenceEngine(client, roster)  # type: ignore[arg-type]

    by_id = {sample.image.stem: sample for sample in samples}
    for split in ("test", "val"):
        for index, image_id in enumerate(prepared.ids[split]):
            image = load_image(by_id[image_id].image)
            assert image.size == (64, 160)
            engine.infer(Frame(image_id, image))
            np.testing.assert_array_equal(client.seen[-1][0], prepared.x[split][index])
    assert prepared.preprocessing == params == manifest.preprocessing
