from __future__ import annotations

import pytest

from desk import services
from desk.models import Label
from inbox.models import Conversation
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage


@pytest.fixture
def conversation(sms) -> Conversation:
    return receive_message(
        channel=sms,
        inbound=InboundMessage(provider_id="in-1", address="+15005550006", text="My parcel is late", name="Dora"),
    ).conversation


@pytest.fixture
def refund(admin) -> Label:
    return services.create_label(name="Refund", colour="red", by=admin)


@pytest.fixture
def bug(admin) -> Label:
    return services.create_label(name="Bug", colour="purple", by=admin)
