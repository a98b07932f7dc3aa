"""`csbot eval generation`: what the GPT-2 composer writes on a Bitext-style test set.

CORPUS's rows become instruction -> response units (through
`retrieval.importers.load_import(path, "bitext")`, as `csbot eval retrieval` does), embedded
with the real MiniLM in one batched encode and indexed with `VectorIndex.build`. For each of
the first `limit` rows of TEST, the masked question retrieves the top k units
(`index.search`), a `ComposeRequest` (the question, the row's intent, no history, the hits,
no slots) goes to `GPT2Composer.compose_with_candidates` (the live path: evidence selection,
prompt, generation, candidate choice), and:

- the *generated* reply is the model's text before the guard (whitespace normalised, cut
  back to its last sentence when it hit max_new_tokens, as the composer does);
- the *final* reply is the generated one when the composer's own `GroundingGuard` lets it
  through, else the fallback's: `bot.evaluation.fallback.fallback_reply`, the live
  `RetrievalComposer`'s answer (placeholders kept as text);
- placeholders are text on both sides: Bitext references contain `{{Order Number}}`,
  `{{Online Company Portal Info}}` ..., and so do the units; nothing is filled (there are no
  slots), and a placeholder is neither a reason to fall back nor an entity. rouge-score's
  tokenizer lowercases and keeps letters and digits only, so `{{Order Number}}` is scored as
  the words "order number" in reply and reference alike.

Keys: `rougeL_f1` (final replies vs TEST's reference responses, rouge-score's ROUGE-L
F-measure, mean), `retrieval_only_rougeL_f1` (the top hit's response vs the reference, same
rows), `hallucinated_entity_rate` (share of generated replies naming an entity, per
`finetune.guard.extract_entities`, that is in neither the question nor the evidence: the guard's
own entity check with no company facts), `grounded_share` (mean `finetune.guard.overlap` of the
generated replies with the question and the evidence), `fallback_rate` (share of rows whose
final reply is the fallback's: guard rejected, no evidence, or generation failed),
`tokens_per_s` (generated tokens / generation seconds, from the chosen candidate's
`finetune.decoder.Generated` timings), `n`.
`live_fallback_rate` is the share the live composer itself fell back on, which also rejects
replies with placeholders that no slot fills (with no slots, nearly every Bitext reply).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any, Literal

from bot.composers.generative import GPT2Composer
from bot.composers.retrieval import RetrievalComposer
from bot.contracts import ComposeRequest, Slots
from bot.domain import Domain
from bot.errors import CsbotError
from bot.evaluation.common import load_embedder, machine_info
from bot.evaluation.fallback import fallback_reply
from bot.settings import CsbotSettings
from finetune.decoder import GeneratorConfig
from finetune.guard import GroundingGuard, clean_generated_text, overlap
from retrieval.entities import mask_entities
from retrieval.importers import load_import
from retrieval.index import VectorIndex
from retrieval.progress import Progress, no_progress

# what `finetune.decoder.GeneratorConfig.decoding` takes
Decoding = Literal["greedy", "beam", "top_p"]


def evaluate_generation(
    config: CsbotSettings,
    model_dir: Path,
    corpus_csv: Path,
    test_csv: Path,
    *,
    limit: int | None = None,
    k: int | None = None,
    max_new_tokens: int | None = None,
    min_overlap: float | None = None,
    decoding: Decoding = "greedy",
    repetition_penalty: float = 1.0,
    seed: int = 0,
    candidates: int = 3,
    int8: bool = True,
    report_dir: Path | None = None,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    from rouge_score import rouge_scorer
    from tqdm import tqdm

    if limit is not None and limit < 1:
        raise CsbotError(f"--limit must be at least 1; got {limit}")
    k = k or config.dialogue.retrieval_k
    domain = Domain()
    composer = GPT2Composer(
        model_dir,
        GeneratorConfig(
            max_new_tokens=max_new_tokens,
            min_overlap=min_overlap,
            decoding=decoding,
            repetition_penalty=repetition_penalty,
            seed=seed,
            candidates=candidates,
            int8=int8,
        ),
        fallback=RetrievalComposer.from_config(config.dialogue, domain),
        company_facts=[],
        slot_questions=domain.slot_questions,
    )
    composer.load()  # a bad model directory fails before the minute of embedding
    max_new_tokens, min_overlap = composer.config.max_new_tokens, composer.config.min_overlap

    corpus = load_import(corpus_csv, "bitext")
    rows = [(u.text, u.intent or "", u.reply) for u in load_import(test_csv, "bitext").units]
    if limit is not None:
        rows = rows[:limit]
    if not corpus.units or not rows:
        raise CsbotError(
            f"nothing to evaluate: {len(corpus.units)} corpus rows in {corpus_csv}, {len(rows)} test rows in {test_csv}"
        )
    embedder = load_embedder(config)
    progress(f"embedding {len(corpus.units)} corpus units and {len(rows)} test questions")
    vectors = embedder.encode([u.text for u in corpus.units], progress=True)
    index = VectorIndex.build(corpus.units, vectors, embedder_id=embedder.model_id, config=config.index)
    queries = embedder.encode([mask_entities(q)[0] for q, _, _ in rows])
    if composer.config.torch_threads:  # the embedder set its own thread count; generate as the live bot does
        import torch

        torch.set_num_threads(composer.config.torch_threads)

    entity_guard = GroundingGuard([], 0.0)
    scorer = rouge_scorer.RougeScorer(["rougeL"])

    progress(f"generating {len(rows)} replies")
    final_scores, retrieval_scores, grounded, samples = [], [], [], []
    hallucinated = generated_n = fallbacks = live_fallbacks = new_tokens = 0
    gen_seconds = 0.0
    for (question, intent, reference), q in tqdm(
        list(zip(rows, queries, strict=True)), desc="eval generation", file=sys.stderr, unit="row"
    ):
        hits = tuple(index.search(q, k=k))
        request = ComposeRequest(text=question, intent=intent, history=(), hits=hits, slots=Slots({}))
        turn = composer.compose_with_candidates(request)
        live_fallbacks += turn.reply.composer != composer.name
        evidence = [h.unit.evidence_text for h in composer.evidence_hits(request)]
        generated = verdict = None
        chosen = turn.generated
        if chosen is not None:
            generated_n += 1
            new_tokens += chosen.new_tokens
            gen_seconds += chosen.total_ms / 1000
            generated = clean_generated_text(chosen.text, chosen.ended)
            hallucinated += entity_guard.check(generated, conversation=[question], evidence=evidence).rule == "entity"
            grounded.append(overlap(generated, [question, *evidence]))
            verdict = composer.guard.check(generated, conversation=[question], evidence=evidence)
        sent = verdict is not None and verdict.ok
        if generated is not None and sent:
            final = generated
        else:
            fallbacks += 1
            final = fallback_reply(request, config.dialogue, domain)
        top = hits[0].unit.evidence_text if hits else ""
        final_scores.append(scorer.score(reference, final)["rougeL"].fmeasure)
        retrieval_scores.append(scorer.score(reference, top)["rougeL"].fmeasure)
        if report_dir is not None:
            samples.append(
                {
                    "question": question,
                    "intent": intent,
                    "reference": reference,
                    "generated": generated,
                    "final": final,
                    "fallback": not sent,
                    "guard": None if verdict is None else verdict.reason,
                    "live_composer": turn.reply.composer,
                    "top_retrieved": top,
                    "retrieved": [h.unit.evidence_text for h in hits[:3]],
                    "rougeL_f1": round(final_scores[-1], 4),
                }
            )
    n = len(rows)
    result: dict[str, Any] = {
        "rougeL_f1": round(statistics.fmean(final_scores), 4),
        "retrieval_only_rougeL_f1": round(statistics.fmean(retrieval_scores), 4),
        "hallucinated_entity_rate": round(hallucinated / generated_n, 4) if generated_n else 0.0,
        "grounded_share": round(statistics.fmean(grounded), 4) if grounded else 0.0,
        "fallback_rate": round(fallbacks / n, 4),
        "live_fallback_rate": round(live_fallbacks / n, 4),
        "tokens_per_s": round(new_tokens / gen_seconds, 1) if gen_seconds > 0 else 0.0,
        "n": n,
        "n_generated": generated_n,
        "n_corpus": len(corpus.units),
        "k": k,
        "max_new_tokens": max_new_tokens,
        "min_overlap": min_overlap,
        "decoding": decoding,
        "repetition_penalty": repetition_penalty,
        "seed": seed,
        "candidates": composer.config.candidates if composer.generator.selects_candidates else 1,
        "int8": composer.generator.int8,
        "model": str(model_dir),
        "machine": machine_info(),
    }
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "report.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        with (report_dir / "samples.jsonl").open("w", encoding="utf-8") as f:
            for s in samples:
                f.write(json.dumps(s, ensure_ascii=False) + "\n")
    return result
