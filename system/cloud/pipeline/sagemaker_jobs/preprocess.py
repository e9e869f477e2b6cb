"""SageMaker Processing: a KolektorSDD2-layout input to `prepared.npz` (as the local pipeline's preprocess)."""

from __future__ import annotations

import argparse
from pathlib import Path

from system.adapters.local_object_store import LocalFolderObjectStore
from system.agent.package import Preprocessing
from system.cloud.dataset import load_split
from system.cloud.prepare import prepare_classification, prepare_segmentation, publish_seed_layout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", choices=("classification", "segmentation"), required=True)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--input", default="/opt/ml/processing/input")
    parser.add_argument("--output", default="/opt/ml/processing/prepared")
    args = parser.parse_args()
    source, work = Path(args.input), LocalFolderObjectStore("/tmp/edgesim-layout")
    samples = [s for split in ("train", "test") if (source / split).is_dir() for s in load_split(source, split)]
    publish_seed_layout(samples, work)
    prepare = prepare_classification if args.task == "classification" else prepare_segmentation
    data = prepare(work, "", Preprocessing(height=args.image_size, width=args.image_size), seed=args.seed)
    Path(args.output).mkdir(parents=True, exist_ok=True)
    (Path(args.output) / "prepared.npz").write_bytes(data.to_bytes())


if __name__ == "__main__":
    main()
