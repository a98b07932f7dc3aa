"""Who writes the demo's replies: the held-out conversations replayed through the assistant.

    python bench/bench_demo_transcripts.py --workspace .csbot [--conversations 61] [--show 3]

Each of the first N conversations of data/heldout.jsonl (never trained on, never indexed)
is replayed turn by turn: its customer messages, in order, go to the workspace's assistant
(`DialogueManager.handle`, what `csbot chat` and the HTTP API call), in a new conversation of
the workspace's store. Counted over every bot turn: which composer wrote it (`composer`:
"gpt2", "retrieval", "retrieval (gpt2 rejected)", "policy", "action", ...), and over the
replies GPT-2 wrote, those naming a value (digits, amount, date, email, URL, phone,
placeholder) found in neither the customer's messages so far nor the reply's sources
(`bot.evaluation.invented.invented_values`, not the guard's extractor).

Writes every replayed conversation to bench/results/demo_transcripts/transcripts.jsonl,
prints the first --show of them as text on stderr, and the LAST stdout line is one JSON
object with the counts. The workspace's store gains the replayed conversations: use a copy.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.evaluation.invented import invented_values  # noqa: E402 - after sys.path has the repo
from bot.settings import CsbotSettings  # noqa: E402
from bot.workspace import Assistant  # noqa: E402


def replay(assistant: Assistant, conversation: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation's customer messages through the assistant: one row per bot turn."""
    manager = assistant.manager
    conversation_id = manager.start_conversation(channel="bench")
    said: list[str] = []
    rows = []
    for turn in conversation["turns"]:
        if turn["role"] != "customer":
            continue
        said.append(turn["text"])
        result = manager.handle(turn["text"], conversation_id=conversation_id, channel="bench")
        sources = [s.text for s in result.sources]
        invented = invented_values(result.reply, [*said, *sources]) if result.composer == "gpt2" else []
        rows.append(
            {
                "customer": turn["text"],
                "bot": result.reply,
                "composer": result.composer,
                "action": result.action,
                "intent": result.intent,
                "sources": [s.id for s in result.sources[:3]],
                "invented": [v.text for v in invented],
                "note": result.note,
            }
        )
    return rows


def as_text(conversation_id: str, rows: list[dict[str, Any]]) -> str:
    lines = [f"--- {conversation_id}"]
    for row in rows:
        lines.append(f"customer> {row['customer']}")
        lines.append(f"bot>      {row['bot']}")
        lines.append(f"          [{row['composer']}, {row['action']}, intent {row['intent']}]")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, default=REPO / ".csbot")
    ap.add_argument("--heldout", type=Path, default=REPO / "data" / "heldout.jsonl")
    ap.add_argument("--conversations", type=int, default=61, help="how many held-out conversations [all 61]")
    ap.add_argument("--show", type=int, default=3, help="conversations printed as text on stderr")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "demo_transcripts")
    args = ap.parse_args()
    if not (args.workspace / "workspace.json").is_file():
        sys.exit(f"error: {args.workspace} is not a built workspace; run `make build` (or csbot build) first")
    if args.conversations < 1:
        sys.exit(f"error: --conversations must be at least 1; got {args.conversations}")
    lines = args.heldout.read_text(encoding="utf-8").splitlines()
    conversations = [json.loads(line) for line in lines if line.strip()][: args.conversations]
    config = CsbotSettings.from_env(args.workspace)
    composers: Counter[str] = Counter()
    invented = 0
    args.out.mkdir(parents=True, exist_ok=True)
    with Assistant(config) as assistant, (args.out / "transcripts.jsonl").open("w", encoding="utf-8") as f:
        for i, conversation in enumerate(conversations):
            print(f"• {conversation['id']} ({i + 1} of {len(conversations)})", file=sys.stderr, flush=True)
            rows = replay(assistant, conversation)
            composers.update(r["composer"] for r in rows)
            invented += sum(bool(r["invented"]) for r in rows)
            f.write(json.dumps({"id": conversation["id"], "turns": rows}, ensure_ascii=False) + "\n")
            if i < args.show:
                print(as_text(conversation["id"], rows), file=sys.stderr, flush=True)
    turns = sum(composers.values())
    composed = sum(n for name, n in composers.items() if name == "gpt2" or name.startswith("retrieval"))
    print(
        json.dumps(
            {
                "conversations": len(conversations),
                "bot_turns": turns,
                "by_composer": dict(composers.most_common()),
                "gpt2_share_of_all_turns": round(composers["gpt2"] / turns, 4) if turns else 0.0,
                # the turns a composer answered (not policy, actions, small talk or handoffs)
                "gpt2_share_of_composed_turns": round(composers["gpt2"] / composed, 4) if composed else 0.0,
                "gpt2_replies_with_an_invented_value": invented,
                "transcripts": str(args.out / "transcripts.jsonl"),
            }
        )
    )


if __name__ == "__main__":
    main()
