"""Model helpers the templates lean on."""

from __future__ import annotations

from django.template import Context, Template

from inbox.models import Message


def test_a_messages_details_read_a_missing_key_as_none_and_nested_keys_alike():
    message = Message(metadata={"album": "a1", "meta": {"reaction_to": "wamid.X"}, "tried": [{"channel": 1}]})
    details = message.details
    assert details["album"] == "a1"
    assert details["subject"] is None  # no KeyError: the template engine's cheap path
    assert details["meta"]["reaction_to"] == "wamid.X"
    assert details["meta"]["missing"] is None
    assert details["tried"] == [{"channel": 1}]
    assert details.get("subject", "default") == "default"  # dict methods keep their meaning
    assert Message(metadata={}).details["album"] is None


def test_templates_read_details_as_they_read_metadata():
    page = Template(
        "{% if message.details.album %}album {{ message.details.album }}{% endif %}"
        "{% if message.details.subject %}subject{% endif %}|{{ message.details.meta.reaction_to }}"
    )
    message = Message(metadata={"album": "a1", "meta": {"reaction_to": "wamid.X"}})
    assert page.render(Context({"message": message})) == "album a1|wamid.X"
