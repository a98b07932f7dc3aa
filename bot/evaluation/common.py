"""What every offline measurement shares: the machine it ran on, percentiles of timings, and
the embedder loaded as the live assistant loads it."""

from __future__ import annotations

import os
import platform
from typing import Any

from bot.settings import CsbotSettings
from retrieval.embedder import SentenceEmbedder
from retrieval.threads import configure_threads


def machine_info() -> dict[str, Any]:
    """CPUs, torch threads, Python and platform: what a timing figure depends on."""
    import torch

    return {
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def percentile(values: list[float], q: float) -> float:
    """The `q`th percentile (nearest rank) of `values`; 0.0 for none."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def load_embedder(config: CsbotSettings) -> SentenceEmbedder:
    """The configured sentence embedder, with the thread counts the live assistant uses."""

    configure_threads(config.embedder.torch_threads, config.index.faiss_threads)
    return SentenceEmbedder(config.embedder).load()
