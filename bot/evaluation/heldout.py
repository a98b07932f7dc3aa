"""How a composer does on held-out pairs (`finetune.pairs` JSON objects: context, evidence,
target): the figures the learning loop compares a candidate model with the composer in use.

    candidate = evaluate_on_pairs(model_dir, pairs, dialogue=config.dialogue)
    baseline = retrieval_on_pairs(pairs, dialogue=config.dialogue)

Each pair's context and evidence make the turn (`request_from_pair`); the final reply is
scored against the pair's target with ROUGE-L. Where the generated reply is not sent (the
guard rejects it, or there is no evidence), and for the retrieval baseline always, the final
reply is `bot.evaluation.fallback.fallback_reply`: the live retrieval composer's answer with
`dialogue`'s thresholds (default: `DialogueConfig()`'s). Placeholders are text on both sides,
as in `bot.evaluation.generation`.

Keys: rougeL_f1, fallback_rate, hallucinated_entity_rate, grounded_share, n.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bot.composers.generative import GPT2Composer
from bot.composers.retrieval import RetrievalComposer
from bot.contracts import ComposeRequest, Slots
from bot.domain import Domain
from bot.errors import CsbotError
from bot.evaluation.fallback import fallback_reply
from bot.settings import DialogueConfig
from finetune.decoder import GeneratorConfig
from finetune.guard import GroundingGuard, clean_generated_text, overlap
from retrieval.progress import Progress, no_progress
from retrieval.types import Hit, Unit


def request_from_pair(pair: dict[str, Any]) -> ComposeRequest:
    """The turn a pair stands for: its last context turn is the customer's text, the turns
    before it the history (agent turns as the bot's), its evidence the hits (in order, with
    their retrieval scores)."""
    *history, last = pair["context"]
    hits = tuple(
        Hit(Unit(id=e.get("id", f"ev{i}"), kind="qa", text="", reply=e["text"]), float(e.get("score", 1.0)))
        for i, e in enumerate(pair.get("evidence", []))
    )
    return ComposeRequest(
        text=last["text"],
        intent="",
        hits=hits,
        slots=Slots({}),
        history=tuple(("bot" if t["role"] == "agent" else t["role"], t["text"]) for t in history),
    )


def retrieval_on_pairs(
    pairs: list[dict[str, Any]], *, dialogue: DialogueConfig | None = None, domain: Domain | None = None
) -> dict[str, Any]:
    """The same figures for the retrieval composer alone: its reply is the final one."""
    from rouge_score import rouge_scorer

    if not pairs:
        raise CsbotError("no validation pairs to evaluate on; build pairs with a validation share")
    dialogue, domain = dialogue or DialogueConfig(), domain or Domain()
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    scores = [
        scorer.score(p["target"], fallback_reply(request_from_pair(p), dialogue, domain))["rougeL"].fmeasure
        for p in pairs
    ]
    return {
        "rougeL_f1": round(statistics.fmean(scores), 4),
        "fallback_rate": 1.0,
        "hallucinated_entity_rate": 0.0,
        "grounded_share": 1.0,
        "n": len(pairs),
    }


def evaluate_on_pairs(
    model_dir: Path,
    pairs: list[dict[str, Any]],
    *,
    batch_size: int = 8,
    dialogue: DialogueConfig | None = None,
    domain: Domain | None = None,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """How the generator in `model_dir` does: each pair's prompt is decoded (greedy, the
    prompts of `batch_size` pairs in one batch), the guard decides, and the final reply (the
    generated one, or the fallback's) is scored against the target."""
    from rouge_score import rouge_scorer

    if not pairs:
        raise CsbotError("no validation pairs to evaluate on; build pairs with a validation share")
    dialogue, domain = dialogue or DialogueConfig(), domain or Domain()
    composer = GPT2Composer(
        model_dir,
        GeneratorConfig(decoding="greedy"),
        fallback=RetrievalComposer.from_config(dialogue, domain),
        company_facts=[],
        slot_questions=domain.slot_questions,
    ).load()
    items = []
    for p in pairs:
        request = request_from_pair(p)
        used = composer.evidence_hits(request)
        items.append(
            (
                p,
                request,
                [t["text"] for t in p["context"]],
                [h.unit.evidence_text for h in used],
                composer.build_prompt(request, used) if used else None,
            )
        )
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    entity_guard = GroundingGuard([], 0.0)
    scores, grounded = [], []
    fallbacks = hallucinated = 0
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        progress(f"{model_dir}: pairs {start + 1}-{start + len(chunk)} of {len(items)}")
        prompts = [prompt for *_, prompt in chunk if prompt is not None]
        generated = iter(composer.generator.generate(prompts) if prompts else [])
        for pair, request, conversation, evidence, prompt in chunk:
            final = None
            if prompt is not None:
                g = next(generated)
                text = clean_generated_text(g.text, g.ended)
                hallucinated += entity_guard.check(text, conversation=conversation, evidence=evidence).rule == "entity"
                grounded.append(overlap(text, [*conversation, *evidence]))
                if composer.guard.check(text, conversation=conversation, evidence=evidence).ok:
                    final = text
            if final is None:
                fallbacks += 1
                final = fallback_reply(request, dialogue, domain)
            scores.append(scorer.score(pair["target"], final)["rougeL"].fmeasure)
    n = len(items)
    return {
        "rougeL_f1": round(statistics.fmean(scores), 4),
        "fallback_rate": round(fallbacks / n, 4),
        "hallucinated_entity_rate": round(hallucinated / len(grounded), 4) if grounded else 0.0,
        "grounded_share": round(statistics.fmean(grounded), 4) if grounded else 0.0,
        "n": n,
    }
