"""finetune.pointer: a GPT-2 that copies earlier tokens; trained through the Trainer's loss,
decoded by the fast decoder exactly as its own forward pass scores, saved and loaded whole."""

import pytest

torch = pytest.importorskip("torch")

from finetune.decoding import GPT2Decoder, Sampling  # noqa: E402 - only once torch is known to be installed
from finetune.model import model_class  # noqa: E402
from finetune.pointer import (  # noqa: E402
    PointerGPT2LMHeadModel,
    PointerNeedsFastDecoderError,
    is_pointer_checkpoint,
    pointer_config,
)

EOS = 7
VOCAB = 97


def make_model(seed: int = 0) -> PointerGPT2LMHeadModel:
    from transformers import GPT2Config

    torch.manual_seed(seed)
    config = pointer_config(
        GPT2Config(
            vocab_size=VOCAB,
            n_positions=64,
            n_embd=32,
            n_layer=2,
            n_head=4,
            bos_token_id=EOS,
            eos_token_id=EOS,
            pad_token_id=0,
        )
    )
    m = PointerGPT2LMHeadModel(config)
    with torch.no_grad():  # a gate near one half and a sharp pointer: both sides of the mixture matter
        m.copy_gate.bias.fill_(0.0)
        m.copy_query.weight.mul_(40.0)
        m.lm_head.weight.mul_(8.0)
    return m.eval()


def full_forward_greedy(model, prompt, n):
    """Greedy decoding by running the whole text through `forward` at every step (no cache)."""
    ids = list(prompt)
    out = []
    with torch.no_grad():
        for _ in range(n):
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
            token = int(logits.argmax())
            out.append(token)
            if token == EOS:
                break
            ids.append(token)
    return out


def fast_greedy(decoder, prompts, n):
    rows = [[] for _ in prompts]
    for step in decoder.generate(prompts, max_new_tokens=n, eos_id=EOS, sampling=Sampling()):
        for i, t in enumerate(step):
            if t is not None:
                rows[i].append(t)
    return rows


PROMPTS = [[5, 9, 11, 3, 40, 41, 42], [12, 13], [60, 61, 62, 63, 64, 65, 66, 1, 2], [30]]


def test_the_forward_pass_gives_a_distribution_that_mixes_vocabulary_and_copying():
    model = make_model()
    ids = torch.tensor([[5, 9, 11, 3, 40, 41, 42]])
    with torch.no_grad():
        log_probs = model(input_ids=ids).logits
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(1, 7), atol=1e-5)
    # with the gate closed on the vocabulary, all the mass sits on tokens that followed an
    # earlier position: after position t, the tokens x_1 .. x_t
    with torch.no_grad():
        model.copy_gate.bias.fill_(-40.0)
        copied = model(input_ids=ids).logits.exp()
    for t in range(1, 7):
        assert copied[0, t, ids[0, 1 : t + 1]].sum() == pytest.approx(1.0, abs=1e-5)
        outside = torch.ones(VOCAB, dtype=torch.bool)
        outside[ids[0, 1 : t + 1]] = False
        assert copied[0, t, outside].sum() < 1e-5
    # the first position has nothing to copy yet: the vocabulary alone, still a distribution
    assert copied[0, 0].sum() == pytest.approx(1.0, abs=1e-5)


def test_the_fast_decoder_decodes_what_the_forward_pass_prefers_token_for_token():
    model = make_model()
    decoder = GPT2Decoder(model)
    assert decoder.pointer is not None
    for prompt in PROMPTS:
        assert fast_greedy(decoder, [prompt], 12) == [full_forward_greedy(model, prompt, 12)]


def test_a_left_padded_batch_of_a_pointer_model_decodes_each_prompt_as_if_alone():
    decoder = GPT2Decoder(make_model())
    alone = [fast_greedy(decoder, [p], 12)[0] for p in PROMPTS]
    assert fast_greedy(decoder, PROMPTS, 12) == alone


def test_the_loss_counts_only_labelled_tokens_and_training_learns_to_copy():
    """A task the vocabulary side cannot learn from the labels alone in a few steps: repeat
    a random sequence given once. The pointer learns it quickly."""
    model = make_model(seed=1).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)

    def batch():
        seq = torch.randint(20, VOCAB, (16, 8), generator=gen)
        ids = torch.cat([seq, torch.full((16, 1), 3), seq], 1)
        labels = ids.clone()
        labels[:, :9] = -100
        return ids, labels

    ids, labels = batch()
    with torch.no_grad():
        first = float(model(input_ids=ids, labels=labels).loss)
    for _ in range(150):
        ids, labels = batch()
        loss = model(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    ids, labels = batch()
    model.eval()  # no dropout: the two calls below see the same network
    with torch.no_grad():
        loss = model(input_ids=ids, labels=labels).loss
        log_probs = model(input_ids=ids).logits
    assert float(loss) < first / 4
    # the loss is the labelled tokens' mean negative log-probability, nothing else
    picked = log_probs[:, 8:-1].gather(2, ids[:, 9:, None]).squeeze(-1)
    assert float(loss) == pytest.approx(float(-picked.mean()), rel=1e-5)


def test_padding_copies_nothing_and_leaves_no_nan():
    model = make_model().train()
    ids = torch.tensor([[5, 9, 11, 0, 0], [12, 13, 14, 15, 16]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    labels = ids.masked_fill(mask == 0, -100)
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_generate_with_a_cache_is_refused_with_what_to_do_instead():
    model = make_model()
    with pytest.raises(PointerNeedsFastDecoderError, match="fast decoder"):
        model.generate(input_ids=torch.tensor([[5, 9]]), max_new_tokens=3, eos_token_id=EOS, pad_token_id=0)


def test_a_saved_pointer_model_loads_back_whole(tmp_path):
    model = make_model()
    model.save_pretrained(tmp_path)
    assert is_pointer_checkpoint(tmp_path)
    cls = model_class(tmp_path)
    assert cls is PointerGPT2LMHeadModel
    loaded = cls.from_pretrained(str(tmp_path)).eval()
    assert torch.equal(loaded.copy_query.weight, model.copy_query.weight)
    assert torch.equal(loaded.copy_gate.bias, model.copy_gate.bias)
    prompt = PROMPTS[0]
    assert fast_greedy(GPT2Decoder(loaded), [prompt], 10) == fast_greedy(GPT2Decoder(model), [prompt], 10)


def test_a_plain_checkpoint_is_not_taken_for_a_pointer_one(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=16, n_layer=1, n_head=2)).save_pretrained(
        tmp_path
    )
    assert not is_pointer_checkpoint(tmp_path)
    assert model_class(tmp_path) is GPT2LMHeadModel
    assert model_class(None) is GPT2LMHeadModel
