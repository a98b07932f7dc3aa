"""What choosing among a turn's candidates costs: rouge-score against finetune.rouge.

    python bench/bench_selection.py bench/results/generation/dev/samples.jsonl [--references 3] [--repeats 5]

For every row of a `csbot eval generation --report DIR` samples file (its decoded
candidates, the guard's verdicts, and the retrieved answers), the shipped rule
(`finetune.decoder.select_candidate`: ROUGE-L against the top `--references` retrieved
answers of `retrieved_pool`, or the stored `consensus_references`, and the other passing
candidates) runs twice in the same process, alternating which goes first: once as it is,
once with rouge-score's `RougeScorer` doing the comparisons (the code before
`finetune.rouge`). Reported: per-turn p50/p95 milliseconds of each, the ratio, and how many
rows the two choose differently (it must be 0: the figures are the same numbers).

The LAST stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path


def rouge_score_select(texts: Sequence[str], passing: Sequence[bool], references: Sequence[str]) -> int:
    """`select_candidate`'s rule with rouge-score's scorer, as it was written before finetune.rouge."""
    from rouge_score import rouge_scorer

    ok = [i for i, passed in enumerate(passing) if passed]
    if len(ok) < 2:
        return ok[0] if ok else 0
    scorer = rouge_scorer.RougeScorer(["rougeL"])

    def agreement(i: int) -> float:
        others = [*references, *(texts[j] for j in ok if j != i)]
        return sum(scorer.score(o, texts[i])["rougeL"].fmeasure for o in others)

    return max(ok, key=agreement)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("samples", type=Path)
    ap.add_argument("--references", type=int, default=3, help="retrieved answers compared with [default: 3]")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from finetune.decoder import select_candidate

    rows = [json.loads(line) for line in args.samples.open(encoding="utf-8") if line.strip()]
    turns = []
    for row in rows:
        pool = row.get("retrieved_pool", row.get("consensus_references", []))
        texts = [c["text"] for c in row["candidates"]]
        turns.append((texts, [c["guard_passed"] for c in row["candidates"]], pool[: args.references]))
    ms: dict[str, list[float]] = {"rouge_score": [], "finetune_rouge": []}
    differ = 0
    for repeat in range(args.repeats):
        for n, (texts, passing, references) in enumerate(turns):
            order = ["rouge_score", "finetune_rouge"] if (n + repeat) % 2 else ["finetune_rouge", "rouge_score"]
            chosen = {}
            for name in order:
                t0 = time.perf_counter()
                if name == "rouge_score":
                    chosen[name] = rouge_score_select(texts, passing, references)
                else:
                    chosen[name] = select_candidate(texts, passing, references).index
                ms[name].append((time.perf_counter() - t0) * 1000)
            differ += chosen["rouge_score"] != chosen["finetune_rouge"]

    def q(values: list[float], p: int) -> float:
        return round(statistics.quantiles(values, n=100)[p - 1], 2)

    result = {
        "turns": len(turns) * args.repeats,
        "candidates": max((len(t[0]) for t in turns), default=0),
        "references": args.references,
        **{f"{name}.p50_ms": q(v, 50) for name, v in ms.items()},
        **{f"{name}.p95_ms": q(v, 95) for name, v in ms.items()},
        "speedup_mean": round(statistics.fmean(ms["rouge_score"]) / statistics.fmean(ms["finetune_rouge"]), 1),
        "choices_differ": differ,
        "samples": str(args.samples),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, {platform.python_version()}",
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
