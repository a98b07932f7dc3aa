"""The `channels` section of the settings: each platform's secrets, API tokens and API
base URL, and how the channel worker retries. A platform whose webhook secret is unset
is off (its webhook answers 404). The base URLs are settings so that tests point them at
a fake platform server on 127.0.0.1.

Every field is also a flat environment variable, `CSBOT_` + its name in capitals
(CSBOT_SLACK_SIGNING_SECRET), besides the nested CSBOT_CHANNELS__SLACK_SIGNING_SECRET.
The secrets and tokens are never saved in workspace.json (`SECRET_FIELDS`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

GRAPH_API = "https://graph.facebook.com/v19.0"


class ChannelsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", validate_default=True)

    slack_signing_secret: SecretStr | None = Field(None, description="Slack app's signing secret; unset: Slack off")
    slack_bot_token: SecretStr | None = Field(None, description="Slack bot token (xoxb-...) for chat.postMessage")
    slack_api_base: str = "https://slack.com/api"
    telegram_secret_token: SecretStr | None = Field(
        None, description="the secret_token given to setWebhook; unset: Telegram off"
    )
    telegram_bot_token: SecretStr | None = Field(None, description="Telegram bot token for sendMessage")
    telegram_api_base: str = "https://api.telegram.org"
    whatsapp_app_secret: SecretStr | None = Field(None, description="Meta app secret; unset: WhatsApp off")
    whatsapp_verify_token: SecretStr | None = Field(None, description="hub.verify_token of the webhook subscription")
    whatsapp_access_token: SecretStr | None = Field(None, description="WhatsApp Cloud API access token")
    whatsapp_api_base: str = GRAPH_API
    messenger_app_secret: SecretStr | None = Field(None, description="Meta app secret; unset: Messenger off")
    messenger_verify_token: SecretStr | None = Field(None, description="hub.verify_token of the webhook subscription")
    messenger_page_token: SecretStr | None = Field(None, description="Messenger page access token")
    messenger_api_base: str = GRAPH_API

    # the channel worker
    send_max_attempts: int = Field(6, ge=1, description="sends of one reply before it is marked failed")
    send_backoff_s: float = Field(1.0, gt=0, description="first retry delay; doubles with each attempt")
    send_max_backoff_s: float = Field(300.0, gt=0, description="longest retry delay (and Retry-After honoured)")
    send_timeout_s: float = Field(10.0, gt=0, description="timeout of one platform API call")
    poll_interval_s: float = Field(0.5, gt=0, description="how often the worker looks for new work")
    inbox_max_attempts: int = Field(5, ge=1, description="tries of one inbound message before it is marked failed")


SECRET_FIELDS = frozenset(
    name for name, info in ChannelsConfig.model_fields.items() if info.annotation == (SecretStr | None)
)
