"""The errors of building, writing and erasing training pairs."""

from __future__ import annotations

from retrieval.errors import CsbotError


class PairsError(CsbotError):
    """Pairs cannot be built from this input (bad parameters or conversations)."""


class TooFewPairsError(PairsError):
    """Fewer pairs than `min_pairs` remain for training; nothing was written."""

    def __init__(self, need: int, have: int, detail: str = ""):
        self.need, self.have = need, have
        super().__init__(
            f"need at least {need} pairs, have {have}{detail}; log more conversations, pass "
            "--transcripts FILE, or lower --min-pairs. Nothing was written."
        )


class TooFewHeldOutPairsError(PairsError):
    """Fewer held-out pairs than `min_heldout` to compare models on; nothing was written."""

    def __init__(self, need: int, have: int):
        self.need, self.have = need, have
        super().__init__(
            f"need at least {need} held-out pairs to compare models on, have {have}; pass --heldout FILE "
            "(curated conversations in our JSONL format that are never trained on, like data/heldout.jsonl), "
            "or let human agents answer more conversations (a fixed share of those is held out). "
            "Nothing was written."
        )


class OutputDirError(PairsError):
    """The output directory cannot take a pairs set (a file, or a folder holding other files)."""
