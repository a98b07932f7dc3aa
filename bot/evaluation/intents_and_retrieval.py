"""`csbot eval intents` and `csbot eval retrieval`: the measurements behind
docs/benchmarks.md. Both use the same components and the same text preparation (masked
personal values, one encode per query) as the live dialogue manager."""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bot.composers.retrieval import prefer_intent
from bot.dialogue import retrieve_for_intent
from bot.errors import CsbotError
from bot.evaluation.common import load_embedder, machine_info, percentile
from bot.intents import EmbeddingIntentClassifier, IntentClassifierConfig
from bot.settings import CsbotSettings
from bot.workspace import read_intent_examples
from retrieval.entities import mask_entities
from retrieval.importers import load_import
from retrieval.index import VectorIndex
from retrieval.progress import Progress, no_progress


def _train_classifier(config: CsbotSettings, vectors, texts, labels, embedder_id, progress):

    return EmbeddingIntentClassifier.train(
        vectors,
        texts,
        labels,
        IntentClassifierConfig(**config.classifier.overrides),
        embedder_id=embedder_id,
        progress=progress,
    )


def evaluate_intents(
    config: CsbotSettings,
    train_csv: Path,
    test_csv: Path,
    *,
    oos_label: str | None = None,
    report_dir: Path | None = None,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    from sklearn.metrics import f1_score

    train_texts, train_labels = read_intent_examples(train_csv)
    test_texts, test_labels = read_intent_examples(test_csv)
    if oos_label is not None:
        kept = [(t, y) for t, y in zip(train_texts, train_labels, strict=True) if y != oos_label]
        train_texts, train_labels = [t for t, _ in kept], [y for _, y in kept]
        if oos_label not in test_labels:
            raise CsbotError(f"--oos-label {oos_label!r} does not occur in {test_csv}; nothing to measure")
    known = set(train_labels)
    unknown = sorted({y for y in test_labels if y not in known and y != oos_label})
    if unknown:
        raise CsbotError(
            f"{test_csv} has label(s) never seen in {train_csv}: {', '.join(unknown[:5])}"
            + (" …" if len(unknown) > 5 else "")
            + "; pass the one that means out-of-scope as --oos-label"
        )

    embedder = load_embedder(config)
    progress(f"embedding {len(train_texts)} training and {len(test_texts)} test texts")
    t0 = time.perf_counter()
    train_masked = [mask_entities(t)[0] for t in train_texts]
    test_masked = [mask_entities(t)[0] for t in test_texts]
    train_vectors = embedder.encode(train_masked, progress=True)
    test_vectors = embedder.encode(test_masked, progress=True)
    encode_seconds = time.perf_counter() - t0

    progress("training the classifier")
    t0 = time.perf_counter()
    classifier = _train_classifier(config, train_vectors, train_masked, train_labels, embedder.model_id, progress)
    train_seconds = time.perf_counter() - t0
    predictions = classifier.predict(test_vectors, test_masked)

    in_scope = [i for i, y in enumerate(test_labels) if y != oos_label]
    gold = [test_labels[i] for i in in_scope]
    predicted = [predictions[i].intent for i in in_scope]
    result: dict[str, Any] = {
        "accuracy": _ratio(sum(g == p for g, p in zip(gold, predicted, strict=True)), len(gold)),
        "macro_f1": round(float(f1_score(gold, predicted, average="macro", labels=sorted(known), zero_division=0)), 4),
        "n_train": len(train_texts),
        "n_test": len(test_texts),
        "n_intents": len(known),
        "train_seconds": round(train_seconds, 2),
        "encode_seconds": round(encode_seconds, 2),
    }
    if oos_label is not None:
        oos_rows = [i for i, y in enumerate(test_labels) if y == oos_label]
        flagged = [i for i, p in enumerate(predictions) if p.out_of_scope]
        result["in_scope_accuracy"] = _ratio(
            sum(predictions[i].intent == test_labels[i] and not predictions[i].out_of_scope for i in in_scope),
            len(in_scope),
        )
        result["oos_recall"] = _ratio(sum(predictions[i].out_of_scope for i in oos_rows), len(oos_rows))
        result["oos_precision"] = _ratio(sum(test_labels[i] == oos_label for i in flagged), len(flagged))
        result["n_oos_test"] = len(oos_rows)
    if report_dir is not None:
        if oos_label is None:
            _write_report(report_dir, "intents", result, gold, predicted, sorted(known))
        else:
            # every row, with a flagged prediction shown as the OOS label
            shown = [oos_label if p.out_of_scope else p.intent for p in predictions]
            _write_report(report_dir, "intents", result, test_labels, shown, [*sorted(known), oos_label])
    return result


def evaluate_retrieval(
    config: CsbotSettings,
    corpus_csv: Path,
    test_csv: Path,
    *,
    report_dir: Path | None = None,
    progress: Progress = no_progress,
) -> dict[str, Any]:

    corpus = load_import(corpus_csv, "bitext")
    test_texts, test_labels = read_intent_examples(test_csv)
    embedder = load_embedder(config)
    progress(f"embedding {len(corpus.units)} corpus units")
    vectors = embedder.encode([u.text for u in corpus.units], progress=True)
    index = VectorIndex.build(corpus.units, vectors, embedder_id=embedder.model_id, config=config.index)
    # the live bot ranks retrieved units of the classified intent first: measure that path
    progress("training the intent classifier on the corpus questions")
    classifier = _train_classifier(
        config,
        vectors,
        [u.text for u in corpus.units],
        [u.intent or "" for u in corpus.units],
        embedder.model_id,
        progress,
    )

    progress(f"querying {len(test_texts)} test questions one at a time")
    k = 5
    nn_top1 = top1 = recall5 = 0
    latencies, nn_latencies, predicted_top = [], [], []
    for text, gold in zip(test_texts, test_labels, strict=True):
        masked = mask_entities(text)[0]
        t0 = time.perf_counter()
        q = embedder.encode([masked])
        t1 = time.perf_counter()
        nearest = index.search(q, k=k)
        t2 = time.perf_counter()
        # the live path: classify with the same vector, search that intent's units first
        prediction = classifier.predict(q, [masked])[0]
        ranked = prefer_intent(retrieve_for_intent(index, q, prediction.intent, k), prediction.intent, min_score=-1.0)
        t3 = time.perf_counter()
        nn_latencies.append((t2 - t0) * 1000)
        latencies.append((t1 - t0 + t3 - t2) * 1000)
        nn_top1 += bool(nearest) and nearest[0].unit.intent == gold
        top1 += bool(ranked) and ranked[0].unit.intent == gold
        recall5 += any(h.unit.intent == gold for h in ranked[:k])
        # "": no prediction (nothing retrieved, or a unit without an intent)
        predicted_top.append((ranked[0].unit.intent or "") if ranked else "")
    n = len(test_texts)
    result = {
        "top1_intent_match": _ratio(top1, n),
        "recall_at_5": _ratio(recall5, n),
        "nearest_neighbour_top1_intent_match": _ratio(nn_top1, n),
        # encode + classify + intent-filtered search, one query at a time (the live path)
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 95), 2),
        # encode + plain nearest-neighbour search (the baseline's path)
        "nearest_neighbour_p50_ms": round(statistics.median(nn_latencies), 2),
        "nearest_neighbour_p95_ms": round(percentile(nn_latencies, 95), 2),
        "n_corpus": len(corpus.units),
        "n_test": n,
        "index_kind": index.kind_used,
        "machine": machine_info(),
    }
    if report_dir is not None:
        _write_report(report_dir, "retrieval", result, test_labels, predicted_top, sorted(set(test_labels)))
    return result


def _ratio(a: int, b: int) -> float:
    return round(a / b, 4) if b else 0.0


def _write_report(
    report_dir: Path, name: str, result: dict[str, Any], gold: list[str], predicted: list[str], labels: list[str]
) -> None:
    """report.json, confusion.png and the most-confused pairs, for a person to open."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    report_dir.mkdir(parents=True, exist_ok=True)
    pairs = Counter((g, p) for g, p in zip(gold, predicted, strict=True) if g != p)
    confused = [{"gold": g, "predicted": p, "count": c} for (g, p), c in pairs.most_common(15)]
    all_labels = sorted(set(labels) | set(predicted) - {""})
    matrix = confusion_matrix(gold, predicted, labels=all_labels)
    size = max(6, 0.18 * len(all_labels) + 3)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(all_labels)), all_labels, rotation=90, fontsize=6)
    ax.set_yticks(range(len(all_labels)), all_labels, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"csbot eval {name}: confusion matrix")
    fig.tight_layout()
    fig.savefig(report_dir / "confusion.png", dpi=120)
    plt.close(fig)
    (report_dir / "report.json").write_text(
        json.dumps({**result, "most_confused": confused}, indent=2) + "\n", encoding="utf-8"
    )
    lines = [f"# csbot eval {name}", "", "| gold | predicted | count |", "| --- | --- | --- |"]
    lines += [f"| {c['gold']} | {c['predicted']} | {c['count']} |" for c in confused]
    (report_dir / "most_confused.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
