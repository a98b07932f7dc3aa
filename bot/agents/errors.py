"""The agent panel's typed errors. They become HTTP status codes only in
bot/server/errors.py and CLI messages only in bot/cli/console.py; each message says what
to do about it."""

from __future__ import annotations

from bot.errors import CsbotError


class AgentError(CsbotError):
    """The root of the agent panel's errors."""


class InvalidAgentInputError(AgentError):
    """A name, password, role, message, note or tag that breaks its rules (422 at the edge)."""


class UnknownAgentError(AgentError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"no agent named {name!r}; `csbot users list` shows who there is")


class DuplicateAgentError(AgentError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(f"an agent named {name!r} exists already; pick another name")


class SignInFailedError(AgentError):
    """One message for an unknown name, a wrong password and a disabled account, so that a
    failed sign-in tells nobody which names exist."""

    def __init__(self) -> None:
        super().__init__("wrong name or password")


class SignInThrottledError(AgentError):
    """Too many failed sign-ins for this name or from this address within the window."""

    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        super().__init__(f"too many failed sign-ins; try again in {retry_after} seconds")


class NotSignedInError(AgentError):
    """No session cookie ('missing'), a session past its time ('expired'), or one the store
    does not know ('unknown': signed out, disabled, or never issued)."""

    def __init__(self, reason: str):
        self.reason = reason
        what = {
            "missing": "not signed in",
            "expired": "the session has expired",
            "unknown": "the session has ended",
        }.get(reason, "not signed in")
        super().__init__(f"{what}; sign in again")


class CsrfError(AgentError):
    def __init__(self) -> None:
        super().__init__(
            "missing or wrong X-CSRF-Token header: send the csrf_token that signing in "
            "(or GET /api/v1/agent/session) returned"
        )


class ForbiddenError(AgentError):
    """The agent's role (or not holding the conversation) does not allow this."""


class ConversationHeldError(AgentError):
    """Another agent holds the conversation."""

    def __init__(self, holder: str, conversation_id: str | None = None):
        self.holder, self.conversation_id = holder, conversation_id
        super().__init__(f"{holder} has it; ask {holder} or an admin to assign it to you")


class ConversationResolvedError(AgentError):
    def __init__(self, conversation_id: str):
        self.conversation_id = conversation_id
        super().__init__(f"conversation {conversation_id} is resolved; take it over to write in it again")


class InvalidTransitionError(AgentError):
    """The conversation's handling does not allow this step (the message names the one that does)."""


class UnknownSuggestionError(AgentError):
    def __init__(self, suggestion_id: object):
        self.suggestion_id = suggestion_id
        super().__init__(f"no suggestion {suggestion_id} in this conversation; fetch the suggestions again")
