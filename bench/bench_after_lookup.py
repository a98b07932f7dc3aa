"""Does training on replies that follow an order lookup teach GPT-2 to state records it cannot see?

    python bench/bench_after_lookup.py --keep ROUND_A --drop ROUND_B [--workspace W] [--data data]

ROUND_A and ROUND_B are learning rounds kept by `bench/bench_demo_generator.py --keep DIR`,
from the same base and budget: A with `--keep-after-lookup` (the pairs as they were), B
without (`finetune.pairs` leaves out every reply to a customer message during which an order
was looked up: a `system` turn the pair's context does not show).

Both models are scored on the same rows: every held-out pair of round A (B's held-out set
lacks the after-lookup rows), with the shipped decoding and the retrieval composer's reply
beside each (`agreement_rows` of bench_demo_generator). Rows are grouped by whether they
answer a looked-up message (from data/heldout.jsonl, by turn index).

The extractor that says a reply states a record is not the guard's: a reply "states a
record" when its nearest training reply (ROUGE-L against every target of round A's train
and valid pairs) is one that followed a lookup rather than one that did not. On the
after-lookup rows neither model saw the record, so every such reply states something it
could not know.

Progress on stderr; per-row results in bench/results/after_lookup/; the LAST stdout line is
one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_demo_generator import agreement_rows, log  # noqa: E402 - after sys.path has the repo

from bot.evaluation.bootstrap import paired_bootstrap_ci  # noqa: E402
from bot.settings import CsbotSettings  # noqa: E402
from finetune.pairs import answers_after_lookup, file_conversations  # noqa: E402


def looked_up_turns(path: Path) -> dict[str, bool]:
    """`"<conversation id>#<turn>"` of every agent turn -> whether it answers a message during
    which the order was looked up (`finetune.pairs.answers_after_lookup`)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    flags = {}
    for conv in file_conversations(json.loads(line) for line in lines if line.strip()):
        for turn, after in zip(conv.turns, answers_after_lookup(conv.turns), strict=True):
            if turn.role == "agent":
                flags[f"{conv.id}#{turn.turn}"] = after
    return flags


def read_pairs(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class RecordDetector:
    """Whether a reply's nearest training reply followed a lookup (see the module docstring)."""

    def __init__(self, lookup_replies: list[str], other_replies: list[str]):
        from rouge_score import rouge_scorer

        self.scorer = rouge_scorer.RougeScorer(["rougeL"])
        self.lookup = sorted(set(lookup_replies))
        self.other = sorted(set(other_replies) - set(self.lookup))

    def _best(self, reply: str, references: list[str]) -> float:
        return max((self.scorer.score(ref, reply)["rougeL"].fmeasure for ref in references), default=0.0)

    def states_record(self, reply: str) -> bool:
        return self._best(reply, self.lookup) > self._best(reply, self.other)


def sent(row: dict[str, Any]) -> float:
    return row["retrieval"] if row["gpt2"] is None else row["gpt2"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", type=Path, required=True, help="round trained with the after-lookup replies")
    ap.add_argument("--drop", type=Path, required=True, help="round trained without them")
    ap.add_argument("--workspace", type=Path, default=REPO / ".csbot")
    ap.add_argument("--data", type=Path, default=REPO / "data")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "after_lookup")
    args = ap.parse_args()
    for root in (args.keep, args.drop):
        if not (root / "run" / "final").is_dir() or not (root / "pairs" / "heldout.jsonl").is_file():
            sys.exit(f"error: {root} is not a kept round (run/final and pairs/heldout.jsonl)")
    kept_params = json.loads((args.keep / "pairs" / "manifest.json").read_text(encoding="utf-8"))["parameters"]
    if not kept_params.get("keep_after_lookup"):
        sys.exit(f"error: {args.keep} was built without the after-lookup replies; pass a round built with them")

    heldout_flags = looked_up_turns(args.data / "heldout.jsonl")
    train_flags = looked_up_turns(args.data / "conversations.jsonl")
    rows_pairs = read_pairs(args.keep / "pairs" / "heldout.jsonl")
    training = read_pairs(args.keep / "pairs" / "train.jsonl") + read_pairs(args.keep / "pairs" / "valid.jsonl")
    detector = RecordDetector(
        [p["target"] for p in training if train_flags.get(p["id"])],
        [p["target"] for p in training if not train_flags.get(p["id"])],
    )
    log(
        f"{len(rows_pairs)} held-out rows ({sum(heldout_flags.get(p['id'], False) for p in rows_pairs)} after a "
        f"lookup); {len(detector.lookup)} distinct after-lookup and {len(detector.other)} other training replies"
    )
    config = CsbotSettings.from_env(args.workspace)
    scored: dict[str, list[dict[str, Any]]] = {}
    for name, root in (("keep", args.keep), ("drop", args.drop)):
        log(f"scoring the {name} round's model on {len(rows_pairs)} rows")
        rows = agreement_rows(config, root / "run" / "final", rows_pairs)
        for row in rows:
            row["after_lookup"] = heldout_flags.get(row["id"], False)
            row["states_record"] = row["generated"] is not None and detector.states_record(row["generated"])
            row["retrieval_states_record"] = detector.states_record(row["retrieval_reply"])
        scored[name] = rows

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rows.json").write_text(json.dumps(scored, indent=1) + "\n", encoding="utf-8")

    def figures(group: bool) -> dict[str, Any]:
        keep = [r for r in scored["keep"] if r["after_lookup"] is group]
        drop = [r for r in scored["drop"] if r["after_lookup"] is group]
        out: dict[str, Any] = {"rows": len(keep), "retrieval": round(statistics.fmean(r["retrieval"] for r in keep), 4)}
        for name, rows in (("keep", keep), ("drop", drop)):
            written = [r for r in rows if r["generated"] is not None]
            out[name] = {
                "sent_rougeL": round(statistics.fmean(sent(r) for r in rows), 4),
                "gpt2_written": len(written),
                "states_record": sum(r["states_record"] for r in written),
            }
        out["retrieval_states_record"] = sum(r["retrieval_states_record"] for r in keep)
        out["drop_minus_keep_ci95"] = list(paired_bootstrap_ci([sent(r) for r in drop], [sent(r) for r in keep]))
        return out

    result = {"after_lookup": figures(True), "other": figures(False)}
    for name, fig in result.items():
        log(
            f"{name}: {fig['rows']} rows; retrieval {fig['retrieval']}; keep {fig['keep']}; drop {fig['drop']}; "
            f"drop - keep 95% CI {fig['drop_minus_keep_ci95']}"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
