"""Retrieval layer: embed text, ingest transcripts and articles into units, search a FAISS index.

Knows nothing of HTTP, dialogue state or the store. Heavy libraries (torch,
sentence-transformers, faiss) are imported inside the functions that need them, so
importing this package is cheap.
"""

from retrieval.errors import RetrievalError
from retrieval.types import Hit, Unit

__all__ = ["Hit", "RetrievalError", "Unit"]
