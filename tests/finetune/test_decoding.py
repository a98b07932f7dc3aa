"""finetune.decoding: the fast decoder writes what `model.generate` writes, batched or not."""

import pytest

torch = pytest.importorskip("torch")

from finetune.decoding import GPT2Decoder, Sampling, UnsupportedModelError  # noqa: E402 - only once torch is known to be installed

EOS = 7


@pytest.fixture(scope="module")
def model():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    m = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=97,
            n_positions=64,
            n_embd=32,
            n_layer=2,
            n_head=4,
            bos_token_id=EOS,
            eos_token_id=EOS,
            pad_token_id=0,
        )
    )
    # sharpen the random model so greedy choices are not near-ties that float noise could flip
    with torch.no_grad():
        m.lm_head.weight.mul_(8.0)
    return m.eval()


def hf_greedy(model, prompt, n):
    ids = torch.tensor([prompt])
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=n,
        do_sample=False,
        eos_token_id=EOS,
        pad_token_id=0,
    )
    return out[0, len(prompt) :].tolist()


def ours(model, prompts, n, **sampling):
    """Rows decoded by a GPT2Decoder over `model` (or by `model`, when it is a decoder)."""
    decoder = model if isinstance(model, GPT2Decoder) else GPT2Decoder(model)
    rows = [[] for _ in prompts]
    for step in decoder.generate(prompts, max_new_tokens=n, eos_id=EOS, sampling=Sampling(**sampling)):
        for i, t in enumerate(step):
            if t is not None:
                rows[i].append(t)
    return rows


PROMPTS = [[5, 9, 11, 3, 40], [12, 13], [60, 61, 62, 63, 64, 65, 66, 1, 2]]


def test_greedy_decoding_matches_model_generate_token_for_token(model):
    for prompt in PROMPTS:
        assert ours(model, [prompt], 20) == [hf_greedy(model, prompt, 20)]


@pytest.mark.parametrize("lookup", [0, 4])
def test_a_left_padded_batch_decodes_each_prompt_as_if_alone(model, lookup):
    alone = [ours(model, [p], 20)[0] for p in PROMPTS]
    assert ours(model, PROMPTS, 20, lookup=lookup) == alone


def test_a_row_that_reaches_the_end_token_stops_while_the_others_go_on(model):
    rows = ours(model, PROMPTS, 30)
    for row in rows:
        assert EOS not in row[:-1]  # nothing after the end token
    steps = list(GPT2Decoder(model).generate(PROMPTS, max_new_tokens=30, eos_id=EOS))
    assert len(steps) == max(len(r) for r in rows)


def counting_passes(model):
    """A decoder over `model` and a list whose first item counts its forward passes."""
    decoder, passes = GPT2Decoder(model), [0]
    forward = decoder._forward

    def counted(*args, **kwargs):
        passes[0] += 1
        return forward(*args, **kwargs)

    decoder._forward = counted
    return decoder, passes


def test_prompt_lookup_writes_one_token_decodings_tokens_in_fewer_passes(model):
    # the sharpened random model repeats a prompt's last token, so where the prompt already
    # holds that run, its drafts are right; elsewhere they are refused
    prompts = [[5, 9, 40, 40, 40, 40, 40, 9, 40], *PROMPTS]
    plain, plain_passes = counting_passes(model)
    looking, lookup_passes = counting_passes(model)
    expected = ours(plain, prompts, 12)
    assert ours(looking, prompts, 12, lookup=4) == expected
    assert expected[0] == [40] * 12
    # a batch takes as many passes as its row that drafts least needs; this row alone:
    plain_passes[0] = lookup_passes[0] = 0
    assert ours(looking, prompts[:1], 12, lookup=4) == ours(plain, prompts[:1], 12)
    assert plain_passes[0] == 12 and lookup_passes[0] < 12
    # a reply that quotes its source (a copy bias makes it) is drafted from the source, and
    # the bias is applied at every drafted position as it is one token at a time
    prompt = [20, 21, 22, 23, 24, 25, 26, 30, 21, 22]
    quote = {"copy_bias": 50.0, "copy_sources": [prompt]}
    plain_passes[0] = lookup_passes[0] = 0
    assert ours(plain, [prompt], 5, **quote) == [[23, 24, 25, 26, 30]]
    assert ours(looking, [prompt], 5, lookup=4, **quote) == [[23, 24, 25, 26, 30]]
    assert (plain_passes[0], lookup_passes[0]) == (5, 2)  # the prompt's pass, then one for 5 tokens


def test_prompt_lookup_keeps_every_rule_of_one_token_decoding(model):
    # banned tokens, the end token held back, the token limit: row by row, as without lookup
    prompts = [[5, 9, 40, 40, 40, 40, 40, 9, 40], PROMPTS[1]]
    banned = [{40}, set()]
    for kwargs in ({"banned": banned}, {}):
        plain = ours(model, prompts, 9, **kwargs)
        assert ours(model, prompts, 9, lookup=6, **kwargs) == plain
        assert all(len(row) <= 9 for row in plain)
    assert 40 not in ours(model, prompts, 9, lookup=6, banned=banned)[0]
    free = ours(model, [[1, 2, 3]], 6)
    assert free[0][-1] == EOS or len(free[0]) == 6
    decoder = GPT2Decoder(model)
    held = [[], []]
    for step in decoder.generate(
        [[1, 2, 3], prompts[0]], max_new_tokens=6, eos_id=EOS, min_new_tokens=6, sampling=Sampling(lookup=3)
    ):
        for i, t in enumerate(step):
            if t is not None:
                held[i].append(t)
    assert [len(row) for row in held] == [6, 6] and EOS not in held[0] + held[1]


def test_a_cache_left_full_of_nan_changes_nothing(model, monkeypatch):
    # rows of a lookup batch write different columns, so attention spans columns a row never
    # wrote: masked, yet a NaN there would still spread through the weighted sum
    prompts = [[5, 9, 40, 40, 40, 40, 40, 9, 40], *PROMPTS]
    expected = ours(model, prompts, 16)
    empty = torch.empty

    def garbage(*args, **kwargs):
        t = empty(*args, **kwargs)
        return t.fill_(float("nan")) if t.is_floating_point() else t

    monkeypatch.setattr(torch, "empty", garbage)
    for lookup in (0, 4):
        assert ours(model, prompts, 16, lookup=lookup) == expected


def test_prompt_lookup_drafts_only_for_the_greedy_rows(model):
    prompt = [5, 9, 40, 40, 40, 40, 40, 9, 40]
    sampled = {"top_p": 0.95, "temperature": 1.5, "seed": 1, "greedy_rows": 1}
    rows = ours(model, [prompt] * 4, 12, lookup=4, **sampled)
    assert rows[0] == ours(model, [prompt], 12)[0]
    assert rows == ours(model, [prompt] * 4, 12, lookup=4, **sampled)  # seeded: replays alike
    assert any(row != rows[0] for row in rows[1:])


def test_prompt_lookup_drafts_from_the_last_place_of_the_longest_tail():
    from finetune.decoding import _Lookup

    look = _Lookup([1, 2, 3, 4, 9, 2, 3, 5, 6])
    assert look.after([7, 2, 3], 2) == [5, 6]  # "2 3" last stands before "5 6"
    assert look.after([1, 2, 3], 3) == [4, 9, 2]  # "1 2 3" beats the shorter "2 3"
    assert look.after([8, 8, 6], 4) == []  # 6 ends the prompt: nothing follows it
    assert look.after([8, 8, 8], 4) == [] and look.after([1, 2], 0) == []


def test_seeded_nucleus_sampling_replays_alike(model):
    a = ours(model, PROMPTS[:1], 15, top_p=0.9, temperature=1.0, seed=3)
    b = ours(model, PROMPTS[:1], 15, top_p=0.9, temperature=1.0, seed=3)
    assert a == b and len(a[0]) > 0


def test_greedy_rows_keep_the_greedy_reply_among_sampled_alternatives(model):
    prompt = PROMPTS[0]
    rows = ours(model, [prompt] * 4, 15, top_p=0.95, temperature=1.5, seed=1, greedy_rows=1)
    assert rows[0] == ours(model, [prompt], 15)[0]
    assert any(row != rows[0] for row in rows[1:])  # the others are samples, not copies


def prefill_logits(decoder, prompt):
    length = len(prompt)
    shape = (1, decoder.n_head, length, decoder.head_dim)
    keys = [torch.empty(shape) for _ in range(decoder.n_layer)]
    values = [torch.empty(shape) for _ in range(decoder.n_layer)]
    with torch.inference_mode():
        return decoder._forward(torch.tensor([prompt]), torch.arange(length)[None], keys, values, 0, None)[0]


def test_int8_weights_move_the_logits_only_a_little(model):
    fp32, int8 = GPT2Decoder(model), GPT2Decoder(model, int8=True)
    if not int8.int8:
        pytest.skip("torch has no int8 (fbgemm) kernels on this CPU: the decoder stays in float32")
    for prompt in PROMPTS:
        exact, quantized = prefill_logits(fp32, prompt), prefill_logits(int8, prompt)
        assert not torch.equal(exact, quantized)  # it really ran on other weights
        assert (exact - quantized).abs().max() < 0.05 * exact.abs().max()
        assert exact.argmax() == quantized.argmax()
    # and it decodes a whole reply like any decoder: the end token ends a row
    assert all(EOS not in row[:-1] for row in ours(int8, PROMPTS, 20))


def test_generation_never_runs_past_the_models_positions(model):
    prompt = list(range(1, 60))
    (row,) = ours(model, [prompt], 50)
    assert len(row) <= 64 - len(prompt)
    with pytest.raises(ValueError, match="no room"):
        next(GPT2Decoder(model).generate([list(range(1, 65))], max_new_tokens=5, eos_id=EOS))


def test_a_variant_it_cannot_reproduce_is_refused():
    from transformers import GPT2Config, GPT2LMHeadModel

    m = GPT2LMHeadModel(
        GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2, activation_function="relu")
    )
    with pytest.raises(UnsupportedModelError, match="relu"):
        GPT2Decoder(m)


def test_banned_tokens_are_never_chosen_per_row(model):
    free = ours(model, PROMPTS[:2], 10)
    first_choice = [row[0] for row in free]
    banned = [{first_choice[0]}, set()]
    rows = [[] for _ in PROMPTS[:2]]
    for step in GPT2Decoder(model).generate(
        PROMPTS[:2], max_new_tokens=10, eos_id=EOS, sampling=Sampling(banned=banned)
    ):
        for i, t in enumerate(step):
            if t is not None:
                rows[i].append(t)
    assert first_choice[0] not in rows[0]
    assert rows[1] == free[1]  # the other row is untouched


def test_a_copy_bias_makes_the_reply_go_on_quoting_its_source(model):
    from finetune.decoding import CopyFollower

    # the followers of each pair of adjacent tokens, all of its places in the source
    follow = CopyFollower([5, 6, 7, 5, 6, 9], [5, 6], 2, (), EOS)
    assert follow.follows == {(5, 6): (7, 9), (6, 7): (5,), (7, 5): (6,)}
    assert follow.after() == (7, 9)
    # the prompt ends with (21, 22), which its middle continues with 23 24 25 26
    prompt = [20, 21, 22, 23, 24, 25, 26, 30, 21, 22]
    free = ours(model, [prompt, PROMPTS[1]], 4)
    assert free[0] != [23, 24, 25, 26]  # the random model alone does not quote it
    biased = ours(model, [prompt, PROMPTS[1]], 4, copy_bias=50.0, copy_sources=[prompt, [99]])
    assert biased[0] == [23, 24, 25, 26]
    assert biased[1] == free[1]  # a row whose source has nothing to continue is untouched
    # a bias of 0 is no bias at all
    assert ours(model, [prompt], 4, copy_bias=0.0, copy_sources=[prompt]) == free[:1]


def test_the_copy_follower_goes_on_where_the_longest_matching_tail_stands():
    from finetune.decoding import CopyFollower

    source = [1, 21, 22, 23, 2, 21, 22, 24, 30, 9]
    # the last two tokens (21, 22) stand twice in the source; three tokens tell which place
    assert CopyFollower(source, [2, 21, 22], 2, (), EOS).after() == (23, 24)
    follow = CopyFollower(source, [2, 21, 22], 3, (), EOS)
    assert follow.after() == (24,)
    follow.push(24)
    assert follow.after() == (30,)
    # a passage's closing token counts as the end of the reply
    follow.push(30)
    assert follow.after() == (9,)
    assert CopyFollower(source, [22, 24, 30], 3, {9}, EOS).after() == (EOS,)
    assert CopyFollower(source, [5, 6, 8], 3, (), EOS).after() == ()  # nothing of it in the source
    # a reply's first token: where the passages start (after 1 and after 2), then as before
    opening = CopyFollower(source, [5, 6, 8], 3, (), EOS, starts={1, 2})
    assert opening.after() == (21,)
    opening.push(21)
    assert opening.after() == (22,)  # the quote goes on from the passage it started
    elsewhere = CopyFollower(source, [5, 6, 8], 3, (), EOS, starts={1, 2})
    elsewhere.push(30)  # a first token that starts no passage: aligned as any other
    assert elsewhere.after() == ()
    with pytest.raises(ValueError, match="at least 2"):
        CopyFollower(source, [], 1, (), EOS)


@pytest.mark.parametrize("lookup", [0, 4])
def test_a_longer_copy_span_quotes_the_passage_the_reply_is_in_and_ends_with_it(model, lookup):
    # (21, 22) goes on with 23 in one passage and with 24 25 in the other; 9 closes a passage
    prompt = [20, 21, 22, 23, 26, 9, 2, 21, 22, 24, 25, 9, 2, 21, 22]
    biased = {"copy_bias": 50.0, "copy_sources": [prompt], "lookup": lookup}
    assert ours(model, [prompt], 3, copy_span=3, **biased) == [[24, 25, 9]]
    assert ours(model, [prompt], 5, copy_span=3, copy_ends={9}, **biased) == [[24, 25, EOS]]
    # from the start of the passage that follows 26
    assert ours(model, [prompt], 3, copy_span=3, copy_starts={26}, **biased) == [[9, 2, 21]]


def test_number_tokens_outside_the_prompt_are_the_ones_banned():
    from finetune.decoding import copy_only_tokens_not_in

    numeric = frozenset({10, 11, 12})
    assert copy_only_tokens_not_in([5, 11, 40], numeric) == {10, 12}


def pieces(digits=(), joints=(), glued=()):
    from finetune.decoding import NumberPieces

    return NumberPieces(frozenset(digits), frozenset(joints), frozenset(glued))


def test_a_number_goes_on_only_as_it_goes_on_in_the_source():
    from finetune.decoding import NumberRun

    # 50 "$", 51 "4", 52 ".", 53 "99", 54 "00", 55 " 30" (starts a word), 9 " days"
    p = pieces(digits={51, 53, 54, 55}, joints={50, 51, 52, 53, 54, 55}, glued={51, 52, 53, 54})
    source = [8, 50, 51, 52, 53, 9, 7, 50, 60, 52, 54, 9]  # "$4.99 days ... $60.00 days"
    run = NumberRun(source, p)
    for t in (50, 51, 52):  # "$4."
        run.push(t)
    assert run.following() == {53}  # "$4." goes on with "99" only: not the "00" of "$60.00"
    run.push(53)
    assert run.following() == {9}
    run.push(9)  # a word ends the number
    assert run.run == []
    run.push(55)  # " 30" starts a new one, wherever it came from
    assert run.run == [55] and run.following() == set()
    # a row that goes on with a reply picks up the number it is in
    assert NumberRun(source, p, written=[1, 2, 50, 51]).run == [50, 51]


def test_inside_a_number_the_decoder_writes_only_what_the_source_has_there(model):
    source = [5, 40, 41, 9, 11, 3]  # 40 41: a number, then 9
    prompt = [*source, 40]  # the reply so far ends inside that number
    free = ours(model, [prompt], 1)
    assert free != [[41]]  # the random model alone would go on otherwise
    # after a digit, the number goes on (or ends) as in the source
    p = pieces(digits={40, 41}, joints={40, 41}, glued={41})
    assert ours(model, [prompt], 1, numbers=p, copy_sources=[prompt]) == [[41]]
    # after a joint that is no digit ("$"), only glued digits are held to the source
    x = free[0][0]
    p = pieces(digits={x}, joints={40}, glued={x})
    assert ours(model, [prompt], 1, numbers=p, copy_sources=[source])[0] != free[0]
    assert ours(model, [prompt], 1, numbers=p, copy_sources=[[*source, 40, x]]) == free
    # after a mark the source's number never ends at ("$24." of "$24.99"), it goes on too;
    # after one it does end at ("1." of "1. Log in"), the next word is free
    p = pieces(digits={41, 77}, joints={40, 41, 77}, glued={40, 77})
    number = [41, 40]  # "24", "." (and 77 "99" glued on)
    assert ours(model, [[*source, *number]], 1, numbers=p, copy_sources=[[*number, 77]]) == [[77]]
    ended = ours(model, [[*source, *number]], 1)
    assert ended != [[77]]
    assert ours(model, [[*source, *number]], 1, numbers=p, copy_sources=[[*number, 9]]) == ended
    # outside a number nothing changes
    p = pieces(digits={41}, joints={41}, glued={41})
    assert ours(model, [prompt], 1, numbers=p, copy_sources=[source]) == free


def test_number_pieces_by_their_text(tmp_path):
    from finetune.decoding import NumberPieces
    from finetune.tokenizer import train_tokenizer

    texts = ["Standard is $4.99 and takes 3-5 days; Plus is $99 a year, 10% off at 2:30 pm."] * 50
    tok = train_tokenizer(texts, 400, tmp_path / "tok")
    p = NumberPieces.of(tok)

    def text(i):
        return tok.convert_tokens_to_string([tok.convert_ids_to_tokens(i)])

    assert p.digits and p.joints and p.glued
    assert all(any(c.isdigit() for c in text(i)) for i in p.digits)
    assert all(set(text(i).strip()) <= set("0123456789$.,:-/%") for i in p.joints)
    assert all(not text(i)[0].isspace() for i in p.glued) and p.glued <= p.digits | p.joints
    for piece in (".", "$", "-"):
        assert tok.convert_tokens_to_ids(piece) in p.joints


def test_placeholder_tokens_are_the_ones_that_open_a_placeholder(tmp_path):
    from finetune.decoding import placeholder_tokens
    from finetune.tokenizer import train_tokenizer

    texts = ["Call {{Customer Support Phone Number}} or see {{Refund Policy}} about {{Order Number}} today."] * 50
    tok = train_tokenizer(texts, 400, tmp_path / "tok")
    ids = placeholder_tokens(tok)
    assert all("{{" in tok.convert_tokens_to_string([tok.convert_ids_to_tokens(i)]) for i in ids)
    for placeholder in ("{{Customer Support Phone Number}}", "{{Refund Policy}}", "{{Order Number}}"):
        assert tok.encode(placeholder, add_special_tokens=False)[0] in ids  # copy-only
    assert not set(tok.encode(" today.", add_special_tokens=False)) & ids


@pytest.mark.parametrize("int8", [False, True])
def test_decoders_running_on_several_threads_at_once_write_what_each_writes_alone(model, int8):
    # the server's inference workers decode on their own threads at the same moment
    import threading

    sampling = {"top_p": 0.9, "temperature": 1.0, "seed": 5, "greedy_rows": 1}
    alone = ours(GPT2Decoder(model, int8=int8), PROMPTS, 20, **sampling)
    decoders = [GPT2Decoder(model, int8=int8) for _ in range(4)]
    start = threading.Barrier(len(decoders))
    results: dict[int, list[list[int]]] = {}

    def work(i: int) -> None:
        start.wait()
        results[i] = [row for _ in range(2) for row in ours(decoders[i], PROMPTS, 20, **sampling)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(decoders))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == dict.fromkeys(range(len(decoders)), alone * 2)


# -- continuous batching: calls join and leave a running decode ------------------------------

SLOT_CALLS = [
    ([[5, 9, 11, 3, 40], [12, 13]], {}),
    ([[60, 61, 62, 63, 64, 65, 66, 1, 2]] * 3, {"top_p": 0.9, "temperature": 0.8, "seed": 3, "greedy_rows": 1}),
    ([[20, 21, 22], [30, 31, 32, 33, 34, 35]], {"banned": [{40, 41}, {50}]}),
    ([[70, 71]], {}),
    ([[14, 40, 41, 9, 40]], {"numbers": None, "copy_sources": [[14, 40, 41, 9, 40]]}),
]


def slot_sampling(rules):
    from finetune.decoding import NumberPieces

    if "numbers" in rules:
        rules = {**rules, "numbers": NumberPieces(frozenset({40, 41}), frozenset({40, 41}), frozenset({41}))}
    return Sampling(**rules)


def decode_in_slots(decoder, calls, *, rows, steps_between, n=12):
    """Each call added after `steps_between[i]` steps of the ones before it; all decoded to
    the end. The finished SlotCalls, in call order."""
    from finetune.decoding import DecodingSlots

    slots = DecodingSlots(decoder, rows=rows)
    added = []
    for (prompts, rules), wait in zip(calls, steps_between, strict=True):
        for _ in range(wait):
            slots.step()
        added.append(slots.add(prompts, max_new_tokens=n, eos_id=EOS, sampling=slot_sampling(rules)))
    while slots.calls:
        slots.step()
    assert slots.used == 0 and not slots.key_ok.any()  # every row handed back
    return added


@pytest.mark.parametrize("steps_between", [[0, 0, 0, 0, 0], [0, 3, 1, 5, 2]])
def test_calls_joining_a_running_decode_get_what_generate_gives_them_alone(model, steps_between):
    decoder = GPT2Decoder(model)
    done = decode_in_slots(decoder, SLOT_CALLS, rows=16, steps_between=steps_between)
    for (prompts, rules), call in zip(SLOT_CALLS, done, strict=True):
        alone = [[] for _ in prompts]
        for step in decoder.generate(prompts, max_new_tokens=12, eos_id=EOS, sampling=slot_sampling(rules)):
            for row, t in zip(alone, step, strict=True):
                if t is not None:
                    row.append(t)
        assert call.finished and call.tokens == alone


def test_a_finished_call_hands_its_rows_to_the_next_and_the_rest_move_down(model):
    from finetune.decoding import DecodingSlots

    decoder = GPT2Decoder(model)
    slots = DecodingSlots(decoder, rows=4)
    short = slots.add([[5, 9]], max_new_tokens=2, eos_id=EOS, sampling=Sampling())
    long = slots.add([[12, 13], [14]], max_new_tokens=12, eos_id=EOS, sampling=Sampling())
    assert (short.start, long.start, slots.free) == (0, 1, 1)
    with pytest.raises(ValueError, match="2 rows asked, 1 of 4 free"):
        slots.add([[1], [2]], max_new_tokens=4, eos_id=EOS, sampling=Sampling())
    assert slots.step() == [short]  # its second token was its last
    assert long.start == 0 and slots.free == 2
    late = slots.add([[60, 61], [62]], max_new_tokens=12, eos_id=EOS, sampling=Sampling())
    while slots.calls:
        slots.step()
    assert long.tokens == ours(model, [[12, 13], [14]], 12)
    assert late.tokens == ours(model, [[60, 61], [62]], 12)


def test_a_cancelled_call_frees_its_rows_and_the_others_go_on(model):
    from finetune.decoding import DecodingSlots

    decoder = GPT2Decoder(model)
    slots = DecodingSlots(decoder, rows=3)
    gone = slots.add([[5, 9, 11]], max_new_tokens=12, eos_id=EOS, sampling=Sampling())
    kept = slots.add([[12, 13], [14]], max_new_tokens=12, eos_id=EOS, sampling=Sampling())
    slots.step()
    slots.cancel(gone)
    assert gone.finished and slots.calls == [kept] and kept.start == 0
    while slots.calls:
        slots.step()
    assert kept.tokens == ours(model, [[12, 13], [14]], 12)


def test_the_slots_refuse_what_they_do_not_decode_and_leave_the_rest_as_it_was(model):
    from finetune.decoding import DecodingSlots

    slots = DecodingSlots(GPT2Decoder(model), rows=2)
    for sampling in (Sampling(repetition_penalty=1.2), Sampling(copy_bias=2.0), Sampling(lookup=4)):
        assert not slots.supports(sampling)
        with pytest.raises(ValueError, match=r"GPT2Decoder\.generate"):
            slots.add([[5]], max_new_tokens=4, eos_id=EOS, sampling=sampling)
    with pytest.raises(ValueError, match="no room to generate"):
        slots.add([list(range(1, 65))], max_new_tokens=4, eos_id=EOS, sampling=Sampling())
    with pytest.raises(ValueError, match="at least one token"):
        slots.add([[]], max_new_tokens=4, eos_id=EOS, sampling=Sampling())
    assert slots.used == 0 and slots.step() == []


def test_slots_whose_memory_starts_as_nan_decode_alike(model, monkeypatch):
    # the slots' cache is allocated empty: rows of different lengths leave masked columns that
    # attention still reads, so a row must be zeroed before its first use
    decoder = GPT2Decoder(model)
    expected = [c.tokens for c in decode_in_slots(decoder, SLOT_CALLS, rows=16, steps_between=[0, 3, 1, 5, 2])]
    empty = torch.empty

    def garbage(*args, **kwargs):
        t = empty(*args, **kwargs)
        return t.fill_(float("nan")) if t.is_floating_point() else t

    monkeypatch.setattr(torch, "empty", garbage)
    again = decode_in_slots(decoder, SLOT_CALLS, rows=16, steps_between=[0, 3, 1, 5, 2])
    assert [c.tokens for c in again] == expected
