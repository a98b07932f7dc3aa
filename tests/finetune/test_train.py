"""finetune.train: pair files → a fine-tuned GPT-2 with the HF Trainer (tiny real models)."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from finetune.checkpoint import MODEL_META
from finetune.model import GeneratorBaseConfig, load_corpus_texts
from finetune.prompt import RESPONSE
from finetune.train import TrainConfig, train_generator
from finetune.train_data import PairsError, TooFewPairsError, encode_pair, read_pairs
from retrieval.entities import mask_entities
from retrieval.errors import CsbotError
from tests.helpers import REPO, last_json, run_csbot

TINY = GeneratorBaseConfig(n_layer=1, n_embd=48, n_head=2, n_positions=192, vocab_size=1200, pretrain_epochs=1)
FAST = TrainConfig(epochs=2, batch_size=8, lr=2e-3, max_target_tokens=64, early_stopping_patience=0)


def write_pairs(out: Path, n_conversations: int = 30, seed: int = 0) -> dict[str, int]:
    """Pairs in the pair builder's schema from the demo corpus: each agent reply is a target,
    the turns before it the context, two other conversations' agent replies the evidence;
    every fifth conversation goes to validation."""
    convs = [json.loads(line) for line in (REPO / "data" / "conversations.jsonl").read_text().splitlines()]
    convs = convs[:n_conversations]
    replies = [(c["id"], mask_entities(t["text"])[0]) for c in convs for t in c["turns"] if t["role"] == "agent"]
    rng = random.Random(seed)
    rows: dict[str, list[dict]] = {"train": [], "valid": []}
    for ci, c in enumerate(convs):
        split = "valid" if ci % 5 == 0 else "train"
        context: list[dict] = []
        for i, t in enumerate(c["turns"]):
            if t["role"] == "system":
                continue
            text = mask_entities(t["text"])[0]
            if t["role"] == "agent" and context:
                ev = rng.sample([r for r in replies if r[0] != c["id"]], 2)
                rows[split].append(
                    {
                        "id": f"{c['id']}#t{i}",
                        "conversation_id": c["id"],
                        "turn": i,
                        "context": list(context),
                        "evidence": [{"id": cid, "text": txt, "score": 0.5} for cid, txt in ev],
                        "target": text,
                        "target_kind": "agent",
                        "source": "test",
                    }
                )
            context.append({"role": t["role"], "text": text})
    out.mkdir(parents=True, exist_ok=True)
    for split, items in rows.items():
        (out / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    (out / "manifest.json").write_text(json.dumps({"data_sha256": f"sha-{n_conversations}-{seed}"}))
    return {k: len(v) for k, v in rows.items()}


def train_registered_generator(workspace: Path, base: Path, work: Path) -> str:
    """`csbot finetune train` of `base` on `write_pairs` pairs for one epoch, as a user
    would run it on `workspace`: the id of the model it registered there (not promoted)."""
    pairs = work / "pairs"
    write_pairs(pairs)
    args = ["finetune", "train", "--pairs", str(pairs), "--base", str(base), "--out", str(work / "run")]
    trained = last_json(run_csbot(*args, "--epochs", "1", workspace=workspace).stdout)
    assert trained["registered"], trained
    return str(trained["registered"])


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pairs")
    counts = write_pairs(d)
    assert counts["train"] >= 60
    return d


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return load_corpus_texts(REPO / "data")[:150]


def test_labels_mask_exactly_the_prompt(pairs, corpus) -> None:
    from finetune.tokenizer import train_tokenizer

    tok = train_tokenizer(corpus, 1200)
    pair = read_pairs(pairs).train[3]
    ex = encode_pair(pair, tok, max_length=192, max_target_tokens=64)
    ids, labels = ex["input_ids"], ex["labels"]
    prompt_len = ids.index(tok.convert_tokens_to_ids(RESPONSE)) + 1
    assert labels.count(-100) == prompt_len
    assert labels[prompt_len:] == ids[prompt_len:]
    assert ids[-1] == tok.eos_token_id  # the reply ends with <|endofreply|>
    assert tok.decode(ids[prompt_len:], skip_special_tokens=True).strip() == " ".join(pair["target"].split())
    # a long reply is cut to max_target_tokens and then has no end-of-reply token
    long = {**pair, "target": "word " * 300}
    ex = encode_pair(long, tok, max_length=192, max_target_tokens=64)
    assert len(ex["input_ids"]) <= 192 and sum(x != -100 for x in ex["labels"]) == 64
    assert ex["input_ids"][-1] != tok.eos_token_id


def test_too_few_pairs_are_refused_with_the_counts(tmp_path) -> None:
    counts = write_pairs(tmp_path / "p", n_conversations=4)
    with pytest.raises(TooFewPairsError, match=f"need at least 20 pairs, have {counts['train']}"):
        train_generator(tmp_path / "p", "scratch", tmp_path / "out", TrainConfig(), corpus_texts=["x"])
    assert not (tmp_path / "out" / "final").exists()


def test_an_unknown_evidence_order_is_refused_before_training(pairs, tmp_path) -> None:
    with pytest.raises(CsbotError, match="evidence_order must be 'auto', 'retrieval' or 'consensus'; got 'newest'"):
        train_generator(pairs, "scratch", tmp_path / "out", replace(FAST, evidence_order="newest"), corpus_texts=["x"])
    assert not (tmp_path / "out").exists()


def test_missing_or_malformed_pair_files_are_refused(tmp_path) -> None:
    with pytest.raises(PairsError, match=r"no train\.jsonl"):
        read_pairs(tmp_path)
    (tmp_path / "train.jsonl").write_text('{"context": [], "target": "x"}\n')
    (tmp_path / "valid.jsonl").write_text("")
    with pytest.raises(PairsError, match=r"train.jsonl:1 is not a pair"):
        read_pairs(tmp_path)


@pytest.mark.slow
def test_scratch_training_lowers_validation_loss_and_saves_a_loadable_model(pairs, corpus, tmp_path) -> None:
    from transformers import AutoTokenizer, GPT2LMHeadModel

    logs: list[dict] = []
    m = train_generator(
        pairs, "scratch", tmp_path / "run", FAST, base_config=TINY, corpus_texts=corpus, progress=logs.append
    )
    assert m["valid_loss"] < m["valid_loss_start"] - 0.2
    assert m["steps"] == m["max_steps"] and m["stopped_by"] is None
    assert {"pretrain", "finetune"} <= {x["phase"] for x in logs}

    final = tmp_path / "run" / "final"
    model = GPT2LMHeadModel.from_pretrained(final, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(final, local_files_only=True)
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    meta = json.loads((final / MODEL_META).read_text())
    assert meta["base"] == "scratch"
    assert meta["data_sha256"] == "sha-30-0"
    assert meta["train_config"]["epochs"] == 2 and meta["base_config"]["n_embd"] == 48
    assert meta["metrics"]["valid_loss"] == m["valid_loss"] and "train_loss" in meta["metrics"]
    assert meta["created_at"] and "transformers" in meta["versions"]
    assert meta["training"] == {"processes": 1, "device": "cpu", "launcher": "single", "backend": None}
    # the default "auto" order was chosen on the validation pairs, and the composer is told it
    scores = meta["metrics"]["evidence_order_scores"]
    assert set(scores) == {"1", "3", "5", "10", "20"}
    best = max(scores.values())
    chosen = meta["generation"]["consensus_k"] if meta["generation"]["evidence_order"] == "consensus" else 1
    assert scores[str(chosen)] == best and meta["train_config"]["evidence_order"] == "auto"
    assert not list((tmp_path / "run").glob(".final.*"))  # no temp dirs left behind


@pytest.mark.slow
def test_checkpoint_base_fine_tunes_too(pairs, tmp_path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    from finetune.tokenizer import train_tokenizer

    # a "pretrained" checkpoint saved by the test itself; load_base adds nothing new to our tokenizer
    tok = train_tokenizer(load_corpus_texts(REPO / "data")[:100], 1000)
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=192, vocab_size=len(tok))).save_pretrained(
        tmp_path / "ck"
    )
    tok.save_pretrained(tmp_path / "ck")
    cfg = replace(FAST, epochs=1, evidence_order="consensus")
    m = train_generator(pairs, str(tmp_path / "ck"), tmp_path / "run", cfg, progress=False)
    assert m["valid_loss"] < m["valid_loss_start"]
    meta = json.loads((tmp_path / "run" / "final" / MODEL_META).read_text())
    assert meta["base"] == str(tmp_path / "ck") and meta["base_config"] is None
    # trained on the retrieval vote: the composer is told to order its prompts the same way,
    # over the default 20 answers
    assert (meta["generation"]["evidence_order"], meta["generation"]["consensus_k"]) == ("consensus", 20)
    assert meta["metrics"]["evidence_order_scores"] == {}  # nothing was chosen


@pytest.mark.slow
def test_max_minutes_stops_early_and_still_saves(pairs, corpus, tmp_path) -> None:
    cfg = replace(FAST, epochs=50, max_minutes=0.01, pretrain_share=0.5)
    m = train_generator(pairs, "scratch", tmp_path / "run", cfg, base_config=TINY, corpus_texts=corpus, progress=False)
    assert m["stopped_by"] == "max_minutes"
    assert m["steps"] < m["max_steps"]
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()


@pytest.mark.slow
def test_resume_continues_from_the_last_checkpoint(pairs, corpus, tmp_path) -> None:
    out = tmp_path / "run"
    first = train_generator(
        pairs, "scratch", out, replace(FAST, epochs=1), base_config=TINY, corpus_texts=corpus, progress=False
    )
    steps_per_epoch = first["steps"]
    assert list((out / "checkpoints").glob("checkpoint-*"))
    second = train_generator(
        pairs,
        "scratch",
        out,
        replace(FAST, epochs=2),
        base_config=TINY,
        corpus_texts=corpus,
        resume=True,
        progress=False,
    )
    assert second["resumed_from"].endswith(f"checkpoint-{steps_per_epoch}")
    assert second["pretrain_reused"] is True  # same tokenizer and base, not retrained
    assert second["steps"] == 2 * steps_per_epoch
    assert second["valid_loss"] < first["valid_loss"]


@pytest.mark.slow
def test_a_pointer_model_trains_saves_and_decodes_whole_through_the_generator(pairs, corpus, tmp_path) -> None:
    from finetune.decoder import GeneratorConfig, GPT2Generator
    from finetune.pointer import PointerGPT2LMHeadModel

    m = train_generator(
        pairs,
        "scratch",
        tmp_path / "run",
        replace(FAST, epochs=1),
        base_config=replace(TINY, pointer=True),
        corpus_texts=corpus,
        progress=False,
    )
    assert m["valid_loss"] < m["valid_loss_start"]
    final = tmp_path / "run" / "final"
    meta = json.loads((final / MODEL_META).read_text())
    assert meta["base_config"]["pointer"] is True and meta["model_config"]["csbot_pointer"] is True
    generator = GPT2Generator(final, GeneratorConfig(candidates=1, int8=False)).load()
    assert isinstance(generator.model, PointerGPT2LMHeadModel)  # the pointer's weights came back too
    assert generator.fast_decoder is not None and generator.fast_decoder.pointer is not None
    prompt = "<|context|><|customer|> where is my order?<|knowledge|> It shipped yesterday.<|response|>"
    (reply,) = generator.generate([prompt])
    assert reply.new_tokens >= 1 and reply.first_token_ms is not None  # the fast decoder's timing
    saved = json.loads((final / "config.json").read_text())
    assert saved["csbot_pointer"] is True and saved["architectures"] == ["PointerGPT2LMHeadModel"]
