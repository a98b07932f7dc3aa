"""csbot's dialogue layer: composes retrieval, the intent classifier, a reply composer and
the conversation store into one channel-agnostic turn.

Importing `bot` loads no torch, FAISS or sentence-transformers: heavy models load when an
`Assistant` is explicitly loaded from a workspace.
"""

from bot.errors import CsbotError

__all__ = ["CsbotError"]
