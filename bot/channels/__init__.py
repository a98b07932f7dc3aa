"""Messaging channels: one adapter per platform behind the `Channel` contract
(`base.py`), the registry that builds the configured ones, and the worker that delivers
turns and replies reliably through the store's inbox and outbox."""

from bot.channels.base import (
    ApiCall,
    BadPayloadError,
    Channel,
    ChannelError,
    ChannelOffError,
    InboundMessage,
    Outgoing,
    SendOutcome,
    SignatureError,
    WebhookResult,
)
from bot.channels.config import ChannelsConfig

__all__ = [
    "ApiCall",
    "BadPayloadError",
    "Channel",
    "ChannelError",
    "ChannelOffError",
    "ChannelsConfig",
    "InboundMessage",
    "Outgoing",
    "SendOutcome",
    "SignatureError",
    "WebhookResult",
]
