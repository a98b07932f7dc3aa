"""The GPT-2 composer: writes the reply from the conversation and the retrieved evidence,
then lets the grounding guard decide whether it may be sent.

    composer = GPT2Composer("runs/r1/final", GeneratorConfig(min_overlap=0.11),
                            fallback=RetrievalComposer.from_config(cfg, domain),
                            company_facts=company_facts_from(company),
                            slot_questions=domain.slot_questions)
    reply = composer.compose(request)            # a ComposedReply, like any composer
    turn = composer.compose_with_candidates(request)   # the same reply, with what was decoded
    for chunk in composer.compose_stream(request): ... # a reply sent while it decodes (see there)

Per turn:

1. the prompt is the `finetune.prompt` layout the model was trained on: the recent turns
   (bot turns read as agent turns, system turns dropped) and the current customer text,
   personal values masked as placeholders as in training, then the evidence texts of the
   top hits (replies that relied on one customer's order record are left out);
2. decoding (`finetune.decoder.GPT2Generator`: greedy, beam or top-p by config): with greedy
   decoding and `candidates` > 1, several candidates in one batch (the greedy reply and
   sampled alternatives of one prompt; or, with `candidate_evidence = "votes"`, one greedy
   reply per prompt, each led by another of the most agreed-on retrieved answers), of which
   `finetune.decoder.select_candidate` picks the guard-passed one that agrees most with the
   retrieved answers;
3. the guard checks the reply against the conversation (unmasked), the evidence and the
   company facts: an invented order number, email, amount, date, URL or phone number, an
   action claimed done ("I've cancelled ...") that neither evidence nor conversation claims,
   or too little overlap with the evidence, rejects it; with `min_agreement` set (or chosen by the
   model's learning round), so does a reply close to none of the retrieved answers;
4. placeholders are filled from the conversation's slots (`bot.composers.retrieval.check_slots`);
   an askable missing slot turns the reply into a question for it (action "clarify"); a
   placeholder no slot fills rejects it;
5. a rejected reply goes to the fallback (the retrieval composer), whose reply is returned
   with `composer` = "<fallback> (gpt2 rejected)" and `note` = "gpt2 reply rejected: <reason>".

Every reply carries `source_ids`: the evidence units the generator was given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.composers.retrieval import check_slots
from bot.contracts import ComposedReply, Composer, ComposeRequest
from finetune.decoder import (
    FALLBACK_GENERATION,
    CandidateChoice,
    Generated,
    GeneratorConfig,
    GPT2Generator,
    select_candidate,
    vote_first,
    votes_ranked,
)
from finetune.guard import GroundingGuard, clean_generated_text
from finetune.prompt import format_prompt
from retrieval.entities import mask_entities

if TYPE_CHECKING:
    from retrieval.types import Hit


# what may be sent of a cleaned generated reply: the reply, or None and why not
Judge = Callable[[str], tuple[ComposedReply | None, str | None]]


@dataclass(frozen=True)
class GeneratedTurn:
    """A composed reply with what generation made on the way to it.

    `candidates`: the replies decoded for the turn (empty when generation did not run: no
    evidence, or the model failed); `choice`: which of them went to the guard; `evidence`:
    the retrieved texts the candidates read, which the guard checked them against."""

    reply: ComposedReply
    candidates: tuple[Generated, ...] = ()
    choice: CandidateChoice | None = None
    evidence: tuple[str, ...] = ()

    @property
    def generated(self) -> Generated | None:
        """The candidate that went to the guard (None when generation did not run)."""
        return self.candidates[self.choice.index] if self.choice is not None else None


class GPT2Composer:
    """A `Composer` (`name = "gpt2"`) backed by a fine-tuned GPT-2 in `model_dir`."""

    name = "gpt2"

    def __init__(
        self,
        model_dir: str | Path,
        config: GeneratorConfig | None = None,
        *,
        fallback: Composer,
        company_facts: Sequence[str],
        slot_questions: dict[str, str],
        slot_mentions: dict[str, list[str]] | None = None,
        loaded: GPT2Generator | None = None,
    ):
        # `loaded`: a generator for `model_dir` loaded elsewhere and shared (the server's
        # batched one); its settings are the ones it was loaded with
        if loaded is not None and Path(loaded.model_dir).resolve() != Path(model_dir).resolve():
            raise ValueError(f"the loaded generator is for {loaded.model_dir}, not {model_dir}")
        self.generator = loaded if loaded is not None else GPT2Generator(model_dir, config)
        self.fallback = fallback
        self.slot_questions = dict(slot_questions)
        self.slot_mentions = slot_mentions or {}
        self.company_facts = list(company_facts)
        # load() remakes it with the model's calibrated threshold when none is configured
        min_overlap = self.config.min_overlap
        self.guard = GroundingGuard(
            self.company_facts,
            min_overlap if min_overlap is not None else FALLBACK_GENERATION["min_overlap"],
            check_claims=self.config.check_claims,
        )

    @property
    def model_dir(self) -> Path:
        return self.generator.model_dir

    @property
    def config(self) -> GeneratorConfig:
        """The generation settings (after `load()`, with the model's trained values filled in)."""
        return self.generator.config

    @property
    def hits_wanted(self) -> int:
        """The answers the candidates are compared with (and the vote that may lead the
        evidence) come from the top `consensus_k` hits; the evidence from the top few."""
        return max(self.consensus_k, self.config.evidence_k or 0)

    @property
    def consensus_k(self) -> int:
        """How many retrieved answers the candidates are compared with (the model's choice
        once loaded)."""
        k = self.config.consensus_k
        return int(FALLBACK_GENERATION["consensus_k"]) if k is None else k

    def load(self) -> GPT2Composer:
        """Load the model (see `GPT2Generator.load`) and set the guard to its threshold."""
        if not self.generator.loaded:
            self.generator.load()
            assert self.config.min_overlap is not None  # resolved by load()
            self.guard = GroundingGuard(
                self.company_facts, self.config.min_overlap, check_claims=self.config.check_claims
            )
        return self

    # -- the Composer contract ---------------------------------------------------------
    def compose(self, request: ComposeRequest) -> ComposedReply:
        return self.compose_with_candidates(request).reply

    def compose_with_candidates(self, request: ComposeRequest) -> GeneratedTurn:
        """The reply `compose` sends, with the candidates decoded for it and the choice among them."""
        hits = self.evidence_hits(request)
        if not hits:
            return GeneratedTurn(self._fallback(request, "no evidence to ground a reply in", skipped=True))
        if self.generator.selects_candidates and self.config.candidate_evidence == "votes":
            # each candidate greedy on its own evidence: the most agreed-on retrieved answers
            leads = votes_ranked(self._usable_hits(request, self.consensus_k), self.consensus_k, _hit_text)
            leads = leads[: self.config.candidates] or hits[:1]
            prompts = [self.build_prompt(request, [lead, *(h for h in hits if h is not lead)]) for lead in leads]
            # the guard reads every answer a candidate was given
            hits = [*leads, *(h for h in hits if all(h is not lead for lead in leads))]
        else:
            prompts = [self.build_prompt(request, hits)]
        try:
            if len(prompts) > 1:  # greedy, one row per prompt
                candidates = self.generator.generate(prompts)
            elif self.generator.selects_candidates:
                candidates = self.generator.generate(prompts * self.config.candidates, alternatives=True)
            else:
                candidates = self.generator.generate(prompts)
        except (RuntimeError, ValueError, IndexError) as e:  # a model failure must not lose the turn
            reason = f"generation failed ({type(e).__name__}: {_first_line(e)})"
            return GeneratedTurn(self._fallback(request, reason))
        choice = self.choose(request, hits, candidates)
        chosen = candidates[choice.index]
        reply = self.finish(request, chosen.text, hits, ended=chosen.ended)
        return GeneratedTurn(reply, tuple(candidates), choice, tuple(h.unit.evidence_text for h in hits))

    # -- one turn ------------------------------------------------------------------------
    def evidence_hits(self, request: ComposeRequest) -> list[Hit]:
        """The hits whose text goes into the prompt, in the request's order (the dialogue
        manager puts the classified intent's units first), one per distinct text; with
        `evidence_order = "consensus"` the retrieval vote of the top `consensus_k` first."""
        limit = self.config.evidence_k
        if self.config.evidence_order != "consensus" or self.consensus_k < 2:
            return self._usable_hits(request, limit)
        pool = self._usable_hits(request, None if limit is None else max(limit, self.consensus_k))
        ordered = vote_first(pool, self.consensus_k, text=_hit_text)
        return ordered if limit is None else ordered[:limit]

    def consensus_references(self, request: ComposeRequest, limit: int | None = None) -> list[str]:
        """The retrieved answers a candidate reply is compared with: the usable hits of the
        request (as for the prompt's evidence), at most `limit` (default `consensus_k`)."""
        limit = self.consensus_k if limit is None else limit
        if limit == 0:
            return []
        return [" ".join(h.unit.evidence_text.split()) for h in self._usable_hits(request, limit)]

    def _usable_hits(self, request: ComposeRequest, limit: int | None) -> list[Hit]:
        """The request's hits in order, at most `limit`, one per distinct text, leaving out
        weak ones and replies written from one customer's order record."""
        out: list[Hit] = []
        seen: set[str] = set()
        for h in request.hits:
            if h.score < self.config.min_evidence_score or h.unit.extra.get("after_lookup"):
                # an agent reading one customer's order record: not ours to repeat
                continue
            text = " ".join(h.unit.evidence_text.split())
            if text and text not in seen:
                seen.add(text)
                out.append(h)
            if len(out) == limit:
                break
        return out

    def build_prompt(self, request: ComposeRequest, hits: Sequence[Hit]) -> str:
        """The prompt for this turn and evidence, within the model's positions."""
        self.load()
        model, tokenizer = self.generator.model, self.generator.tokenizer
        cfg = self.config
        assert model is not None and cfg.max_new_tokens is not None and cfg.evidence_k is not None  # load() set them
        context = [
            {"role": "agent" if role in ("bot", "agent") else "customer", "text": mask_entities(text)[0]}
            for role, text in request.history
            if role in ("customer", "bot", "agent") and text.strip()
        ]
        context.append({"role": "customer", "text": mask_entities(request.text)[0]})
        budget = cfg.max_prompt_tokens or (model.config.n_positions - cfg.max_new_tokens)
        return format_prompt(
            context,
            [h.unit.evidence_text for h in hits],
            # HF types decode as str | list[str] (one string for one sequence); finetune.prompt's
            # _Tokenizer protocol says str
            tokenizer=tokenizer,  # type: ignore[arg-type]
            max_tokens=budget,
            max_evidence=cfg.evidence_k,
        )

    def choose(
        self, request: ComposeRequest, hits: Sequence[Hit], candidates: Sequence[Generated], *, words: int | None = None
    ) -> CandidateChoice:
        """The candidate to send (`select_candidate`): the guard's verdicts on each, compared
        with this turn's retrieved answers (their first `words` words when given: openings
        are compared with the retrieved answers' openings)."""
        evidence = [h.unit.evidence_text for h in hits]
        texts = [clean_generated_text(g.text, g.ended) for g in candidates]
        conversation = _conversation(request)
        passing = [self.guard.check(t, conversation=conversation, evidence=evidence).ok for t in texts]
        references = self.consensus_references(request) if any(passing) else []
        if words is not None:
            references = [" ".join(r.split()[:words]) for r in references]
        return select_candidate(texts, passing, references)

    def finish(
        self, request: ComposeRequest, generated_text: str, hits: Sequence[Hit], *, ended: bool = True
    ) -> ComposedReply:
        """Guard, fill and mark a generated reply: the step after generation."""
        text = clean_generated_text(generated_text, ended)
        reply, reason = self._judge(request, text, hits)
        if reply is not None:
            reason = self.disagreement(request, text)
            reply = None if reason else reply
        if reply is None:
            return self._fallback(request, reason or "rejected by the guard", source_ids=tuple(h.unit.id for h in hits))
        return reply

    def agreement(self, request: ComposeRequest, text: str) -> float:
        """The reply's highest ROUGE-L F1 against the retrieved answers it is compared with
        (`consensus_references`); 0.0 when there are none."""
        from finetune.rouge import rouge_l_f1, rouge_tokens

        mine = rouge_tokens(text)
        return max((rouge_l_f1(rouge_tokens(r), mine) for r in self.consensus_references(request)), default=0.0)

    def disagreement(self, request: ComposeRequest, text: str) -> str | None:
        """Why a cleaned reply the guard passed may still not be sent: it agrees with no
        retrieved answer as much as `min_agreement` asks (None: it may be sent)."""
        floor = self.config.min_agreement or 0.0
        if floor <= 0.0:
            return None
        score = self.agreement(request, text)
        if score >= floor:
            return None
        return f"it agrees with no retrieved answer enough (ROUGE-L {score:.2f}, needs {floor:.2f})"

    def _judge(
        self, request: ComposeRequest, text: str, hits: Sequence[Hit]
    ) -> tuple[ComposedReply | None, str | None]:
        """A cleaned generated reply as it would be sent (guarded, placeholders filled; a
        missing slot turns it into the slot's question), or None and why it may not be."""
        source_ids = tuple(h.unit.id for h in hits)
        verdict = self.guard.check(
            text, conversation=_conversation(request), evidence=[h.unit.evidence_text for h in hits]
        )
        if not verdict.ok:
            return None, verdict.reason or "rejected by the guard"
        check = check_slots(text, request.slots.values, self.slot_questions, self.slot_mentions)
        if check.reject:
            return None, check.reject
        if check.ask:
            question = ComposedReply(
                self.slot_questions[check.ask],
                "clarify",
                self.name,
                source_ids=source_ids,
                missing_slot=check.ask,
                note=f"gpt2 reply needs slot {check.ask}",
            )
            return question, None
        if check.asks_itself:
            return ComposedReply(
                check.text, "clarify", self.name, source_ids=source_ids, missing_slot=check.asks_itself
            ), None
        return ComposedReply(check.text, "answer", self.name, source_ids=source_ids), None

    # -- streaming: the reply that is sent, sentence by sentence while it is decoded ----------
    def compose_stream(
        self, request: ComposeRequest, *, judge: Judge | None = None
    ) -> Generator[str, None, ComposedReply]:
        """The reply as it is decoded: yields text chunks (joined, exactly the returned
        reply's text), then returns the reply. A chunk is released only when the reply up to
        its end passes everything `finish` checks (the guard, the slot rules), so nothing
        released is ever taken back: a later sentence that fails ends the reply before it.

        How it chooses early: the candidates decode as one batch until each has a first
        sentence (or ended), all from the same prompt (the greedy one and samples, whatever
        `candidate_evidence` says); the consensus rule (`select_candidate`) picks among those
        openings, compared with the retrieved answers' openings; the chosen one alone
        decodes on, greedily. When no opening passes, or the chosen
        one needs a slot, nothing is yielded and the reply is what `compose` would give for
        it (the fallback's, or the slot's question). Where decoding cannot run step by step
        (beam search, the server's merged batches), or with an agreement floor
        (`min_agreement`, which judges the whole reply), this is `compose`, yielding nothing.

        `judge(text)`: what may be sent of a cleaned reply, as `_judge` answers (the default);
        the evaluation passes the guard alone, as it scores whole replies."""
        if not self.generator.streams or (self.config.min_agreement or 0.0) > 0.0:
            # agreement is a property of the whole reply: with a floor, the reply is sent whole
            return self.compose(request)
        hits = self.evidence_hits(request)
        if not hits:
            return self._fallback(request, "no evidence to ground a reply in", skipped=True)
        if judge is None:

            def judge(text: str) -> tuple[ComposedReply | None, str | None]:
                return self._judge(request, text, hits)

        source_ids = tuple(h.unit.id for h in hits)
        prompt_ids = self.generator.encode(self.build_prompt(request, hits))
        rows = self.config.candidates if self.generator.selects_candidates else 1
        try:
            decoded, ended = self._decode_openings(prompt_ids, rows)
        except (RuntimeError, ValueError, IndexError) as e:  # a model failure must not lose the turn
            return self._fallback(request, f"generation failed ({type(e).__name__}: {_first_line(e)})")
        texts = [self.generator.decode(d) for d in decoded]
        openings = [_opening(t, e) for t, e in zip(texts, ended, strict=True)]
        longest = max(len(o.split()) for o in openings)
        choice = self.choose(
            request, hits, [Generated(o, 0, True, len(prompt_ids), None, 0.0) for o in openings], words=longest
        )
        first, reason = judge(clean_generated_text(openings[choice.index], True))
        if first is None:
            return self._fallback(request, reason or "rejected by the guard", source_ids=source_ids)
        if first.action != "answer":
            return first  # the slot's question: whole, at once
        sent = first
        yield first.text
        i = choice.index
        tokens = list(decoded[i])
        finished = ended[i]  # the reply's end token was decoded
        budget = (self.config.max_new_tokens or 0) - len(tokens)
        steps = None
        if not finished and budget > 0:
            steps = self.generator.token_steps(
                [prompt_ids + tokens],
                # greedy from the chosen opening on, whichever row it was: on the development
                # split this beat going on sampling (ROUGE-L 0.384 against 0.370)
                sampled=False,
                copy_from=[prompt_ids],
                max_new_tokens=budget,
            )
        judged = len(openings[i])  # the folded text up to here is sent (or judged)
        stop_note = None
        try:
            while True:
                text = " ".join(self.generator.decode(tokens).split())
                for end in _sentence_ends(text, judged, finished):
                    judged = end
                    reply, reason = judge(clean_generated_text(text[:end], True))
                    if reply is None or reply.action != "answer" or not reply.text.startswith(sent.text):
                        stop_note = reason or "it would change what was sent"
                        break
                    if len(reply.text) > len(sent.text):
                        yield reply.text[len(sent.text) :]
                        sent = reply
                if stop_note is not None or finished or steps is None:
                    break
                step = next(steps, None)
                if step is None or step[0] is None:
                    break  # cut at the token limit: its unfinished last sentence is not sent
                tokens.append(step[0])
                finished = step[0] == self.generator.eos_id
        except (RuntimeError, ValueError, IndexError) as e:  # what was sent stands; the rest is lost
            stop_note = f"generation failed ({type(e).__name__}: {_first_line(e)})"
        finally:
            if steps is not None:
                steps.close()  # frees the generator for the next turn
        note = "streamed" if stop_note is None else f"streamed; ended before a sentence that failed: {stop_note}"
        return ComposedReply(sent.text, "answer", self.name, source_ids=source_ids, note=note)

    def _decode_openings(self, prompt_ids: list[int], rows: int) -> tuple[list[list[int]], list[bool]]:
        """Decode `rows` candidates (the greedy one first) until each has a first whole
        sentence or ended: their tokens so far, and which ended."""
        tokens: list[list[int]] = [[] for _ in range(rows)]
        ended, ready = [False] * rows, [False] * rows
        steps = self.generator.token_steps([prompt_ids] * rows, sampled=rows > 1, greedy_rows=1)
        try:
            for step in steps:
                for r, t in enumerate(step):
                    if t is None:
                        continue
                    tokens[r].append(t)
                    if t == self.generator.eos_id:
                        ended[r] = ready[r] = True
                    elif not ready[r]:
                        text = " ".join(self.generator.decode(tokens[r]).split())
                        ready[r] = next(_sentence_ends(text, 0, False), None) is not None
                if all(ready):
                    break
        finally:
            steps.close()  # frees the decoder
        return tokens, ended

    def _fallback(
        self, request: ComposeRequest, reason: str, *, skipped: bool = False, source_ids: tuple[str, ...] = ()
    ) -> ComposedReply:
        """The fallback composer's reply, marked: composer "<name> (gpt2 rejected)" (or
        "(gpt2 skipped)" when generation did not run) and the reason in `note`."""
        reply = self.fallback.compose(request)
        verb = "skipped" if skipped else "rejected"
        note = f"gpt2 {'not used' if skipped else 'reply rejected'}: {reason}"
        if reply.note:
            note += f"; {reply.composer}: {reply.note}"
        return ComposedReply(
            reply.text,
            reply.action,
            f"{reply.composer} (gpt2 {verb})",
            source_ids=reply.source_ids or source_ids,
            missing_slot=reply.missing_slot,
            note=note,
        )


# a sentence ends at . ! or ? (not after a digit: "1. Go to") followed by a space
_SENTENCE_END = re.compile(r"(?<=[^\d\s][.!?])(?=\s)")


def _sentence_ends(text: str, after: int, ended: bool) -> Iterator[int]:
    """Where the whole sentences of folded `text` end, past `after`: each boundary, and the
    text's end once the reply `ended` (its last sentence need not end with a stop)."""
    last = after
    for m in _SENTENCE_END.finditer(text):
        if m.end() > last:
            last = m.end()
            yield last
    if ended and len(text.rstrip()) > last:
        yield len(text.rstrip())


def _opening(text: str, ended: bool) -> str:
    """A candidate's first whole sentence (its whole text when it ended first; when it was cut
    before a first stop, the text as `clean_generated_text` would keep it)."""
    folded = " ".join(text.split())
    first = next(_sentence_ends(folded, 0, False), None)
    return folded[:first] if first is not None else clean_generated_text(text, ended)


def _hit_text(hit: Hit) -> str:
    return hit.unit.evidence_text


def _conversation(request: ComposeRequest) -> list[str]:
    """What the customer and the bot have said, and the slot values: what a reply may repeat."""
    return [t for _, t in request.history] + [request.text] + list(request.slots.values.values())


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


__all__ = ["GPT2Composer", "GeneratedTurn"]
