"""bot.composers.generative: a real (tiny, untrained) GPT-2 composes, the guard's rejections fall back to
the retrieval composer with the reason, the candidates decoded for a turn come with its reply, and a
mismatched model directory is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.composers.generative import GPT2Composer
from bot.composers.retrieval import RetrievalComposer
from bot.contracts import ComposedReply, Composer, ComposeRequest, Slots
from bot.domain import Domain
from bot.errors import ArtifactMismatchError
from finetune.decoder import Generated, GeneratorConfig
from finetune.guard import clean_generated_text, company_facts_from
from retrieval.types import Hit, Unit
from tests.helpers import REPO

DOMAIN = Domain()
COMPANY = json.loads((REPO / "data" / "company.json").read_text(encoding="utf-8"))
HITS = (
    Hit(
        Unit(
            id="conv-1#t0",
            kind="transcript",
            text="where is my order {{Order Number}}?",
            intent="order_status",
            reply="Good news - order {{Order Number}} has left our warehouse and is on its way. "
            "Standard delivery takes 3-5 business days.",
        ),
        0.91,
    ),
    Hit(
        Unit(
            id="kb-shipping#c0",
            kind="kb",
            text="Shipping. Standard delivery takes 3-5 business days.",
            intent="order_status",
            title="Shipping",
        ),
        0.72,
    ),
    Hit(
        Unit(
            id="conv-2#t4",
            kind="transcript",
            text="when does it come?",
            intent="order_status",
            reply="It was delivered on 2026-03-02 by ParcelCo.",
            extra={"after_lookup": True},
        ),
        0.70,
    ),
)


def make_tiny_model(path: Path, *, vocab_size: int | None = None, meta: bool = True) -> Path:
    """Our BPE trained on a few demo conversations and a 1-layer GPT-2 (random weights),
    saved like `finetune train` saves `final/`."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from finetune.model import _set_generation_ids, load_corpus_texts
    from finetune.tokenizer import train_tokenizer

    texts = load_corpus_texts(REPO / "data")[:40]
    tok = train_tokenizer(texts, 400)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=256, vocab_size=vocab_size or len(tok))
    )
    _set_generation_ids(model, tok)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    if meta:
        (path / "csbot_model.json").write_text(json.dumps({"base": "scratch", "test": True}))
    return path


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("gen") / "final")


def fallback() -> RetrievalComposer:
    return RetrievalComposer(0.3, DOMAIN.slot_questions, DOMAIN.unsure_message, slot_mentions=DOMAIN.slot_mentions)


def composer(model_dir: Path | str, **config) -> GPT2Composer:
    return GPT2Composer(
        model_dir,
        GeneratorConfig(max_new_tokens=config.pop("max_new_tokens", 24), **config),
        fallback=fallback(),
        company_facts=company_facts_from(COMPANY),
        slot_questions=DOMAIN.slot_questions,
        slot_mentions=DOMAIN.slot_mentions,
    )


def request(text: str = "where is my order?", slots: dict | None = None) -> ComposeRequest:
    return ComposeRequest(
        text=text,
        intent="order_status",
        history=(("customer", "hi"), ("bot", "Hi! How can I help?")),
        hits=HITS,
        slots=Slots(dict(slots or {})),
    )


# -- the step after generation (no model needed) --------------------------------------------


def candidates(*texts: str) -> list[Generated]:
    return [Generated(t, 20, True, 100, 5.0, 50.0) for t in texts]


GREEDY = "Your order {{Order Number}} is on its way."
AGREEING = "Good news - order {{Order Number}} has left our warehouse. Standard delivery takes 3-5 business days."


def test_of_several_candidates_the_one_agreeing_with_the_retrieved_answers_is_sent() -> None:
    c = composer("/nonexistent")
    choice = c.choose(request(), HITS, candidates(GREEDY, "Thanks for waiting, delivery is quick.", AGREEING))
    assert choice.index == 2 and choice.candidates == 3


def test_a_candidate_the_guard_rejects_is_never_sent_however_well_it_agrees() -> None:
    c = composer("/nonexistent")
    invented = AGREEING.replace("{{Order Number}}", "#55512345")  # a number nobody gave
    assert c.choose(request(), HITS, candidates(GREEDY, invented)).index == 0
    # none passing: the greedy candidate goes on to be rejected, with its reason, by finish
    only_bad = candidates(invented, "Order #99912345 ships today.")
    assert c.choose(request(), HITS, only_bad).index == 0
    reply = c.finish(request(), only_bad[0].text, HITS)
    assert reply.composer == "retrieval (gpt2 rejected)" and "#55512345" in reply.note


def test_candidates_are_compared_with_the_usable_retrieved_answers_only() -> None:
    with pytest.raises(ValueError, match="candidates must be at least 1"):
        GeneratorConfig(candidates=0)
    # the third hit is an agent reading one customer's order record: not a reference
    assert HITS[2].unit.extra.get("after_lookup")
    assert composer("/nonexistent").consensus_references(request()) == [
        " ".join(h.unit.evidence_text.split()) for h in HITS[:2]
    ]


def test_a_reply_with_an_invented_order_number_falls_back_with_the_reason() -> None:
    c = composer("/nonexistent")  # construction is cheap: nothing loads
    assert isinstance(c, Composer) and c.name == "gpt2"
    hits = c.evidence_hits(request())
    reply = c.finish(request(slots={"order_id": "#40318275"}), "Order #99887766 has left our warehouse.", hits)
    assert reply.composer == "retrieval (gpt2 rejected)"
    assert reply.note.startswith(
        "gpt2 reply rejected: names order #99887766, which is in neither the conversation nor the evidence"
    )
    # the fallback's own reply: the retrieved agent reply with the customer's order number
    assert reply.action == "answer" and "#40318275" in reply.text and reply.source_ids == ("conv-1#t0",)


def test_a_grounded_reply_is_sent_with_placeholders_filled_and_its_evidence_ids() -> None:
    c = composer("/nonexistent")
    hits = c.evidence_hits(request())
    reply = c.finish(request(slots={"order_id": "#40318275"}), " Order {{Order Number}} has left our warehouse.", hits)
    assert reply == ComposedReply(
        "Order #40318275 has left our warehouse.", "answer", "gpt2", source_ids=("conv-1#t0", "kb-shipping#c0")
    )


def test_evidence_skips_replies_that_relied_on_an_order_lookup() -> None:
    ids = [h.unit.id for h in composer("/nonexistent").evidence_hits(request())]
    assert ids == ["conv-1#t0", "kb-shipping#c0"]


def test_a_missing_askable_slot_becomes_a_question_and_an_unknown_placeholder_falls_back() -> None:
    c = composer("/nonexistent")
    hits = c.evidence_hits(request())
    asked = c.finish(request(), "Order {{Order Number}} has left our warehouse.", hits)
    assert (asked.action, asked.composer, asked.missing_slot) == ("clarify", "gpt2", "order_id")
    assert asked.text == DOMAIN.slot_questions["order_id"] and "{{" not in asked.text
    unknown = c.finish(
        request(slots={"order_id": "#40318275"}), "Your tracking number {{Tracking Number}} is on its way.", hits
    )
    assert unknown.composer == "retrieval (gpt2 rejected)"
    assert "{{Tracking Number}}, which no slot fills" in unknown.note


def test_a_reply_off_the_evidence_falls_back_on_overlap() -> None:
    c = composer("/nonexistent", min_overlap=0.5)
    reply = c.finish(
        request(slots={"order_id": "#40318275"}), "Purple elephants dance quietly.", c.evidence_hits(request())
    )
    assert reply.composer == "retrieval (gpt2 rejected)" and "of the reply's words are in the evidence" in reply.note


def test_with_an_agreement_floor_a_reply_close_to_no_retrieved_answer_falls_back() -> None:
    # grounded (its words are in the evidence) but it says something no agent said
    reworded = "Standard delivery is quick, thanks for your patience with us today."
    slots = {"order_id": "#40318275"}
    off = composer("/nonexistent")  # no floor: the guard alone decides
    hits = off.evidence_hits(request())
    assert off.agreement(request(), reworded) < 0.3
    assert off.finish(request(slots=slots), reworded, hits).composer == "gpt2"
    floored = composer("/nonexistent", min_agreement=0.5)
    reply = floored.finish(request(slots=slots), reworded, hits)
    assert reply.composer == "retrieval (gpt2 rejected)"
    assert "agrees with no retrieved answer enough (ROUGE-L 0.2" in reply.note and "needs 0.50" in reply.note
    # a reply that adapts an agent's answer is sent, filled in
    assert floored.agreement(request(), AGREEING) >= 0.5
    sent = floored.finish(request(slots=slots), AGREEING, hits)
    assert sent.composer == "gpt2" and "#40318275" in sent.text
    # an agent's answer word for word agrees fully
    assert floored.agreement(request(), HITS[0].unit.reply) == 1.0


def test_a_reply_claiming_an_action_nobody_took_falls_back_unless_claims_are_not_checked() -> None:
    slots = {"order_id": "#40318275"}
    claim = "Good news - I've cancelled order {{Order Number}}, and standard delivery takes 3-5 business days."
    reply = composer("/nonexistent").finish(request(slots=slots), claim, HITS)
    assert reply.composer == "retrieval (gpt2 rejected)" and "claims an action is done ('cancelled')" in reply.note
    sent = composer("/nonexistent", check_claims=False).finish(request(slots=slots), claim, HITS)
    assert sent.composer == "gpt2" and "I've cancelled order #40318275" in sent.text


def test_an_agreement_floor_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="min_agreement must be between 0 and 1"):
        GeneratorConfig(min_agreement=1.5)


def test_no_evidence_skips_generation() -> None:
    c = composer("/nonexistent")
    reply = c.compose(ComposeRequest("where is my order?", "order_status", (), (), Slots({})))
    assert reply.composer == "retrieval (gpt2 skipped)" and reply.action == "fallback"
    assert reply.note.startswith("gpt2 not used: no evidence")


def test_bad_decoding_is_refused() -> None:
    with pytest.raises(ValueError, match="decoding"):
        GeneratorConfig(decoding="sample")


# -- the real tiny model ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("decoding", ["greedy", "beam", "top_p"])
def test_the_tiny_model_composes_a_reply_with_source_ids(tiny_dir, decoding) -> None:
    c = composer(tiny_dir, decoding=decoding, num_beams=2).load()
    assert not c.generator.model.training
    turn = c.compose_with_candidates(request(slots={"order_id": "#40318275"}))
    reply = turn.reply
    assert reply.text and "{{" not in reply.text
    assert reply.source_ids and set(reply.source_ids) <= {"conv-1#t0", "kb-shipping#c0"}
    assert turn.generated is not None
    # which composer answers is the guard's call on the decoded text: judge it here, apart
    verdict = c.guard.check(
        clean_generated_text(turn.generated.text, turn.generated.ended),
        conversation=["hi", "Hi! How can I help?", "where is my order?", "#40318275"],
        evidence=[h.unit.evidence_text for h in HITS],
    )
    if verdict.ok:
        assert (reply.composer, reply.note) == ("gpt2", None), reply
    else:
        assert reply.composer == "retrieval (gpt2 rejected)", reply
        assert reply.note == f"gpt2 reply rejected: {verdict.reason}"
    assert 0 < turn.generated.new_tokens <= 24 and turn.generated.prompt_tokens <= 256 - 24


@pytest.mark.slow
def test_one_candidate_is_the_greedy_reply_timed_from_its_first_token(tiny_dir) -> None:
    c = composer(tiny_dir, max_new_tokens=32, candidates=1)
    turn = c.compose_with_candidates(request(slots={"order_id": "#40318275"}))
    assert len(turn.candidates) == 1 and turn.generated is turn.candidates[0]
    assert turn.generated.first_token_ms is not None and turn.reply.source_ids
    # greedy is deterministic: composing again ends in the same reply
    assert c.compose(request(slots={"order_id": "#40318275"})) == turn.reply


@pytest.mark.slow
def test_a_tokenizer_bigger_than_the_vocabulary_is_refused(tmp_path) -> None:
    bad = make_tiny_model(tmp_path / "bad", vocab_size=300)
    with pytest.raises(ArtifactMismatchError) as e:
        composer(bad).load()
    assert str(bad) in str(e.value) and "model's vocabulary (embedding rows) is 300" in str(e.value)


def test_a_directory_that_is_not_a_csbot_generator_is_refused(tmp_path) -> None:
    with pytest.raises(ArtifactMismatchError, match="does not exist"):
        composer(tmp_path / "missing").load()
    (tmp_path / "plain").mkdir()
    with pytest.raises(ArtifactMismatchError, match=r"plain has no csbot_model\.json"):
        composer(tmp_path / "plain").load()
    (tmp_path / "plain" / "csbot_model.json").write_text("{}")
    with pytest.raises(ArtifactMismatchError, match="plain has no model weights"):
        composer(tmp_path / "plain").load()


@pytest.mark.slow
def test_digits_are_only_copied_from_the_prompt_even_from_a_model_that_loves_numbers(tmp_path) -> None:
    import torch

    def digits_written(copy_numbers_only: bool) -> tuple[set[str], set[str]]:
        c = composer(
            make_tiny_model(tmp_path / f"m{copy_numbers_only}"), max_new_tokens=40, copy_numbers_only=copy_numbers_only
        ).load()
        model, tokenizer = c.generator.model, c.generator.tokenizer
        numeric = sorted(c.generator.numeric_tokens())
        with torch.no_grad():  # make digit tokens the model's favourite output
            model.lm_head.weight[numeric] += 3 * model.lm_head.weight[numeric].sign()
            model.lm_head.weight[numeric] *= 4
        req = request("where is my order #40318275?", slots={"order_id": "#40318275"})
        prompt = c.build_prompt(req, c.evidence_hits(req))
        (generated,) = c.generator.generate([prompt])
        prompt_digits = {
            ch for t in tokenizer.encode(prompt) if t in numeric for ch in tokenizer.decode([t]) if ch.isdigit()
        }
        return {ch for ch in generated.text if ch.isdigit()}, prompt_digits

    free, allowed = digits_written(False)
    assert free - allowed, "the boosted model should invent digits when unconstrained"
    constrained, allowed = digits_written(True)
    assert constrained <= allowed


@pytest.mark.slow
@pytest.mark.parametrize("prompt_lookup", [0, 6])
def test_numbers_are_copied_whole_from_the_prompt_even_by_a_model_that_loves_numbers(tmp_path, prompt_lookup) -> None:
    import torch

    from finetune.decoding import NumberRun

    c = composer(make_tiny_model(tmp_path / "m"), max_new_tokens=40, prompt_lookup=prompt_lookup).load()
    assert c.config.copy_numbers_whole  # the default
    model, tokenizer = c.generator.model, c.generator.tokenizer
    pieces = c.generator.number_pieces()
    numeric = sorted(pieces.digits)
    with torch.no_grad():  # make digit tokens the model's favourite output
        model.lm_head.weight[numeric] += 3 * model.lm_head.weight[numeric].sign()
        model.lm_head.weight[numeric] *= 4
    req = request("is $4.99 or $50.00 the price for order #40318275?", slots={"order_id": "#40318275"})
    prompt = c.build_prompt(req, c.evidence_hits(req))
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    [generated] = c.generator.generate([prompt])
    written = tokenizer.encode(prompt + generated.text, add_special_tokens=False)[len(prompt_ids) :]
    assert any(t in pieces.digits for t in written), "the boosted model should write numbers"
    # every number it wrote, token for token, stands in the prompt
    run = NumberRun(prompt_ids, pieces)
    for t in written:
        run.push(t)
        if any(x in pieces.digits for x in run.run):
            n = len(run.run)
            assert any(prompt_ids[i : i + n] == run.run for i in range(len(prompt_ids))), tokenizer.decode(run.run)


@pytest.mark.slow
def test_composers_loading_in_several_threads_at_once_all_generate(tiny_dir) -> None:
    # the server's inference workers are threads, each with its own assistant, and their first
    # turns arrive together: loading a model (transformers patches torch's globals while it
    # builds one) must not break another thread's model or int8 copy on the way
    import threading

    workers = 8
    start = threading.Barrier(workers)
    turns: list = [None] * workers

    def first_turn(i: int) -> None:
        c = composer(tiny_dir, max_new_tokens=8, candidates=1)
        start.wait()
        turns[i] = c.compose_with_candidates(request(slots={"order_id": "#40318275"}))

    threads = [threading.Thread(target=first_turn, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    notes = [t.reply.note or "" for t in turns]
    assert not [n for n in notes if "generation failed" in n], notes
    # greedy decoding of one model: every thread decoded the same reply
    assert len({t.generated.text for t in turns}) == 1


def _answer(unit_id: str, reply: str, score: float) -> Hit:
    return Hit(
        Unit(id=unit_id, kind="transcript", text="where is my order?", intent="order_status", reply=reply), score
    )


def test_consensus_evidence_order_puts_the_retrieval_vote_first() -> None:
    odd = _answer("conv-9#t0", "Please contact our partner store about that.", 0.95)
    usual = _answer("conv-3#t0", "Your order {{Order Number}} has left our warehouse and is on its way.", 0.90)
    close = _answer("conv-4#t0", "Order {{Order Number}} has left our warehouse; it is on its way to you.", 0.85)
    req = ComposeRequest(
        text="where is my order?", intent="order_status", history=(), hits=(odd, usual, close), slots=Slots({})
    )
    ranked = composer("/nonexistent", evidence_k=1).evidence_hits(req)
    assert [h.unit.id for h in ranked] == ["conv-9#t0"]  # the best-ranked answer, by default
    voted = composer("/nonexistent", evidence_k=1, evidence_order="consensus").evidence_hits(req)
    assert [h.unit.id for h in voted] == ["conv-3#t0"]  # agrees most with the other two
    every = composer("/nonexistent", evidence_k=3, evidence_order="consensus").evidence_hits(req)
    assert [h.unit.id for h in every] == ["conv-3#t0", "conv-9#t0", "conv-4#t0"]  # the rest in their order
    with pytest.raises(ValueError, match="evidence_order must be"):
        GeneratorConfig(evidence_order="random")  # type: ignore[arg-type]


def test_candidates_may_each_read_their_own_retrieved_answer(tiny_dir) -> None:
    odd = _answer("conv-9#t0", "Please contact our partner store about that.", 0.95)
    usual = _answer("conv-3#t0", "Your order {{Order Number}} has left our warehouse and is on its way.", 0.90)
    close = _answer("conv-4#t0", "Order {{Order Number}} has left our warehouse; it is on its way to you.", 0.85)
    req = ComposeRequest(
        text="where is my order?", intent="order_status", history=(), hits=(odd, usual, close), slots=Slots({})
    )
    settings = {"evidence_k": 1, "evidence_order": "consensus", "consensus_k": 3, "candidates": 3}
    votes = composer(tiny_dir, max_new_tokens=8, candidate_evidence="votes", **settings).load()
    turn = votes.compose_with_candidates(req)
    # one greedy candidate per answer, the most agreed-on first; the guard read all three
    assert len(turn.candidates) == 3
    assert turn.evidence == tuple(h.unit.evidence_text for h in (usual, close, odd))
    prompts = [votes.build_prompt(req, [lead]) for lead in (usual, close, odd)]
    assert [g.text for g in turn.candidates] == [g.text for g in votes.generator.generate(prompts)]
    # "same": every candidate reads the vote alone
    same = composer(tiny_dir, max_new_tokens=8, candidate_evidence="same", **settings).load()
    assert same.compose_with_candidates(req).evidence == (usual.unit.evidence_text,)
    # unset: votes where the vote leads the evidence, else the same prompt for every candidate
    assert composer(tiny_dir, **settings).load().config.candidate_evidence == "votes"
    ranked = {**settings, "evidence_order": "retrieval"}
    assert composer(tiny_dir, **ranked).load().config.candidate_evidence == "same"
    with pytest.raises(ValueError, match="candidate_evidence must be"):
        GeneratorConfig(candidate_evidence="all")  # type: ignore[arg-type]


@pytest.mark.slow
def test_prompt_lookup_sends_the_candidates_of_one_token_decoding(tiny_dir) -> None:
    usual = _answer("conv-3#t0", "Your order {{Order Number}} has left our warehouse and is on its way.", 0.90)
    close = _answer("conv-4#t0", "Order {{Order Number}} has left our warehouse; it is on its way to you.", 0.85)
    req = ComposeRequest(
        text="where is my order?", intent="order_status", history=(), hits=(usual, close), slots=Slots({})
    )
    settings = {"evidence_k": 1, "evidence_order": "consensus", "consensus_k": 2, "candidates": 2, "int8": False}
    plain = composer(tiny_dir, max_new_tokens=30, **settings).load().compose_with_candidates(req)
    looking = composer(tiny_dir, max_new_tokens=30, prompt_lookup=8, **settings).load()
    assert looking.config.prompt_lookup == 8
    turn = looking.compose_with_candidates(req)
    assert [g.text for g in turn.candidates] == [g.text for g in plain.candidates]
    assert turn.reply == plain.reply
    with pytest.raises(ValueError, match="prompt_lookup must be"):
        GeneratorConfig(prompt_lookup=33)


@pytest.mark.slow
def test_copying_from_the_start_to_the_end_quotes_the_evidence_passage_whole(tiny_dir) -> None:
    answer = "Order {{Order Number}} has left our warehouse and is on its way."
    req = ComposeRequest(
        text="where is my order?",
        intent="order_status",
        history=(),
        hits=(_answer("conv-3#t0", answer, 0.9),),
        slots=Slots({}),
    )
    settings = {"evidence_k": 1, "candidates": 1, "int8": False, "max_new_tokens": 40, "copy_bias": 20.0}
    quoting = composer(tiny_dir, copy_span=8, copy_to_end=True, copy_from_start=True, **settings).load()
    (quoted,) = quoting.compose_with_candidates(req).candidates
    assert clean_generated_text(quoted.text, quoted.ended) == answer and quoted.ended
    # the random model on its own writes something else
    (free,) = composer(tiny_dir, **{**settings, "copy_bias": 0.0}).load().compose_with_candidates(req).candidates
    assert clean_generated_text(free.text, free.ended) != answer
    with pytest.raises(ValueError, match="copy_span must be"):
        GeneratorConfig(copy_span=1)


def test_the_model_says_how_many_answers_to_read_and_the_dialogue_is_asked_for_them(tmp_path) -> None:
    voted = make_tiny_model(tmp_path / "voted")
    meta = {"base": "scratch", "generation": {"evidence_k": 1, "evidence_order": "consensus", "consensus_k": 20}}
    (voted / "csbot_model.json").write_text(json.dumps(meta))
    c = composer(voted).load()
    assert (c.config.evidence_order, c.consensus_k, c.hits_wanted) == ("consensus", 20, 20)
    # configured settings win over the model's
    assert composer(voted, consensus_k=5).load().hits_wanted == 5
    # a model that does not say: the best-ranked answer leads, 3 answers are compared
    plain = composer(make_tiny_model(tmp_path / "plain")).load()
    assert (plain.config.evidence_order, plain.hits_wanted) == ("retrieval", 3)
