"""The Trainer's helpers shared by pretraining (`finetune.model`) and fine-tuning
(`finetune.train`): which process this is under `torchrun`, and the callbacks, built lazily
so that transformers loads only when training starts."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import Trainer, TrainerCallback


def is_main_process() -> bool:
    """True in the process that writes files (rank 0, or the only one)."""
    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    """How many processes train together (`torchrun` sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


class TimeBudget:
    """A time limit for training: `callback()` is the TrainerCallback that stops training
    cleanly once `minutes` have passed since training began, and `stopped` says whether it did.

    It only sets `should_training_stop`: the Trainer finishes the step, and the caller still
    evaluates and saves, so a budget never leaves a half-written model.

    With `fit_schedule`, the learning-rate schedule ends when the budget does. A schedule
    planned in epochs that the budget cuts short stops at a high rate, before the annealing
    that lowers the loss most; so every `REPLAN_EVERY` steps the callback measures the time a
    step takes, and when the budget cannot reach the planned last step it moves the
    schedule's horizon (`num_training_steps` of transformers' warmup schedules) to the step
    the budget can reach. It never moves it past the planned last step, and `horizon` says
    where it ended (None: never moved).
    """

    REPLAN_EVERY = 25  # steps between estimates of the time a step takes
    MARGIN = 0.97  # the horizon a little before the budget's end: steps vary in length

    def __init__(self, minutes: float | None, *, fit_schedule: bool = True) -> None:
        self.minutes = minutes
        self.fit_schedule = fit_schedule
        self.started: float | None = None
        self.stopped = False
        self.horizon: int | None = None

    def reachable_step(self, step: int, elapsed_s: float) -> int | None:
        """The last step the budget reaches at the speed measured so far (None: no budget)."""
        if self.minutes is None or step < 1 or elapsed_s <= 0:
            return None
        per_step = elapsed_s / step
        return step + int(max(self.minutes * 60 * self.MARGIN - elapsed_s, 0.0) / per_step)

    def callback(self) -> TrainerCallback:
        from transformers import TrainerCallback

        budget = self

        class _TimeBudget(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                budget.started = time.monotonic()
                self.first_step = state.global_step  # a resumed run counts from here

            def on_step_end(self, args, state, control, **kwargs):
                if budget.minutes is None or budget.started is None:
                    return control
                elapsed = time.monotonic() - budget.started
                if elapsed > budget.minutes * 60:
                    control.should_training_stop = True
                    budget.stopped = True
                    return control
                done = state.global_step - self.first_step
                if budget.fit_schedule and done and done % budget.REPLAN_EVERY == 0:
                    reachable = budget.reachable_step(done, elapsed)
                    if reachable is not None:
                        horizon = min(state.max_steps, self.first_step + reachable)
                        if horizon < state.max_steps and _set_horizon(kwargs.get("lr_scheduler"), horizon):
                            budget.horizon = horizon
                return control

        return _TimeBudget()


def _set_horizon(scheduler: Any, steps: int) -> bool:
    """Move the last step of transformers' warmup schedules (a LambdaLR over a partial with
    `num_training_steps`) to `steps`; False when the scheduler is of another kind."""
    from functools import partial

    lambdas = getattr(scheduler, "lr_lambdas", None)
    if not lambdas or not all(isinstance(f, partial) and "num_training_steps" in f.keywords for f in lambdas):
        return False
    for i, f in enumerate(lambdas):
        warmup = f.keywords.get("num_warmup_steps", 0)
        lambdas[i] = partial(f.func, *f.args, **{**f.keywords, "num_training_steps": max(steps, warmup + 1)})
    return True


def quiet_stdout(trainer: Trainer) -> None:
    """Without tqdm the Trainer prints every log dict to stdout; the CLI keeps stdout for its
    one JSON result, and callers get logs through `progress` instead."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)


def LogCallback(fn: Callable[[dict[str, Any]], None], phase: str) -> TrainerCallback:  # noqa: N802 - a class factory
    """A TrainerCallback that hands every log dict (loss, lr, epoch, eval_loss) to `fn`."""
    from transformers import TrainerCallback

    class _Log(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                fn({"phase": phase, "step": state.global_step, "max_steps": state.max_steps, **logs})

    return _Log()
