"""The Trainer's helpers shared by pretraining (`finetune.model`) and fine-tuning
(`finetune.train`): which process this is under `torchrun` or `accelerate launch`, what the
processes of one run agree on, and the callbacks, built lazily so that transformers loads
only when training starts.

A distributed run is several copies of the same command, one per process (rank), that the
Trainer joins into one data-parallel (DDP) run. Everything a rank decides alone must come
out the same on every rank, or the ranks drift apart or wait for each other for ever: the
helpers here start the process group early, hold ranks at a barrier while the main process
writes files, check that values each rank computed agree, and let the main process's clock
decide for all when a time budget stops training.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from retrieval.errors import CsbotError

if TYPE_CHECKING:
    from transformers import Trainer, TrainerCallback


# how long a rank waits at a collective (a barrier while the main process writes) before the
# run fails: transformers' `TrainingArguments.ddp_timeout` default
DDP_TIMEOUT_S = 1800


def is_main_process() -> bool:
    """True in the process that writes files (rank 0, or the only one)."""
    return int(os.environ.get("RANK", "0")) == 0


def world_size() -> int:
    """How many processes train together (`torchrun` sets WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launcher() -> str:
    """What started this process: "accelerate" (`accelerate launch`, which sets its
    ACCELERATE_* variables and, for several processes, starts them through torch's elastic
    agent too), "torchrun", "single" (one plain process) or "other" (several processes that
    neither started, e.g. `mpirun` or `srun` setting RANK and WORLD_SIZE themselves)."""
    if "ACCELERATE_MIXED_PRECISION" in os.environ and "ACCELERATE_DYNAMO_BACKEND" in os.environ:
        return "accelerate"
    if "TORCHELASTIC_RUN_ID" in os.environ:
        return "torchrun"
    return "single" if world_size() == 1 else "other"


def trains_on_cpu() -> bool:
    """Whether training runs on the CPU: no CUDA device, or `accelerate launch --cpu`."""
    import torch

    forced = os.environ.get("ACCELERATE_USE_CPU", "").strip().lower() in ("1", "true", "yes")
    return forced or not torch.cuda.is_available()


def ddp_backend() -> str | None:
    """The collective backend for the Trainer: for several processes on the CPU gloo (said
    explicitly, so an MPI build of torch does not pick "mpi" behind our back); otherwise None,
    the launcher's choice (nccl on GPUs). One process must get None: accelerate takes any
    backend as a request for a process group, which one process alone never joins."""
    return "gloo" if world_size() > 1 and trains_on_cpu() else None


def _distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def start_process_group() -> None:
    """Join the other processes of a distributed launch now, before the first Trainer does,
    so that the steps before training (the scratch base's tokenizer, clearing old
    checkpoints) can wait for each other. Alone, or when already joined, it does nothing.
    The Trainers made later reuse this process group."""
    if world_size() <= 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        return
    from datetime import timedelta

    from accelerate import PartialState

    # PartialState also pins each rank to its own GPU before NCCL's first collective. The
    # timeout is the Trainer's own default (`ddp_timeout`), which this group replaces: NCCL's
    # shorter default would end a run whose main process writes for over ten minutes
    PartialState(cpu=trains_on_cpu(), backend=ddp_backend(), timeout=timedelta(seconds=DDP_TIMEOUT_S))


def wait_for_everyone() -> None:
    """Hold this process until every process of the run arrives here: ranks wait while the
    main process writes files the others read or must not race (a no-op alone)."""
    if not _distributed():
        return
    import torch
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def end_process_group() -> None:
    """Leave the process group once every rank is done (a no-op alone). A rank that exits
    with its group still open can abort in C++ teardown ("terminate called without an
    active exception") while the other rank still talks to its store: exit code -6 for a
    run that had finished."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return
    wait_for_everyone()
    dist.destroy_process_group()


class ProcessesDisagreeError(CsbotError):
    """Processes of one distributed run computed different values where they must agree."""

    def __init__(self, what: str, values: list[str]):
        super().__init__(
            f"the {len(values)} training processes disagree on {what} ({', '.join(sorted(set(values)))}); "
            "every process must see the same files and library versions: run them from one "
            "checkout and environment, or train in one process"
        )


def require_agreement(what: str, value: str) -> None:
    """Raise `ProcessesDisagreeError` on every rank unless all ranks pass the same `value`
    (a no-op alone): values each rank computes for itself, such as the scratch tokenizer
    trained on each, must be equal for their gradients to mean the same thing."""
    if not _distributed():
        return
    import torch.distributed as dist

    values: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    if len(set(values)) > 1:
        raise ProcessesDisagreeError(what, [str(v) for v in values])


def main_process_decides(stop: bool, horizon: int | None) -> tuple[bool, int | None]:
    """The main process's (stop, horizon) on every rank (unchanged alone). Each rank reads
    its own clock, and ranks that stop at different steps wait for each other for ever,
    ranks with different schedules drift apart; so one clock decides for all."""
    if not _distributed():
        return stop, horizon
    import torch.distributed as dist

    decision: list[Any] = [stop, horizon]
    dist.broadcast_object_list(decision, src=0)
    return bool(decision[0]), decision[1]


def how_trained(device: str) -> dict[str, Any]:
    """How a run was spread, for the model's metadata: processes, the device kind ("cpu",
    "cuda"), the launcher, and the collective backend (None for one process)."""
    import torch.distributed as dist

    joined = dist.is_available() and dist.is_initialized()
    return {
        "processes": dist.get_world_size() if joined else world_size(),
        "device": device,
        "launcher": launcher(),
        "backend": dist.get_backend() if joined else None,
    }


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

    In a distributed run the main process's clock decides both for every rank
    (`main_process_decides`, one small broadcast a step while a budget is set).
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
                stop = elapsed > budget.minutes * 60
                horizon = None
                done = state.global_step - self.first_step
                if not stop and budget.fit_schedule and done and done % budget.REPLAN_EVERY == 0:
                    reachable = budget.reachable_step(done, elapsed)
                    if reachable is not None:
                        horizon = min(state.max_steps, self.first_step + reachable)
                stop, horizon = main_process_decides(stop, horizon)
                if stop:
                    control.should_training_stop = True
                    budget.stopped = True
                elif (
                    horizon is not None
                    and horizon < state.max_steps
                    and _set_horizon(kwargs.get("lr_scheduler"), horizon)
                ):
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
