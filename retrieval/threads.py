"""Thread settings for torch (encoding) and FAISS (search), set once per process."""

from __future__ import annotations


def configure_threads(torch_threads: int, faiss_threads: int) -> None:
    """Set torch intra-op threads (inter-op to 1) and FAISS's OpenMP threads.

    Why explicit numbers instead of library defaults: on our 2-core machines FAISS
    parallelises over *queries*, so a single query with 2 OpenMP threads was 2-5x slower
    than with 1 (thread start-up and synchronisation cost more than the scan). And each
    torch process defaults to all cores: two such processes oversubscribed the 2 cores
    and a single MiniLM encode then took ~1 s instead of a few ms.

    torch only lets the inter-op pool be sized before any parallel work has run; when it
    is already fixed, the RuntimeError torch raises is ignored (the intra-op setting,
    which is what matters for encoding, always applies).
    """
    for name, value in (("torch_threads", torch_threads), ("faiss_threads", faiss_threads)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")

    import faiss
    import torch

    torch.set_num_threads(torch_threads)
    if torch.get_num_interop_threads() != 1:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            # already started / already set in this process: keep what it has
            pass
    faiss.omp_set_num_threads(faiss_threads)
