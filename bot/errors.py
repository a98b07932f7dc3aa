"""Typed errors of the dialogue layer. The CLI and the HTTP service map them to messages
and status codes; nothing below those edges prints or exits. The root, `CsbotError`, is
the ground floor's (retrieval/errors.py), so that all three floors raise one family."""

from retrieval.errors import ArtifactMismatchError, CsbotError, RetrievalError


class InvalidMessageError(CsbotError):
    """Empty, whitespace-only or over-long customer message (HTTP 422)."""


class MessageTooLongError(InvalidMessageError):
    def __init__(self, length: int, limit: int):
        self.length, self.limit = length, limit
        super().__init__(
            f"message is {length} characters; the limit is {limit} (set CSBOT_MAX_MESSAGE_CHARS to change it)"
        )


class UnknownConversationError(CsbotError):
    def __init__(self, conversation_id: str):
        self.conversation_id = conversation_id
        super().__init__(f"unknown conversation id {conversation_id!r}; omit --conversation to start a new one")


class WorkspaceNotBuiltError(CsbotError):
    def __init__(self, workspace: str, missing: str):
        super().__init__(f"workspace {workspace} has no {missing}: run `csbot build --workspace {workspace}` first")


__all__ = [
    "ArtifactMismatchError",
    "CsbotError",
    "InvalidMessageError",
    "MessageTooLongError",
    "RetrievalError",
    "UnknownConversationError",
    "WorkspaceNotBuiltError",
]
