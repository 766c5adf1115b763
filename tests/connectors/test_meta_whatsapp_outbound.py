"""WhatsApp Cloud API, outbound: text, media by upload, templates outside the 24-hour window
(configured or synced from the Business Account), and Graph API errors mapped to retry, fail or
"the channel needs fixing"."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from connectors.meta.whatsapp import WhatsAppCloudConnector
from inbox.models import InboundEvent, Message
from inbox.services import conversations, inbound, outbound
from inbox.transport import InboundAttachment
from tests.fakes.meta import ACCESS_TOKEN, fixture_bytes, meta_channel, post_callback, running

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
TEMPLATES = json.dumps(
    [
        {
            "name": "order_update",
            "language": "en_US",
            "body": "Hello {{1}}, your order {{2}} has shipped.",
            "variables": {"1": "customer.first_name", "2": {"label": "Order number"}},
        }
    ]
)


@pytest.fixture
def fake():
    with running() as server:
        server.templates = [
            {"name": "order_update", "language": "en_US", "body": "Hello {{1}}, your order {{2}} has shipped."}
        ]
        yield server


@pytest.fixture
def whatsapp(support, fake):
    return meta_channel("whatsapp-cloud", team=support, graph=fake.base_url, templates=TEMPLATES)


@pytest.fixture
def conversation(client, whatsapp):
    assert post_callback(client, whatsapp, fixture_bytes("whatsapp_text.json")).status_code == 200
    inbound.process_inbound_event(event_id=InboundEvent.objects.get().pk)
    return Message.objects.get(direction="in").conversation


@pytest.fixture
def closed(conversation):
    """The customer last wrote 25 hours ago: WhatsApp's window is closed."""
    Message.objects.filter(direction="in").update(created_at=timezone.now() - timedelta(hours=25))
    return conversation


def test_a_reply_goes_out_as_text_and_the_customers_message_is_marked_read(conversation, fake, alice):
    reply = outbound.reply(conversation=conversation, text="We will send a new one", by=alice)
    assert outbound.deliver_message(message_id=reply.pk).status == "sent"
    sent = fake.sent[0]
    assert sent["to"] == "15005550006"
    assert sent["type"] == "text"
    assert sent["text"] == {"body": "We will send a new one", "preview_url": False}
    assert sent["biz_opaque_callback_data"] == str(reply.public_id)
    reply.refresh_from_db()
    assert reply.provider_id == sent["id"]
    assert fake.read_marks == [Message.objects.get(direction="in").provider_id]
    post = next(c for c in fake.calls if c.path == "/v25.0/106540352242922/messages" and c.json.get("type"))
    assert post.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}"
    assert "access_token" not in post.query


def test_mark_read_can_be_switched_off(conversation, whatsapp, fake, alice):
    whatsapp.settings["mark_read"] = "off"
    whatsapp.save()
    reply = outbound.reply(conversation=conversation, text="Hi", by=alice)
    outbound.deliver_message(message_id=reply.pk)
    assert fake.read_marks == []
    assert len(fake.sent) == 1


def test_a_picture_is_uploaded_then_sent_by_its_id_with_the_text_as_caption(conversation, fake, alice):
    picture = InboundAttachment(filename="label.png", content_type="image/png", content=b"\x89PNG-label")
    reply = outbound.reply(conversation=conversation, text="Print this label", by=alice, attachments=(picture,))
    assert outbound.deliver_message(message_id=reply.pk).status == "sent"
    upload = next(c for c in fake.calls if c.path.endswith("/media"))
    assert upload.form == {"messaging_product": "whatsapp", "type": "image/png"}
    assert upload.files["file"] == ("label.png", b"\x89PNG-label", "image/png")
    sent = fake.sent[0]
    assert sent["type"] == "image"
    assert sent["image"]["caption"] == "Print this label"
    assert fake.media[sent["image"]["id"]] == (b"\x89PNG-label", "image/png")


def test_a_document_keeps_its_file_name(conversation, fake, alice):
    pdf = InboundAttachment(filename="invoice.pdf", content_type="application/pdf", content=b"%PDF-1.7")
    reply = outbound.reply(conversation=conversation, text="", by=alice, attachments=(pdf,))
    outbound.deliver_message(message_id=reply.pk)
    assert fake.sent[0]["type"] == "document"
    assert fake.sent[0]["document"]["filename"] == "invoice.pdf"


def test_text_longer_than_whatsapp_takes_fails_with_the_reason_without_a_call(conversation, fake, alice):
    reply = outbound.reply(conversation=conversation, text="x" * 4097, by=alice)
    assert outbound.deliver_message(message_id=reply.pk).status == "failed"
    reply.refresh_from_db()
    assert "4096" in reply.status_reason
    assert fake.sent == []


# -- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["130429", "613", "4", "80007", "500"])
def test_rate_limits_and_outages_are_retried_and_then_the_message_goes_out_once(conversation, fake, alice, code):
    fake.fail_next(code)
    reply = outbound.reply(conversation=conversation, text="Sorry for the wait", by=alice)
    outcome = outbound.deliver_message(message_id=reply.pk)
    assert outcome.status == "queued"
    reply.refresh_from_db()
    assert reply.status_reason.startswith("Retrying:")
    assert outbound.deliver_message(message_id=reply.pk).status == "sent"
    assert len(fake.sent) == 1


def test_the_throughput_limit_honours_metas_retry_hint(conversation, fake, alice):
    fake.fail_next("130429")
    reply = outbound.reply(conversation=conversation, text="Hello", by=alice)
    outcome = outbound.deliver_message(message_id=reply.pk)
    assert outcome.retry_in == 1.0
    reply.refresh_from_db()
    assert "throughput limit" in reply.status_reason


def test_the_re_engagement_error_fails_the_message_with_a_readable_reason(conversation, fake, alice):
    fake.fail_next("131047")
    reply = outbound.reply(conversation=conversation, text="Hello?", by=alice)
    assert outbound.deliver_message(message_id=reply.pk).status == "failed"
    reply.refresh_from_db()
    assert "only an approved template can be sent" in reply.status_reason
    assert "131047" in reply.status_reason
    assert Message.objects.filter(kind="activity", metadata__action="delivery_failed").exists()


def test_an_invalid_token_shows_the_channel_needs_fixing_until_a_send_works(conversation, whatsapp, fake, alice):
    fake.fail_next("190")
    reply = outbound.reply(conversation=conversation, text="Hello", by=alice)
    assert outbound.deliver_message(message_id=reply.pk).status == "queued"
    reply.refresh_from_db()
    assert reply.status_reason.startswith(
        "Retrying: The channel's settings need fixing: Meta refused the channel's access token"
    )
    whatsapp.refresh_from_db()
    assert "access token" in whatsapp.state["meta"]["problem"]
    assert outbound.deliver_message(message_id=reply.pk).status == "sent"
    whatsapp.refresh_from_db()
    assert "problem" not in whatsapp.state["meta"]


def test_a_send_whose_answer_never_came_is_failed_visibly_not_sent_twice(conversation, whatsapp, fake, alice):
    whatsapp.settings["http_timeout"] = "0.5"
    whatsapp.save()
    fake.slow_seconds = 1.5
    fake.fail_next("timeout")
    reply = outbound.reply(conversation=conversation, text="Hello", by=alice)
    assert outbound.deliver_message(message_id=reply.pk).status == "failed"
    reply.refresh_from_db()
    assert "may or may not have gone out" in reply.status_reason
    assert len(fake.sent) == 1


# -- the window and templates ------------------------------------------------------------------------


def test_outside_the_window_a_free_form_reply_is_refused_and_the_reply_box_offers_templates(client, closed, alice):
    with pytest.raises(conversations.ReplyRefused, match="24 hours"):
        outbound.reply(conversation=closed, text="Hello?", by=alice)
    client.force_login(alice)
    page = client.get(reverse("inbox:conversation", args=[closed.pk])).content.decode()
    assert "more than 24 hours ago" in page
    assert 'data-send-template="order_update:en_US"' in page


def test_a_template_goes_out_with_its_language_and_variables_filled_from_the_conversation(
    closed, whatsapp, fake, alice
):
    message = outbound.send_template(
        conversation=closed, channel=whatsapp, template="order_update:en_US", variables={"2": "#1001"}, by=alice
    )
    assert message.text == "Hello Alice, your order #1001 has shipped."
    assert outbound.deliver_message(message_id=message.pk).status == "sent"
    sent = fake.sent[0]
    assert sent["type"] == "template"
    assert sent["template"] == {
        "name": "order_update",
        "language": {"code": "en_US"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Alice"}, {"type": "text", "text": "#1001"}]}
        ],
    }
    assert "text" not in sent


def test_a_template_meta_does_not_know_fails_with_the_reason(closed, whatsapp, fake, alice):
    fake.templates = []
    message = outbound.send_template(
        conversation=closed, channel=whatsapp, template="order_update:en_US", variables={"2": "#1001"}, by=alice
    )
    assert outbound.deliver_message(message_id=message.pk).status == "failed"
    message.refresh_from_db()
    assert "does not know this template" in message.status_reason


def test_templates_are_synced_from_the_business_account_and_only_approved_plain_ones_offered(support, fake):
    fake.templates = [
        {"name": "welcome", "language": "en_US", "body": "Welcome {{1}}!"},
        {"name": "welcome", "language": "es", "body": "¡Bienvenido {{1}}!"},
        {"name": "pending_one", "language": "en_US", "status": "PENDING", "body": "Soon"},
        {
            "name": "with_picture",
            "language": "en_US",
            "components": [{"type": "HEADER", "format": "IMAGE"}, {"type": "BODY", "text": "Look"}],
        },
        {"name": "named", "language": "en_US", "body": "Hi {{first_name}}, ticket {{ticket}}"},
    ]
    channel = meta_channel("whatsapp-cloud", team=support, graph=fake.base_url)
    connector = WhatsAppCloudConnector(channel)
    synced = connector.sync_templates()
    assert len(synced) == 5  # three pages of two
    assert [c.query.get("after") for c in fake.calls if c.path.endswith("/message_templates")] == [None, ["2"], ["4"]]
    channel.refresh_from_db()
    offered = {t.key: t for t in WhatsAppCloudConnector(channel).templates()}
    assert sorted(offered) == ["named:en_US", "welcome:en_US", "welcome:es"]
    assert [v.key for v in offered["named:en_US"].variables] == ["first_name", "ticket"]
    problem = next(t for t in channel.state["meta"]["templates"] if t["name"] == "with_picture")
    assert problem["usable"] is False


def test_named_template_variables_go_out_with_their_names(support, fake, client, alice):
    fake.templates = [{"name": "named", "language": "en_US", "body": "Hi {{first_name}}, ticket {{ticket}}"}]
    channel = meta_channel("whatsapp-cloud", team=support, graph=fake.base_url)
    WhatsAppCloudConnector(channel).sync_templates()
    channel.refresh_from_db()
    post_callback(client, channel, fixture_bytes("whatsapp_text.json"))
    inbound.process_inbound_event(event_id=InboundEvent.objects.get().pk)
    conversation = Message.objects.get(direction="in").conversation
    Message.objects.filter(direction="in").update(created_at=timezone.now() - timedelta(days=2))
    message = outbound.send_template(
        conversation=conversation,
        channel=channel,
        template="named:en_US",
        variables={"first_name": "Alice", "ticket": "T-9"},
        by=alice,
    )
    outbound.deliver_message(message_id=message.pk)
    parameters = fake.sent[0]["template"]["components"][0]["parameters"]
    assert parameters == [
        {"type": "text", "text": "Alice", "parameter_name": "first_name"},
        {"type": "text", "text": "T-9", "parameter_name": "ticket"},
    ]


def test_the_meta_templates_command_syncs_every_channel_with_a_business_account(support, fake, capsys):
    from django.core.management import call_command

    channel = meta_channel("whatsapp-cloud", team=support, graph=fake.base_url)
    call_command("meta_templates")
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed == {"channel": channel.pk, "templates": 1, "approved": 1}


def test_a_customers_reply_within_the_window_reopens_free_form_replies(closed, client, whatsapp, alice):
    from tests.fakes.meta import wa_text_callback

    post_callback(client, whatsapp, wa_text_callback("wamid.NEW", "Any news?"))
    inbound.process_inbound_event(event_id=InboundEvent.objects.order_by("-pk").first().pk)
    assert outbound.reply(conversation=closed, text="Yes!", by=alice).status == "queued"


def test_metas_usage_header_says_how_long_to_wait_when_there_is_no_retry_after():
    from connectors.meta import errors

    usage = {"102290129340398": [{"type": "whatsapp", "call_count": 100, "estimated_time_to_regain_access": 2}]}
    assert errors.retry_hint({"X-Business-Use-Case-Usage": json.dumps(usage)}) == 120.0
    assert errors.retry_hint({"Retry-After": "7"}) == 7.0
    assert errors.retry_hint({"X-Business-Use-Case-Usage": "not json"}) is None


# -- choices: interactive messages --------------------------------------------------------------------

FIVE = [{"id": f"csat:{n}", "title": f"{n} of 5"} for n in range(5, 0, -1)]


def test_five_choices_go_out_as_a_list_message(conversation, fake, alice):
    reply = outbound.reply(
        conversation=conversation, text="How would you rate our help?", by=alice, metadata={"choices": FIVE}
    )
    assert outbound.deliver_message(message_id=reply.pk).status == "sent"
    sent = fake.sent[0]
    assert sent["type"] == "interactive"
    assert sent["interactive"]["type"] == "list"
    assert sent["interactive"]["body"] == {"text": "How would you rate our help?"}
    assert sent["interactive"]["action"]["button"] == "Choose"
    assert sent["interactive"]["action"]["sections"][0]["rows"] == [{"id": c["id"], "title": c["title"]} for c in FIVE]


def test_up_to_three_choices_go_out_as_reply_buttons(conversation, fake, alice):
    three = FIVE[:3]
    reply = outbound.reply(conversation=conversation, text="Good?", by=alice, metadata={"choices": three})
    assert outbound.deliver_message(message_id=reply.pk).status == "sent"
    action = fake.sent[0]["interactive"]["action"]
    assert fake.sent[0]["interactive"]["type"] == "button"
    assert [b["reply"]["id"] for b in action["buttons"]] == ["csat:5", "csat:4", "csat:3"]
