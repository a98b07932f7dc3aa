"""The conversation store's typed errors (an unknown conversation is `bot.errors.UnknownConversationError`)."""

from __future__ import annotations

from bot.errors import CsbotError


class StoreError(CsbotError):
    pass


class UnknownMessageError(StoreError):
    def __init__(self, message_id: int):
        self.message_id = message_id
        super().__init__(f"unknown message id {message_id}")


class NotABotMessageError(StoreError):
    """Feedback names a customer, agent or system message; only bot replies are rated."""

    def __init__(self, message_id: int, role: str):
        self.message_id, self.role = message_id, role
        super().__init__(f"message {message_id} is a {role} message; feedback is for bot replies")


class DuplicateClientMessageError(StoreError):
    """A turn carries a client message id that the conversation already has: the channel
    re-sent a message, and the stored turn is the answer (nothing was written)."""

    def __init__(self, conversation_id: str, client_message_id: str):
        self.conversation_id, self.client_message_id = conversation_id, client_message_id
        super().__init__(
            f"conversation {conversation_id} already has a message with client_message_id {client_message_id!r}"
        )
