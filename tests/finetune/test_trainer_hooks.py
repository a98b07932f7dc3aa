"""The time budget of a training run: it stops training, and its schedule ends with it."""

import pytest

from finetune import trainer_hooks
from finetune.trainer_hooks import TimeBudget, _set_horizon
from tests.serving import free_port


def cosine(total: int, warmup: int = 2):
    import torch
    from transformers import get_cosine_schedule_with_warmup

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    return optimizer, get_cosine_schedule_with_warmup(optimizer, warmup, total)


def lr_at(step: int, scheduler) -> float:
    return scheduler.lr_lambdas[0](step)


def test_the_reachable_step_follows_the_measured_speed():
    budget = TimeBudget(10.0)  # 600 s
    # 100 steps took 60 s: 0.6 s a step; 0.97 of 600 s leaves 522 s, 870 steps more
    assert budget.reachable_step(100, 60.0) == 970
    assert TimeBudget(None).reachable_step(100, 60.0) is None
    assert budget.reachable_step(100, 590.0) == 100  # nothing left past the margin


def test_moving_the_horizon_anneals_the_rate_to_zero_there():
    _, scheduler = cosine(1000)
    assert lr_at(500, scheduler) == pytest.approx(0.5, abs=0.01)  # halfway through the planned cosine
    assert _set_horizon(scheduler, 500)
    assert lr_at(500, scheduler) == pytest.approx(0.0, abs=1e-9)
    assert lr_at(251, scheduler) == pytest.approx(0.5, abs=0.01)
    assert lr_at(1, scheduler) == pytest.approx(0.5)  # the warmup is untouched


def test_a_scheduler_of_another_kind_is_left_alone():
    import torch

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    constant = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    assert not _set_horizon(constant, 10)
    assert not _set_horizon(None, 10)


class FakeClock:
    """Each call advances `step_s`: a run whose steps take that long, without waiting."""

    def __init__(self, step_s: float):
        self.now, self.step_s = 0.0, step_s

    def __call__(self) -> float:
        self.now += self.step_s
        return self.now


def run_steps(budget: TimeBudget, scheduler, max_steps: int, monkeypatch, step_s: float) -> int:
    """Drive the callback as the Trainer does, one on_step_end per step; return the steps run."""
    from transformers import TrainerControl, TrainerState

    monkeypatch.setattr(trainer_hooks.time, "monotonic", FakeClock(step_s))
    callback = budget.callback()
    state, control = TrainerState(max_steps=max_steps), TrainerControl()
    callback.on_train_begin(None, state, control)
    for step in range(1, max_steps + 1):
        state.global_step = step
        control = callback.on_step_end(None, state, control, lr_scheduler=scheduler)
        if control.should_training_stop:
            return step
    return max_steps


def test_a_budget_that_cuts_the_plan_short_moves_the_schedule_end_to_the_budget(monkeypatch):
    _, scheduler = cosine(1000)
    budget = TimeBudget(1.0)  # 60 s at 0.1 s a step: about 600 of the 1,000 planned steps
    stopped_at = run_steps(budget, scheduler, 1000, monkeypatch, step_s=0.1)
    assert budget.stopped and 550 <= stopped_at <= 600
    assert budget.horizon is not None and 550 <= budget.horizon <= stopped_at
    assert lr_at(budget.horizon, scheduler) == pytest.approx(0.0, abs=1e-9)


def test_a_budget_the_plan_fits_in_changes_nothing(monkeypatch):
    _, scheduler = cosine(100)
    budget = TimeBudget(10.0)
    assert run_steps(budget, scheduler, 100, monkeypatch, step_s=0.1) == 100
    assert not budget.stopped and budget.horizon is None
    assert lr_at(50, scheduler) == pytest.approx(0.5, abs=0.02)


def test_without_fitting_the_schedule_is_cut_where_it_stands(monkeypatch):
    _, scheduler = cosine(1000)
    budget = TimeBudget(1.0, fit_schedule=False)
    run_steps(budget, scheduler, 1000, monkeypatch, step_s=0.1)
    assert budget.stopped and budget.horizon is None
    assert lr_at(600, scheduler) > 0.3


# -- two real processes joined over gloo on 127.0.0.1 -------------------------------------------

RANK_SCRIPT = """
import json, os, sys
from types import SimpleNamespace

from finetune import trainer_hooks
from finetune.trainer_hooks import TimeBudget, ProcessesDisagreeError, how_trained, require_agreement

trainer_hooks.start_process_group()
rank = int(os.environ["RANK"])
report = {"backend_for_trainer": trainer_hooks.ddp_backend(), "how": how_trained("cpu")}

# one budget of 60 s; rank 1's clock runs three times as fast, so alone it would stop near step 200
now = [0.0]
def clock():
    now[0] += 0.1 if rank == 0 else 0.3
    return now[0]
trainer_hooks.time.monotonic = clock
budget = TimeBudget(1.0)
callback = budget.callback()
state = SimpleNamespace(global_step=0, max_steps=1000)
control = SimpleNamespace(should_training_stop=False)
callback.on_train_begin(None, state, control)
while not control.should_training_stop and state.global_step < state.max_steps:
    state.global_step += 1
    callback.on_step_end(None, state, control, lr_scheduler=None)
report["stopped_at"] = state.global_step

require_agreement("a value every rank computes alike", "same")
try:
    require_agreement("the rank", f"rank {rank}")
    report["disagreement"] = None
except ProcessesDisagreeError as e:
    report["disagreement"] = str(e)
trainer_hooks.end_process_group()
print(json.dumps(report))
"""


@pytest.mark.slow
def test_two_ranks_stop_at_the_main_ranks_step_and_refuse_values_they_disagree_on(tmp_path):
    import json
    import os
    import subprocess
    import sys

    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    base_env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    ranks = [
        subprocess.Popen(
            [sys.executable, str(script)],
            env={**base_env, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in (0, 1)
    ]
    outputs = [p.communicate(timeout=300) for p in ranks]
    assert [p.returncode for p in ranks] == [0, 0], [err[-3000:] for _, err in outputs]
    main, other = (json.loads(out.strip().splitlines()[-1]) for out, _ in outputs)
    # rank 0's clock: 60 s at 0.1 s a step is about step 600, for both ranks
    assert 550 <= main["stopped_at"] <= 600 and other["stopped_at"] == main["stopped_at"]
    for report in (main, other):
        assert report["how"] == {"processes": 2, "device": "cpu", "launcher": "other", "backend": "gloo"}
        assert report["backend_for_trainer"] == "gloo"
        assert "disagree on the rank (rank 0, rank 1)" in report["disagreement"]
