"""The widget over plain HTTP: the fallback transport, uploads, attachments, the script, ``channel add``."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import uuid

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.test import AsyncClient, Client

from connectors.webchat import protocol
from customers.models import Customer, Identity
from inbox.models import Attachment, Conversation, Message
from inbox.services import outbound
from tests.connectors.webchat.conftest import IDENTITY_SECRET, ORIGIN

pytestmark = pytest.mark.django_db(transaction=True)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def post(client: Client, channel, endpoint: str, payload, *, origin: str = ORIGIN):
    headers = {"Origin": origin} if origin else {}
    return client.post(
        f"/webchat/{channel.key}/{endpoint}/",
        data=json.dumps(payload),
        content_type="text/plain",
        headers=headers,
    )


def hello(client: Client, channel, **fields) -> dict:
    response = post(client, channel, "frames", {"type": "hello", **fields})
    assert response.status_code == 200, response.content
    return response.json()


def say(client: Client, channel, token: str, text: str, client_msg_id: str | None = None, **fields):
    frame = {
        "type": "message",
        "token": token,
        "client_msg_id": client_msg_id or str(uuid.uuid4()),
        "text": text,
        **fields,
    }
    return post(client, channel, "frames", frame)


# -- the fallback transport ----------------------------------------------------------------------------


def test_the_http_fallback_speaks_the_sockets_frames_with_cors_for_the_allowed_origin(webchat_channel):
    client = Client()
    welcome = hello(client, webchat_channel, locale="fa-IR")
    assert welcome["type"] == "welcome"
    assert welcome["new"] is True
    client_msg_id = str(uuid.uuid4())
    response = say(client, webchat_channel, welcome["token"], "سلام", client_msg_id, locale="fa-IR")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in response["Vary"]
    ack = response.json()
    assert ack["type"] == "ack"
    assert ack["client_msg_id"] == client_msg_id
    again = say(client, webchat_channel, welcome["token"], "سلام", client_msg_id).json()
    assert again["id"] == ack["id"]
    stored = Message.objects.get(pk=ack["id"])
    assert stored.text == "سلام"
    assert stored.metadata["webchat"]["locale"] == "fa"
    assert stored.customer.language == "fa"
    assert Message.objects.filter(channel=webchat_channel).count() == 1


def test_a_preflight_is_answered_for_allowed_origins_only(webchat_channel):
    client = Client()
    url = f"/webchat/{webchat_channel.key}/frames/"
    allowed = client.options(url, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert allowed.status_code == 204
    assert allowed["Access-Control-Allow-Origin"] == ORIGIN
    refused = client.options(url, headers={"Origin": "https://evil.example.test"})
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused


@pytest.mark.parametrize("origin", ["https://evil.example.test", ""])
def test_http_requests_from_other_origins_are_refused(webchat_channel, origin):
    client = Client()
    response = post(client, webchat_channel, "frames", {"type": "hello"}, origin=origin)
    assert response.status_code == 403
    assert response.json()["code"] == "origin_refused"
    assert "Access-Control-Allow-Origin" not in response
    assert post(client, webchat_channel, "poll", {"token": "x"}, origin=origin).status_code == 403


def test_http_frames_without_a_valid_token_are_refused_and_nothing_is_stored(webchat_channel):
    client = Client()
    response = say(client, webchat_channel, "forged:token", "hello")
    assert response.status_code == 401
    assert response.json()["code"] == "bad_token"
    assert not Message.objects.exists()


def test_bad_http_input_gets_a_4xx_never_a_500(webchat_channel):
    client = Client()
    token = hello(client, webchat_channel)["token"]
    url = f"/webchat/{webchat_channel.key}/frames/"
    assert client.post(url, data=b"{not json", content_type="text/plain", headers={"Origin": ORIGIN}).status_code == 400
    assert (
        client.post(url, data=b"x" * 70_000, content_type="text/plain", headers={"Origin": ORIGIN}).status_code == 413
    )
    assert client.get(url, headers={"Origin": ORIGIN}).status_code == 405
    too_long = say(client, webchat_channel, token, "a" * 4001)
    assert (too_long.status_code, too_long.json()["code"]) == (413, "too_long")
    assert post(client, webchat_channel, "frames", {"type": "dance", "token": token}).status_code == 400
    assert post(Client(), webchat_channel.__class__(key="nope"), "frames", {"type": "hello"}).status_code == 404


def test_past_the_limit_http_messages_get_429_with_retry_after(webchat_channel, settings):
    settings.PARLEY_WEBCHAT_MESSAGES_PER_MINUTE = 1
    client = Client()
    token = hello(client, webchat_channel)["token"]
    assert say(client, webchat_channel, token, "one").status_code == 200
    refused = say(client, webchat_channel, token, "two")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused["Access-Control-Allow-Origin"] == ORIGIN  # the widget can read the notice
    assert not Message.objects.filter(text="two").exists()


async def test_a_long_poll_returns_at_once_what_was_missed_and_waits_for_a_reply(webchat_channel, alice):
    client = AsyncClient()
    headers = {"Origin": ORIGIN}
    url = f"/webchat/{webchat_channel.key}/"
    welcome = (
        await client.post(
            url + "frames/", data=json.dumps({"type": "hello"}), content_type="text/plain", headers=headers
        )
    ).json()
    token = welcome["token"]
    frame = {"type": "message", "token": token, "client_msg_id": str(uuid.uuid4()), "text": "Hello?"}
    ack = (
        await client.post(url + "frames/", data=json.dumps(frame), content_type="text/plain", headers=headers)
    ).json()

    async def poll(after: int, have: list[int]) -> dict:
        body = json.dumps({"token": token, "after": after, "have": have})
        response = await client.post(url + "poll/", data=body, content_type="text/plain", headers=headers)
        assert response.status_code == 200
        assert response["Access-Control-Allow-Origin"] == ORIGIN
        return response.json()

    missed = await poll(0, [])
    assert [m["id"] for m in missed["messages"]] == [ack["id"]]

    waiting = asyncio.ensure_future(poll(ack["id"], []))
    await asyncio.sleep(0.5)
    assert not waiting.done()

    def answer() -> Message:
        conversation = Conversation.objects.get(messages__pk=ack["id"])
        message = outbound.reply(conversation=conversation, text="Here I am", by=alice)
        outbound.deliver_message(message_id=message.pk)
        return message

    reply = await database_sync_to_async(answer)()
    woke = await asyncio.wait_for(waiting, timeout=10)
    # "Alice joined" (her first reply assigns her) comes first, then her reply; another frame of the same
    # commit may wake the poll before either is in its answer: the widget then polls again at once.
    seen = list(woke["messages"])
    while not any(m["id"] == reply.pk for m in seen):
        more = await asyncio.wait_for(poll(ack["id"], [m["id"] for m in seen]), timeout=10)
        seen += more["messages"]
    assert [(m["from"], m["name"]) for m in seen] == [("system", "Alice"), ("agent", "Alice")]
    assert [(m["id"], m["text"], m["name"]) for m in seen if m["from"] != "system"] == [
        (reply.pk, "Here I am", "Alice")
    ]
    from django.db import connections

    await database_sync_to_async(connections.close_all)()


# -- identify --------------------------------------------------------------------------------------------


def test_a_verified_identify_links_the_visitor_to_the_customer_who_has_that_email(webchat_channel, sms):
    from inbox.services import inbound as services
    from inbox.transport import InboundMessage

    known = services.receive_message(
        channel=sms, inbound=InboundMessage(provider_id="sms-1", address="+15005550006", text="hi", name="Dora")
    ).customer
    Identity.objects.create(customer=known, kind="email", value="dora@customer.test", verified=True)
    client = Client()
    token = hello(client, webchat_channel)["token"]
    say(client, webchat_channel, token, "Hello from the website")
    good = protocol.user_hash(IDENTITY_SECRET, "dora@customer.test")
    answer = post(
        client,
        webchat_channel,
        "frames",
        {"type": "identify", "token": token, "email": "Dora@Customer.test", "name": "Dora", "user_hash": good},
    ).json()
    assert answer == {"type": "identified", "verified": True}
    visitor = protocol.read_token(webchat_channel, token)
    assert Identity.objects.get(kind="webchat", value=visitor).customer_id == known.pk
    assert Message.objects.get(text="Hello from the website").customer_id == known.pk


def test_a_forged_user_hash_is_only_a_suggestion_never_a_link(webchat_channel):
    victim = Customer.objects.create(name="Victim")
    Identity.objects.create(customer=victim, kind="email", value="victim@customer.test", verified=True)
    client = Client()
    token = hello(client, webchat_channel)["token"]
    say(client, webchat_channel, token, "Show me my orders")
    forged = protocol.user_hash("not-the-secret", "victim@customer.test")
    answer = post(
        client,
        webchat_channel,
        "frames",
        {"type": "identify", "token": token, "email": "victim@customer.test", "user_hash": forged},
    ).json()
    assert answer == {"type": "identified", "verified": False}
    visitor = protocol.read_token(webchat_channel, token)
    visitor_customer = Identity.objects.get(kind="webchat", value=visitor).customer
    assert visitor_customer.pk != victim.pk
    assert not Identity.objects.filter(customer=visitor_customer, kind="email").exists()
    assert visitor_customer.attributes["email"] == "victim@customer.test"  # a suggestion to merge, for people
    from customers.services import suggest_duplicates

    assert [c.pk for c, _reason in suggest_duplicates(customer=visitor_customer)] == [victim.pk]


def test_a_verified_user_id_brings_a_new_browser_to_the_same_customer(webchat_channel):
    first, second = Client(), Client()
    hashed = protocol.user_hash(IDENTITY_SECRET, "user-42")
    customers = []
    for client in (first, second):
        token = hello(client, webchat_channel)["token"]
        say(client, webchat_channel, token, "Hi")
        frame = {"type": "identify", "token": token, "user_id": "user-42", "name": "Ann", "user_hash": hashed}
        assert post(client, webchat_channel, "frames", frame).json()["verified"] is True
        customers.append(
            Identity.objects.get(kind="webchat", value=protocol.read_token(webchat_channel, token)).customer
        )
    assert (
        customers[0].pk == Customer.objects.get(pk=customers[1].pk).pk or customers[0].merged_into_id == customers[1].pk
    )
    assert Identity.objects.filter(kind="webchat", value=f"user:{webchat_channel.pk}:user-42").count() == 1


# -- uploads and files -----------------------------------------------------------------------------------


def upload(client: Client, channel, token: str, content: bytes, name: str, content_type: str, origin: str = ORIGIN):
    file = io.BytesIO(content)
    file.name = name
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        f"/webchat/{channel.key}/upload/",
        data={
            "token": token,
            "client_msg_id": str(uuid.uuid4()),
            "file": SimpleUploadedFile(name, content, content_type=content_type),
        },
        headers={"Origin": origin},
    )


def test_a_visitor_sends_an_image_and_only_their_capability_url_serves_it(webchat_channel):
    client = Client()
    token = hello(client, webchat_channel)["token"]
    response = upload(client, webchat_channel, token, PNG, "screenshot.png", "image/png")
    assert response.status_code == 200, response.content
    ack = response.json()
    [attachment] = ack["message"]["attachments"]
    assert (attachment["name"], attachment["type"], attachment["size"]) == ("screenshot.png", "image/png", len(PNG))
    stored = Attachment.objects.get(message_id=ack["id"])
    assert stored.size == len(PNG)
    path = attachment["url"].split("127.0.0.1:8000", 1)[-1]
    served = client.get(path)
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == PNG
    assert served["X-Content-Type-Options"] == "nosniff"
    # Another attachment id under the same signature, or a made-up token: nothing.
    assert client.get(path.replace("/files/", "/files/x")).status_code == 404
    assert client.get(f"/webchat/{webchat_channel.key}/files/{stored.pk}.v-{'A' * 22}:bad/").status_code == 404


@pytest.mark.parametrize(
    ("content", "name", "content_type", "status"),
    [
        (b"MZ\x90\x00", "setup.exe", "application/x-msdownload", 415),
        (b"<svg onload=alert(1)>", "logo.png", "image/png", 415),
        (b"<svg onload=alert(1)>", "logo.svg", "image/svg+xml", 415),
    ],
)
def test_files_of_refused_types_are_refused(webchat_channel, content, name, content_type, status):
    client = Client()
    token = hello(client, webchat_channel)["token"]
    response = upload(client, webchat_channel, token, content, name, content_type)
    assert response.status_code == status
    assert not Message.objects.exists()


def test_files_past_the_size_limit_are_refused(webchat_channel, settings):
    settings.PARLEY_WEBCHAT_UPLOAD_BYTES = 1024
    client = Client()
    token = hello(client, webchat_channel)["token"]
    response = upload(client, webchat_channel, token, PNG + b"\x00" * 2048, "big.png", "image/png")
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert not Message.objects.exists()


def test_uploads_from_other_origins_are_refused(webchat_channel):
    client = Client()
    token = hello(client, webchat_channel)["token"]
    assert (
        upload(
            client, webchat_channel, token, PNG, "a.png", "image/png", origin="https://evil.example.test"
        ).status_code
        == 403
    )


# -- the script and the embed snippet ---------------------------------------------------------------------


def test_the_script_is_served_gzipped_under_its_versioned_name_and_cached_for_a_year():
    client = Client()
    url = f"/webchat/parley-webchat.{protocol.WIDGET_VERSION}.js"
    response = client.get(url, headers={"Accept-Encoding": "gzip, br"})
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response["Content-Type"].startswith("text/javascript")
    assert b"attachShadow" in gzip.decompress(response.content)
    assert client.get("/webchat/parley-webchat.0.0.1.js").status_code == 404


def test_channel_add_webchat_prints_the_embed_snippet(db, capsys):
    call_command(
        "channel", "add", "webchat", "--name", "Shop chat", "--set", "allowed_origins=https://shop.example.com"
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["kind"] == "webchat"
    assert printed["snippet"].startswith("<script src=")
    assert f'data-parley-channel="{printed_key(printed)}"' in printed["snippet"]
    assert f"/webchat/parley-webchat.{protocol.WIDGET_VERSION}.js" in printed["snippet"]
    assert " async" in printed["snippet"]


def printed_key(printed: dict) -> str:
    from inbox.models import Channel

    return Channel.objects.get(pk=printed["id"]).key


def test_channel_add_webchat_refuses_a_missing_or_malformed_origin(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="allowed_origins"):
        call_command("channel", "add", "webchat", "--name", "Shop chat")
    with pytest.raises(CommandError, match="allowed_origins"):
        call_command(
            "channel", "add", "webchat", "--name", "Shop chat", "--set", "allowed_origins=shop.example.com/path"
        )


def test_the_identity_secret_is_never_printed(db, capsys):
    call_command(
        "channel",
        "add",
        "webchat",
        "--name",
        "Shop chat",
        "--set",
        "allowed_origins=https://shop.example.com",
        "--set",
        "identity_secret=very-secret-value",
    )
    assert "very-secret-value" not in capsys.readouterr().out


# -- trying it on Parley's own page ---------------------------------------------------------------------


def test_the_try_page_embeds_the_teams_website_chat_for_its_operators_only(webchat_channel, alice, bob):
    from tests.conftest import PASSWORD

    anonymous = Client().get("/webchat/try/")
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/login/")

    other_team = Client()
    other_team.login(username="bob", password=PASSWORD)
    assert other_team.get(f"/webchat/try/?channel={webchat_channel.pk}").status_code == 404
    assert webchat_channel.key.encode() not in other_team.get("/webchat/try/").content

    mine = Client()
    mine.login(username="alice", password=PASSWORD)
    page = mine.get("/webchat/try/")
    assert page.status_code == 200
    assert f"data-parley-channel=&quot;{webchat_channel.key}&quot;" in page.content.decode()  # the snippet, shown
    assert '<script src="/webchat/' not in page.content.decode()
    assert "add http://testserver to the channel" in page.content.decode()  # not an allowed origin here
    webchat_channel.settings["allowed_origins"] += " http://testserver"
    webchat_channel.save(update_fields=["settings"])
    page = mine.get(f"/webchat/try/?channel={webchat_channel.pk}").content.decode()
    assert (
        f'<script src="/webchat/parley-webchat.{protocol.WIDGET_VERSION}.js" data-parley-channel="{webchat_channel.key}" async>'
        in page
    )


def test_the_demo_has_a_real_website_chat_to_try_on_parleys_own_origin(db, settings):
    from demo.loader import load_demo
    from inbox.models import Channel

    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    assert load_demo()
    chat = Channel.objects.get(kind="webchat")
    assert chat.bot_enabled
    assert protocol.origin_allowed(chat, "http://127.0.0.1:8000")
    assert protocol.origin_allowed(chat, "http://localhost:8000")
    assert not protocol.origin_allowed(chat, "http://evil.test")


def test_past_the_per_address_limit_long_polls_get_429(webchat_channel, settings):
    settings.PARLEY_WEBCHAT_ADDRESS_MESSAGES_PER_MINUTE = 1
    client = Client()
    token = hello(client, webchat_channel)["token"]
    assert say(client, webchat_channel, token, "one").status_code == 200
    # Polls are counted apart from messages: the first answers at once (a message is there), the next is refused.
    assert post(client, webchat_channel, "poll", {"token": token}).status_code == 200
    refused = post(client, webchat_channel, "poll", {"token": token})
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"


def test_an_operators_session_opens_nothing_on_the_widgets_endpoints(webchat_channel, bob, alice):
    from tests.conftest import PASSWORD

    visitor = Client()
    token = hello(visitor, webchat_channel)["token"]
    say(visitor, webchat_channel, token, "my card number ends in 4242")
    for username in ("bob", "alice"):  # another team's operator, and even the channel's own
        operator = Client()
        operator.login(username=username, password=PASSWORD)
        assert post(operator, webchat_channel, "poll", {"after": 0}).status_code == 401
        welcome = hello(operator, webchat_channel)
        assert welcome["new"] is True
        assert welcome["messages"] == []
