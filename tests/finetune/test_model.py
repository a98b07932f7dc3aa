"""finetune.model: the scratch base, the checkpoint-by-path route and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from finetune.model import (
    BaseModelError,
    BaseNotAvailableError,
    GeneratorBaseConfig,
    VocabMismatchError,
    load_base,
    load_corpus_texts,
    pretrain,
)
from finetune.prompt import END_OF_REPLY, PAD, PLACEHOLDERS, SPECIAL_TOKENS
from tests.helpers import REPO

TINY = GeneratorBaseConfig(
    n_layer=1, n_embd=32, n_head=2, n_positions=64, vocab_size=1000, pretrain_epochs=1, pretrain_batch_size=8
)


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return load_corpus_texts(REPO / "data")


def plain_gpt2_tokenizer(texts: list[str], vocab_size: int = 600):
    """A GPT-2-style tokenizer that knows nothing of csbot (only <|endoftext|>), like a hub one."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )


def save_tiny_checkpoint(path: Path, texts: list[str], vocab_size: int | None = None) -> int:
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = plain_gpt2_tokenizer(texts)
    model = GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_embd=32, n_head=2, n_positions=64, vocab_size=vocab_size or len(tok))
    )
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return len(tok)


def test_corpus_texts_hold_every_conversation_and_article_masked(corpus) -> None:
    assert len(corpus) == 430 + 34
    assert any("{{Order Number}}" in t for t in corpus)
    assert not any("ORD-40318275" in t for t in corpus)


def test_scratch_base_is_a_gpt2_of_the_configured_size_with_our_tokenizer(corpus, tmp_path) -> None:
    from transformers import GPT2LMHeadModel

    model, tok = load_base("scratch", corpus_texts=corpus[:200], out_dir=tmp_path, config=TINY)
    assert isinstance(model, GPT2LMHeadModel)
    c = model.config
    assert (c.n_layer, c.n_embd, c.n_head, c.n_positions) == (1, 32, 2, 64)
    assert c.vocab_size == len(tok) <= 1000
    assert model.get_input_embeddings().weight.shape == (len(tok), 32)
    assert model.generation_config.eos_token_id == tok.convert_tokens_to_ids(END_OF_REPLY)
    assert (tmp_path / "tokenizer" / "tokenizer.json").is_file()


def test_default_base_config_is_cpu_sized() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GeneratorBaseConfig()
    model = GPT2LMHeadModel(
        GPT2Config(
            n_layer=cfg.n_layer,
            n_embd=cfg.n_embd,
            n_head=cfg.n_head,
            n_positions=cfg.n_positions,
            vocab_size=cfg.vocab_size,
        )
    )
    assert 3e6 < model.num_parameters() < 10e6


def test_scratch_base_needs_corpus_texts() -> None:
    with pytest.raises(BaseModelError, match="corpus_texts"):
        load_base("scratch", config=TINY)


def test_checkpoint_by_path_loads_and_gains_our_tokens(corpus, tmp_path) -> None:
    n_plain = save_tiny_checkpoint(tmp_path / "tiny", corpus[:100])
    model, tok = load_base(str(tmp_path / "tiny"), corpus_texts=["see {{Website URL}}", "at {{Website URL}}"])
    for t in (*SPECIAL_TOKENS, *PLACEHOLDERS, "{{Website URL}}"):
        assert len(tok.encode(t, add_special_tokens=False)) == 1, t
    assert len(tok) > n_plain
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert tok.pad_token == PAD and tok.eos_token == END_OF_REPLY
    # the new model still runs end to end
    import torch

    ids = torch.tensor([tok.encode("<|context|><|customer|> hi<|response|>", add_special_tokens=False)])
    assert model(ids).logits.shape[-1] == len(tok)


def test_a_base_not_in_the_local_cache_says_how_to_provide_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache("gpt2", "config.json"), str):
        pytest.skip("gpt2 is in this machine's HF cache")
    with pytest.raises(BaseNotAvailableError) as e:
        load_base("gpt2")
    msg = str(e.value)
    assert "'gpt2' is not available offline" in msg
    assert "huggingface-cli download gpt2 --local-dir DIR" in msg and "--allow-download" in msg
    with pytest.raises(BaseNotAvailableError, match="no directory"):
        load_base(str(tmp_path / "missing"))


def test_a_tokenizer_bigger_than_the_embedding_matrix_is_refused(corpus, tmp_path) -> None:
    n = save_tiny_checkpoint(tmp_path / "bad", corpus[:100], vocab_size=300)
    with pytest.raises(VocabMismatchError) as e:
        load_base(str(tmp_path / "bad"))
    assert f"tokenizer of {n} tokens" in str(e.value) and "is 300" in str(e.value)


def test_corrupt_or_missing_weights_are_refused_naming_the_checkpoint(corpus, tmp_path) -> None:
    save_tiny_checkpoint(tmp_path / "ck", corpus[:100])
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(BaseModelError, match="ck"):
        load_base(str(tmp_path / "ck"))
    (tmp_path / "ck" / "model.safetensors").unlink()
    with pytest.raises(BaseModelError, match="ck"):
        load_base(str(tmp_path / "ck"))


@pytest.mark.slow
def test_pretraining_lowers_the_language_model_loss(corpus, tmp_path) -> None:
    import torch

    from finetune.model import PackedBlocks

    model, tok = load_base("scratch", corpus_texts=corpus[:120], config=TINY)
    blocks = PackedBlocks(corpus[:120], tok, TINY.n_positions)
    batch = torch.stack([blocks[i]["input_ids"] for i in range(16)])

    def loss() -> float:
        model.eval()
        with torch.no_grad():
            return model(batch, labels=batch).loss.item()

    before = loss()
    cfg = GeneratorBaseConfig(**{**TINY.__dict__, "pretrain_epochs": 2, "pretrain_lr": 3e-3})
    metrics = pretrain(model, tok, corpus[:120], cfg, tmp_path / "pre", progress=False)
    assert metrics["pretrain_steps"] > 0
    assert loss() < before - 0.3
