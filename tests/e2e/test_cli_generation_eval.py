"""`csbot eval generation` and `csbot bench generation` through the installed CLI, with a
tiny real GPT-2 the test makes itself."""

import csv

import pytest

from tests.bot.composers.test_generative import make_tiny_model
from tests.helpers import last_json, run_csbot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# (intent, question templates, the agent's response): Bitext-style, placeholders included
INTENTS = [
    (
        "track_order",
        ["where is my order {n}", "can you track order {n} for me", "status of my package {n}"],
        (
            "I can help you track order {{Order Number}}. Open Account > Orders on {{Company Website}} and click "
            "Track to see where your package is."
        ),
    ),
    (
        "cancel_order",
        ["I want to cancel order {n}", "please cancel my purchase {n}", "how do I cancel an order {n}"],
        "To cancel order {{Order Number}}, go to Account > Orders, choose the order and click Cancel before it ships.",
    ),
    (
        "get_refund",
        ["I need a refund for {n}", "how can I get my money back {n}", "refund request for item {n}"],
        "Refunds go back to the original payment method within 5-7 business days after we receive the return.",
    ),
    (
        "change_password",
        ["how to reset my password {n}", "I forgot my password {n}", "change the password on my account {n}"],
        "Click 'Forgot password' on the sign-in page and follow the link we email you to set a new password.",
    ),
]


def write_bitext(path, copies: int, start: int) -> int:
    rows = []
    for c in range(copies):
        for intent, questions, response in INTENTS:
            for q in questions:
                rows.append(
                    {
                        "flags": "B",
                        "instruction": q.format(n=start + c),
                        "category": intent.upper(),
                        "intent": intent,
                        "response": response,
                    }
                )
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["flags", "instruction", "category", "intent", "response"])
        w.writeheader()
        w.writerows(rows)
    return len(rows)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("gen") / "final")


def test_eval_generation_reports_every_key_in_range(tiny_model, tmp_path):
    corpus, test = tmp_path / "corpus.csv", tmp_path / "test.csv"
    write_bitext(corpus, copies=3, start=1)
    assert write_bitext(test, copies=1, start=100) >= 10
    report = tmp_path / "report"
    proc = run_csbot(
        "eval",
        "generation",
        "--model",
        str(tiny_model),
        "--corpus",
        str(corpus),
        "--test",
        str(test),
        "--limit",
        "10",
        "--max-new-tokens",
        "16",
        "--report",
        str(report),
    )
    result = last_json(proc.stdout)
    assert result["n"] == 10
    for key in ("rougeL_f1", "retrieval_only_rougeL_f1", "hallucinated_entity_rate", "grounded_share", "fallback_rate"):
        assert 0.0 <= result[key] <= 1.0, (key, result)
    # the corpus holds every test question's own response: retrieval alone scores well
    assert result["retrieval_only_rougeL_f1"] > 0.5
    assert result["tokens_per_s"] > 0
    assert (report / "report.json").is_file()
    assert len((report / "samples.jsonl").read_text().splitlines()) == 10


def test_eval_generation_refuses_a_directory_that_is_not_a_generator(tmp_path):
    corpus = tmp_path / "corpus.csv"
    write_bitext(corpus, copies=1, start=1)
    proc = run_csbot(
        "eval", "generation", "--model", str(tmp_path), "--corpus", str(corpus), "--test", str(corpus), check=False
    )
    assert proc.returncode == 1
    assert "csbot_model.json" in proc.stderr


def test_bench_generation_compares_with_the_pipeline_on_equal_tokens(tiny_model):
    # float32 weights: the fast path must write exactly the pipeline's tokens
    proc = run_csbot(
        "bench", "generation", "--model", str(tiny_model), "--prompts", "3", "--max-new-tokens", "12", "--float32"
    )
    result = last_json(proc.stdout)
    assert result["int8"] is False
    assert result["n"] == 3
    assert result["max_new_tokens"] == 12
    assert result["tokens_per_s"] > 0 and result["baseline_tokens_per_s"] > 0
    assert result["speedup"] == pytest.approx(result["tokens_per_s"] / result["baseline_tokens_per_s"], rel=0.02)
    assert 0 < result["first_token_ms_p50"] <= result["first_token_ms_p95"]
    # greedy on both sides: the fast decoder writes the pipeline's tokens
    assert result["identical_outputs"] == 3
    assert result["batched_tokens_per_s"] > 0 and result["batched_first_token_ms"] > 0
    assert result["machine"]["cpus"] >= 1 and result["machine"]["torch_threads"] >= 1


def test_bench_generation_by_default_decodes_on_int8_weights_and_counts_agreement(tiny_model):
    result = last_json(
        run_csbot("bench", "generation", "--model", str(tiny_model), "--prompts", "3", "--max-new-tokens", "12").stdout
    )
    assert result["int8"] is True  # fbgemm ships in the x86 torch wheel this project pins
    assert 0 <= result["identical_outputs"] <= 3 and result["tokens_per_s"] > 0
