"""What a connector may ask of the bot without knowing it: the core defines the question, the bot
app answers it by registering in its ``AppConfig.ready()``.

Voice asks for a spoken answer to a caller's question and whether the caller asked for a person;
the website chat asks whether a team is open and when it is back (the bot keeps business hours).
With no assistant registered (the bot app not installed), nothing is answered, every call goes
to people and every team is open: the same fail-open rule as the bot's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from inbox.models import Channel


@dataclass(frozen=True)
class Hours:
    """Whether a team is open at a moment, and when it is next open (None: not in the next year)."""

    open: bool
    back: datetime | None = None


OPEN = Hours(open=True)


class Assistant(Protocol):
    def spoken_answer(self, *, channel: Channel, text: str, language: str) -> str | None:
        """An answer to read to a caller, or None when a person should answer."""

    def wants_a_person(self, text: str) -> bool:
        """Whether the customer asked for a person (in any language the assistant knows)."""

    def team_hours(self, *, team_id: int, at: datetime) -> Hours:
        """The team's business hours at ``at`` (cheap: asked on every widget's hello)."""


_assistant: Assistant | None = None


def register(assistant: Assistant) -> None:
    global _assistant
    _assistant = assistant


def spoken_answer(*, channel: Channel, text: str, language: str) -> str | None:
    return None if _assistant is None else _assistant.spoken_answer(channel=channel, text=text, language=language)


def wants_a_person(text: str) -> bool:
    return _assistant is not None and _assistant.wants_a_person(text)


def team_hours(*, team_id: int | None, at: datetime) -> Hours:
    if _assistant is None or team_id is None:
        return OPEN
    return _assistant.team_hours(team_id=team_id, at=at)
