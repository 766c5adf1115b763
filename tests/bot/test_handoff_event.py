"""The bot's hand-off sends the core's ``conversation.handed_off`` event once, after commit."""

from __future__ import annotations

from typing import Any

from bot.services import hand_off_after_failure
from inbox import signals
from inbox.models import Conversation
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage


def test_a_bot_hand_off_sends_handed_off_with_its_reason(sms, django_capture_on_commit_callbacks):
    message = receive_message(
        channel=sms, inbound=InboundMessage(provider_id="a", address="+15005550006", text="I want a person")
    )
    Conversation.objects.filter(pk=message.conversation_id).update(handler=Conversation.Handler.BOT)
    sent: list[dict[str, Any]] = []

    def on_handed_off(sender: Any, **kwargs: Any) -> None:
        sent.append({k: v for k, v in kwargs.items() if k != "signal"})

    signals.conversation_handed_off.connect(on_handed_off, weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            hand_off_after_failure(message_id=message.pk, reason="error")
            assert sent == []
    finally:
        signals.conversation_handed_off.disconnect(on_handed_off)
    assert sent == [{"event": "conversation.handed_off", "conversation_id": message.conversation_id, "reason": "error"}]
