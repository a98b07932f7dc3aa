"""The intent classifier's typed errors: bad training data, and a saved model that cannot be loaded."""

from __future__ import annotations

from bot.errors import ArtifactMismatchError, CsbotError


class IntentTrainingError(CsbotError, ValueError):
    """The training data cannot make a classifier (too few labels or examples, bad shapes)."""


class IntentModelError(ArtifactMismatchError):
    """A saved intent model is unreadable, corrupted, inconsistent with its metadata or in
    a format this version does not load (the pickle of earlier versions)."""
