"""How a composer does on held-out pairs (`finetune.pairs` JSON objects: context, evidence,
target): the figures the learning loop compares a candidate model with the composer in use.

    candidate = evaluate_on_pairs(model_dir, pairs, generator=config.generator, dialogue=config.dialogue)
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
from collections.abc import Sequence
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
    generator: GeneratorConfig | None = None,
    company_facts: Sequence[str] = (),
    dialogue: DialogueConfig | None = None,
    domain: Domain | None = None,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """How the generator in `model_dir` does as the live bot uses it: each pair's turn goes
    through `GPT2Composer.compose_with_candidates` with `generator`'s decoding (default: the
    shipped one, several candidates and the consensus choice), the guard decides, and the
    reply sent (the generated one, or the fallback's) is scored against the target.

    `hallucinated_entity_rate` is counted on every decoded candidate, before selection and
    before the guard; `grounded_share` on the chosen candidate."""
    from rouge_score import rouge_scorer

    if not pairs:
        raise CsbotError("no validation pairs to evaluate on; build pairs with a validation share")
    dialogue, domain = dialogue or DialogueConfig(), domain or Domain()
    composer = GPT2Composer(
        model_dir,
        generator or GeneratorConfig(),
        fallback=RetrievalComposer.from_config(dialogue, domain),
        company_facts=list(company_facts),
        slot_questions=domain.slot_questions,
        slot_mentions=domain.slot_mentions,
    ).load()
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    entity_guard = GroundingGuard(list(company_facts), 0.0)
    scores, grounded = [], []
    fallbacks = hallucinated = decoded = 0
    for i, pair in enumerate(pairs, 1):
        if i % 10 == 1:
            progress(f"{model_dir}: pairs {i}-{min(i + 9, len(pairs))} of {len(pairs)}")
        request = request_from_pair(pair)
        # the candidates and the choice of the live composer; placeholders stay text on
        # both sides (see bot.evaluation.fallback), so its slot step is left out
        turn = composer.compose_with_candidates(request)
        conversation = [t["text"] for t in pair["context"]]
        evidence = [h.unit.evidence_text for h in composer.evidence_hits(request)]
        for g in turn.candidates:
            text = clean_generated_text(g.text, g.ended)
            hallucinated += entity_guard.check(text, conversation=conversation, evidence=evidence).rule == "entity"
        decoded += len(turn.candidates)
        final = None
        if turn.generated is not None:
            text = clean_generated_text(turn.generated.text, turn.generated.ended)
            grounded.append(overlap(text, [*conversation, *evidence]))
            if composer.guard.check(text, conversation=conversation, evidence=evidence).ok:
                final = text
        if final is None:
            fallbacks += 1
            final = fallback_reply(request, dialogue, domain)
        scores.append(scorer.score(pair["target"], final)["rougeL"].fmeasure)
    n = len(pairs)
    return {
        "rougeL_f1": round(statistics.fmean(scores), 4),
        "fallback_rate": round(fallbacks / n, 4),
        "hallucinated_entity_rate": round(hallucinated / decoded, 4) if decoded else 0.0,
        "grounded_share": round(statistics.fmean(grounded), 4) if grounded else 0.0,
        "n": n,
    }
