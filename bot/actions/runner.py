"""Runs one business action for a turn: the rasa-sdk request JSON (next_action, tracker with
the conversation's slots and latest message, domain) through `rasa_sdk.executor.ActionExecutor`
in this process, or POSTed to a remote Rasa action server's `/webhook`.

The dialogue manager is synchronous and runs on an inference worker thread that may sit
under a running event loop; the executor is async. Each in-process call therefore runs
`asyncio.run` on a small pool of its own threads, and the caller waits at most
`timeout_s` for it. Whatever goes wrong (the action raises, is too slow, the server is down
or answers nonsense) becomes one `ActionFailedError`, which the dialogue turns into an
honest reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import httpx
from rasa_sdk import Action
from rasa_sdk import __version__ as rasa_sdk_version
from rasa_sdk.executor import ActionExecutor

from bot.actions.contract import ActionFailedError, ActionResult
from bot.settings import ActionsConfig

# in-process actions running at once; a hung one holds its thread until it returns
_WORKERS = 4


def action_request(
    action: str,
    *,
    sender_id: str,
    slots: Mapping[str, str | None],
    text: str,
    intent: str | None,
    confidence: float,
    domain: Mapping[str, Any],
) -> dict[str, Any]:
    """The request a Rasa action server receives at `/webhook` for `action`."""
    latest = {"text": text, "intent": {"name": intent, "confidence": confidence}, "entities": []}
    return {
        "next_action": action,
        "sender_id": sender_id,
        "tracker": {
            "sender_id": sender_id,
            "slots": dict(slots),
            "latest_message": latest,
            "events": [],
            "paused": False,
            "followup_action": None,
            "active_loop": {},
            "latest_action_name": "action_listen",
        },
        "domain": dict(domain),
        "version": rasa_sdk_version,
    }


def parse_response(action: str, body: object) -> ActionResult:
    """The action server's answer ({"events": [...], "responses": [...]}) as a result."""
    if not isinstance(body, Mapping) or not isinstance(body.get("responses", []), list):
        raise ActionFailedError(f"{action}: the action server's answer is not an action response")
    texts, buttons, slots = [], [], {}
    for response in body.get("responses", []):
        if isinstance(response, Mapping):
            if isinstance(response.get("text"), str) and response["text"].strip():
                texts.append(response["text"].strip())
            for button in response.get("buttons") or []:
                if isinstance(button, Mapping) and isinstance(button.get("title"), str):
                    buttons.append(button["title"])
    for event in body.get("events") or []:
        if isinstance(event, Mapping) and event.get("event") == "slot" and isinstance(event.get("name"), str):
            value = event.get("value")
            slots[event["name"]] = None if value is None else str(value)
    if not texts:
        raise ActionFailedError(f"{action} answered nothing to say")
    return ActionResult(tuple(texts), tuple(buttons), slots)


class ActionRunner:
    """Runs actions by name: `actions` in process, or on `config.server_url` when it is set."""

    def __init__(self, config: ActionsConfig, actions: Iterable[Action] = (), domain: Mapping[str, Any] | None = None):
        self.config = config
        self.domain = dict(domain or {})
        self.executor = ActionExecutor()
        for action in actions:
            self.executor.register_action(action)
        self._pool: ThreadPoolExecutor | None = None
        self._client: httpx.Client | None = None

    @property
    def remote(self) -> bool:
        return self.config.server_url is not None

    def run(
        self,
        action: str,
        *,
        sender_id: str,
        slots: Mapping[str, str | None],
        text: str,
        intent: str | None = None,
        confidence: float = 1.0,
    ) -> ActionResult:
        request = action_request(
            action,
            sender_id=sender_id,
            slots=slots,
            text=text,
            intent=intent,
            confidence=confidence,
            domain=self.domain,
        )
        body = self._post(action, request) if self.remote else self._in_process(action, request)
        return parse_response(action, body)

    def _in_process(self, action: str, request: dict[str, Any]) -> object:
        if action not in self.executor.actions:
            raise ActionFailedError(
                f"no action named {action!r} is registered; actions.json names one this csbot lacks"
            )
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="csbot-action")
        future = self._pool.submit(asyncio.run, self.executor.run(request))
        try:
            result = future.result(timeout=self.config.timeout_s)
        except FutureTimeout:
            raise ActionFailedError(f"{action} took longer than {self.config.timeout_s:g} s") from None
        except Exception as e:  # the action's own bug must not lose the customer's turn
            raise ActionFailedError(f"{action} raised {type(e).__name__}: {e}") from e
        return result.model_dump() if result is not None else None

    def _post(self, action: str, request: dict[str, Any]) -> object:
        if self._client is None:
            self._client = httpx.Client(timeout=self.config.timeout_s)
        url = str(self.config.server_url).rstrip("/")
        url = url if url.endswith("/webhook") else url + "/webhook"
        try:
            response = self._client.post(url, json=request)
        except httpx.HTTPError as e:
            raise ActionFailedError(f"action server {url} unreachable for {action}: {type(e).__name__}: {e}") from e
        if response.status_code != 200:
            raise ActionFailedError(f"action server {url} answered {response.status_code} for {action}")
        try:
            return response.json()
        except ValueError:
            raise ActionFailedError(f"action server {url} answered {action} with something that is not JSON") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()
