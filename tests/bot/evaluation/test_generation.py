"""`evaluate_generation` in process, with a tiny real GPT-2, the real MiniLM and FAISS: the
baselines on the same rows, the development split, and invented values counted on every
candidate."""

import json

import pytest

from bot.evaluation.generation import BASELINES, evaluate_generation, retrieval_vote
from bot.settings import CsbotSettings
from finetune.corpus import pairs_from_corpus
from finetune.decoder import FALLBACK_GENERATION
from finetune.pairs import write_pairs
from retrieval.embedder import SentenceEmbedder
from tests.bot.composers.test_generative import make_tiny_model
from tests.e2e.test_cli_generation_eval import write_bitext


def test_the_retrieval_vote_picks_the_answer_the_others_agree_with():
    answers = ["Refunds take five days.", "You get your refund within five days.", "Reset your password here."]
    assert retrieval_vote(answers) in answers[:2]
    assert retrieval_vote(["only one"]) == "only one"
    assert retrieval_vote([]) == ""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalgen")
    corpus, test = root / "corpus.csv", root / "test.csv"
    write_bitext(corpus, copies=3, start=1)
    write_bitext(test, copies=1, start=100)
    settings = CsbotSettings()
    embedder = SentenceEmbedder(settings.embedder).load()
    write_pairs(pairs_from_corpus(corpus, embedder, valid_fraction=0.25, seed=0), root / "pairs")
    return settings, make_tiny_model(root / "final"), corpus, test, root


@pytest.mark.slow
def test_the_test_file_is_scored_against_every_baseline_on_the_same_rows(run):
    settings, model, corpus, test, root = run
    # 3 references, so that the deeper pool kept beside them has more
    result = evaluate_generation(
        settings, model, corpus, test, limit=6, max_new_tokens=12, candidates=3, consensus_k=3, report_dir=root / "r"
    )
    assert result["split"] == "test" and result["n"] == 6 and result["n_corpus"] == 36
    for name in BASELINES:
        gain = result["gain_ci"][name]
        assert gain["gain"] == pytest.approx(result["rougeL_f1"] - result[f"{name}_rougeL_f1"], abs=2e-4)
        lo, hi = gain["ci95"]
        assert lo - 1e-4 <= gain["gain"] <= hi + 1e-4
    # every row had evidence, so every row decoded the configured 3 candidates
    assert result["n_candidates"] == 18 and result["candidates"] == 3
    assert result["intent_accuracy"] == 1.0  # the toy intents are far apart
    samples = [json.loads(line) for line in (root / "r" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6
    flagged = sum(bool(c["invented"]) for s in samples for c in s["candidates"])
    assert result["candidate_invented_rate"] == pytest.approx(flagged / 18, abs=1e-4)
    sent_flagged = sum(bool(s["final_invented"]) for s in samples)
    assert result["invented_rate"] == pytest.approx(sent_flagged / 6, abs=1e-4)
    for s in samples:
        assert set(s["baselines"]) == set(BASELINES)
        # the answers the selection compared candidates with are kept, and the vote is one of them
        assert 1 <= len(s["consensus_references"]) <= 3
        assert s["baselines"]["retrieval_vote"] in s["consensus_references"]
        # the deeper list of the same ranking starts with the shipped references
        assert s["retrieved_pool"][: len(s["consensus_references"])] == s["consensus_references"]
        assert len(s["retrieved_pool"]) > len(s["consensus_references"])
        # a reply the guard rejected is never sent: the live retrieval composer's answer is
        if s["fallback"]:
            assert s["final"] == s["baselines"]["intent_first_retrieval"]
        else:
            assert s["final"] == s["generated"] and s["guard"] is None


@pytest.mark.slow
def test_more_references_are_retrieved_and_the_vote_is_taken_over_them(run):
    settings, model, corpus, test, root = run
    result = evaluate_generation(
        settings, model, corpus, test, limit=4, max_new_tokens=8, candidates=2, consensus_k=8, report_dir=root / "k8"
    )
    # retrieval_k is 5: the composer needs 8 answers, so 8 hits are fetched
    assert result["consensus_k"] == 8 and result["k"] == 8
    samples = [json.loads(line) for line in (root / "k8" / "samples.jsonl").read_text().splitlines()]
    # more than the 3 shipped ones (the toy corpus has fewer than 8 distinct usable answers)
    assert all(3 < len(s["consensus_references"]) <= 8 for s in samples)
    for s in samples:
        assert s["baselines"]["retrieval_vote"] == retrieval_vote(s["consensus_references"])


@pytest.mark.slow
def test_the_development_split_leaves_its_own_rows_out_of_retrieval(run):
    settings, model, corpus, _, root = run
    dev = root / "pairs"
    n_dev = len((dev / "valid.jsonl").read_text().splitlines())
    assert n_dev >= 2
    result = evaluate_generation(settings, model, corpus, dev, max_new_tokens=8, candidates=1)
    assert result["split"] == "dev" and result["n"] == n_dev
    assert result["n_corpus"] == 36 - n_dev
    assert result["n_candidates"] == n_dev
    # the references come from the model's metadata; this one does not say, so 3, and the
    # dialogue's retrieval_k (5) hits are retrieved, as live
    assert result["consensus_k"] == FALLBACK_GENERATION["consensus_k"] == 3
    assert result["k"] == settings.dialogue.retrieval_k == 5


@pytest.mark.slow
def test_a_directory_without_validation_pairs_is_refused(run, tmp_path):
    from bot.errors import CsbotError

    settings, model, corpus, _, _ = run
    with pytest.raises(CsbotError, match=r"valid\.jsonl"):
        evaluate_generation(settings, model, corpus, tmp_path)


@pytest.mark.slow
def test_the_streaming_path_is_scored_on_the_same_rows_with_what_it_would_stream(run):
    settings, model, corpus, test, root = run
    result = evaluate_generation(
        settings, model, corpus, test, limit=6, max_new_tokens=12, candidates=3, streamed=True, report_dir=root / "s"
    )
    assert result["streamed"] is True and result["n"] == 6
    # only the chosen candidate is decoded to its end: no candidates are kept to count
    assert result["n_candidates"] == 0
    samples = [json.loads(line) for line in (root / "s" / "samples.jsonl").read_text().splitlines()]
    for s in samples:
        assert s["live_note"].startswith(("streamed", "gpt2 reply rejected", "gpt2 not used"))
        if s["fallback"]:
            assert s["final"] == s["baselines"]["intent_first_retrieval"]
        else:  # what streamed passed the guard sentence by sentence, and is what is scored
            assert s["final"] == s["generated"] and s["guard"] is None


@pytest.mark.slow
def test_rows_composed_several_at_a_time_are_scored_as_one_at_a_time(run):
    settings, model, corpus, test, root = run
    # float32: with int8 weights a pass quantizes the activations of all its rows together
    common = {"limit": 6, "max_new_tokens": 12, "candidates": 3, "consensus_k": 3, "int8": False}
    alone = evaluate_generation(settings, model, corpus, test, **common, report_dir=root / "c1")
    together = evaluate_generation(settings, model, corpus, test, **common, concurrent=3, report_dir=root / "c3")
    assert together["concurrent"] == 3 and alone["concurrent"] == 1
    assert together["rougeL_f1"] == alone["rougeL_f1"] and together["n_candidates"] == alone["n_candidates"]
    rows = [(root / d / "samples.jsonl").read_text().splitlines() for d in ("c1", "c3")]
    for a, b in zip(*rows, strict=True):
        a, b = json.loads(a), json.loads(b)
        assert [c["text"] for c in a["candidates"]] == [c["text"] for c in b["candidates"]]
        assert a["final"] == b["final"]


def test_several_at_a_time_is_refused_for_the_streaming_path(run):
    from bot.errors import CsbotError

    settings, model, corpus, test, _ = run
    with pytest.raises(CsbotError, match="--concurrent must be at least 1, and 1 with --streamed"):
        evaluate_generation(settings, model, corpus, test, streamed=True, concurrent=2)
    with pytest.raises(CsbotError, match="--concurrent must be at least 1"):
        evaluate_generation(settings, model, corpus, test, concurrent=0)
