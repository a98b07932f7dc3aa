"""Which retrieved answer should lead a model's evidence? The choice the training makes,
shown on a pairs directory.

    python bench/bench_evidence_order.py --pairs RUN/pairs [--limit N]   # a run of `csbot finetune train --corpus`
    python bench/bench_evidence_order.py --pairs .csbot/finetune/rounds/ROUND/pairs --limit 100

For valid.jsonl (what `csbot finetune train` chooses on: `finetune.train.resolve_evidence_order`
with the default `evidence_order="auto"`) and, where the directory has one, the held-out file
of a learning round (never used to choose): the mean ROUGE-L F1 of the answer that would lead
each pair's evidence against the pair's reply, for the best-ranked answer (size 1) and the
retrieval vote over the top 3, 5, 10 and 20 (`finetune.decoder.choose_evidence_order`), and
what the choice would be. Pairs need their top 20 retrieved answers for the larger votes:
`csbot finetune pairs` and learning rounds keep 20 by default; `--corpus` training keeps 20
under the default order.

The LAST stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from finetune.decoder import VOTE_SIZES, choose_evidence_order  # noqa: E402 - after sys.path has the repo
from finetune.pairs import HELDOUT_FILE  # noqa: E402


def read_jsonl(path: Path, limit: int | None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=Path, required=True, help="a pairs directory (valid.jsonl, maybe a held-out file)")
    ap.add_argument("--limit", type=int, default=None, help="the first N pairs of each file only")
    args = ap.parse_args()
    if not (args.pairs / "valid.jsonl").is_file():
        sys.exit(f"error: {args.pairs / 'valid.jsonl'} does not exist; pass a pairs directory")
    if args.limit is not None and args.limit < 1:
        sys.exit(f"error: --limit must be at least 1; got {args.limit}")
    result: dict[str, Any] = {"pairs": str(args.pairs), "limit": args.limit, "sizes": list(VOTE_SIZES)}
    for name, file in (("valid", "valid.jsonl"), ("heldout", HELDOUT_FILE)):
        path = args.pairs / file
        if not path.is_file():
            continue
        rows = read_jsonl(path, args.limit)
        if not rows:
            sys.exit(f"error: {path} has no pairs")
        choice = choose_evidence_order(rows)
        evidence = sorted(len(r.get("evidence", [])) for r in rows)
        result[name] = {
            "n": len(rows),
            "evidence_per_pair_median": evidence[len(evidence) // 2],
            "scores": {str(k): v for k, v in choice.scores.items()},
            "would_choose": {"evidence_order": choice.evidence_order, "consensus_k": choice.consensus_k},
        }
        scores = ", ".join(f"{k}: {v}" for k, v in choice.scores.items())
        print(f"{name}: {len(rows)} pairs; {scores} -> {choice.evidence_order}", file=sys.stderr, flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
