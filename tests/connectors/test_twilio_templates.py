"""WhatsApp templates from the operator's side: outside the 24-hour window a free-form reply is
refused, and the operator sends one of the channel's approved templates instead (ContentSid and
ContentVariables, no Body), on the same outbound path as any reply."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from inbox.models import Message, OptOut
from inbox.services import conversations, outbound
from tests.connectors.test_twilio_messaging import deliver_webhook
from tests.fakes.twilio import fixture, running, twilio_channel

HTMX = {"HTTP_HX_REQUEST": "true"}
FOLLOW_UP = "HX0000000000000000000000000000000f"
ORDER = "HX00000000000000000000000000000001"
TEMPLATES = json.dumps(
    [
        {
            "content_sid": FOLLOW_UP,
            "name": "Follow-up",
            "body": "Hello {{1}}, this is {{2}} from support. We have news about your request.",
            "variables": {"1": "customer.first_name", "2": "operator.first_name"},
        },
        {
            "content_sid": ORDER,
            "name": "Order update",
            "body": "Your order {{1}} has shipped.",
            "variables": {"1": {"label": "Order number"}},
        },
    ]
)


@pytest.fixture
def fake():
    with running() as server:
        server.contents = {
            FOLLOW_UP: "Hello {{1}}, this is {{2}} from support. We have news about your request.",
            ORDER: "Your order {{1}} has shipped.",
        }
        yield server


@pytest.fixture
def whatsapp(support, fake):
    return twilio_channel(
        "twilio-whatsapp", team=support, api_base_url=fake.base_url, from_number="+14155238886", templates=TEMPLATES
    )


@pytest.fixture
def closed(client, whatsapp):
    """A WhatsApp conversation whose customer last wrote 25 hours ago: the window is closed."""
    deliver_webhook(client, whatsapp, "inbound", fixture("whatsapp.txt"))
    message = Message.objects.get()
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - timedelta(hours=25))
    return message.conversation


def send_url(conversation) -> str:
    return reverse("inbox:send-template", args=[conversation.pk])


def test_a_free_form_reply_is_refused_outside_the_window_and_the_reply_box_offers_the_templates(
    client, closed, whatsapp, alice
):
    with pytest.raises(conversations.ReplyRefused, match="24 hours"):
        outbound.reply(conversation=closed, text="Hello?", by=alice)
    client.force_login(alice)
    page = client.get(reverse("inbox:conversation", args=[closed.pk])).content.decode()
    assert "24 hours" in page
    assert f'data-send-template="{FOLLOW_UP}"' in page
    assert f'data-send-template="{ORDER}"' in page
    # Variables the conversation knows are filled in; the order number is asked for.
    assert f'name="tpl-{FOLLOW_UP}-1" value="Alice"' in page
    assert f'name="tpl-{FOLLOW_UP}-2" value="Alice"' in page
    assert f'name="tpl-{ORDER}-1" value=""' in page
    assert "Order number" in page


def test_no_template_picker_while_the_window_is_open(client, whatsapp, alice):
    deliver_webhook(client, whatsapp, "inbound", fixture("whatsapp.txt"))
    client.force_login(alice)
    page = client.get(reverse("inbox:conversation", args=[Message.objects.get().conversation_id])).content
    assert b"data-send-template" not in page


def test_the_template_goes_out_as_content_sid_and_variables_without_a_body(client, closed, whatsapp, fake, alice):
    client.force_login(alice)
    response = client.post(
        send_url(closed),
        {"channel": whatsapp.pk, "template": ORDER, f"tpl-{ORDER}-1": " 1001 ", f"tpl-{FOLLOW_UP}-1": "ignored"},
        **HTMX,
    )
    assert response.status_code == 200, response.content
    message = Message.objects.get(direction="out")
    # In the thread as the customer will read it, and in the answer that updates the thread.
    assert message.text == "Your order 1001 has shipped."
    assert "Your order 1001 has shipped." in response.content.decode()
    assert message.status == "queued"
    assert message.metadata["template"]["name"] == "Order update"
    assert outbound.deliver_message(message_id=message.pk).status == "sent"
    [sent] = fake.sent
    assert sent.get("ContentSid") == ORDER
    assert json.loads(sent.get("ContentVariables")) == {"1": "1001"}
    assert "Body" not in sent.params
    assert sent.get("To") == "whatsapp:+15005550006"
    assert sent.get("From") == "whatsapp:+14155238886"
    message.refresh_from_db()
    assert message.provider_id == sent.sid


def test_variables_are_filled_from_the_conversation_when_the_operator_leaves_them(closed, whatsapp, fake, alice):
    message = outbound.send_template(conversation=closed, channel=whatsapp, template=FOLLOW_UP, variables={}, by=alice)
    assert message.text == "Hello Alice, this is Alice from support. We have news about your request."
    outbound.deliver_message(message_id=message.pk)
    assert json.loads(fake.sent[0].get("ContentVariables")) == {"1": "Alice", "2": "Alice"}


def test_bad_template_input_gets_a_4xx_with_the_reason(client, closed, whatsapp, fake, alice):
    client.force_login(alice)
    missing = client.post(send_url(closed), {"channel": whatsapp.pk, "template": ORDER}, **HTMX)
    assert missing.status_code == 422
    assert "Order number" in missing.content.decode()
    unknown = client.post(send_url(closed), {"channel": whatsapp.pk, "template": "HX404"}, **HTMX)
    assert unknown.status_code == 422
    assert "no such approved template" in unknown.content.decode()
    multiline = client.post(
        send_url(closed), {"channel": whatsapp.pk, "template": ORDER, f"tpl-{ORDER}-1": "10\n01"}, **HTMX
    )
    assert multiline.status_code == 422
    assert "one line" in multiline.content.decode()
    no_channel = client.post(send_url(closed), {"template": ORDER}, **HTMX)
    assert no_channel.status_code == 400
    assert not Message.objects.filter(direction="out").exists()
    assert not fake.sent


def test_an_opted_out_customer_gets_no_template_either(closed, whatsapp, alice):
    OptOut.objects.create(channel=whatsapp, customer=closed.customer)
    assert outbound.sendable_templates(conversation=closed, channel=whatsapp) == []
    with pytest.raises(conversations.ReplyRefused, match="opted out"):
        outbound.send_template(conversation=closed, channel=whatsapp, template=ORDER, variables={"1": "1001"}, by=alice)


def test_another_teams_operator_cannot_send_a_template(client, closed, whatsapp, bob):
    client.force_login(bob)
    response = client.post(send_url(closed), {"channel": whatsapp.pk, "template": ORDER, f"tpl-{ORDER}-1": "1"})
    assert response.status_code == 404
    assert not Message.objects.filter(direction="out").exists()


def test_a_failed_template_can_be_retried_outside_the_window(closed, whatsapp, fake, alice):
    message = outbound.send_template(
        conversation=closed, channel=whatsapp, template=ORDER, variables={"1": "1001"}, by=alice
    )
    for _attempt in range(outbound.MAX_DELIVERY_ATTEMPTS):
        fake.fail_next("500")
        outbound.deliver_message(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == "failed"
    assert "Gave up" in message.status_reason
    outbound.retry_message(message=message, by=alice)
    assert outbound.deliver_message(message_id=message.pk).status == "sent"
    assert fake.sent[-1].get("ContentSid") == ORDER


def test_a_template_send_that_timed_out_is_adopted_not_sent_twice(client, support, fake, alice):
    channel = twilio_channel(
        "twilio-whatsapp",
        team=support,
        api_base_url=fake.base_url,
        templates=TEMPLATES,
        http_timeout="0.5",
    )
    fake.slow_seconds = 1.5
    deliver_webhook(client, channel, "inbound", fixture("whatsapp.txt"))
    Message.objects.update(created_at=timezone.now() - timedelta(hours=25))
    conversation = Message.objects.get().conversation
    message = outbound.send_template(
        conversation=conversation, channel=channel, template=ORDER, variables={"1": "7"}, by=alice
    )
    fake.fail_next("timeout")
    assert outbound.deliver_message(message_id=message.pk).status == "queued"
    assert outbound.deliver_message(message_id=message.pk).status == "sent"
    assert len(fake.sent) == 1
    message.refresh_from_db()
    assert message.provider_id == fake.sent[0].sid


def test_the_single_template_setting_still_counts_as_one_template(closed, support, fake):
    from connectors.twilio.messaging import parse_templates

    [template] = parse_templates({"template_content_sid": FOLLOW_UP})
    assert template.key == FOLLOW_UP
    assert template.name == "Approved template"


def test_a_malformed_template_list_is_refused_when_the_channel_is_added(support):
    from inbox.transport import ConfigurationError

    with pytest.raises(ConfigurationError, match="templates"):
        twilio_channel("twilio-whatsapp", team=support, templates="[{not json")
    with pytest.raises(ConfigurationError, match="HX"):
        twilio_channel("twilio-whatsapp", team=support, templates='[{"content_sid": "SM1", "name": "x"}]')
