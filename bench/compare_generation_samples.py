"""Two `csbot eval generation --report` runs on the same rows, compared row by row.

    python bench/compare_generation_samples.py A/samples.jsonl B/samples.jsonl

Prints one JSON object: each run's mean ROUGE-L of the sent replies, the mean of A minus B,
and its paired bootstrap 95% interval (2,000 resamples, the evaluation's own), after
checking that both runs scored the same questions in the same order.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.evaluation.bootstrap import paired_bootstrap_ci  # noqa: E402


def sent_scores(samples: Path) -> tuple[list[str], list[float]]:
    rows = [json.loads(line) for line in samples.open(encoding="utf-8") if line.strip()]
    return [r["question"] for r in rows], [r["rougeL_f1"]["sent"] for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    questions_a, a = sent_scores(args.a)
    questions_b, b = sent_scores(args.b)
    if questions_a != questions_b:
        sys.exit(f"{args.a} and {args.b} did not score the same rows in the same order: nothing to pair")
    low, high = paired_bootstrap_ci(a, b, seed=args.seed)
    print(
        json.dumps(
            {
                "a": str(args.a),
                "b": str(args.b),
                "rows": len(a),
                "a_rougeL_f1": round(statistics.fmean(a), 4),
                "b_rougeL_f1": round(statistics.fmean(b), 4),
                "a_minus_b": round(statistics.fmean(a) - statistics.fmean(b), 4),
                "ci95": [low, high],
            }
        )
    )


if __name__ == "__main__":
    main()
