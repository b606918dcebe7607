"""Count accuracy of a people model against its score threshold, on labelled folders.

    python benchmarks/people_count_threshold.py PACKAGE DATASET [DATASET ...] [--images 500]

For each folder (e.g. the training scenes first, then the held-out ones), the share of images whose
person count (scores at or above the threshold) equals the labelled count, at thresholds 0.20 to
0.60. Choose a threshold on training data; read the held-out line to see what it gives. The shipped
model's figures are in the README ("The default model").
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from onepass.data.folder import FolderDataset
from onepass.models import open_package
from onepass.models.model import normalise
from onepass.train.dataset import TaskDataset

THRESHOLDS = np.round(np.arange(0.20, 0.61, 0.05), 2)


def scores_and_counts(package, root: str, images: int) -> tuple[np.ndarray, np.ndarray]:
    config = package.config
    people = next(t for t in config.tasks if t.writes_records)
    dataset = TaskDataset(
        FolderDataset(root, {t.name: t.codec for t in config.tasks if t.codec is not None}),
        config.tasks,
        config.input_size,
    )
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, range(min(images, len(dataset)))), 32)
    model = package.load_model().eval()
    scores, counts = [], []
    with torch.no_grad():
        for batch in loader:
            raw = model(normalise(batch["image"], config.mean, config.std))
            outputs = people.postprocess(raw[people.name])
            scores.append(outputs[people.output_name("scores")].numpy())
            counts.append(batch[people.name]["valid"].sum(1).numpy())
    return np.concatenate(scores), np.concatenate(counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package")
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--images", type=int, default=500)
    args = parser.parse_args()
    package = open_package(args.package)
    print("folder", *(f"{t:.2f}" for t in THRESHOLDS), sep="\t")
    for root in args.datasets:
        scores, counts = scores_and_counts(package, root, args.images)
        accuracy = [100 * np.mean((scores >= t).sum(1) == counts) for t in THRESHOLDS]
        print(root, *(f"{a:.1f}" for a in accuracy), sep="\t")


if __name__ == "__main__":
    main()
