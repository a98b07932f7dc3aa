"""GPT2Composer.compose_stream: a real tiny GPT-2, taught two replies by heart, streams the reply
it sends sentence by sentence while it decodes; every chunk released passes the guard and the slot
rules, joined the chunks are the reply, and a sentence that fails ends the reply before it instead
of being taken back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.composers.generative import GPT2Composer, _opening, _sentence_ends
from bot.contracts import ComposeRequest, Slots, StreamingComposer, compose_streaming
from finetune.decoder import GeneratorConfig
from finetune.guard import company_facts_from
from finetune.prompt import END_OF_REPLY
from retrieval.types import Hit, Unit
from tests.bot.composers.test_generative import COMPANY, DOMAIN, fallback, make_tiny_model
from tests.bot.composers.test_generative import HITS as GENERATIVE_HITS

HITS = (
    GENERATIVE_HITS[0],  # an order-status transcript: "Good news - order {{Order Number}} has left ..."
    Hit(
        Unit(
            id="conv-7#t2",
            kind="transcript",
            text="can I track it?",
            intent="order_status",
            reply="Track it with {{Tracking Number}} on our site.",
        ),
        0.80,
    ),
)
ORDER = "#40318275"
SHIPPED = "Good news - order {{Order Number}} has left our warehouse."
# what the model is taught to answer to each question (same evidence): the second sentence of
# the tracking reply needs a value no slot fills, so the guard's slot rule refuses it
REPLIES = {
    "where is my order?": f"{SHIPPED} Standard delivery takes 3-5 business days.",
    "can I track my parcel?": f"{SHIPPED} Track it with {{{{Tracking Number}}}} on our site.",
}


def request(text: str) -> ComposeRequest:
    return ComposeRequest(text=text, intent="order_status", history=(), hits=HITS, slots=Slots({"order_id": ORDER}))


def composer(model_dir: Path, **config) -> GPT2Composer:
    settings = {"max_new_tokens": 96, "evidence_k": 2, "candidates": 1, "min_overlap": 0.3, **config}
    return GPT2Composer(
        model_dir,
        GeneratorConfig(**settings),
        fallback=fallback(),
        company_facts=company_facts_from(COMPANY),
        slot_questions=DOMAIN.slot_questions,
        slot_mentions=DOMAIN.slot_mentions,
    )


@pytest.fixture(scope="module")
def parrot_dir(tmp_path_factory) -> Path:
    """The tiny GPT-2 trained until it answers each question of REPLIES with its reply."""
    import torch
    from transformers import AutoTokenizer, GPT2LMHeadModel

    path = make_tiny_model(tmp_path_factory.mktemp("parrot") / "final")
    tok = AutoTokenizer.from_pretrained(path)
    model = GPT2LMHeadModel.from_pretrained(path)
    c = composer(path).load()
    rows = []
    for question, reply in REPLIES.items():
        prompt = c.build_prompt(request(question), c.evidence_hits(request(question)))
        prompt_ids = tok.encode(prompt, add_special_tokens=False)
        target_ids = tok.encode(" " + reply + END_OF_REPLY, add_special_tokens=False)
        rows.append((prompt_ids + target_ids, len(prompt_ids)))
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(400):
        for ids, n_prompt in rows:
            labels = torch.tensor([[-100] * n_prompt + ids[n_prompt:]])
            loss = model(torch.tensor([ids]), labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    model.save_pretrained(path)
    (path / "csbot_model.json").write_text(json.dumps({"base": "scratch", "test": True}))
    return path


def stream(c: GPT2Composer, text: str):
    """The chunks `compose_stream` yields, and the reply it returns."""
    chunks: list[str] = []
    turn = c.compose_stream(request(text))
    while True:
        try:
            chunks.append(next(turn))
        except StopIteration as done:
            return chunks, done.value


# -- sentences (no model) -----------------------------------------------------------------------


def test_sentences_end_at_stops_followed_by_a_space_but_not_after_a_digit() -> None:
    text = "Follow these steps: 1. Open the app. Tap Orders! Done"
    ends = list(_sentence_ends(text, 0, False))
    assert [text[:e] for e in ends] == [
        "Follow these steps: 1. Open the app.",
        "Follow these steps: 1. Open the app. Tap Orders!",
    ]
    assert list(_sentence_ends(text, ends[0], True)) == [ends[1], len(text)]
    assert _opening("  Good  news.  More", ended=False) == "Good news."
    assert _opening("no stop yet", ended=True) == "no stop yet"


# -- the real tiny model ------------------------------------------------------------------------


@pytest.mark.slow
def test_the_sent_reply_streams_sentence_by_sentence_and_is_what_compose_sends(parrot_dir) -> None:
    c = composer(parrot_dir)
    assert isinstance(c, StreamingComposer)
    decoded_at_release: list[int] = []
    steps_so_far = [0]
    token_steps = c.generator.token_steps

    def counted(*args, **kwargs):  # the real decoder, with its steps counted
        for step in token_steps(*args, **kwargs):
            steps_so_far[0] += 1
            yield step

    c.generator.token_steps = counted  # type: ignore[method-assign]
    chunks: list[str] = []
    turn = c.compose_stream(request("where is my order?"))
    while True:
        try:
            chunks.append(next(turn))
            decoded_at_release.append(steps_so_far[0])
        except StopIteration as done:
            reply = done.value
            break
    filled = SHIPPED.replace("{{Order Number}}", ORDER)
    assert chunks == [filled, " Standard delivery takes 3-5 business days."]
    assert "".join(chunks) == reply.text and (reply.composer, reply.action, reply.note) == (
        "gpt2",
        "answer",
        "streamed",
    )
    assert reply.source_ids == ("conv-1#t0", "conv-7#t2")
    # the first sentence went out while the reply was still being decoded
    assert decoded_at_release[0] < steps_so_far[0]
    # one greedy candidate: the streamed reply is the one the whole-reply path sends
    assert composer(parrot_dir).compose(request("where is my order?")).text == reply.text


@pytest.mark.slow
def test_a_sentence_that_fails_ends_the_reply_before_it_where_the_whole_reply_would_fall_back(parrot_dir) -> None:
    chunks, reply = stream(composer(parrot_dir), "can I track my parcel?")
    assert chunks == [SHIPPED.replace("{{Order Number}}", ORDER)]
    assert reply.text == chunks[0] and reply.composer == "gpt2" and reply.action == "answer"
    assert "{{Tracking Number}}, which no slot fills" in reply.note
    whole = composer(parrot_dir).compose(request("can I track my parcel?"))
    assert whole.composer == "retrieval (gpt2 rejected)" and "{{Tracking Number}}" in whole.note


@pytest.mark.slow
def test_nothing_is_streamed_when_the_reply_needs_a_slot_or_the_guard_refuses_its_opening(parrot_dir) -> None:
    c = composer(parrot_dir)
    no_order = ComposeRequest("where is my order?", "order_status", (), HITS, Slots({}))
    chunks: list[str] = []
    turn = compose_streaming(c, no_order)
    while True:
        try:
            chunks.append(next(turn))
        except StopIteration as done:
            asked = done.value
            break
    assert chunks == [] and (asked.action, asked.missing_slot) == ("clarify", "order_id")
    assert asked.text == DOMAIN.slot_questions["order_id"]
    # a threshold no reply can reach: the fallback's reply, whole, nothing streamed
    chunks, reply = stream(composer(parrot_dir, min_overlap=1.01), "where is my order?")
    assert chunks == [] and reply.composer == "retrieval (gpt2 rejected)" and "of the reply's words" in reply.note


@pytest.mark.slow
def test_beam_search_cannot_stream_and_composes_whole(parrot_dir) -> None:
    chunks, reply = stream(composer(parrot_dir, decoding="beam", candidates=1), "where is my order?")
    assert chunks == [] and reply.text.startswith(SHIPPED.replace("{{Order Number}}", ORDER))


@pytest.mark.slow
def test_with_an_agreement_floor_the_reply_is_sent_whole_as_compose_sends_it(parrot_dir) -> None:
    # agreement is judged on the whole reply, so nothing may be released before it ends
    chunks, reply = stream(composer(parrot_dir, min_agreement=0.5), "where is my order?")
    whole = composer(parrot_dir, min_agreement=0.5).compose(request("where is my order?"))
    assert chunks == [] and reply == whole and reply.composer == "gpt2"
