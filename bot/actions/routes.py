"""Which task intent calls which action, once which slots are known: `actions.json`, kept
next to `domain.json` by the support team."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import CsbotError


class ActionRoutesError(CsbotError):
    pass


@dataclass(frozen=True)
class ActionRoute:
    action: str
    # slots asked for (with the domain's slot questions) before the action runs
    required_slots: tuple[str, ...] = ()
    # the route applies only once these are known; until then the turn is composed as if
    # there were no action ("how do returns work?" is policy, "return #40318275" is a task)
    when_slots: tuple[str, ...] = ()

    def applies(self, slots: Mapping[str, str]) -> bool:
        return all(slot in slots for slot in self.when_slots)


@dataclass(frozen=True)
class ActionRoutes:
    routes: dict[str, ActionRoute] = field(default_factory=dict)
    # the reply when an action fails, times out or its server cannot be reached
    fallback_message: str = (
        "I couldn't look that up just now; please try again in a few minutes, "
        "or I can connect you with a member of our team."
    )

    def for_intent(self, intent: str) -> ActionRoute | None:
        return self.routes.get(intent)

    def to_json(self) -> dict[str, Any]:
        return {
            "intents": {
                i: {"action": r.action, "required_slots": list(r.required_slots), "when_slots": list(r.when_slots)}
                for i, r in self.routes.items()
            },
            "fallback_message": self.fallback_message,
        }

    @classmethod
    def from_json(
        cls, data: object, source: str = "actions.json", slot_questions: dict[str, str] | None = None
    ) -> ActionRoutes:
        """Checked: every route names an action and asks only for slots the domain has a
        question for (`slot_questions`, when given)."""
        if not isinstance(data, dict) or not isinstance(data.get("intents", {}), dict):
            raise ActionRoutesError(
                f'{source}: expected {{"intents": {{intent: {{"action": ..., "required_slots": [...]}}}}}}'
            )
        unknown = sorted(set(data) - {"intents", "fallback_message"})
        if unknown:
            raise ActionRoutesError(
                f"{source}: unknown key(s) {', '.join(unknown)}; known keys are fallback_message, intents"
            )
        routes = {}
        for intent, spec in data.get("intents", {}).items():
            if not isinstance(spec, dict) or not isinstance(spec.get("action"), str) or not spec["action"]:
                raise ActionRoutesError(f'{source}: intent {intent!r} needs an "action" name')
            slots, when = spec.get("required_slots", []), spec.get("when_slots", [])
            for name, value in (("required_slots", slots), ("when_slots", when)):
                if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
                    raise ActionRoutesError(f"{source}: intent {intent!r}: {name} must be a list of slot names")
            for slot in slots:
                if slot_questions is not None and slot not in slot_questions:
                    raise ActionRoutesError(
                        f"{source}: intent {intent!r} requires slot {slot!r} but domain.json's "
                        "slot_questions has no question for it; add one"
                    )
            routes[intent] = ActionRoute(spec["action"], tuple(slots), tuple(when))
        fallback = data.get("fallback_message", cls.fallback_message)
        if not isinstance(fallback, str) or not fallback.strip():
            raise ActionRoutesError(f"{source}: fallback_message must be a non-empty text")
        return cls(routes, fallback)

    @classmethod
    def load(cls, path: Path, slot_questions: dict[str, str] | None = None) -> ActionRoutes | None:
        """The routes in `path`; None when there is no such file (no actions)."""
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ActionRoutesError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from None
        return cls.from_json(data, str(path), slot_questions)
