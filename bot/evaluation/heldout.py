"""How a composer does on held-out pairs (`finetune.pairs` JSON objects: context, evidence,
target): the figures the learning loop compares a candidate model with the composer in use.

    candidate = evaluate_on_pairs(model_dir, pairs, AsLive(config.generator, dialogue=config.dialogue))
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

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.composers.generative import GPT2Composer
from bot.composers.retrieval import RetrievalComposer
from bot.contracts import ComposeRequest, Slots
from bot.domain import Domain
from bot.errors import CsbotError
from bot.evaluation.bootstrap import paired_bootstrap_ci
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


@dataclass(frozen=True)
class AsLive:
    """How the live bot composes, so that a model is scored as it would run: its generator
    settings (default: the shipped decoding), the company's facts, the dialogue thresholds
    and the domain (the fallback's and the slots')."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    company_facts: Sequence[str] = ()
    dialogue: DialogueConfig = field(default_factory=DialogueConfig)
    domain: Domain = field(default_factory=Domain)

    def composer(self, model_dir: Path, generator: GeneratorConfig | None = None) -> GPT2Composer:
        """The live GPT-2 composer for `model_dir` (with `generator` instead, when given), loaded."""
        return GPT2Composer(
            model_dir,
            generator or self.generator,
            fallback=RetrievalComposer.from_config(self.dialogue, self.domain),
            company_facts=list(self.company_facts),
            slot_questions=self.domain.slot_questions,
            slot_mentions=self.domain.slot_mentions,
        ).load()


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
    live: AsLive | None = None,
    *,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """How the generator in `model_dir` does as the live bot uses it (`live`, default the
    shipped settings): each pair's turn goes through `GPT2Composer.compose_with_candidates`
    with the live decoding (several candidates and the consensus choice), the guard decides,
    and the reply sent (the generated one, or the fallback's) is scored against the target.

    `hallucinated_entity_rate` is counted on every decoded candidate, before selection and
    before the guard; `grounded_share` on the chosen candidate."""
    from rouge_score import rouge_scorer

    if not pairs:
        raise CsbotError("no validation pairs to evaluate on; build pairs with a validation share")
    live = live or AsLive()
    dialogue, domain = live.dialogue, live.domain
    composer = live.composer(model_dir)
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    entity_guard = GroundingGuard(list(live.company_facts), 0.0)
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
            if (
                composer.guard.check(text, conversation=conversation, evidence=evidence).ok
                and composer.disagreement(request, text) is None
            ):
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


# the agreement floors a learning round chooses among (`GeneratorConfig.min_agreement`); 0: off
AGREEMENT_FLOORS: tuple[float, ...] = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def choose_min_agreement(
    model_dir: Path,
    pairs: list[dict[str, Any]],
    live: AsLive | None = None,
    *,
    floors: Sequence[float] = AGREEMENT_FLOORS,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """The agreement floor (`GeneratorConfig.min_agreement`) whose sent replies score best on
    `pairs` (a round's validation pairs, never its held-out ones): each pair is decoded once
    as the live bot does with no floor; at floor f its GPT-2 reply is sent where the guard
    passed it and its agreement (`GPT2Composer.agreement`) is at least f, else the retrieval
    composer's. The choice is `pick_min_agreement`'s (ties and noise go to the lowest floor).

    Returns `pick_min_agreement`'s answer and "n", the pairs."""
    from rouge_score import rouge_scorer

    if not pairs:
        raise CsbotError("no validation pairs to choose an agreement floor on; build pairs with a validation share")
    if not floors or any(not 0.0 <= f <= 1.0 for f in floors):
        raise ValueError(f"floors must be ROUGE-L F1 values between 0 and 1; got {list(floors)}")
    live = live or AsLive()
    dialogue, domain = live.dialogue, live.domain
    composer = live.composer(model_dir, dataclasses.replace(live.generator, min_agreement=0.0))
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    rows: list[tuple[float | None, float, float]] = []  # (GPT-2's score if sendable, retrieval's, agreement)
    for i, pair in enumerate(pairs, 1):
        if i % 10 == 1:
            progress(f"{model_dir}: choosing the agreement floor, pairs {i}-{min(i + 9, len(pairs))} of {len(pairs)}")
        request = request_from_pair(pair)
        turn = composer.compose_with_candidates(request)
        retrieval = scorer.score(pair["target"], fallback_reply(request, dialogue, domain))["rougeL"].fmeasure
        gpt2, agreement = None, 0.0
        if turn.generated is not None:
            text = clean_generated_text(turn.generated.text, turn.generated.ended)
            conversation = [t["text"] for t in pair["context"]]
            evidence = [h.unit.evidence_text for h in composer.evidence_hits(request)]
            if composer.guard.check(text, conversation=conversation, evidence=evidence).ok:
                gpt2 = scorer.score(pair["target"], text)["rougeL"].fmeasure
                agreement = composer.agreement(request, text)
        rows.append((gpt2, retrieval, agreement))

    return {**pick_min_agreement(rows, floors), "n": len(rows)}


def pick_min_agreement(
    rows: Sequence[tuple[float | None, float, float]], floors: Sequence[float] = AGREEMENT_FLOORS
) -> dict[str, Any]:
    """Of `floors`, the one whose sent replies score best over `rows`, each (GPT-2's ROUGE-L
    where its reply may be sent, else None; the retrieval composer's ROUGE-L; GPT-2's
    agreement): at floor f a row scores GPT-2's figure where it has one and its agreement is
    at least f, else retrieval's. Ties go to the lower floor. A floor above the lowest one is
    taken only where its gain over the lowest has a paired bootstrap 95% interval above
    zero: a floor that wins by noise would hand replies back to retrieval for nothing.

    Returns {"min_agreement": the floor, "scores": {floor: mean}, "gpt2_share": {floor:
    share}, "gain_ci": the best floor's interval over the lowest}."""
    if not rows:
        raise ValueError("no rows to choose an agreement floor on")
    per_floor: dict[float, list[float]] = {}
    scores, shares = {}, {}
    for floor in floors:
        sent = [gpt2 is not None and agreement >= floor for gpt2, _, agreement in rows]
        per_floor[floor] = [g if s and g is not None else r for (g, r, _), s in zip(rows, sent, strict=True)]
        scores[floor] = round(statistics.fmean(per_floor[floor]), 4)
        shares[floor] = round(sum(sent) / len(rows), 4)
    lowest = min(floors)
    best = max(sorted(floors), key=lambda f: (scores[f], -f))
    gain_ci = paired_bootstrap_ci(per_floor[best], per_floor[lowest])
    if gain_ci[0] <= 0:
        best = lowest
    return {"min_agreement": best, "scores": scores, "gpt2_share": shares, "gain_ci": list(gain_ci)}
