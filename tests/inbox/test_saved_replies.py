"""Saved replies: who sees and changes which, their placeholders, the page, the picker and the admin."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from customers.models import Customer
from demo.loader import load_demo, load_saved_replies
from inbox.models import Conversation, SavedReply
from inbox.services import inbound, replies
from inbox.transport import InboundMessage

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def conversation(sms) -> Conversation:
    """A Support conversation with Dora Kim."""
    message = inbound.receive_message(
        channel=sms,
        inbound=InboundMessage(provider_id="in-1", address="+15005550006", text="My parcel is late", name="Dora Kim"),
    )
    return message.conversation


@pytest.fixture
def greeting(db) -> SavedReply:
    return SavedReply.objects.create(title="Greeting", text="Hi {customer_first_name}, how can I help?")


@pytest.fixture
def refunds(support) -> SavedReply:
    return SavedReply.objects.create(title="Refund policy", text="Refunds take 5 days.\nAsk us.", team=support)


@pytest.fixture
def pricing(sales) -> SavedReply:
    return SavedReply.objects.create(title="Pricing", text="Our plans start at $10.", team=sales)


@pytest.fixture
def as_alice(client: Client, alice) -> Client:
    client.force_login(alice)
    return client


@pytest.fixture
def as_bob(client: Client, bob) -> Client:
    client.force_login(bob)
    return client


@pytest.fixture
def as_admin(client: Client, admin) -> Client:
    client.force_login(admin)
    return client


def url(name: str, *args: object) -> str:
    return reverse(f"inbox:{name}", args=args)


def form(**changes: object) -> dict[str, object]:
    return {"title": "Shipping", "text": "We ship within 2 days.", "team": "", **changes}


# -- who sees which --------------------------------------------------------------------------------


def test_an_operator_sees_the_saved_replies_of_their_teams_and_everyones_but_not_another_teams(
    alice, greeting, refunds, pricing
):
    assert set(SavedReply.objects.visible_to(alice)) == {greeting, refunds}


def test_staff_see_every_saved_reply(admin, greeting, refunds, pricing):
    assert set(SavedReply.objects.visible_to(admin)) == {greeting, refunds, pricing}


def test_the_page_lists_what_the_operator_may_use_and_offers_edit_only_on_their_teams(
    as_alice, greeting, refunds, pricing
):
    page = as_alice.get(url("saved_replies"))

    assert page.status_code == 200
    html = page.content.decode()
    assert "Greeting" in html
    assert "Refund policy" in html
    assert "Pricing" not in html
    assert url("saved_reply", refunds.pk) in html
    assert url("saved_reply", greeting.pk) not in html  # everyone's: staff manage it


def test_the_page_searches_titles_and_texts_as_an_htmx_fragment(as_alice, greeting, refunds):
    fragment = as_alice.get(url("saved_replies") + "?q=5+days", HTTP_HX_TARGET="saved-reply-results", **HTMX)

    assert fragment.status_code == 200
    html = fragment.content.decode()
    assert "Refund policy" in html
    assert "Greeting" not in html
    assert "<html" not in html


def test_the_reply_box_has_a_labelled_saved_replies_button_and_a_listbox_picker(as_alice, conversation):
    html = as_alice.get(url("conversation", conversation.pk)).content.decode()

    assert "data-saved-replies-open" in html
    assert ">Saved replies</button>" in html
    assert f'aria-controls="saved-options-{conversation.pk}"' in html
    assert url("saved_reply_picker", conversation.pk) in html


def test_the_picker_lists_matching_saved_replies_with_their_first_line_title_matches_first(
    as_alice, conversation, greeting, refunds, pricing, support
):
    SavedReply.objects.create(title="Closing", text="Greetings from all of us, bye!", team=support)

    html = as_alice.get(url("saved_reply_picker", conversation.pk) + "?q=greet", **HTMX).content.decode()

    assert 'role="listbox"' in html
    assert html.index("Greeting") < html.index("Closing")
    assert 'aria-selected="true"' in html
    assert "Refund policy" not in html
    everything = as_alice.get(url("saved_reply_picker", conversation.pk), **HTMX).content.decode()
    assert "Refunds take 5 days." in everything  # the first line only
    assert "Ask us." not in everything
    assert "Pricing" not in everything


def test_the_picker_of_another_teams_conversation_is_not_found(as_bob, conversation, greeting):
    assert as_bob.get(url("saved_reply_picker", conversation.pk)).status_code == 404


# -- placeholders ------------------------------------------------------------------------------------


def render(text: str, conversation: Conversation, operator) -> str:
    saved_reply = SavedReply(title="t", text=text)
    return replies.render_for(saved_reply=saved_reply, conversation=conversation, operator=operator)


def test_placeholders_are_filled_with_the_customer_the_operator_and_the_team(conversation, alice):
    text = "Hi {customer_first_name} ({customer_name}), {operator_name} of {team} here."

    assert render(text, conversation, alice) == "Hi Dora (Dora Kim), Alice of Support here."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hi {customer_name}, how can I help?", "Hi, how can I help?"),
        ("Hi {customer_first_name}!", "Hi!"),
        ("Thanks for waiting, {customer_first_name}.", "Thanks for waiting."),
        ("Dear {customer_name} and team", "Dear and team"),
        ("{customer_name}, your parcel is on its way.", "Your parcel is on its way."),
        ("Hello {customer_name},\n\nThanks!", "Hello,\n\nThanks!"),
    ],
)
def test_an_unknown_customer_name_is_left_out_tidily(alice, sms, text, expected):
    nameless = Customer.objects.create(name="")
    conversation = Conversation.objects.create(customer=nameless, team=sms.team, last_message_at=timezone.now())

    assert render(text, conversation, alice) == expected


def test_unknown_placeholders_and_attribute_lookups_are_left_as_written(conversation, alice):
    text = "{customer.__class__} {customer_name.__init__.__globals__} {0} {order_id} {} {{team}} {customer_name}"

    assert render(text, conversation, alice) == (
        "{customer.__class__} {customer_name.__init__.__globals__} {0} {order_id} {} {Support} Dora Kim"
    )


def test_a_value_that_looks_like_a_placeholder_is_not_filled_again(conversation, alice):
    Customer.objects.filter(pk=conversation.customer_id).update(name="{operator_name}")
    conversation.customer.refresh_from_db()

    assert render("Hi {customer_name}, I am {operator_name}", conversation, alice) == "Hi {operator_name}, I am Alice"


def test_a_conversation_without_a_team_leaves_the_team_out(conversation, alice):
    conversation.team = None

    assert render("Greetings from the {team} desk", conversation, alice) == "Greetings from the desk"


def test_unknown_placeholders_are_reported_once_each():
    assert replies.unknown_placeholders("{order} {customer_name} {order} {x.y} { spaced }") == [
        "{order}",
        "{x.y}",
    ]


# -- the rendered text for the reply box --------------------------------------------------------------


def test_the_text_endpoint_answers_the_saved_reply_filled_in_for_the_conversation(as_alice, conversation, greeting):
    response = as_alice.get(url("saved_reply_text", conversation.pk, greeting.pk))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == "Hi Dora, how can I help?"


def test_the_text_endpoint_hides_another_teams_saved_reply(as_alice, conversation, pricing):
    assert as_alice.get(url("saved_reply_text", conversation.pk, pricing.pk)).status_code == 404


def test_the_text_endpoint_hides_a_conversation_the_operator_cannot_see(as_bob, conversation, greeting):
    assert as_bob.get(url("saved_reply_text", conversation.pk, greeting.pk)).status_code == 404


def test_the_text_endpoint_of_a_missing_saved_reply_is_not_found(as_alice, conversation):
    assert as_alice.get(url("saved_reply_text", conversation.pk, 999_999)).status_code == 404


# -- who changes which -----------------------------------------------------------------------------------


def test_an_operator_adds_a_saved_reply_for_their_team(as_alice, alice, support):
    response = as_alice.post(url("saved_reply_new"), form(team=support.pk), follow=True)

    assert response.status_code == 200
    created = SavedReply.objects.get(title="Shipping")
    assert (created.team, created.created_by, created.text) == (support, alice, "We ship within 2 days.")
    assert "Saved reply “Shipping” added." in response.content.decode()


def test_an_operator_edits_and_deletes_their_teams_saved_reply(as_alice, refunds, support):
    edited = as_alice.post(url("saved_reply", refunds.pk), form(title="Refunds", team=support.pk))
    assert edited.status_code == 302
    refunds.refresh_from_db()
    assert (refunds.title, refunds.text) == ("Refunds", "We ship within 2 days.")

    deleted = as_alice.post(url("saved_reply_delete", refunds.pk))
    assert deleted.status_code == 302
    assert not SavedReply.objects.filter(pk=refunds.pk).exists()


@pytest.mark.parametrize("which", ["pricing", "greeting"])
def test_an_operator_may_not_change_another_teams_or_everyones_saved_reply(as_alice, support, which, request):
    saved_reply = request.getfixturevalue(which)
    before = (saved_reply.title, saved_reply.text)

    assert as_alice.get(url("saved_reply", saved_reply.pk)).status_code == 403
    assert as_alice.post(url("saved_reply", saved_reply.pk), form(team=support.pk)).status_code == 403
    assert as_alice.post(url("saved_reply_delete", saved_reply.pk)).status_code == 403

    saved_reply.refresh_from_db()
    assert (saved_reply.title, saved_reply.text) == before


def test_an_operator_may_not_add_everyones_or_another_teams_saved_reply(as_alice, sales):
    for team in ("", sales.pk):
        response = as_alice.post(url("saved_reply_new"), form(team=team))
        assert response.status_code == 400
        assert "Choose one of your teams." in response.content.decode()
    assert not SavedReply.objects.exists()


def test_an_operator_may_not_move_their_teams_saved_reply_to_another_team(as_alice, refunds, sales):
    response = as_alice.post(url("saved_reply", refunds.pk), form(team=sales.pk))

    assert response.status_code == 400
    refunds.refresh_from_db()
    assert refunds.team.name == "Support"


def test_the_service_refuses_operators_outside_the_rule(alice, greeting, pricing, support):
    with pytest.raises(PermissionDenied):
        replies.create_saved_reply(title="Mine", text="x", team=None, by=alice)
    with pytest.raises(PermissionDenied):
        replies.update_saved_reply(saved_reply=pricing, title="Pricing", text="x", team=support, by=alice)
    with pytest.raises(PermissionDenied):
        replies.delete_saved_reply(saved_reply=greeting, by=alice)


def test_staff_manage_everyones_saved_replies(as_admin, admin, greeting):
    created = as_admin.post(url("saved_reply_new"), form())
    assert created.status_code == 302
    assert SavedReply.objects.get(title="Shipping").team is None

    assert as_admin.post(url("saved_reply", greeting.pk), form(title="Hello")).status_code == 302
    greeting.refresh_from_db()
    assert greeting.title == "Hello"


def test_a_missing_saved_reply_is_not_found(as_alice):
    assert as_alice.get(url("saved_reply", 999_999)).status_code == 404


# -- validation -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"title": "  "}, "Give the saved reply a title."),
        ({"text": ""}, "Write the text of the saved reply."),
        ({"title": "x" * 101}, "at most 100 characters"),
        ({"text": "x" * 5001}, "at most 5000 characters"),
    ],
)
def test_a_saved_reply_needs_a_title_and_a_text_of_bounded_length(as_admin, changes, message):
    response = as_admin.post(url("saved_reply_new"), form(**changes))

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not SavedReply.objects.exists()


def test_a_title_is_unique_within_a_team_whatever_its_case(as_alice, refunds, support, sales):
    response = as_alice.post(url("saved_reply_new"), form(title="refund POLICY", team=support.pk))

    assert response.status_code == 422
    assert "This team has a saved reply with this title already." in response.content.decode()
    assert SavedReply.objects.filter(team=support).count() == 1
    # Another team may use the same title.
    replies.create_saved_reply(title="Refund policy", text="Sales refunds.", team=sales, by=None)


def test_a_title_is_unique_among_everyones_saved_replies(as_admin, greeting):
    response = as_admin.post(url("saved_reply_new"), form(title="greeting"))

    assert response.status_code == 422
    assert "A saved reply for every team has this title already." in response.content.decode()


def test_renaming_to_a_taken_title_is_refused(as_alice, refunds, support):
    other = SavedReply.objects.create(title="Delays", text="Sorry.", team=support)

    response = as_alice.post(url("saved_reply", other.pk), form(title="Refund Policy", team=support.pk))

    assert response.status_code == 422
    other.refresh_from_db()
    assert other.title == "Delays"


@pytest.mark.parametrize("team_fixture", ["support", None])
def test_the_database_keeps_titles_unique_even_without_the_checks(team_fixture, request, db):
    team = request.getfixturevalue(team_fixture) if team_fixture else None
    SavedReply.objects.create(title="Same", text="a", team=team)

    with pytest.raises(IntegrityError), transaction.atomic():
        SavedReply.objects.create(title="SAME", text="b", team=team)


def test_the_service_reports_a_duplicate_title_as_a_validation_error(refunds, support):
    with pytest.raises(ValidationError) as raised:
        replies.create_saved_reply(title="Refund policy", text="x", team=support, by=None)

    assert raised.value.message_dict == {"title": ["This team has a saved reply with this title already."]}


def test_saving_a_text_with_an_unknown_placeholder_warns_but_saves(as_alice, support):
    response = as_alice.post(url("saved_reply_new"), form(text="Your order {order_id} ships today.", team=support.pk))

    assert response.status_code == 302
    assert SavedReply.objects.filter(text="Your order {order_id} ships today.").exists()
    page = as_alice.get(response["Location"]).content.decode()
    assert "Parley does not fill in {order_id}" in page


# -- the admin --------------------------------------------------------------------------------------------


def test_the_admin_warns_about_unknown_placeholders_when_saving(as_admin, admin):
    response = as_admin.post(
        reverse("admin:inbox_savedreply_add"),
        {"title": "Order", "text": "Hi {customer_first_name}, order {order_id} is late.", "team": ""},
        follow=True,
    )

    assert response.status_code == 200
    saved = SavedReply.objects.get(title="Order")
    assert saved.created_by == admin
    shown = [(m.level_tag, str(m)) for m in response.context["messages"]]
    warnings = [text for level, text in shown if level == "warning"]
    assert len(warnings) == 1, shown
    assert warnings[0].startswith("Parley does not fill in {order_id}: it is sent as written.")


def test_the_admin_refuses_a_duplicate_title_in_a_team(as_admin, refunds, support):
    response = as_admin.post(
        reverse("admin:inbox_savedreply_add"), {"title": "Refund Policy", "text": "x", "team": support.pk}
    )

    assert response.status_code == 200  # the form again, with the error
    assert "This team has a saved reply with this title already." in response.content.decode()
    assert SavedReply.objects.count() == 1


def test_the_admin_lists_saved_replies_with_a_team_filter_and_search(as_admin, greeting, refunds, pricing, sales):
    changelist = reverse("admin:inbox_savedreply_changelist")

    by_team = as_admin.get(changelist, {"team__id__exact": sales.pk}).content.decode()
    assert "Pricing" in by_team
    assert "Refund policy" not in by_team
    found = as_admin.get(changelist, {"q": "5 days"}).content.decode()
    assert "Refund policy" in found
    assert "Pricing" not in found


def test_the_admin_deletes_through_the_service(as_admin, refunds):
    response = as_admin.post(reverse("admin:inbox_savedreply_delete", args=[refunds.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not SavedReply.objects.exists()


# -- the demo ------------------------------------------------------------------------------------------------


def test_the_demo_has_saved_replies_once_however_often_they_are_loaded(db):
    load_demo()
    load_saved_replies()

    titles = dict(SavedReply.objects.values_list("title", "team__name"))
    assert titles == {"Greeting": None, "Closing": None, "Refund policy": "Support", "Business plan": "Sales"}
    conversation = Conversation.objects.filter(customer__name="Chen Wei").get()
    alice = conversation.team.operators.get(username="alice")
    greeting = SavedReply.objects.get(title="Greeting")
    assert replies.render_for(saved_reply=greeting, conversation=conversation, operator=alice).startswith(
        "Hi Chen, thanks for getting in touch! I'm Alice Operator from the Support team."
    )
