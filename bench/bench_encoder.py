"""The sentence encoder on each runtime: torch float32, ONNX float32 and ONNX int8, in one run.

    python bench/bench_encoder.py [--workspace .csbot] [--data data] [--rounds 3] [--cache DIR] [--save]

Each backend is `retrieval.embedder.SentenceEmbedder` with `EmbedderConfig.backend` set
("torch", "onnx", "onnx-int8"), the ONNX ones exported locally from the shipped MiniLM
into --cache (default: a fresh temporary folder, so the export time is measured too;
nothing is downloaded). Threads: 2 for each (torch's pool, onnxruntime's session); FAISS 1.

Texts: the customer messages of data/heldout.jsonl, personal values masked as the dialogue
manager masks them before it encodes.

1. Speed, interleaved so that the load of other processes falls on every backend alike:
   - one sentence at a time (the serving case): for each message, each backend encodes
     it once, the backends' order rotating from message to message; `--rounds` passes
     over the messages; p50/p95 per backend, and each ONNX backend's ratio to torch;
   - batches of 16 (ingestion, micro-batching): sentences per second.
2. Quality against torch: cosine of each message's vector with the torch vector (min,
   mean); retrieval agreement over the workspace's index (the demo's FAISS index):
   top-1 hit the same, mean overlap of the top-5 hit ids; and the intent classifier's
   answer (intent and out-of-scope flag) the same.

Progress on stderr; the LAST stdout line is one JSON object with every figure; --save
also writes it to bench/results/encoder/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_serve_load import log, save_result, summary  # noqa: E402

BACKENDS = ("torch", "onnx", "onnx-int8")
BATCH = 16
WARMUP = 10


def heldout_messages(data: Path) -> list[str]:
    """The customer turns of data/heldout.jsonl, masked as the dialogue manager masks them."""
    from retrieval.entities import mask_entities

    texts = []
    with (data / "heldout.jsonl").open(encoding="utf-8") as f:
        for line in f:
            texts += [t["text"] for t in json.loads(line)["turns"] if t["role"] == "customer"]
    return [mask_entities(t)[0] for t in texts]


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import onnxruntime
    import torch

    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), platform.processor())
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def load_embedders(cache: Path, threads: int) -> tuple[dict[str, Any], dict[str, float]]:
    """The three embedders, loaded (the ONNX ones exported into `cache` first when absent),
    and the seconds each load took."""
    from retrieval.config import EmbedderConfig
    from retrieval.embedder import SentenceEmbedder

    embedders, seconds = {}, {}
    for backend in BACKENDS:
        started = time.perf_counter()
        config = EmbedderConfig(backend=backend, torch_threads=threads, onnx_cache_dir=str(cache))
        embedders[backend] = SentenceEmbedder(config).load()
        seconds[backend] = round(time.perf_counter() - started, 1)
        log(f"{backend}: loaded in {seconds[backend]} s ({embedders[backend].model_id})")
    return embedders, seconds


def single_sentence(embedders: dict[str, Any], texts: list[str], rounds: int) -> dict[str, list[float]]:
    """Milliseconds of `encode([text])` per backend; backends interleaved, their order
    rotating per message."""
    for text in texts[:WARMUP]:
        for embedder in embedders.values():
            embedder.encode([text])
    times: dict[str, list[float]] = {b: [] for b in embedders}
    names = list(embedders)
    for r in range(rounds):
        for i, text in enumerate(texts):
            shift = (i + r) % len(names)
            for name in names[shift:] + names[:shift]:
                started = time.perf_counter()
                embedders[name].encode([text])
                times[name].append((time.perf_counter() - started) * 1000)
        log(f"single sentence: round {r + 1}/{rounds} done")
    return times


def batches(embedders: dict[str, Any], texts: list[str], rounds: int) -> dict[str, list[float]]:
    """Milliseconds of `encode(batch)` for batches of BATCH messages, interleaved as above."""
    chunks = [texts[i : i + BATCH] for i in range(0, len(texts) - BATCH + 1, BATCH)]
    times: dict[str, list[float]] = {b: [] for b in embedders}
    names = list(embedders)
    for r in range(rounds):
        for i, chunk in enumerate(chunks):
            shift = (i + r) % len(names)
            for name in names[shift:] + names[:shift]:
                started = time.perf_counter()
                embedders[name].encode(chunk)
                times[name].append((time.perf_counter() - started) * 1000)
    return times


def quality(embedders: dict[str, Any], texts: list[str], workspace: Path) -> dict[str, dict[str, Any]]:
    """Each ONNX backend against torch: cosine, retrieval agreement, classifier agreement."""
    import numpy as np

    from bot.intents import EmbeddingIntentClassifier
    from retrieval.index import VectorIndex

    reference = embedders["torch"]
    index = VectorIndex.load(workspace / "index", embedder_id=reference.model_id)
    classifier = EmbeddingIntentClassifier.load(
        workspace / "intents", embedder_id=reference.model_id, dim=reference.dim
    )
    vectors = {name: e.encode(texts) for name, e in embedders.items()}
    found = {name: [index.search(v, k=5) for v in vecs] for name, vecs in vectors.items()}
    hits = {name: [[h.unit.id for h in row] for row in rows] for name, rows in found.items()}
    answers = {
        name: [(p.intent, p.out_of_scope) for p in classifier.predict(vecs, texts)] for name, vecs in vectors.items()
    }
    out = {}
    for name in embedders:
        if name == "torch":
            continue
        cosine = np.sum(vectors[name] * vectors["torch"], axis=1)
        top1 = [a[:1] == b[:1] for a, b in zip(hits[name], hits["torch"], strict=True)]
        # units with the same text score alike, and FAISS orders such ties arbitrarily: the
        # torch top hit counts as found first when it scores within 1e-4 of the best
        top1_ties = [
            bool(a) and any(h.unit.id == b[0].unit.id and a[0].score - h.score < 1e-4 for h in a)
            for a, b in zip(found[name], found["torch"], strict=True)
        ]
        top5 = [len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(hits[name], hits["torch"], strict=True)]
        same = [a == b for a, b in zip(answers[name], answers["torch"], strict=True)]
        out[name] = {
            "cosine_min": round(float(cosine.min()), 5),
            "cosine_mean": round(float(cosine.mean()), 5),
            "top1_agreement": round(sum(top1) / len(top1), 4),
            "top1_agreement_up_to_ties": round(sum(top1_ties) / len(top1_ties), 4),
            "top5_overlap": round(sum(top5) / len(top5), 4),
            "classifier_agreement": round(sum(same) / len(same), 4),
            "n": len(texts),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, default=REPO / ".csbot", help="its index and intent model (quality)")
    ap.add_argument("--data", type=Path, default=REPO / "data")
    ap.add_argument("--rounds", type=int, default=3, help="passes over the messages for the timings")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads of each backend")
    ap.add_argument("--cache", type=Path, default=None, help="ONNX export folder [default: a new temporary one]")
    ap.add_argument("--save", action="store_true", help="also write the JSON to bench/results/encoder/")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    from retrieval.threads import configure_threads

    configure_threads(args.threads, 1)
    texts = heldout_messages(args.data)
    load_before = os.getloadavg()[0]
    log(f"{len(texts)} held-out customer messages; load average {load_before:.2f}")
    with tempfile.TemporaryDirectory(prefix="csbot-onnx-") as tmp:
        embedders, load_s = load_embedders(args.cache or Path(tmp), args.threads)
        single = single_sentence(embedders, texts, args.rounds)
        log("batches of 16")
        batch = batches(embedders, texts, args.rounds)
        log("quality against torch")
        agreement = quality(embedders, texts, args.workspace)

    result: dict[str, Any] = {"bench": "encoder", "machine": machine(), "threads": args.threads, "rounds": args.rounds}
    torch_p50 = summary(single["torch"])["p50_ms"]
    torch_rate = len(batch["torch"]) * BATCH / (sum(batch["torch"]) / 1000)
    for name in BACKENDS:
        one = summary(single[name])
        rate = len(batch[name]) * BATCH / (sum(batch[name]) / 1000)
        row = {
            "model_id": embedders[name].model_id,
            "load_s": load_s[name],
            "single": one,
            "single_p50_vs_torch": round(one["p50_ms"] / torch_p50, 3),
            "batch16": {**summary(batch[name]), "sentences_per_s": round(rate, 1)},
            "batch16_rate_vs_torch": round(rate / torch_rate, 3),
            **({"quality": agreement[name]} if name in agreement else {}),
        }
        result[name] = row
        quality_text = ""
        if name in agreement:
            q = agreement[name]
            quality_text = (
                f"; cosine min {q['cosine_min']} mean {q['cosine_mean']}, top-1 {q['top1_agreement']:.1%} "
                f"({q['top1_agreement_up_to_ties']:.1%} up to ties), "
                f"top-5 {q['top5_overlap']:.1%}, classifier {q['classifier_agreement']:.1%}"
            )
        print(
            f"{name:9} one sentence p50 {one['p50_ms']} ms p95 {one['p95_ms']} ms (x{row['single_p50_vs_torch']} "
            f"of torch); batch of 16: {rate:.0f} sentences/s (x{row['batch16_rate_vs_torch']}){quality_text}",
            flush=True,
        )
    result["machine"]["load_1min"] = round(load_before, 2)
    result["machine"]["load_1min_after"] = round(os.getloadavg()[0], 2)
    if args.save:
        save_result(result, "encoder")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
