"""A model's choice labels (common.choices.ChoiceLabels): the same labels as Django's, in the active
language, without translating every choice of the field on every call."""

from __future__ import annotations

import pytest
from django.utils import translation

from inbox.models import Channel, Conversation, Message, Operator


@pytest.fixture
def gettext_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every message the active translation is asked for (what a lazy label costs when it is read)."""
    calls: list[str] = []
    real = translation._trans.gettext  # type: ignore[attr-defined]

    def counting(message: str) -> str:
        calls.append(message)
        return str(real(message))

    monkeypatch.setattr(translation._trans, "gettext", counting)
    return calls


def test_labels_are_the_fields_choices_in_the_active_language() -> None:
    message = Message(status=Message.Status.FAILED, direction=Message.Direction.INBOUND)
    assert message.get_status_display() == "Failed"
    assert message.get_direction_display() == "Inbound"
    assert Channel(medium=Channel.Medium.SMS).get_medium_display() == "SMS"
    assert Conversation(priority=Conversation.Priority.URGENT).get_priority_display() == "Urgent"
    for language in ("ru", "uk", "fa"):
        with translation.override(language):
            assert message.get_status_display() == translation.gettext("Failed") != "Failed"
            online = Operator(presence=Operator.Presence.ONLINE).get_presence_display()
            assert online == translation.gettext("Online") != "Online"


def test_a_value_outside_the_choices_is_shown_as_it_is() -> None:
    assert Message(status="lost-in-transit").get_status_display() == "lost-in-transit"


def test_reading_a_label_translates_that_label_only(gettext_calls: list[str]) -> None:
    message = Message(status=Message.Status.DELIVERED)
    message.get_status_display()  # the table of labels is built on first use
    gettext_calls.clear()
    for _ in range(10):
        assert message.get_status_display() == "Delivered"
    # Django's own translates every choice of the field on every call: 10 * len(choices).
    assert len(Message.Status.choices) > 3
    assert gettext_calls == ["Delivered"] * 10
