"""Seeded, stratified train/test split of a labelled CSV, for the benchmarks.

    python bench/split.py ../shared/datasets/banking77/train.csv --out bench/results/banking77
    python bench/split.py ../shared/datasets/banking77/train.csv --out bench/results/banking77-oos \
        --holdout-intents 0.33 --oos-label OOS

With --holdout-intents F, a seeded F of the labels become unknown: their rows leave the
training file and appear in the test file relabelled as --oos-label.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from collections import defaultdict
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--holdout-intents", type=float, default=0.0)
    parser.add_argument("--oos-label", default="OOS")
    args = parser.parse_args()

    with args.source.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        rows = list(reader)
    label_col = "intent" if "intent" in fields else "category"
    by_label: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_label[row[label_col]].append(row)
    rng = random.Random(args.seed)
    labels = sorted(by_label)
    unknown = set(rng.sample(labels, round(len(labels) * args.holdout_intents)))

    train, test = [], []
    for label in labels:
        group = by_label[label][:]
        rng.shuffle(group)
        n_test = max(1, round(len(group) * args.test_fraction))
        if label in unknown:
            test += [{**r, label_col: args.oos_label} for r in group[:n_test]]
        else:
            test += group[:n_test]
            train += group[n_test:]
    rng.shuffle(train)
    rng.shuffle(test)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train.csv", train), ("test.csv", test)):
        with (args.out / name).open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(part)
    print(
        json.dumps(
            {
                "train": len(train),
                "test": len(test),
                "labels": len(labels),
                "unknown_labels": sorted(unknown),
                "out": str(args.out),
            }
        )
    )


if __name__ == "__main__":
    main()
