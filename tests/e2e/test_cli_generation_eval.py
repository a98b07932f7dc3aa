"""`csbot eval generation` and `csbot bench generation` through the installed CLI, with a
tiny real GPT-2 the test makes itself."""

import csv
import json

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
        "--copy-bias",
        "3",
        "--copy-span",
        "6",
        "--temperature",
        "1.0",
        "--report",
        str(report),
    )
    result = last_json(proc.stdout)
    assert result["n"] == 10
    # the decoding it ran is in the report: the bias asked for, the model's evidence order
    assert (result["copy_bias"], result["copy_span"], result["evidence_order"]) == (3.0, 6, "retrieval")
    assert (result["temperature"], result["top_p"]) == (1.0, 0.9)
    for key in ("rougeL_f1", "retrieval_only_rougeL_f1", "hallucinated_entity_rate", "grounded_share", "fallback_rate"):
        assert 0.0 <= result[key] <= 1.0, (key, result)
    # the corpus holds every test question's own response: retrieval alone scores well
    assert result["retrieval_only_rougeL_f1"] > 0.5
    assert result["tokens_per_s"] > 0
    assert (report / "report.json").is_file()
    assert len((report / "samples.jsonl").read_text().splitlines()) == 10


def test_eval_generation_refuses_a_copy_bias_out_of_range_before_loading_anything(tmp_path):
    corpus = tmp_path / "corpus.csv"
    write_bitext(corpus, copies=1, start=1)
    proc = run_csbot(
        "eval", "generation", "--model", str(tmp_path), "--corpus", str(corpus), "--test", str(corpus),
        "--copy-bias", "50", check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "--copy-bias must be between 0 and 20; got 50.0" in proc.stderr


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--temperature", "0", "--temperature must be above 0 and at most 5; got 0.0"),
        ("--top-p", "1.5", "--top-p must be above 0 and at most 1; got 1.5"),
        ("--copy-span", "1", "--copy-span must be between 2 and 32; got 1"),
    ],
)
def test_eval_generation_refuses_sampling_settings_out_of_range_before_loading_anything(tmp_path, flag, value, message):
    corpus = tmp_path / "corpus.csv"
    write_bitext(corpus, copies=1, start=1)
    proc = run_csbot(
        "eval", "generation", "--model", str(tmp_path), "--corpus", str(corpus), "--test", str(corpus),
        flag, value, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and message in proc.stderr


def test_eval_generation_refuses_a_directory_that_is_not_a_generator(tmp_path):
    corpus = tmp_path / "corpus.csv"
    write_bitext(corpus, copies=1, start=1)
    proc = run_csbot(
        "eval", "generation", "--model", str(tmp_path), "--corpus", str(corpus), "--test", str(corpus), check=False
    )
    assert proc.returncode == 1
    assert "csbot_model.json" in proc.stderr


def test_bench_generation_compares_like_with_like_and_times_the_shipped_reply(tiny_model):
    proc = run_csbot("bench", "generation", "--model", str(tiny_model), "--prompts", "3", "--max-new-tokens", "12")
    result = last_json(proc.stdout)
    assert set(result) == {
        "prompts_from",
        "n",
        "max_new_tokens",
        "repeats",
        "prompt_tokens_mean",
        "float32",
        "int8",
        "batched",
        "shipped_reply",
        "model",
        "machine",
    }
    assert (result["prompts_from"], result["n"], result["max_new_tokens"], result["repeats"]) == ("demo", 3, 12, 1)
    f32, int8, batched, shipped = result["float32"], result["int8"], result["batched"], result["shipped_reply"]
    # greedy in float32 on both sides: the fast decoder writes the pipeline's tokens, alone and batched
    assert f32["identical_outputs"] == 3
    assert batched["float32_identical_outputs"] == 3
    assert f32["speedup"] == pytest.approx(f32["tokens_per_s"] / f32["pipeline_tokens_per_s"], rel=0.02)
    assert f32["first_token_ms_p50"] <= f32["first_token_ms_p95"]
    # the int8 side is measured against the same float32 pipeline figure: it has no int8 path
    assert int8["float32_pipeline_tokens_per_s"] == f32["pipeline_tokens_per_s"]
    assert int8["int8_weights"] is True  # fbgemm ships in the x86 torch wheel this project pins
    assert set(int8) >= {"speedup_vs_float32_pipeline", "identical_outputs_vs_float32_pipeline", "first_token_ms_p95"}
    assert batched["int8_speedup_vs_float32_pipeline"] == pytest.approx(
        batched["int8_tokens_per_s"] / batched["pipeline_tokens_per_s"], rel=0.02
    )
    # every turn went through the shipped composer: its reply was GPT-2's or the fallback's
    assert shipped["generated"] + shipped["fell_back"] == 3
    assert shipped["ms_p50"] <= shipped["ms_p95"]
    # the default GeneratorConfig: five candidates on int8 weights, the model's reply length
    # (this test model was trained with none, so the fallback's 96)
    assert (shipped["candidates"], shipped["int8_weights"], shipped["max_new_tokens"]) == (5, True, 96)
    assert result["machine"]["cpus"] >= 1 and result["machine"]["torch_threads"] >= 1


def test_bench_generation_takes_its_prompts_from_validation_pairs(tiny_model, tmp_path):
    pairs = [
        {
            "context": [{"role": "customer", "text": "where is my order 1042?"}],
            "evidence": [{"id": "u1", "text": "Open Account > Orders and click Track to follow it.", "score": 0.8}],
            "target": "You can track it under Account > Orders.",
        },
        {
            "context": [
                {"role": "customer", "text": "hi"},
                {"role": "agent", "text": "Hi! How can I help?"},
                {"role": "customer", "text": "I want a refund"},
            ],
            "evidence": [{"id": "u2", "text": "Refunds go back to the original payment method.", "score": 0.7}],
            "target": "Refunds go back to your card within a week.",
        },
    ]
    (tmp_path / "valid.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    proc = run_csbot(
        "bench",
        "generation",
        "--model",
        str(tiny_model),
        "--pairs",
        str(tmp_path),
        "--max-new-tokens",
        "8",
        "--repeats",
        "2",
    )
    result = last_json(proc.stdout)
    assert (result["prompts_from"], result["n"], result["repeats"]) == ("pairs", 2, 2)
    assert result["float32"]["identical_outputs"] == 2
    assert result["shipped_reply"]["generated"] + result["shipped_reply"]["fell_back"] == 2


def test_bench_generation_help_names_its_options_and_bad_counts_are_refused(tmp_path):
    help_text = run_csbot("bench", "generation", "--help").stdout
    for option in ("--model", "--prompts", "--pairs", "--data", "--max-new-tokens", "--repeats"):
        assert option in help_text
    proc = run_csbot("bench", "generation", "--model", str(tmp_path), "--repeats", "0", check=False)
    assert proc.returncode == 1
    assert "--repeats" in proc.stderr
