"""`csbot finetune train` as one run of two CPU processes (gloo), started by `torchrun` and by
`accelerate launch` as the module `bot.cli`: each launcher's run ends with one model that the
project's loader decodes with, and its metadata says how it was trained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finetune.checkpoint import MODEL_META
from tests.finetune.test_train import write_pairs
from tests.helpers import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# the tiny scratch GPT-2 of tests/finetune/test_train.py (TINY; the CLI has no --n-head)
TINY_FLAGS = ["--n-layer", "1", "--n-embd", "48", "--n-positions", "192", "--vocab-size", "1200"]
RUN_FLAGS = ["--epochs", "1", "--lr", "2e-3", "--batch-size", "8", "--max-target-tokens", "64", "--no-register"]
PROCESSES = 2


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    d = tmp_path_factory.mktemp("dist") / "pairs"
    return d, write_pairs(d)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    """A data folder of 20 demo conversations: the scratch base's tokenizer and pretraining."""
    d = tmp_path_factory.mktemp("dist") / "data"
    d.mkdir()
    lines = (REPO / "data" / "conversations.jsonl").read_text().splitlines()[:20]
    (d / "conversations.jsonl").write_text("\n".join(lines) + "\n")
    return d


def launch(launcher: list[str], train_args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run `launcher -m bot.cli finetune train ...` from `cwd`; fail with its output unless it exits 0."""
    cmd = [sys.executable, "-m", *launcher, "-m", "bot.cli", "finetune", "train", *train_args]
    # one thread a process: the two ranks share the machine's cores; HF_HOME keeps a user's
    # accelerate config (HF_HOME/accelerate/default_config.yaml) out of the launch
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HOME": str(cwd / "hf-home")}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-8000:]}"
        )
    return proc


def result_lines(stdout: str) -> list[dict]:
    """The JSON results on stdout (the Trainer's bars may print log dicts there too)."""
    return [json.loads(line) for line in stdout.splitlines() if line.startswith('{"')]


def assert_one_model_answers(out: Path, proc: subprocess.CompletedProcess, n_train: int, launcher: str) -> dict:
    """One result and one progress voice (the main rank's), the data split between the two
    ranks, one whole model that the project's loader decodes with; returns its metadata."""
    from finetune.decoder import GeneratorConfig, GPT2Generator
    from finetune.prompt import format_prompt

    results = result_lines(proc.stdout)
    assert len(results) == 1, proc.stdout[-2000:]
    metrics = results[0]
    # each optimizer step took a batch on each rank: half the steps of one process
    assert metrics["steps"] == metrics["max_steps"] == -(-n_train // (8 * PROCESSES))
    assert metrics["valid_loss"] < metrics["valid_loss_start"]
    assert proc.stderr.count("• training from base") == 1

    final = out / "final"
    meta = json.loads((final / MODEL_META).read_text())
    assert meta["training"] == {"processes": PROCESSES, "device": "cpu", "launcher": launcher, "backend": "gloo"}
    assert meta["metrics"]["steps"] == metrics["steps"]
    assert not list(out.glob(".final.*")) and not list(out.glob(".base.*"))  # no rank left a temp dir

    generator = GPT2Generator(final, GeneratorConfig(candidates=1, int8=False, torch_threads=1)).load()
    assert generator.config.max_new_tokens == 64  # the reply length it was trained with, from its metadata
    prompt = format_prompt([{"role": "customer", "text": "Where is my order?"}], ["Orders ship in 2 days."])
    [reply] = generator.generate([prompt])
    assert reply.prompt_tokens > 0 and reply.new_tokens >= 1
    return meta


def test_torchrun_trains_one_scratch_model_on_two_cpu_processes(pairs, small_data, tmp_path) -> None:
    pairs_dir, counts = pairs
    out = tmp_path / "run"
    proc = launch(
        ["torch.distributed.run", "--standalone", "--nproc_per_node", str(PROCESSES)],
        # a budget it never reaches: the main rank's clock decides for both at every step
        [
            "--pairs",
            str(pairs_dir),
            "--data",
            str(small_data),
            "--out",
            str(out),
            "--max-minutes",
            "30",
            *TINY_FLAGS,
            *RUN_FLAGS,
        ],
        tmp_path,
    )
    meta = assert_one_model_answers(out, proc, counts["train"], "torchrun")
    assert meta["base"] == "scratch" and meta["base_config"]["n_embd"] == 48
    assert meta["metrics"]["stopped_by"] is None
    assert (out / "base" / "config.json").is_file()  # the pretrained base, written once by rank 0


def test_accelerate_launch_fine_tunes_a_checkpoint_on_two_cpu_processes(pairs, tiny_checkpoint, tmp_path) -> None:
    # accelerate's `--cpu` starts several processes only through mpirun; `--multi_gpu` starts
    # them with torch's elastic agent, and with no GPU the Trainer joins them over gloo
    pairs_dir, counts = pairs
    out = tmp_path / "run"
    proc = launch(
        [
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            str(PROCESSES),
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "--main_process_port",
            "0",  # a free port: other runs on this machine may hold 29500
        ],
        ["--pairs", str(pairs_dir), "--base", str(tiny_checkpoint), "--out", str(out), *RUN_FLAGS],
        tmp_path,
    )
    meta = assert_one_model_answers(out, proc, counts["train"], "accelerate")
    assert meta["base"] == str(tiny_checkpoint)
