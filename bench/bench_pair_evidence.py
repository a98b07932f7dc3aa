"""Does a pair's evidence hold its answer as often in training as for a new conversation?

    python bench/bench_pair_evidence.py --pairs DIR [DIR ...]   # csbot finetune pairs' folder, a round's pairs/
    python bench/bench_pair_evidence.py --corpus bench/results/bitext/train.csv [--k 20]

`--pairs`: for each of train/valid/heldout.jsonl in each folder, how many pairs, the share
whose target is among their evidence items (ROUGE-L F1 of at least 0.99 against one of them:
word for word, up to punctuation) and the mean ROUGE-L of the first item against the target.

`--corpus` (Bitext format): the pairs `csbot finetune train --corpus` builds leave each row's
own unit out of its evidence. This builds the same in-memory index and retrieves each row's
top `--k` both ways: the row left out before near-duplicate replies fold (what the pair
builder does) and after folding (what it did before 2026-12-04, which drops another row's
copy of the answer when the row's own copy represents the fold), and counts the rows whose
first item or whose top k differ.

The LAST stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SPLITS = ("train", "valid", "heldout")


def pairs_figures(folder: Path) -> dict[str, Any]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    out: dict[str, Any] = {}
    for split in SPLITS:
        path = folder / f"{split}.jsonl"
        if not path.is_file():
            continue
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not rows:
            continue
        among, first = 0, []
        for r in rows:
            f = [scorer.score(r["target"], e["text"])["rougeL"].fmeasure for e in r["evidence"]]
            among += any(x >= 0.99 for x in f)
            first.append(f[0] if f else 0.0)
        out[split] = {
            "pairs": len(rows),
            "target_among_evidence": round(among / len(rows), 4),
            "first_item_rougeL": round(statistics.fmean(first), 4),
            "evidence_per_pair": round(statistics.fmean(len(r["evidence"]) for r in rows), 2),
        }
    return out


def corpus_figures(path: Path, k: int) -> dict[str, Any]:
    from retrieval.config import IndexConfig
    from retrieval.embedder import SentenceEmbedder
    from retrieval.entities import mask_entities
    from retrieval.importers import load_import
    from retrieval.index import VectorIndex

    batch = load_import(path, "bitext")
    units = [dataclasses.replace(u, source_id=u.id) for u in batch.units]  # as finetune.corpus does
    embedder = SentenceEmbedder().load()
    index = VectorIndex.build(
        units, embedder.encode([u.text for u in units]), embedder_id=embedder.model_id, config=IndexConfig()
    )
    queries = embedder.encode([mask_entities(u.text)[0] for u in units])
    before_fold = index.search_batch(queries, k=k, exclude_sources=[u.id for u in units])
    after_fold = index.search_batch(queries, k=k + 1)  # a row has one unit of its own
    first = top = 0
    for u, now, then in zip(units, before_fold, after_fold, strict=True):
        old = [h.unit.id for h in then if h.unit.source_id != u.id][:k]
        new = [h.unit.id for h in now]
        first += bool(old[:1] != new[:1])
        top += old != new
    return {"rows": len(units), "k": k, "first_item_differs": first, "top_k_differs": top}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=Path, nargs="+", default=[], help="pairs folders (train/valid/heldout.jsonl)")
    ap.add_argument("--corpus", type=Path, default=None, help="a Bitext-format CSV (csbot finetune train --corpus)")
    ap.add_argument("--k", type=int, default=20, help="evidence items per row for --corpus")
    args = ap.parse_args()
    if not args.pairs and args.corpus is None:
        sys.exit("error: give --pairs DIR ... and/or --corpus FILE")
    for folder in args.pairs:
        if not folder.is_dir():
            sys.exit(f"error: {folder} is not a folder; pass one written by `csbot finetune pairs` or a round's pairs/")
    if args.corpus is not None and not args.corpus.is_file():
        sys.exit(f"error: {args.corpus} does not exist; make it with bench/split.py")
    result: dict[str, Any] = {"pairs": {str(f): pairs_figures(f) for f in args.pairs}}
    if args.corpus is not None:
        result["corpus"] = corpus_figures(args.corpus, args.k)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
