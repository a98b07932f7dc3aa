"""The channels the settings turn on: each platform module's `from_config` builds its
adapter, or answers None when the platform's webhook secret is unset (off: 404)."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import cast

from bot.channels.base import Channel
from bot.channels.config import ChannelsConfig

log = logging.getLogger("csbot.channels")

# platform -> (module, the setting that turns it on)
PLATFORMS: dict[str, tuple[str, str]] = {
    "slack": ("bot.channels.slack", "CSBOT_SLACK_SIGNING_SECRET"),
    "telegram": ("bot.channels.telegram", "CSBOT_TELEGRAM_SECRET_TOKEN"),
    "whatsapp": ("bot.channels.whatsapp", "CSBOT_WHATSAPP_APP_SECRET"),
    "messenger": ("bot.channels.messenger", "CSBOT_MESSENGER_APP_SECRET"),
}


def enabled_channels(config: ChannelsConfig) -> dict[str, Channel]:
    """The adapters of the platforms whose secrets are set, by platform name."""
    channels: dict[str, Channel] = {}
    for name, (module_name, _) in PLATFORMS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue  # a platform this build does not ship
        build = cast(Callable[[ChannelsConfig], Channel | None], module.from_config)
        channel = build(config)
        if channel is not None:
            channels[name] = channel
            log.info("channel %s is on", name)
    return channels


def enabling_setting(platform: str) -> str:
    """The environment variable that turns `platform` on (for ChannelOffError's message)."""
    return PLATFORMS[platform][1] if platform in PLATFORMS else f"CSBOT_{platform.upper()}_*"
