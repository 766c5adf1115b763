"""bench.ingest --channel telegram|viber: the load it sends is what the connectors accept, and the
ids it matches screens by are the stored messages' provider ids."""

from __future__ import annotations

import pytest

from bench import ingest
from inbox.models import Channel, InboundEvent, Message
from inbox.services import inbound


@pytest.mark.parametrize("kind", ["telegram", "viber"])
def test_the_bench_load_is_accepted_and_stored_under_the_ids_it_expects(client, support, kind):
    values = (
        {"bot_token": "1:bench", "secret_token": ingest.TELEGRAM_SECRET}
        if kind == "telegram"
        else {"auth_token": ingest.AUTH_TOKEN, "sender_name": "Bench"}
    )
    channel = Channel.objects.create(kind=kind, medium=kind, name="Bench", team=support, settings=values)
    header = "X-Telegram-Bot-Api-Secret-Token" if kind == "telegram" else "X-Viber-Content-Signature"
    requests = ingest.signed_requests("unused", "O1", 3, 2, kind)
    for _sid, body, secret in requests:
        response = client.post(
            f"/hooks/{channel.key}/inbound/", data=body, content_type="application/json", headers={header: secret}
        )
        assert response.status_code == 200
    for event in InboundEvent.objects.all():
        inbound.process_inbound_event(event_id=event.pk)
    stored = set(Message.objects.filter(channel=channel).values_list("provider_id", flat=True))
    assert stored == {sid for sid, _body, _secret in requests}
