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
    """

    def __init__(self, minutes: float | None) -> None:
        self.minutes = minutes
        self.started: float | None = None
        self.stopped = False

    def callback(self) -> TrainerCallback:
        from transformers import TrainerCallback

        budget = self

        class _TimeBudget(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                budget.started = time.monotonic()

            def on_step_end(self, args, state, control, **kwargs):
                if budget.minutes is None or budget.started is None:
                    return control
                if time.monotonic() - budget.started > budget.minutes * 60:
                    control.should_training_stop = True
                    budget.stopped = True
                return control

        return _TimeBudget()


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
