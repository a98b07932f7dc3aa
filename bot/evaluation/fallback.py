"""The reply an evaluation scores when the generated one is not sent: what the live retrieval
composer answers, with placeholders kept as text.

One definition for `csbot eval generation`, the learning loop's held-out comparison and the
retrieval-only baseline, so that all three score the fallback the assistant really uses:
`RetrievalComposer` with the dialogue settings' `answer_min_score` and `article_min_score`,
its order (the turn's intent first), its skipping of replies written from one customer's
order record, its help-centre articles, and its unsure message when nothing qualifies.

Placeholders are text: evaluation data is masked (`{{Order Number}}` in questions,
evidence and references alike) and carries no slot values, so the composer's slot step
(fill, ask for a missing slot, reject an unfillable placeholder) is left out and a
retrieved reply is scored as it was written.
"""

from __future__ import annotations

from bot.composers.retrieval import RetrievalComposer, SlotCheck
from bot.contracts import ComposeRequest
from bot.domain import Domain
from bot.settings import DialogueConfig


class _PlaceholdersAsText(RetrievalComposer):
    """The live retrieval composer, its slot step left out (see the module docstring)."""

    def check_reply(self, reply: str, request: ComposeRequest) -> SlotCheck:
        return SlotCheck(reply)


def fallback_reply(request: ComposeRequest, dialogue: DialogueConfig, domain: Domain) -> str:
    """The text the live retrieval composer (with `dialogue`'s thresholds and `domain`'s
    unsure message) answers to `request`, placeholders unfilled."""
    return _PlaceholdersAsText.from_config(dialogue, domain).compose(request).text
