"""Human agents beside the bot: accounts, sign-in sessions, who handles a conversation,
internal notes, and the replies suggested to agents (what became of each)."""

from bot.agents.accounts import ROLES, Agent, AgentAccounts, normalize_name
from bot.agents.clock import Clock, utc_now
from bot.agents.errors import (
    AgentError,
    ConversationHeldError,
    ConversationResolvedError,
    CsrfError,
    DuplicateAgentError,
    ForbiddenError,
    InvalidAgentInputError,
    InvalidTransitionError,
    NotSignedInError,
    SignInFailedError,
    SignInThrottledError,
    UnknownAgentError,
    UnknownSuggestionError,
)
from bot.agents.handling import ConversationHandling, HandlingInfo, Queue, QueueItem
from bot.agents.notes import AgentNotes
from bot.agents.passwords import check_password_strength, hash_password, verify_password
from bot.agents.sessions import AgentSessions, SessionInfo
from bot.agents.suggestions import SuggestionDraft, SuggestionLog

__all__ = [
    "ROLES",
    "Agent",
    "AgentAccounts",
    "AgentError",
    "AgentNotes",
    "AgentSessions",
    "Clock",
    "ConversationHandling",
    "ConversationHeldError",
    "ConversationResolvedError",
    "CsrfError",
    "DuplicateAgentError",
    "ForbiddenError",
    "HandlingInfo",
    "InvalidAgentInputError",
    "InvalidTransitionError",
    "NotSignedInError",
    "Queue",
    "QueueItem",
    "SessionInfo",
    "SignInFailedError",
    "SignInThrottledError",
    "SuggestionDraft",
    "SuggestionLog",
    "UnknownAgentError",
    "UnknownSuggestionError",
    "check_password_strength",
    "hash_password",
    "normalize_name",
    "utc_now",
    "verify_password",
]
