"""Thread settings for torch (encoding), FAISS (search) and BLAS (numpy/scikit-learn),
set once per process; and the lock that every model construction in a process holds."""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any

# transformers builds a model by patching torch for the whole process while
# `from_pretrained` runs (modules made on the meta device, the weight initialisers
# replaced by no-ops, the default dtype): a module that another thread builds or copies at
# that moment comes out with tensors it cannot use ("set_data ... incompatible tensor
# type"). The server's inference workers are threads that load their models on their first
# turns, all at once; so every model construction (sentence-transformers, GPT-2, the
# decoder's int8 copies) holds this lock. Process-wide by nature: so is what it guards.
MODEL_CONSTRUCTION_LOCK = threading.RLock()

# The torch pool size `configure_threads` was asked for while torch was not loaded yet:
# applied by `import_torch` when something first needs torch. Process-wide, like the pool.
_TORCH_THREADS_WANTED: list[int] = []


def configure_threads(torch_threads: int, faiss_threads: int, blas_threads: int = 1) -> None:
    """Set torch intra-op threads (inter-op to 1), FAISS's OpenMP threads and the BLAS
    pools' threads (numpy's and scikit-learn's OpenBLAS).

    Why explicit numbers instead of library defaults: on our 2-core machines FAISS
    parallelises over *queries*, so a single query with 2 OpenMP threads was 2-5x slower
    than with 1 (thread start-up and synchronisation cost more than the scan). And each
    torch process defaults to all cores: two such processes oversubscribed the 2 cores
    and a single MiniLM encode then took ~1 s instead of a few ms. BLAS: the classifier's
    tiny per-turn matrix products woke OpenBLAS's 2 threads, which then spin-wait for more
    work while torch encodes the next turn; measured on a 2-core machine, encode +
    classify + search went from p50 42 ms / p95 128 ms to 19 / 25 ms with 1 BLAS thread.

    torch only lets the inter-op pool be sized before any parallel work has run; when it
    is already fixed, the RuntimeError torch raises is ignored (the intra-op setting,
    which is what matters for encoding, always applies). Torch itself is not imported
    here: a process that runs the embedder on ONNX and composes without GPT-2 never needs
    it (about 200 MB). Its pool is sized now when it is loaded, else by `import_torch`.
    """
    for name, value in (
        ("torch_threads", torch_threads),
        ("faiss_threads", faiss_threads),
        ("blas_threads", blas_threads),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")

    import faiss

    _TORCH_THREADS_WANTED[:] = [torch_threads]
    if "torch" in sys.modules:
        _size_torch(sys.modules["torch"], torch_threads)
    faiss.omp_set_num_threads(faiss_threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=blas_threads, user_api="blas")


def import_torch() -> Any:
    """`import torch`, its pool sized as `configure_threads` last asked, if it did.

    For the code that loads torch after the process's threads were configured (the
    torch embedder backend); the GPT-2 decoder sizes the pool itself.
    """
    import torch

    if _TORCH_THREADS_WANTED:
        _size_torch(torch, _TORCH_THREADS_WANTED[0])
    return torch


def _size_torch(torch: Any, threads: int) -> None:
    torch.set_num_threads(threads)
    if torch.get_num_interop_threads() != 1:
        # already started / already set in this process: keep what it has
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(1)
