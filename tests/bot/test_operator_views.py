"""The bot's thread actions over HTTP: the one click, the picker, refusals as 4xx fragments."""

from __future__ import annotations

from itertools import count

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from bot import services as bot
from bot.encoders import TfidfEncoder
from bot.models import Article, Calibration, ExampleQuestion
from inbox.models import Channel, Conversation, Message, Operator, Team
from inbox.services import channels, conversations, outbound
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
_ids = count()


@pytest.fixture(autouse=True)
def on_tfidf(tfidf_bot: None) -> None:
    """Every test here runs the bot on the TF-IDF encoder."""


@pytest.fixture
def kb() -> dict[str, Article]:
    articles = {}
    for title, examples in {
        "Passwords": ["i forgot my password", "reset my password", "how do i change my password"],
        "Delivery": ["where is my parcel", "when will my order be delivered", "track my delivery"],
    }.items():
        article = articles[title] = Article.objects.create(title=title, answer=f"All about {title.lower()}.")
        ExampleQuestion.objects.bulk_create([ExampleQuestion(article=article, text=t) for t in examples])
    Calibration.objects.create(
        encoder=TfidfEncoder().name, language="*", threshold=0.2, margin=0.0, computed_at=timezone.now()
    )
    return articles


@pytest.fixture
def bot_sms(support: Team) -> Channel:
    return channels.create_channel(
        kind="simulator", name="Bot SMS", team=support, channel_settings={"medium": "sms"}, bot_enabled=True
    )


def write(channel: Channel, text: str) -> Message:
    inbound = InboundMessage(provider_id=f"v{next(_ids)}", address="+15005550006", text=text, name="Dora")
    return receive_message(channel=channel, inbound=inbound)


def logged_in(client: Client, operator: Operator) -> Client:
    client.force_login(operator)
    return client


BOT_ACTIONS = {"give_back", "make_example", "example_picker"}


def url(name: str, *args: object) -> str:
    return reverse(f"{'bot' if name in BOT_ACTIONS else 'inbox'}:{name}", args=args)


# -- give back -------------------------------------------------------------------------------------


def test_the_give_back_button_hands_the_conversation_to_the_bot(
    client: Client, bot_sms: Channel, alice: Operator
) -> None:
    conversation = write(bot_sms, "hello").conversation
    conversations.assign_conversation(conversation=conversation, operator=alice, by=alice)  # a person took it
    page = logged_in(client, alice).get(url("conversation", conversation.pk), **HTMX, HTTP_HX_TARGET="thread-pane")
    assert b'data-action="give-back"' in page.content

    response = client.post(url("give_back", conversation.pk), **HTMX)

    assert response.status_code == 200
    assert "Bot is answering" in response.content.decode()
    assert b'data-action="give-back"' not in response.content
    conversation.refresh_from_db()
    assert (conversation.handler, conversation.assignee_id) == (Conversation.Handler.BOT, None)


def test_giving_back_on_a_channel_without_the_bot_is_a_409_with_the_reason(
    client: Client, sms: Channel, alice: Operator
) -> None:
    conversation = write(sms, "hello").conversation
    page = logged_in(client, alice).get(url("conversation", conversation.pk), **HTMX, HTTP_HX_TARGET="thread-pane")
    assert b'data-action="give-back"' not in page.content, "no button where the bot is off"

    response = client.post(url("give_back", conversation.pk), **HTMX)

    assert response.status_code == 409
    assert "The bot is not switched on for SMS." in response.content.decode()
    assert response["HX-Retarget"] == "#thread-errors"


def test_another_teams_conversation_is_not_found_and_get_is_not_allowed(
    client: Client, bot_sms: Channel, alice: Operator, bob: Operator
) -> None:
    conversation = write(bot_sms, "hello").conversation
    conversations.assign_conversation(conversation=conversation, operator=alice, by=alice)

    assert logged_in(client, bob).post(url("give_back", conversation.pk), **HTMX).status_code == 404
    assert client.get(url("give_back", conversation.pk)).status_code == 405
    assert Conversation.objects.get(pk=conversation.pk).assignee_id == alice.pk


def test_give_back_needs_the_csrf_token(bot_sms: Channel, alice: Operator) -> None:
    conversation = write(bot_sms, "hello").conversation
    conversations.assign_conversation(conversation=conversation, operator=alice, by=alice)
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)

    assert strict.post(url("give_back", conversation.pk)).status_code == 403
    assert Conversation.objects.get(pk=conversation.pk).handler == Conversation.Handler.HUMAN


# -- make this an example question ----------------------------------------------------------------


def answered(channel: Channel, question: str, answer: str, by: Operator) -> Message:
    asked = write(channel, question)
    return outbound.reply(conversation=asked.conversation, text=answer, by=by)


def test_one_click_on_an_answer_adds_the_example_and_shows_where_it_went(
    client: Client, sms: Channel, kb: dict[str, Article], alice: Operator
) -> None:
    answer = answered(sms, "i cannot remember my password", "Use the reset link.", alice)
    page = logged_in(client, alice).get(
        url("conversation", answer.conversation_id), **HTMX, HTTP_HX_TARGET="thread-pane"
    )
    assert b'data-action="make-example"' in page.content

    response = client.post(url("make_example", answer.pk), **HTMX)

    assert response.status_code == 200
    assert "Example question of “Passwords”" in response.content.decode()
    assert ExampleQuestion.objects.filter(article=kb["Passwords"], text="i cannot remember my password").exists()
    picker = client.get(url("example_picker", answer.pk), **HTMX).content.decode()
    assert f'value="{kb["Passwords"].pk}" checked' in picker, "'Change' starts from where it went"


def test_without_a_close_article_an_operator_gets_the_picker_and_picks(
    client: Client, sms: Channel, kb: dict[str, Article], alice: Operator
) -> None:
    answer = answered(sms, "do you sell gift cards", "Yes, in the shop.", alice)

    picker = logged_in(client, alice).post(url("make_example", answer.pk), **HTMX)

    assert picker.status_code == 200
    assert picker["HX-Retarget"] == f"#example-{answer.pk}"
    body = picker.content.decode()
    assert 'name="choice"' in body
    assert 'value="new"' not in body, "operators do not create articles"
    assert not ExampleQuestion.objects.filter(text="do you sell gift cards").exists()

    picked = client.post(url("make_example", answer.pk), {"choice": kb["Delivery"].pk}, **HTMX)
    assert picked.status_code == 200
    assert ExampleQuestion.objects.get(text="do you sell gift cards").article == kb["Delivery"]


def test_staff_are_offered_a_new_article(client: Client, sms: Channel, kb: dict[str, Article], admin: Operator) -> None:
    answer = answered(sms, "do you sell gift cards", "Yes, in the shop.", admin)

    picker = logged_in(client, admin).get(url("example_picker", answer.pk), **HTMX)
    assert 'value="new" checked' in picker.content.decode()

    response = client.post(url("make_example", answer.pk), {"choice": "new"}, **HTMX)
    assert response.status_code == 200
    assert "New article “Do you sell gift cards”" in response.content.decode()
    assert Article.objects.get(title="Do you sell gift cards").answer == "Yes, in the shop."


@pytest.mark.parametrize("choice", ["abc", "999999", "-1"])
def test_a_bad_article_choice_is_a_400(
    client: Client, sms: Channel, kb: dict[str, Article], alice: Operator, choice: str
) -> None:
    answer = answered(sms, "i cannot remember my password", "Use the reset link.", alice)

    response = logged_in(client, alice).post(url("make_example", answer.pk), {"choice": choice}, **HTMX)

    assert response.status_code == 400
    assert "Pick an article" in response.content.decode()
    assert not ExampleQuestion.objects.filter(text="i cannot remember my password").exists()


def test_a_customer_message_cannot_be_made_an_example_answer(
    client: Client, sms: Channel, kb: dict[str, Article], alice: Operator
) -> None:
    inbound = write(sms, "i cannot remember my password")

    response = logged_in(client, alice).post(url("make_example", inbound.pk), **HTMX)

    assert response.status_code == 409
    assert "Only an operator" in response.content.decode()


def test_staff_only_creation_is_a_403_for_operators(
    client: Client, sms: Channel, kb: dict[str, Article], alice: Operator
) -> None:
    answer = answered(sms, "do you sell gift cards", "Yes.", alice)

    response = logged_in(client, alice).post(url("make_example", answer.pk), {"choice": "new"}, **HTMX)

    assert response.status_code == 403
    assert "Only staff" in response.content.decode()
    assert not Article.objects.filter(title__icontains="gift").exists()


def test_another_teams_answer_is_not_found(
    client: Client, sms: Channel, kb: dict[str, Article], alice: Operator, bob: Operator
) -> None:
    answer = answered(sms, "i cannot remember my password", "Use the reset link.", alice)

    assert logged_in(client, bob).post(url("make_example", answer.pk), **HTMX).status_code == 404
    assert client.get(url("example_picker", answer.pk), **HTMX).status_code == 404
    assert not ExampleQuestion.objects.filter(text="i cannot remember my password").exists()


# -- what the thread shows about the bot --------------------------------------------------------------


def test_bot_messages_show_confidence_article_and_the_hand_off_reason(
    client: Client, bot_sms: Channel, kb: dict[str, Article], alice: Operator, admin: Operator
) -> None:
    answered_by_bot = write(bot_sms, "i forgot my password")
    bot.run_triage(message_id=answered_by_bot.pk)
    bot.run_triage(message_id=write(bot_sms, "can I talk to a human please").pk)
    conversation_id = answered_by_bot.conversation_id

    body = logged_in(client, alice).get(url("conversation", conversation_id), **HTMX, HTTP_HX_TARGET="thread-pane")
    text = body.content.decode()
    assert "Confidence " in text
    assert '<span class="bot-article">Article: Passwords</span>' in text
    assert "Handed off: the customer asked for a person" in text
    assert "The bot handed this conversation to the team: the customer asked for a person." in text
    assert "can I talk to a human please" in text
    assert "Tried: Passwords" in text
    assert reverse("bot:article", args=[kb["Passwords"].pk]) not in text, "the link is for staff"

    staff = Client()
    staff.force_login(admin)
    page = staff.get(url("conversation", conversation_id), **HTMX, HTTP_HX_TARGET="thread-pane").content.decode()
    assert reverse("bot:article", args=[kb["Passwords"].pk]) in page
