"""Pairs straight from a question/answer corpus (a Bitext-style CSV), with no workspace.

    result = pairs_from_corpus("bitext/train.csv", embedder, evidence_k=1)
    write_pairs(result, "runs/bitext/pairs")

Each row becomes a one-turn conversation (customer question -> agent answer) and a `qa`
unit of an in-memory FAISS index over all rows. Each pair's evidence is retrieved from that
index for its (masked) question, leaving the row's own unit out, so the model learns to write
an answer from *other* answers, as it must at run time. Everything else (scrubbing, the
duplicate filter, the split by row, the manifest) is `finetune.pairs.build_pairs`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from finetune.pairs import PairsResult, QueryEncoder, build_pairs
from retrieval.config import IndexConfig
from retrieval.importers import ImportFormat, load_import
from retrieval.index import VectorIndex
from retrieval.progress import Progress, no_progress


def pairs_from_corpus(
    path: str | Path,
    embedder: QueryEncoder,
    *,
    fmt: ImportFormat = "bitext",
    index_config: IndexConfig | None = None,
    evidence_k: int = 1,
    valid_fraction: float = 0.1,
    seed: int = 0,
    min_pairs: int = 20,
    progress: Progress = no_progress,
    show_bars: bool = False,
    question_column: str = "question",
    answer_column: str = "answer",
    intent_column: str | None = None,
) -> PairsResult:
    """Pairs from the rows of `path` (`fmt` "bitext", or "csv" with its column names).

    Raises the importer's error for a malformed file and `TooFewPairsError` for too few rows.
    """
    batch = load_import(
        path, fmt, question_column=question_column, answer_column=answer_column, intent_column=intent_column
    )  # validates the whole file first
    # a unit's "conversation" is its own row, so build_pairs leaves exactly that unit out
    units = [dataclasses.replace(u, source_id=u.id) for u in batch.units]
    conversations = [
        {
            "id": u.id,
            "intent": u.intent or "",
            "outcome": "resolved",
            "source": batch.source,
            "turns": [{"role": "customer", "text": u.text}, {"role": "agent", "text": u.reply}],
        }
        for u in units
        if u.reply
    ]
    progress(f"embedding {len(units)} rows of {path}")
    index = VectorIndex.build(
        units,
        embedder.encode([u.text for u in units], progress=show_bars),
        embedder_id=embedder.model_id,
        config=index_config or IndexConfig(),
    )
    return build_pairs(
        None,
        index,
        embedder,
        context_turns=1,
        evidence_k=evidence_k,
        valid_fraction=valid_fraction,
        seed=seed,
        extra_conversations=conversations,
        min_pairs=min_pairs,
        sources=[{"name": batch.source, "path": str(path), "format": fmt, "sha256": batch.sha256, "rows": len(units)}],
        progress=progress,
        show_bars=show_bars,
    )
