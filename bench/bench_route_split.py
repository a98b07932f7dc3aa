"""Which held-out rows would a composer answer live? The round's comparison, split by route.

    python bench/bench_route_split.py ROWS.json ROUND_DIR [--workspace W]

ROWS.json is a per-pair file of `bench/bench_demo_generator.py` (its `test` rows: GPT-2's sent
reply and the retrieval composer's, scored against the target); ROUND_DIR the round it kept
(`--keep`), whose `pairs/heldout.jsonl` gives each row's last customer message.

The live dialogue answers a message whose intent is small talk (greeting, thanks, goodbye) or a
handoff with a fixed reply, whichever composer is promoted (`bot.dialogue`); only the other
messages reach a composer. Each row's last customer message goes through the workspace's
intent classifier, and the rows are split by that route. The split is approximate: it looks
at one message, not at the conversation's state (a pending slot question, say).

The LAST stdout line is one JSON object: per route, rows, both composers' mean ROUGE-L and the
paired 95% interval of GPT-2's gain.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.domain import Domain  # noqa: E402 - after sys.path has the repo
from bot.evaluation.bootstrap import paired_bootstrap_ci  # noqa: E402
from bot.intents.classifier import EmbeddingIntentClassifier  # noqa: E402
from bot.settings import CsbotSettings  # noqa: E402
from retrieval.embedder import SentenceEmbedder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rows", type=Path, help="a per-pair file of bench_demo_generator.py")
    ap.add_argument("round", type=Path, help="the round folder it kept (pairs/heldout.jsonl)")
    ap.add_argument("--workspace", type=Path, default=REPO / ".csbot")
    args = ap.parse_args()
    rows = json.loads(args.rows.read_text(encoding="utf-8"))["test"]
    pairs_file = args.round / "pairs" / "heldout.jsonl"
    if not pairs_file.is_file():
        sys.exit(f"error: {pairs_file} is missing; pass the round folder bench_demo_generator.py kept")
    pairs = {}
    for line in pairs_file.read_text(encoding="utf-8").splitlines():
        if line.strip():
            pair = json.loads(line)
            pairs[pair["id"]] = pair
    missing = [r["id"] for r in rows if r["id"] not in pairs]
    if missing:
        sys.exit(f"error: {len(missing)} rows (first {missing[0]}) are not held-out pairs of {args.round}")

    config = CsbotSettings.from_env(args.workspace)
    domain = Domain.load(args.workspace / "domain.json")
    embedder = SentenceEmbedder(config.embedder).load()
    classifier = EmbeddingIntentClassifier.load(
        args.workspace / "intents", embedder_id=embedder.model_id, dim=embedder.dim
    )
    texts = [pairs[r["id"]]["context"][-1]["text"] for r in rows]
    predictions = classifier.predict(embedder.encode(texts), texts)
    fixed = set(domain.smalltalk) | set(domain.handoff_intents)

    result = {}
    for route in ("fixed reply", "composer"):
        chosen = [r for r, p in zip(rows, predictions, strict=True) if (p.intent in fixed) == (route == "fixed reply")]
        if not chosen:
            continue
        gpt2 = [r["retrieval"] if r["gpt2"] is None else r["gpt2"] for r in chosen]
        retrieval = [r["retrieval"] for r in chosen]
        result[route] = {
            "rows": len(chosen),
            "gpt2": round(statistics.fmean(gpt2), 4),
            "retrieval": round(statistics.fmean(retrieval), 4),
            "gain_ci95": list(paired_bootstrap_ci(gpt2, retrieval)),
        }
        print(f"• {route}: {result[route]}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
