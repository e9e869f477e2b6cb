"""SageMaker Processing: the trained model on the test split to `evaluation.json` (the gate reads it)."""

from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path

import numpy as np

from system.cloud.evaluation import classification_report, segmentation_report
from system.cloud.splits import PreparedData


def main() -> None:
    import keras

    parser = argparse.ArgumentParser()
    parser.add_argument("--task", choices=("classification", "segmentation"), required=True)
    parser.add_argument("--model", default="/opt/ml/processing/model/model.tar.gz")
    parser.add_argument("--prepared", default="/opt/ml/processing/prepared/prepared.npz")
    parser.add_argument("--output", default="/opt/ml/processing/evaluation")
    args = parser.parse_args()
    with tarfile.open(args.model) as archive:
        archive.extractall("/tmp/model", filter="data")
    model = keras.models.load_model("/tmp/model/model.keras", compile=False)
    data = PreparedData.from_bytes(Path(args.prepared).read_bytes())
    predicted = np.asarray(model.predict(data.x["test"], verbose=0))
    if args.task == "classification":
        report = classification_report(data.y["test"], predicted[:, 1])
    else:
        report = segmentation_report(data.y["test"], predicted)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / "evaluation.json").write_text(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
