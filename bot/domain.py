"""What a support team configures about its assistant, apart from the corpus: which
intents are small talk, which hand over to a human, which need a slot before they can be
answered, the fixed messages, and the intent classifier settings its data was tuned for.
Read from `domain.json` in the data directory."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import CsbotError


class DomainError(CsbotError):
    pass


@dataclass(frozen=True)
class Domain:
    # intent -> replies, used in turn (a greeting is answered directly, no retrieval)
    smalltalk: dict[str, list[str]] = field(
        default_factory=lambda: {
            "greeting": ["Hi! How can I help you today?"],
            "thanks": ["You're welcome! Is there anything else I can help with?"],
            "goodbye": ["Thanks for reaching out. Have a great day!"],
        }
    )
    handoff_intents: list[str] = field(default_factory=lambda: ["human_agent"])
    # intent -> slots that must be known before an answer is composed
    required_slots: dict[str, list[str]] = field(default_factory=dict)
    # slot -> the question that asks for it
    slot_questions: dict[str, str] = field(
        default_factory=lambda: {
            "order_id": "Could you tell me your order number?",
            "email": "Could you tell me the email address on your account?",
        }
    )
    # slot -> phrases by which a retrieved reply asks for it (such a reply is skipped once
    # the customer has given that slot)
    slot_mentions: dict[str, list[str]] = field(
        default_factory=lambda: {
            "order_id": ["order number", "order id", "order #"],
            "email": ["email address", "e-mail address"],
        }
    )
    # intent -> how to name it in a clarifying question
    intent_names: dict[str, str] = field(default_factory=dict)
    fallback_message: str = (
        "I'm sorry, I'm not sure I can help with that. I can help with orders, delivery, "
        "returns, refunds, payments and your account. Would you like me to connect you "
        "with a member of our team?"
    )
    unsure_message: str = (
        "I'm not confident I have the right answer to that, and I'd rather not guess. "
        "Could you rephrase it, or shall I connect you with a member of our team?"
    )
    handoff_message: str = (
        "I'm connecting you with a member of our support team now. They'll see this "
        "conversation, so you won't need to repeat yourself."
    )
    waiting_for_agent_message: str = (
        "A member of our team has been asked to join this conversation and will reply here shortly."
    )
    clarify_message: str = "Just to be sure I help with the right thing: do you mean {options}?"
    # bot.intents.IntentClassifierConfig fields this data's classifier trains with (e.g.
    # {"oos_score": "nearest"}), over the defaults and under CSBOT_CLASSIFIER__OVERRIDES.
    # Kept as plain JSON here so that reading a domain imports no scikit-learn; `csbot build`
    # (bot.workspace.classifier_config) checks names and values.
    classifier: dict[str, Any] = field(default_factory=dict)

    def intent_name(self, intent: str) -> str:
        return self.intent_names.get(intent) or intent.replace("_", " ")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "domain.json") -> Domain:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise DomainError(
                f"{source}: unknown key(s) {', '.join(unknown)}; "
                f"known keys are {', '.join(sorted(cls.__dataclass_fields__))}"
            )
        if not isinstance(data.get("classifier", {}), dict):
            raise DomainError(
                f'{source}: "classifier" must be a JSON object of intent classifier settings '
                f'(e.g. {{"oos_score": "nearest"}}); got {data["classifier"]!r}'
            )
        domain = cls(**data)
        for intent, replies in domain.smalltalk.items():
            if not replies:
                raise DomainError(f"{source}: smalltalk intent {intent!r} has no replies")
        for intent, slots in domain.required_slots.items():
            for slot in slots:
                if slot not in domain.slot_questions:
                    raise DomainError(
                        f"{source}: intent {intent!r} requires slot {slot!r} but slot_questions "
                        f"has no question for it; add one"
                    )
        return domain

    @classmethod
    def load(cls, path: Path) -> Domain:
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DomainError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None
        return cls.from_json(data, source=str(path))

    def check_intents(self, labels: set[str]) -> list[str]:
        """Intents this domain names that the classifier does not know (warnings)."""
        named = set(self.smalltalk) | set(self.handoff_intents) | set(self.required_slots)
        return sorted(named - labels)
