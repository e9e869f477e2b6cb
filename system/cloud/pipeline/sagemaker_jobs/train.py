"""SageMaker Training: `prepared.npz` from the `prepared` channel to a Keras model in SM_MODEL_DIR."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from system.cloud.classifier import train_classifier
from system.cloud.splits import PreparedData
from system.cloud.unet import train_unet


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", choices=("classification", "segmentation"), required=True)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args, _ = parser.parse_known_args()
    channel = Path(os.environ.get("SM_CHANNEL_PREPARED", "/opt/ml/input/data/prepared"))
    data = PreparedData.from_bytes((channel / "prepared.npz").read_bytes())
    train = train_classifier if args.task == "classification" else train_unet
    model = train(
        data.x["train"], data.y["train"], x_val=data.x["val"], y_val=data.y["val"], epochs=args.epochs, seed=args.seed
    )
    model.save(Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model")) / "model.keras")


if __name__ == "__main__":
    main()
