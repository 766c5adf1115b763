"""What a connector may ask of the bot without knowing it: the core defines the question, the bot
app answers it by registering in its ``AppConfig.ready()``.

Voice asks for a spoken answer to a caller's question and whether the caller asked for a person.
With no assistant registered (the bot app not installed), nothing is answered and every call goes
to people: the same fail-open rule as the bot's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from inbox.models import Channel


class Assistant(Protocol):
    def spoken_answer(self, *, channel: Channel, text: str, language: str) -> str | None:
        """An answer to read to a caller, or None when a person should answer."""

    def wants_a_person(self, text: str) -> bool:
        """Whether the customer asked for a person (in any language the assistant knows)."""


_assistant: Assistant | None = None


def register(assistant: Assistant) -> None:
    global _assistant
    _assistant = assistant


def spoken_answer(*, channel: Channel, text: str, language: str) -> str | None:
    return None if _assistant is None else _assistant.spoken_answer(channel=channel, text=text, language=language)


def wants_a_person(text: str) -> bool:
    return _assistant is not None and _assistant.wants_a_person(text)
