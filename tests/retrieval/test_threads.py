"""retrieval.threads: configure_threads, and import_torch for torch loaded later."""

from __future__ import annotations

import subprocess
import sys

import pytest

from retrieval.threads import configure_threads


def test_configure_threads_sets_torch_faiss_and_blas_thread_counts() -> None:
    # in a fresh interpreter, so this process's thread settings stay as they are
    code = (
        "import numpy, torch\n"
        "from retrieval.threads import configure_threads\n"
        "configure_threads(2, 1)\n"
        "configure_threads(1, 1)  # a second call must not fail on the inter-op pool\n"
        "import faiss\n"
        "from threadpoolctl import threadpool_info\n"
        "blas = sorted({p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas'})\n"
        "print(torch.get_num_threads(), torch.get_num_interop_threads(), faiss.omp_get_max_threads(), blas)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1", "1", "[1]"]


def test_without_torch_loaded_configure_threads_leaves_it_out_and_import_torch_sizes_it() -> None:
    code = (
        "import sys\n"
        "from retrieval.threads import configure_threads, import_torch\n"
        "configure_threads(1, 1)\n"
        "print('torch' in sys.modules)\n"
        "torch = import_torch()\n"
        "print(torch.get_num_threads(), torch.get_num_interop_threads())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "1", "1"]


@pytest.mark.parametrize("args", [(0, 1), (1, -2), (1.5, 1), (1, 1, 0)])
def test_configure_threads_refuses_non_positive_counts(args) -> None:
    with pytest.raises(ValueError, match="must be a positive integer"):
        configure_threads(*args)
