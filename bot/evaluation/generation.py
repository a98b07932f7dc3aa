"""`csbot eval generation`: what the GPT-2 composer sends on a Bitext-style test set, against
the retrieval baselines on the same rows and the same retrieved hits.

The turn is built as the live assistant builds it, with nothing from the test file but the
question: CORPUS's rows become instruction -> response units (through
`retrieval.importers.load_import(path, "bitext")`), embedded with the real MiniLM and
indexed with `VectorIndex.build`; an `EmbeddingIntentClassifier` is trained on the same
rows (as `csbot build` trains the workspace's); for each test row the masked question is
classified, and `bot.dialogue.retrieve_for_intent` fetches the predicted intent's units
first, then any (the live retriever's ranking). A `ComposeRequest` with the predicted intent
and those hits goes to `GPT2Composer.compose_with_candidates` (evidence selection, prompt,
generation of every candidate, choice, guard).

TEST is a Bitext CSV, or a training run's pairs directory (`runs/X/pairs`): then its
`valid.jsonl` rows are scored (the development split: never trained on), and the corpus
rows they came from are left out of the index and the classifier, so that no question finds
its own answer. Choose models and decoding on that split; score the test CSV once per
published figure.

Per row:
- the *generated* reply is the chosen candidate's text before the guard (whitespace
  normalised, cut back to its last sentence when it hit max_new_tokens, as the composer does);
- the *final* (sent) reply is the generated one when the composer's `GroundingGuard` lets it
  through (and, with an agreement floor, `GPT2Composer.disagreement` finds none), else the
  fallback's: `bot.evaluation.fallback.fallback_reply`, the live
  `RetrievalComposer`'s answer to the same request (placeholders kept as text);
- placeholders are text on every side: nothing is filled (there are no slots). rouge-score's
  tokenizer lowercases and keeps letters and digits only, so `{{Order Number}}` is scored as
  the words "order number" in reply and reference alike.

Keys (ROUGE-L is rouge-score's F-measure against TEST's reference, mean over rows):
- `rougeL_f1`: the sent replies.
- `retrieval_only_rougeL_f1`: the nearest corpus answer to the question (plain similarity
  search, no intent), replayed.
- `retrieval_vote_rougeL_f1`: of the top `consensus_k` usable hits the composer sees, the
  answer that agrees most (ROUGE-L summed) with the others: the strongest simple baseline.
- `intent_first_retrieval_rougeL_f1`: what the live retrieval composer answers to the same
  request (the predicted intent's units first, its thresholds, its unsure message).
- `gain_ci`: for each baseline, the mean gain of the sent replies and its paired bootstrap
  95% interval (`bot.evaluation.bootstrap`).
- `candidate_invented_rate`: share of every decoded candidate (before selection and before
  the guard) naming a value in neither the question nor the evidence, by the evaluation's own
  extractor (`bot.evaluation.invented`, not the guard's); `guard_caught_share`: of those
  candidates, the share the guard rejected; `invented_rate`: share of sent replies naming
  such a value (same extractor); `invented_by_kind`: the candidates' invented values by kind.
- `hallucinated_entity_rate`: the same question asked of the chosen generated replies with
  the guard's own entity check (no company facts), kept for comparison with older reports.
- `grounded_share`: mean `finetune.guard.overlap` of the generated replies with the question
  and the evidence.
- `fallback_rate`: share of rows whose sent reply is the fallback's (guard rejected, no
  evidence, or generation failed); `live_fallback_rate`: the share the live composer itself
  fell back on, which also rejects replies with placeholders that no slot fills (with no
  slots, most Bitext replies).
- `intent_accuracy` and `oos_flagged_rate`: the classifier's predictions against the test
  file's intents (reported, never used by the turn).
- `tokens_per_s` (generated tokens / generation seconds, from the chosen candidate's
  `finetune.decoder.Generated` timings), `n`, and the settings that made the figure.

`report_dir` gets report.json and samples.jsonl: every row's question, reference,
candidates, sent reply and baseline answers, so that each figure can be recomputed, and the
top `REFERENCE_POOL` usable retrieved answers (`retrieved_pool`), so that selection rules
and votes over more of them can be studied offline (`bench/bench_candidate_selection.py`).
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bot.composers.generative import GeneratedTurn, GPT2Composer
from bot.composers.retrieval import RetrievalComposer
from bot.contracts import ComposedReply, ComposeRequest, Slots
from bot.dialogue import retrieve_for_intent
from bot.domain import Domain
from bot.errors import CsbotError
from bot.evaluation.bootstrap import paired_bootstrap_ci
from bot.evaluation.common import load_embedder, machine_info
from bot.evaluation.fallback import fallback_reply
from bot.evaluation.invented import invented_values
from bot.settings import CsbotSettings
from finetune.decoder import GeneratorConfig, select_candidate
from finetune.guard import GroundingGuard, clean_generated_text, overlap
from retrieval.entities import mask_entities
from retrieval.importers import load_import
from retrieval.index import VectorIndex
from retrieval.progress import Progress, no_progress
from retrieval.types import Unit

# what `finetune.decoder.GeneratorConfig.decoding` takes
Decoding = Literal["greedy", "beam", "top_p"]


@dataclass(frozen=True)
class TestRow:
    """One question to answer, its reference reply, its labelled intent (reported, never
    given to the turn), and the corpus row it came from (left out of retrieval), if any."""

    question: str
    reference: str
    intent: str
    source_id: str | None = None


def load_test_rows(test: Path, corpus_units: list[Unit]) -> list[TestRow]:
    """TEST's rows: a Bitext CSV, or a pairs directory's validation rows (see the module docstring)."""
    if not test.is_dir():
        return [TestRow(u.text, u.reply, u.intent or "") for u in load_import(test, "bitext").units]
    path = test / "valid.jsonl"
    if not path.is_file():
        raise CsbotError(f"{test} is a directory without valid.jsonl: pass a Bitext CSV or a run's pairs/ directory")
    intent_of = {u.id: u.intent or "" for u in corpus_units}
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        pair = json.loads(line)
        customer = [t["text"] for t in pair.get("context", []) if t.get("role") == "customer"]
        source = pair.get("conversation_id")
        if not customer or not isinstance(pair.get("target"), str) or source not in intent_of:
            raise CsbotError(
                f"{path}:{n} is not a validation pair of this corpus (it needs a customer turn, a target "
                "and a conversation_id naming a corpus row): pass the pairs the run built from --corpus"
            )
        rows.append(TestRow(customer[-1], pair["target"], intent_of[source], source))
    return rows


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
    temperature: float = 0.7,
    top_p: float = 0.9,
    candidates: int = 5,
    int8: bool = True,
    streamed: bool = False,
    evidence_order: Literal["retrieval", "consensus"] | None = None,  # None: the model's own
    copy_bias: float = 0.0,
    copy_span: int = 2,
    candidate_evidence: Literal["same", "votes"] | None = None,  # None: by the evidence order
    consensus_k: int | None = None,  # None: the model's own
    check_claims: bool = True,  # the guard's claim check (GeneratorConfig.check_claims)
    concurrent: int = 1,
    report_dir: Path | None = None,
    progress: Progress = no_progress,
) -> dict[str, Any]:
    """`streamed`: score the reply the streaming path sends (`GPT2Composer.compose_stream`:
    the candidate chosen on its first sentence, released sentence by sentence, ended before a
    sentence the guard refuses) instead of the whole-reply path's.

    `concurrent`: compose that many rows at a time, from as many threads, their candidates
    decoded together on one decoding thread (`bot.server.batching.ContinuousDecoding`, as
    `csbot serve` does with batching on), so what sharing the passes with other turns does to
    the replies (int8 activations are quantized over every row of a pass) is measured on the
    same rows as the default, one row at a time."""
    from rouge_score import rouge_scorer
    from tqdm import tqdm

    from bot.intents import EmbeddingIntentClassifier, IntentClassifierConfig

    if limit is not None and limit < 1:
        raise CsbotError(f"--limit must be at least 1; got {limit}")
    if concurrent < 1 or (concurrent > 1 and streamed):
        raise CsbotError(f"--concurrent must be at least 1, and 1 with --streamed; got {concurrent}")
    domain = Domain()
    composer = GPT2Composer(
        model_dir,
        GeneratorConfig(
            max_new_tokens=max_new_tokens,
            min_overlap=min_overlap,
            decoding=decoding,
            repetition_penalty=repetition_penalty,
            seed=seed,
            temperature=temperature,
            top_p=top_p,
            candidates=candidates,
            int8=int8,
            evidence_order=evidence_order,
            copy_bias=copy_bias,
            copy_span=copy_span,
            candidate_evidence=candidate_evidence,
            consensus_k=consensus_k,
            check_claims=check_claims,
        ),
        fallback=RetrievalComposer.from_config(config.dialogue, domain),
        company_facts=[],
        slot_questions=domain.slot_questions,
    )
    composer.load()  # a bad model directory fails before the minute of embedding
    max_new_tokens, min_overlap = composer.config.max_new_tokens, composer.config.min_overlap
    # the composer compares candidates with its top `consensus_k` retrieved answers: it gets
    # that many, as the dialogue manager gives it (`Composer.hits_wanted`)
    k = max(k or config.dialogue.retrieval_k, composer.hits_wanted)

    all_units = load_import(corpus_csv, "bitext").units
    rows = load_test_rows(test_csv, all_units)
    if limit is not None:
        rows = rows[:limit]
    held_out = {r.source_id for r in rows if r.source_id}
    units = [u for u in all_units if u.id not in held_out]
    if not units or not rows:
        raise CsbotError(
            f"nothing to evaluate: {len(units)} corpus rows in {corpus_csv}, {len(rows)} test rows in {test_csv}"
        )
    embedder = load_embedder(config)
    progress(f"embedding {len(units)} corpus units and {len(rows)} test questions")
    vectors = embedder.encode([u.text for u in units], progress=True)
    index = VectorIndex.build(units, vectors, embedder_id=embedder.model_id, config=config.index)
    masked = [mask_entities(r.question)[0] for r in rows]
    queries = embedder.encode(masked)
    progress(f"training the intent classifier on {len(units)} corpus rows")
    classifier = EmbeddingIntentClassifier.train(
        vectors,
        [u.text for u in units],
        [u.intent or "" for u in units],
        IntentClassifierConfig(**config.classifier.overrides),
        embedder_id=embedder.model_id,
    )
    predictions = classifier.predict(queries, masked)
    if composer.config.torch_threads:  # the embedder set its own thread count; generate as the live bot does
        import torch

        torch.set_num_threads(composer.config.torch_threads)

    entity_guard = GroundingGuard([], 0.0)
    scorer = rouge_scorer.RougeScorer(["rougeL"])

    def rouge(reference: str, text: str) -> float:
        return scorer.score(reference, text)["rougeL"].fmeasure

    progress(f"generating {len(rows)} replies" + (f", {concurrent} at a time" if concurrent > 1 else ""))
    requests = [
        ComposeRequest(
            text=row.question,
            intent=predicted.intent,
            history=(),
            hits=tuple(retrieve_for_intent(index, q, predicted.intent, k)),
            slots=Slots({}),
        )
        for row, q, predicted in zip(rows, queries, predictions, strict=True)
    ]
    composed = _compose_concurrently(composer, requests, concurrent) if concurrent > 1 else None
    scores: dict[str, list[float]] = {name: [] for name in ("sent", *BASELINES)}
    grounded: list[float] = []
    samples: list[dict[str, Any]] = []
    invented_kinds: Counter[str] = Counter()
    hallucinated = generated_n = fallbacks = live_fallbacks = new_tokens = 0
    n_candidates = candidates_invented = caught = sent_invented = 0
    gen_seconds = 0.0
    for i, (row, q, predicted, request) in enumerate(
        tqdm(
            list(zip(rows, queries, predictions, requests, strict=True)),
            desc="eval generation",
            file=sys.stderr,
            unit="row",
        )
    ):
        hits = request.hits
        evidence = [h.unit.evidence_text for h in composer.evidence_hits(request)]
        sources = [row.question, *evidence]
        if streamed:
            turn = _streamed_turn(composer, request, row.question, evidence)
        else:
            turn = composed[i] if composed is not None else composer.compose_with_candidates(request)
            # what the candidates read (with candidate_evidence "votes", each its own answer)
            evidence = list(turn.evidence) or evidence
            sources = [row.question, *evidence]
        live_fallbacks += turn.reply.composer != composer.name
        candidate_rows = []
        for g in turn.candidates:
            text = clean_generated_text(g.text, g.ended)
            invented = invented_values(text, sources)
            passed = composer.guard.check(text, conversation=[row.question], evidence=evidence).ok
            n_candidates += 1
            candidates_invented += bool(invented)
            caught += bool(invented) and not passed
            invented_kinds.update({v.kind for v in invented})
            candidate_rows.append({"text": text, "invented": [v.text for v in invented], "guard_passed": passed})
        generated = verdict = None
        chosen = turn.generated
        if streamed and turn.reply.composer == composer.name:
            generated = turn.reply.text  # what streamed: already cleaned and judged
        elif chosen is not None:
            new_tokens += chosen.new_tokens
            gen_seconds += chosen.total_ms / 1000
            generated = clean_generated_text(chosen.text, chosen.ended)
        if generated is not None:
            generated_n += 1
            hallucinated += (
                entity_guard.check(generated, conversation=[row.question], evidence=evidence).rule == "entity"
            )
            grounded.append(overlap(generated, sources))
            verdict = composer.guard.check(generated, conversation=[row.question], evidence=evidence)
        sent = (
            generated is not None
            and verdict is not None
            and verdict.ok
            and composer.disagreement(request, generated) is None
        )
        fallback = fallback_reply(request, config.dialogue, domain)
        final = generated if (generated is not None and sent) else fallback
        fallbacks += final is fallback
        final_invented = invented_values(final, [row.question, *(h.unit.evidence_text for h in hits)])
        sent_invented += bool(final_invented)
        nearest = index.search(q, k=1)
        references = composer.consensus_references(request)
        pool_request = ComposeRequest(
            text=row.question,
            intent=predicted.intent,
            history=(),
            hits=tuple(retrieve_for_intent(index, q, predicted.intent, REFERENCE_POOL)),
            slots=Slots({}),
        )
        baselines = {
            "retrieval_only": nearest[0].unit.evidence_text if nearest else "",
            "retrieval_vote": retrieval_vote(references),
            "intent_first_retrieval": fallback,
        }
        scores["sent"].append(rouge(row.reference, final))
        for name, text in baselines.items():
            scores[name].append(rouge(row.reference, text))
        if report_dir is not None:
            samples.append(
                {
                    "question": row.question,
                    "intent": row.intent,
                    "predicted_intent": predicted.intent,
                    "reference": row.reference,
                    "candidates": candidate_rows,
                    "generated": generated,
                    "final": final,
                    "fallback": final is fallback,
                    "guard": None if verdict is None else verdict.reason,
                    "final_invented": [v.text for v in final_invented],
                    "live_composer": turn.reply.composer,
                    "live_note": turn.reply.note,
                    "baselines": baselines,
                    "evidence": evidence,
                    # what the candidate selection compared candidates with: lets a selection
                    # rule be studied offline on these samples
                    "consensus_references": references,
                    # a deeper list of the same ranking, for selection rules and votes that
                    # compare with more retrieved answers than the shipped ones
                    "retrieved_pool": composer.consensus_references(pool_request, limit=REFERENCE_POOL),
                    "rougeL_f1": {name: round(v[-1], 4) for name, v in scores.items()},
                }
            )
    n = len(rows)
    result: dict[str, Any] = {
        "rougeL_f1": round(statistics.fmean(scores["sent"]), 4),
        **{f"{name}_rougeL_f1": round(statistics.fmean(scores[name]), 4) for name in BASELINES},
        "gain_ci": {
            name: {
                "gain": round(statistics.fmean(scores["sent"]) - statistics.fmean(scores[name]), 4),
                "ci95": list(paired_bootstrap_ci(scores["sent"], scores[name], seed=seed)),
            }
            for name in BASELINES
        },
        "candidate_invented_rate": round(candidates_invented / n_candidates, 4) if n_candidates else 0.0,
        "guard_caught_share": round(caught / candidates_invented, 4) if candidates_invented else None,
        "invented_rate": round(sent_invented / n, 4),
        "invented_by_kind": dict(invented_kinds.most_common()),
        "hallucinated_entity_rate": round(hallucinated / generated_n, 4) if generated_n else 0.0,
        "grounded_share": round(statistics.fmean(grounded), 4) if grounded else 0.0,
        "fallback_rate": round(fallbacks / n, 4),
        "live_fallback_rate": round(live_fallbacks / n, 4),
        "intent_accuracy": round(
            statistics.fmean(p.intent == r.intent for p, r in zip(predictions, rows, strict=True)), 4
        ),
        "oos_flagged_rate": round(statistics.fmean(p.out_of_scope for p in predictions), 4),
        "tokens_per_s": round(new_tokens / gen_seconds, 1) if gen_seconds > 0 else 0.0,
        "n": n,
        "n_generated": generated_n,
        "n_candidates": n_candidates,
        "n_corpus": len(units),
        "test": str(test_csv),
        "split": "dev" if test_csv.is_dir() else "test",
        "k": k,
        "max_new_tokens": max_new_tokens,
        "min_overlap": min_overlap,
        "check_claims": check_claims,
        "decoding": decoding,
        "repetition_penalty": repetition_penalty,
        "seed": seed,
        "temperature": composer.config.temperature,
        "top_p": composer.config.top_p,
        "candidates": composer.config.candidates if composer.generator.selects_candidates else 1,
        "streamed": streamed,
        "concurrent": concurrent,
        "evidence_order": composer.config.evidence_order,
        "copy_bias": composer.config.copy_bias,
        "copy_span": composer.config.copy_span,
        "candidate_evidence": composer.config.candidate_evidence,
        "consensus_k": composer.config.consensus_k,
        "int8": composer.generator.int8,
        "model": str(model_dir),
        "machine": machine_info(),
    }
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "report.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        with (report_dir / "samples.jsonl").open("w", encoding="utf-8") as f:
            for sample in samples:
                f.write(json.dumps(sample, ensure_ascii=False) + "\n")
    return result


BASELINES = ("retrieval_only", "retrieval_vote", "intent_first_retrieval")
# how many usable retrieved answers (the live ranking, deduplicated) each sample keeps
REFERENCE_POOL = 20


def _streamed_turn(
    composer: GPT2Composer, request: ComposeRequest, question: str, evidence: list[str]
) -> GeneratedTurn:
    """The streaming path's reply, judged as the whole-reply path is scored here: by the guard
    alone (placeholders are scored as text, not filled or asked for). Its candidates are not
    kept: all but the chosen one stop after their first sentence."""

    def guard_only(text: str) -> tuple[ComposedReply | None, str | None]:
        verdict = composer.guard.check(text, conversation=[question], evidence=evidence)
        return (ComposedReply(text, "answer", composer.name), None) if verdict.ok else (None, verdict.reason)

    stream = composer.compose_stream(request, judge=guard_only)
    while True:
        try:
            next(stream)
        except StopIteration as done:
            return GeneratedTurn(done.value)


def _compose_concurrently(
    composer: GPT2Composer, requests: list[ComposeRequest], concurrent: int
) -> list[GeneratedTurn]:
    """Each request's turn, `concurrent` at a time, the candidates of the turns in flight
    decoded together on one decoding thread, as the server decodes them with batching on."""
    from concurrent.futures import ThreadPoolExecutor

    from bot.server.batching import ContinuousDecoding, DecodingGenerator

    plain = composer.generator
    rows = concurrent * max(1, composer.config.candidates)
    decoding = ContinuousDecoding(plain, rows=rows, name="csbot-eval-decoder")
    composer.generator = DecodingGenerator(plain, decoding)
    try:
        with ThreadPoolExecutor(concurrent) as pool:
            return list(pool.map(composer.compose_with_candidates, requests))
    finally:
        composer.generator = plain
        decoding.close()


def retrieval_vote(answers: list[str]) -> str:
    """Of retrieved answers, the one agreeing most (ROUGE-L summed) with the others: the
    composer's own candidate selection run on the retrieved answers alone."""
    if not answers:
        return ""
    return answers[select_candidate(answers, [True] * len(answers), []).index]
