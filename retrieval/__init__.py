"""The ground floor of csbot: embed text, ingest transcripts and articles into units, mask
personal values, and search a FAISS index.

Imports nothing of `finetune` or `bot` and knows nothing of HTTP, dialogue state or the
store. Heavy libraries (torch, sentence-transformers, faiss) are imported inside the
functions that need them, so importing this package is cheap.

- `retrieval.embedder`: the sentence embedder (MiniLM by default).
- `retrieval.importers`, `retrieval.ingest`: import files validated and turned into `Unit`s.
- `retrieval.pii`: the one PII scrubber for the index, the exports and the training pairs.
- `retrieval.entities`: the email, card, phone and order-number patterns.
- `retrieval.index`: the vector index (flat, HNSW or IVF) with near-duplicate folding.
- `retrieval.errors`: `CsbotError`, the root of every floor's typed errors.
- `retrieval.config`, `retrieval.types`, `retrieval.files`, `retrieval.progress`,
  `retrieval.threads`, `retrieval.dedup`: settings, data types, durable writes, progress
  callbacks, thread limits, near-duplicate detection.
"""

from retrieval.errors import RetrievalError
from retrieval.types import Hit, Unit

__all__ = ["Hit", "RetrievalError", "Unit"]
