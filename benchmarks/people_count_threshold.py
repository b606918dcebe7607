"""Count accuracy of a people model against its score threshold, on labelled folders.

    python benchmarks/people_count_threshold.py PACKAGE DATASET [DATASET ...] [--images 500]

For each folder (e.g. the training scenes first, then the held-out ones), the share of images whose
person count (scores at or above the threshold) equals the labelled count, at thresholds 0.20 to
0.60, at the package's own threshold, and at the best threshold for that folder (what `onepass
calibrate` would choose on it: onepass.models.tasks.people.best_count_threshold, from the same
calibrator); the last column scores every folder at the threshold the first folder chose. Choose on
training data; read the held-out line to see what it gives. The images are the calibration's (up to
--images, spread over each folder). The shipped model's figures are in the README ("The default model").
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from onepass.models import open_package
from onepass.models.tasks.people import CountThresholdCalibrator, PeopleTask, best_count_threshold, count_accuracy
from onepass.train.calibrate import evenly_spaced
from onepass.train.dataset import TaskDataset
from onepass.train.evaluate import accumulate

THRESHOLDS = np.round(np.arange(0.20, 0.61, 0.05), 2)


def scores_and_counts(package, root: str, images: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) peak scores and (N,) true counts of up to `images` labelled images of `root`."""
    config = package.config
    people = next(t for t in config.tasks if isinstance(t, PeopleTask))
    dataset = evenly_spaced(TaskDataset.from_folder(root, config.tasks, config.input_size), images)
    calibrator = people.new_calibrator()
    assert isinstance(calibrator, CountThresholdCalibrator)
    loader = torch.utils.data.DataLoader(dataset, 32)
    accumulate(package.load_model(), loader, config.tasks, {people.name: calibrator}, config.mean, config.std)
    return calibrator.scores, calibrator.counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("package")
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--images", type=int, default=500)
    args = parser.parse_args()
    package = open_package(args.package)
    current = next(t for t in package.config.tasks if isinstance(t, PeopleTask)).score_threshold
    print("folder", *(f"{t:.2f}" for t in THRESHOLDS), f"own {current:g}", "best (at)", "at first's best", sep="\t")
    chosen = None
    for root in args.datasets:
        scores, counts = scores_and_counts(package, root, args.images)
        best = best_count_threshold(scores, counts, current)
        chosen = best.threshold if chosen is None else chosen
        accuracy = [count_accuracy(scores, counts, t) for t in (*THRESHOLDS, current)]
        print(
            root,
            *(f"{a:.1f}" for a in accuracy),
            f"{best.accuracy:.1f} ({best.threshold:g})",
            f"{count_accuracy(scores, counts, chosen):.1f} ({chosen:g})",
            sep="\t",
        )


if __name__ == "__main__":
    main()
