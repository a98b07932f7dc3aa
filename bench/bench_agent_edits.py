"""Agents' edits teach the model: what human agents send from the panel (suggestions sent
as they were, edited, or replies typed) goes into the next learning round, and that round's
model is scored against the model before it on the same held-out pairs.

    python bench/bench_agent_edits.py --minutes 3

1. `csbot build` a fresh demo workspace whose data folder holds only the first
   `--first-share` of data/conversations.jsonl (what the company had before the panel: the
   index and round 1 know nothing of the rest);
2. round 1: `csbot finetune round` on those transcripts, promoted whatever its score
   (`--min-gain -1`);
3. the rest of the conversations arrive as live traffic, handled through the real store API
   of `bot.agents` with round 1's model in charge: each customer message goes through the
   dialogue manager (it answers the first one, and stays silent once an agent holds the
   conversation); before each of the transcript's agent replies, the panel's suggestions for
   the latest customer message are made (`suggest_replies`: round 1's composer, then
   retrieved replies) and logged as shown; the agent starts from the suggestion closest to
   the reply it means to send (ROUGE-L at least `--use-threshold`) and sends the transcript's
   real reply with it (sent as is when identical, else edited), or discards them all and
   types the reply; the conversation is resolved at the end;
4. round 2: `csbot finetune round` on the same transcripts plus the store, same budget: it
   scores round 1's model (promoted) and its own on the same held-out pairs (the store's
   agent-answered conversations held out by their fixed hash first, then the curated
   data/heldout.jsonl), and promotes its model only if better (the normal rule).

The last stdout line is one JSON object: both scores, the gain, the pair counts per target
kind and the suggestions' outcomes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CSBOT = Path(sys.executable).with_name("csbot")
AGENT_NAME, AGENT_PASSWORD = "bench-agent", "bench-agent-password"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def csbot(*args: str) -> dict[str, Any]:
    proc = subprocess.run([str(CSBOT), *args], cwd=REPO, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"csbot {' '.join(args)} failed ({proc.returncode})")
    lines = proc.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}


def split_data(work: Path, share: float) -> tuple[Path, list[dict[str, Any]]]:
    """A copy of data/ whose conversations.jsonl holds the first `share` of the demo's
    conversations; returns it and the conversations left out (the live traffic)."""
    data = work / "data"
    shutil.copytree(REPO / "data", data)
    lines = [line for line in (REPO / "data" / "conversations.jsonl").read_text(encoding="utf-8").splitlines() if line]
    cut = int(len(lines) * share)
    (data / "conversations.jsonl").write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
    return data, [json.loads(line) for line in lines[cut:]]


def agents_work(ws: Path, conversations: list[dict[str, Any]], use_threshold: float) -> dict[str, Any]:
    """Play the conversations through the dialogue manager and the agent panel's store API
    (see the module docstring); returns what happened, counted."""
    from rouge_score import rouge_scorer

    from bot.agents import AgentAccounts, ConversationHandling, DuplicateAgentError, SuggestionLog
    from bot.agents.assist import suggest_replies
    from bot.settings import CsbotSettings
    from bot.workspace import Assistant

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    counts = {"conversations": 0, "customer_messages": 0, "bot_replies": 0, "agent_replies": 0}
    counts |= {"started_from_a_suggestion": 0, "typed_after_discarding": 0, "typed_without_suggestions": 0}
    started = time.perf_counter()
    with Assistant(CsbotSettings.from_env(ws)) as assistant:
        store = assistant.store
        accounts = AgentAccounts(store)
        try:
            agent = accounts.add(AGENT_NAME, AGENT_PASSWORD)
        except DuplicateAgentError:
            agent = accounts.get(AGENT_NAME)
        handling, suggestions = ConversationHandling(store), SuggestionLog(store)
        for n, conv in enumerate(conversations, start=1):
            cid = store.create_conversation(channel="web", conversation_id=conv["id"])
            counts["conversations"] += 1
            waiting: int | None = None  # the customer message no agent reply has answered yet
            for turn in conv["turns"]:
                if turn["role"] == "customer":
                    result = assistant.manager.handle(turn["text"], conversation_id=cid, channel="web")
                    counts["customer_messages"] += 1
                    counts["bot_replies"] += result.action != "agent"
                    waiting = max(m["id"] for m in store.messages(cid) if m["role"] == "customer")
                elif turn["role"] == "agent":
                    reply, suggestion_id = turn["text"].strip(), None
                    drafts = suggest_replies(assistant, cid, waiting).suggestions if waiting is not None else []
                    if drafts:
                        ids = suggestions.log_shown(cid, waiting, agent, drafts)
                        closeness = [scorer.score(reply, d.text)["rougeL"].fmeasure for d in drafts]
                        best = max(range(len(drafts)), key=closeness.__getitem__)
                        if closeness[best] >= use_threshold:
                            suggestion_id = ids[best]
                            counts["started_from_a_suggestion"] += 1
                        else:
                            for sid in ids:
                                suggestions.discard(sid, agent)
                            counts["typed_after_discarding"] += 1
                    else:
                        counts["typed_without_suggestions"] += 1
                    handling.send(cid, agent, reply, suggestion_id=suggestion_id)
                    counts["agent_replies"] += 1
                    waiting = None
                # system turns (an agent's lookups) have no place in the store: left out
            if handling.state(cid).handling in ("open", "pending"):
                handling.resolve(cid, agent, [conv["intent"]] if conv.get("intent") else [])
            if n % 50 == 0:
                log(f"  {n}/{len(conversations)} conversations handled")
        counts["suggestions"] = store.suggestion_outcomes()
    counts["seconds"] = round(time.perf_counter() - started, 1)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget of each round")
    parser.add_argument("--first-share", type=float, default=0.25, help="share of the conversations round 1 sees")
    parser.add_argument("--eval-limit", type=int, default=100, help="held-out pairs both models are scored on")
    parser.add_argument(
        "--use-threshold",
        type=float,
        default=0.3,
        help="the agent starts from a suggestion whose ROUGE-L to the reply it means to send is at least this",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="a new directory for the data copy and workspace")
    args = parser.parse_args()

    started, load_at_start = time.perf_counter(), round(os.getloadavg()[0], 2)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="csbot-agent-edits-"))
    work.mkdir(parents=True, exist_ok=True)
    ws = work / "ws"
    data, live = split_data(work, args.first_share)
    first = data / "conversations.jsonl"

    log(f"building {ws} from {data} (the first {args.first_share:.0%} of the conversations)")
    csbot("build", "--data", str(data), "--workspace", str(ws))
    common = ["--workspace", str(ws), "--max-minutes", str(args.minutes), "--eval-limit", str(args.eval_limit)]
    log(f"round 1 on {first}")
    r1 = csbot("finetune", "round", "--transcripts", str(first), "--min-gain", "-1", *common)
    log(f"agents handle the other {len(live)} conversations with round 1's model in charge")
    work_done = agents_work(ws, live, args.use_threshold)
    log(f"round 2 on {first} and the store")
    r2 = csbot("finetune", "round", "--transcripts", str(first), *common)

    from bot.domain import Domain
    from bot.evaluation.heldout import retrieval_on_pairs
    from bot.settings import CsbotSettings

    pairs_dir = ws / "finetune" / "rounds" / r2["round"] / "pairs"
    manifest = json.loads((pairs_dir / "manifest.json").read_text(encoding="utf-8"))
    held_out = [
        json.loads(line) for line in (pairs_dir / "heldout.jsonl").read_text(encoding="utf-8").splitlines() if line
    ][: args.eval_limit]
    config = CsbotSettings.from_env(ws)
    retrieval = retrieval_on_pairs(held_out, dialogue=config.dialogue, domain=Domain.load(ws / "domain.json"))
    result = {
        "minutes_per_round": args.minutes,
        "round1_pairs": {"train": r1["pairs"]["train"], "target_kind": r1["pairs"]["target_kind"]},
        "round2_pairs": {
            "train": r2["pairs"]["train"],
            "target_kind": r2["pairs"]["target_kind"],
            "source": r2["pairs"]["source"],
            "heldout_target_kind": {
                k: sum(p["target_kind"] == k for p in held_out) for k in r2["pairs"]["target_kind"]
            },
        },
        "round2_excluded": {k: v for k, v in r2["excluded"].items() if v},
        "suggestions": manifest["suggestions"],
        "agents": work_done,
        "held_out_pairs": r2["held_out_pairs"],
        "held_out_store_pairs": r2["held_out"]["store_pairs"],
        "round1_model_rougeL_f1": r2["current"]["rougeL_f1"],
        "round2_model_rougeL_f1": r2["candidate"]["rougeL_f1"],
        "gain": round(r2["candidate"]["rougeL_f1"] - r2["current"]["rougeL_f1"], 4),
        "retrieval_rougeL_f1": retrieval["rougeL_f1"],
        "round1_fallback_rate": r2["current"]["fallback_rate"],
        "round2_fallback_rate": r2["candidate"]["fallback_rate"],
        "round1_train": r1["train"],
        "round2_train": r2["train"],
        "round2_promoted": r2["promoted"],
        "reason": r2["reason"],
        "minutes": round((time.perf_counter() - started) / 60, 1),
        "load_average_at_start_and_end": [load_at_start, round(os.getloadavg()[0], 2)],
        "workspace": str(ws),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
