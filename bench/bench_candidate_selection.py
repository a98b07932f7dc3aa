"""How much do the decoded candidates leave on the table, and does another selection rule take it?

    python bench/bench_candidate_selection.py bench/results/generation/dev-candidates-8/samples.jsonl

Reads the `samples.jsonl` that `csbot eval generation --report DIR` writes (every row's
reference, its decoded candidates with the guard's verdicts, and the retrieved answers the
selection compared them with) and scores, on the same rows, without decoding again:

  - `sent`: what the evaluation sent (the shipped rule, fallbacks included);
  - `greedy`: the first candidate (the greedy reply);
  - `oracle`: the best candidate the guard passed, chosen WITH the reference: a ceiling that
    no rule can reach, not a figure the product can have;
  - `mbr_candidates_only`: minimum-Bayes-risk among the passing candidates, without the
    retrieved answers;
  - `mbr_references_xW`: the shipped rule with the retrieved answers weighted W;
  - `mbr_pool_K` (`--pool-sizes K ...`): the shipped rule with the top K usable retrieved
    answers of the row's `retrieved_pool` as the references (the shipped rule uses 3);
    `pool_only_K`: the candidate agreeing most with those K answers alone; `vote_pool_K`: a
    baseline, not a rule for the composer: of those K retrieved answers, the one agreeing
    most with the others, replayed (the retrieval vote over K instead of 3);
    `gain_ci` gives each rule's paired bootstrap 95% interval against `sent`;
  - `opening_K` (`--opening-sentences K ...`): the shipped rule applied to each candidate's
    first K sentences only, the chosen candidate's whole reply scored: what choosing early,
    to stream a reply while it decodes, would send if the chosen reply then went on as it
    was decoded; `opening_K_cut`: the same with the retrieved answers cut to the opening's
    length in words. `openings_shared_by_most`: turns whose most common first sentence is
    shared by more than half of the passing candidates.

Samples written before the retrieved answers were kept (`consensus_references`) fall back to
the two retrieval baselines' answers as the references; the output says which. Use it on
development samples to choose a rule, never on the test rows.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("samples", type=Path)
    ap.add_argument("--weights", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--opening-sentences", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--pool-sizes", type=int, nargs="*", default=[3, 5, 10, 20])
    args = ap.parse_args()

    from rouge_score import rouge_scorer

    from bot.evaluation.bootstrap import paired_bootstrap_ci

    scorer = rouge_scorer.RougeScorer(["rougeL"])

    def rouge(reference: str, text: str) -> float:
        return scorer.score(reference, text)["rougeL"].fmeasure

    rows = [json.loads(line) for line in args.samples.open(encoding="utf-8") if line.strip()]
    names = [
        "sent",
        "greedy",
        "oracle",
        "mbr_candidates_only",
        *(f"mbr_references_x{w:g}" for w in args.weights),
        *(f"opening_{k}{cut}" for k in args.opening_sentences for cut in ("", "_cut")),
    ]
    pooled = all("retrieved_pool" in r for r in rows)
    if pooled:
        names += [f"{rule}_{k}" for k in args.pool_sizes for rule in ("mbr_pool", "pool_only", "vote_pool")]
    shared_openings = 0
    scores: dict[str, list[float]] = {name: [] for name in names}
    references_kept = 0
    for row in rows:
        passing = [c["text"] for c in row["candidates"] if c["guard_passed"]]
        if "consensus_references" in row:
            references_kept += 1
            references = row["consensus_references"]
        else:
            references = [row["baselines"]["retrieval_only"], row["baselines"]["retrieval_vote"]]
        scores["sent"].append(row["rougeL_f1"]["sent"])
        if pooled:  # a baseline: it does not depend on the candidates
            pool = row["retrieved_pool"]
            for k in args.pool_sizes:
                top = pool[:k]
                voted = (
                    _best(
                        [[rouge(o, t) if i != j else 0.0 for j, o in enumerate(top)] for i, t in enumerate(top)],
                        [0.0] * len(top),
                        0.0,
                    )
                    if top
                    else None
                )
                scores[f"vote_pool_{k}"].append(rouge(row["reference"], top[voted]) if top else 0.0)
        scores["greedy"].append(rouge(row["reference"], row["candidates"][0]["text"]) if row["candidates"] else 0.0)
        if not passing:  # every rule falls back as the evaluation did
            for name in names[2:]:
                if not name.startswith("vote_pool_"):
                    scores[name].append(row["rougeL_f1"]["sent"])
            continue
        gold = [rouge(row["reference"], t) for t in passing]
        pairwise = [[rouge(o, t) if i != j else 0.0 for j, o in enumerate(passing)] for i, t in enumerate(passing)]
        to_references = [sum(rouge(r, t) for r in references) for t in passing]
        scores["oracle"].append(max(gold))

        scores["mbr_candidates_only"].append(gold[_best(pairwise, to_references, 0.0)])
        for w in args.weights:
            scores[f"mbr_references_x{w:g}"].append(gold[_best(pairwise, to_references, w)])
        if pooled:
            to_pool = [[rouge(r, t) for r in row["retrieved_pool"]] for t in passing]
            for k in args.pool_sizes:
                near = [sum(v[:k]) for v in to_pool]
                scores[f"mbr_pool_{k}"].append(gold[_best(pairwise, near, 1.0)])
                scores[f"pool_only_{k}"].append(gold[_best([[0.0] * len(passing)] * len(passing), near, 1.0)])
        firsts = [_opening(t, 1) for t in passing]
        shared_openings += max(firsts.count(f) for f in firsts) * 2 > len(passing) >= 2
        for k in args.opening_sentences:
            openings = [_opening(t, k) for t in passing]
            for cut in ("", "_cut"):
                chosen = _best_opening(openings, references, bool(cut), rouge)
                scores[f"opening_{k}{cut}"].append(gold[chosen])
    result: dict = {name: round(statistics.fmean(v), 4) for name, v in scores.items()}
    result["gain_ci"] = {
        name: [
            round(statistics.fmean(v) - statistics.fmean(scores["sent"]), 4),
            list(paired_bootstrap_ci(v, scores["sent"], seed=0)),
        ]
        for name, v in scores.items()
        if name != "sent"
    }
    result.update(
        rows=len(rows),
        candidates=max((len(r["candidates"]) for r in rows), default=0),
        references="consensus_references" if references_kept == len(rows) else "retrieval baselines' answers",
        openings_shared_by_most=shared_openings,
        samples=str(args.samples),
    )
    print(json.dumps(result))


def _best(pairwise: list[list[float]], to_references: list[float], weight: float) -> int:
    """The candidate agreeing most with the others plus `weight` × the references; ties to the earlier."""
    return max(range(len(pairwise)), key=lambda i: (sum(pairwise[i]) + weight * to_references[i], -i))


# a sentence ends at . ! or ? (not after a digit) before a space: bot.composers.generative's rule
_SENTENCE_END = re.compile(r"(?<=[^\d\s][.!?])(?=\s)")


def _opening(text: str, sentences: int) -> str:
    """The first `sentences` whole sentences of `text` (all of it when it has fewer)."""
    folded = " ".join(text.split())
    ends = [m.end() for m in _SENTENCE_END.finditer(folded)]
    return folded[: ends[sentences - 1]] if len(ends) >= sentences else folded


def _best_opening(openings: list[str], references: list[str], cut: bool, rouge) -> int:
    """The shipped rule on openings: the one agreeing most with the other openings and the
    references (cut to its length in words when `cut`); ties to the earlier."""

    def agreement(i: int) -> float:
        words = len(openings[i].split())
        refs = [" ".join(r.split()[:words]) for r in references] if cut else references
        return sum(rouge(o, openings[i]) for o in [*refs, *(openings[j] for j in range(len(openings)) if j != i)])

    return max(range(len(openings)), key=lambda i: (agreement(i), -i))


if __name__ == "__main__":
    main()
