"""Would sending the retrieval vote, when the GPT-2 candidates agree less, beat sending GPT-2?

    python bench/bench_vote_candidate.py RUN/samples.jsonl [...]

Re-scores the rows of `csbot eval generation --report RUN` runs made with
`--evidence-order consensus` (the prompt's first evidence item is then the retrieval vote)
without decoding again. The rule tested: the retrieval vote joins the guard-passed
candidates as one more candidate, and the composer's own selection
(`finetune.decoder.select_candidate`, against the same `consensus_references`) picks among
them. A hybrid: where the vote wins, the reply sent is a retrieved answer, word for word,
not GPT-2's; `vote_share` says how often.

Prints one JSON object per file: the sent replies' mean ROUGE-L as evaluated, the hybrid's,
the hybrid minus sent with its paired bootstrap 95% interval (the evaluation's), and the
hybrid's gain over retrieval-only and over the retrieval vote with theirs. Also the vote
over the top 3 retrieved answers of each row's `retrieved_pool` (the baseline's first
definition, when the run compared with more) and the sent replies' gain over it. Rows where no
candidate passed the guard keep what the evaluation sent (the fallback). A chosen rule
belongs to the development split's samples; the test split's are scored with it once.
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
from bot.evaluation.generation import retrieval_vote  # noqa: E402
from finetune.decoder import select_candidate  # noqa: E402


def score_file(samples: Path) -> dict:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])  # the evaluation's own scorer
    rows = [json.loads(line) for line in samples.open(encoding="utf-8") if line.strip()]
    if not rows:
        sys.exit(f"{samples}: no rows")
    missing = [k for k in ("candidates", "evidence", "consensus_references", "retrieved_pool") if k not in rows[0]]
    if missing:
        sys.exit(f"{samples}: rows lack {missing}; rerun `csbot eval generation --report` with this version")
    sent, hybrid, only, vote, vote3 = [], [], [], [], []
    vote_sent = 0
    for row in rows:
        sent.append(row["rougeL_f1"]["sent"])
        only.append(row["rougeL_f1"]["retrieval_only"])
        vote.append(row["rougeL_f1"]["retrieval_vote"])
        vote3.append(scorer.score(row["reference"], retrieval_vote(row["retrieved_pool"][:3]))["rougeL"].fmeasure)
        passing = [c["text"] for c in row["candidates"] if c["guard_passed"]]
        if not passing or not row["evidence"]:
            hybrid.append(row["rougeL_f1"]["sent"])
            continue
        voted = " ".join(row["evidence"][0].split())
        texts = [*passing, voted]
        chosen = select_candidate(texts, [True] * len(texts), row["consensus_references"]).index
        vote_sent += chosen == len(passing)
        hybrid.append(scorer.score(row["reference"], texts[chosen])["rougeL"].fmeasure)

    def gain(system: list[float], baseline: list[float]) -> list:
        low, high = paired_bootstrap_ci(system, baseline, seed=0)
        return [round(statistics.fmean(system) - statistics.fmean(baseline), 4), [round(low, 4), round(high, 4)]]

    return {
        "samples": str(samples),
        "rows": len(rows),
        "sent": round(statistics.fmean(sent), 4),
        "hybrid": round(statistics.fmean(hybrid), 4),
        "hybrid_minus_sent": gain(hybrid, sent),
        "vote_share": round(vote_sent / len(rows), 4),
        "retrieval_only": round(statistics.fmean(only), 4),
        "hybrid_minus_retrieval_only": gain(hybrid, only),
        "sent_minus_retrieval_only": gain(sent, only),
        "retrieval_vote": round(statistics.fmean(vote), 4),
        "hybrid_minus_retrieval_vote": gain(hybrid, vote),
        "retrieval_vote_3": round(statistics.fmean(vote3), 4),
        "sent_minus_retrieval_vote_3": gain(sent, vote3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("samples", type=Path, nargs="+")
    args = ap.parse_args()
    for path in args.samples:
        if not path.is_file():
            sys.exit(f"{path}: no such file (a `csbot eval generation --report DIR` run's DIR/samples.jsonl)")
    for path in args.samples:
        print(json.dumps(score_file(path)))


if __name__ == "__main__":
    main()
