"""finetune.tokenizer and finetune.prompt: our byte-level BPE and the shared prompt layout."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from finetune.prompt import (
    AGENT,
    CONTEXT,
    CUSTOMER,
    END_OF_REPLY,
    KNOWLEDGE,
    PLACEHOLDERS,
    RESPONSE,
    SEP,
    SPECIAL_TOKENS,
    PromptError,
    format_prompt,
    format_target,
    format_transcript,
)
from finetune.tokenizer import TokenizerError, train_tokenizer
from retrieval.entities import mask_entities
from tests.helpers import REPO


def corpus_lines(n: int = 300) -> list[str]:
    texts = []
    for line in (REPO / "data" / "conversations.jsonl").read_text().splitlines():
        turns = [t for t in json.loads(line)["turns"] if t["role"] != "system"]
        texts.append(mask_entities(format_transcript(turns))[0])
        if len(texts) >= n:
            break
    return texts


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tokenizer(corpus_lines(), 2000, tmp_path_factory.mktemp("tok"))


def test_tokenizer_trains_on_a_few_hundred_conversations_and_is_saved(tmp_path) -> None:
    tok = train_tokenizer(corpus_lines(), 2000, tmp_path)
    assert 300 < len(tok) <= 2000
    assert (tmp_path / "tokenizer.json").is_file()


def test_special_tokens_and_placeholders_are_single_tokens(tok) -> None:
    for t in (*SPECIAL_TOKENS, *PLACEHOLDERS):
        ids = tok.encode(t, add_special_tokens=False)
        assert len(ids) == 1, (t, tok.convert_ids_to_tokens(ids))
    ids = tok.encode("your order {{Order Number}} ships", add_special_tokens=False)
    assert "{{Order Number}}" in tok.convert_ids_to_tokens(ids)
    assert tok.eos_token == END_OF_REPLY and tok.pad_token == "<|pad|>"


def test_tokenizer_round_trips_text_typos_and_emoji(tok) -> None:
    for text in [
        "Hi! Where's my pakage?? it's {{Order Number}} 🙂",
        "naïve café — 30 days\n- list item",
        corpus_lines(1)[0],
    ]:
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_placeholders_of_an_imported_corpus_become_tokens_too(tmp_path) -> None:
    texts = [*corpus_lines(50), "visit {{Website URL}} today", "see {{Website URL}} for details"]
    tok = train_tokenizer(texts, 2000)
    assert len(tok.encode("{{Website URL}}", add_special_tokens=False)) == 1


def test_saved_tokenizer_loads_with_autotokenizer(tmp_path) -> None:
    from transformers import AutoTokenizer

    train_tokenizer(corpus_lines(50), 1000, tmp_path)
    loaded = AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
    assert loaded.encode("<|response|> {{Email}}", add_special_tokens=False)[0] == loaded.convert_tokens_to_ids(
        RESPONSE
    )
    assert loaded.eos_token == END_OF_REPLY


def test_too_small_a_vocabulary_or_no_text_is_refused() -> None:
    with pytest.raises(TokenizerError, match="vocab_size 100 is too small"):
        train_tokenizer(corpus_lines(10), 100)
    with pytest.raises(TokenizerError, match="no text"):
        train_tokenizer(["", "  "], 1000)


# --- prompt layout ---------------------------------------------------------------------------

CONTEXT_TURNS = [
    {"role": "customer", "text": "hi there, I ordered a kettle last week"},
    {"role": "agent", "text": "Hello! How can I help with it?"},
    {"role": "customer", "text": "where is my   order {{Order Number}}?"},
]
EVIDENCE = [
    {"id": "a", "text": "Standard delivery takes 3-5 business days.", "score": 0.9},
    {"id": "b", "text": "Tracking links are in your shipping email.", "score": 0.7},
]


def test_prompt_layout_is_context_knowledge_response() -> None:
    prompt = format_prompt(CONTEXT_TURNS, EVIDENCE)
    assert prompt == (
        f"{CONTEXT}{CUSTOMER} hi there, I ordered a kettle last week{AGENT} Hello! How can I help with it?"
        f"{CUSTOMER} where is my order {{{{Order Number}}}}?{KNOWLEDGE} Standard delivery takes 3-5 business days."
        f"{SEP} Tracking links are in your shipping email.{RESPONSE}"
    )
    assert format_target("Sure  thing.") == " Sure thing." + END_OF_REPLY
    assert format_target("cut", end=False) == " cut"
    assert format_prompt(CONTEXT_TURNS[-1:], []).endswith(f"{KNOWLEDGE}{RESPONSE}")


def test_prompt_refuses_no_context_and_unknown_roles() -> None:
    with pytest.raises(PromptError, match="at least one context turn"):
        format_prompt([], EVIDENCE)
    with pytest.raises(PromptError, match="role 'robot'"):
        format_prompt([{"role": "robot", "text": "x"}], [])


def test_truncation_keeps_the_latest_turn_and_the_top_evidence_within_budget(tok) -> None:
    long_turns = [
        {"role": "customer" if i % 2 == 0 else "agent", "text": f"turn {i} " + "blah " * 30} for i in range(10)
    ] + [{"role": "customer", "text": "LATEST question about my refund"}]
    long_evidence = [
        {"id": str(i), "text": f"EVIDENCE{i} " + "the refund policy says " * 20, "score": 1 - i / 10} for i in range(5)
    ]
    for budget in (60, 120, 250):
        prompt = format_prompt(long_turns, long_evidence, tokenizer=tok, max_tokens=budget)
        n = len(tok.encode(prompt, add_special_tokens=False))
        assert n <= budget, (budget, n)
        assert "LATEST question about my refund" in prompt
        assert "EVIDENCE0" in prompt
        assert prompt.startswith(CONTEXT) and prompt.endswith(RESPONSE)
    # a larger budget keeps more of the older context, newest first
    small = format_prompt(long_turns, long_evidence, tokenizer=tok, max_tokens=120)
    large = format_prompt(long_turns, long_evidence, tokenizer=tok, max_tokens=400)
    assert "turn 9" in large and "turn 0" not in large
    assert len(large) > len(small)


def test_an_overlong_latest_turn_is_cut_keeping_its_end(tok) -> None:
    turns = [{"role": "customer", "text": "words " * 200 + "so where is my parcel?"}]
    prompt = format_prompt(turns, EVIDENCE, tokenizer=tok, max_tokens=80)
    assert len(tok.encode(prompt, add_special_tokens=False)) <= 80
    assert "so where is my parcel?" in prompt
    assert "Standard delivery" in prompt


def test_importing_the_prompt_and_tokenizer_modules_loads_no_torch_or_transformers() -> None:
    code = (
        "import sys, finetune.prompt, finetune.tokenizer, finetune.model, finetune.train\n"
        "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
