"""Labels: staff define them, operators put them on conversations from the thread, the inbox filters
by them, the reports count them, and another team's conversation stays out of reach."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from audit.models import Entry
from desk import selectors, services
from desk.models import ConversationLabel, Label
from inbox.models import Conversation, Message
from inbox.realtime.consumers import render_header
from inbox.selectors.conversations import inbox_counts
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from inbox.visibility import Scope
from tests.conftest import PASSWORD


def login(client: Client, who) -> Client:
    client.login(username=who.username, password=PASSWORD)
    return client


# -- defining labels (staff) ----------------------------------------------------------------------


def test_staff_add_a_label_from_the_labels_page_and_it_is_audited(client, admin):
    login(client, admin)
    answer = client.post("/desk/labels/", {"name": " Refund ", "colour": "green", "description": "Money back"})
    assert answer.status_code == 302
    label = Label.objects.get()
    assert (label.name, label.colour, label.created_by) == ("Refund", "green", admin)
    assert Entry.objects.filter(action="created", target="Refund").exists()
    page = client.get("/desk/labels/").content.decode()
    assert 'class="label-chip label-green"' in page


def test_a_label_name_is_unique_whatever_its_case(client, admin, refund):
    login(client, admin)
    answer = client.post("/desk/labels/", {"name": "REFUND", "colour": "blue"})
    assert answer.status_code == 422
    assert "A label with this name exists already." in answer.content.decode()
    assert Label.objects.count() == 1


def test_a_colour_outside_the_palette_is_refused(client, admin):
    login(client, admin)
    answer = client.post("/desk/labels/", {"name": "Odd", "colour": "#ff00ff"})
    assert answer.status_code == 400
    assert not Label.objects.exists()


def test_operators_may_not_define_labels(client, alice, refund):
    login(client, alice)
    assert client.get("/desk/labels/").status_code == 403
    assert client.post("/desk/labels/", {"name": "Mine", "colour": "blue"}).status_code == 403
    assert client.post(f"/desk/labels/{refund.pk}/", {"name": "Renamed", "colour": "blue"}).status_code == 403
    assert client.post(f"/desk/labels/{refund.pk}/delete/").status_code == 403
    with pytest.raises(PermissionDenied):
        services.create_label(name="Sneaky", colour="blue", by=alice)
    assert list(Label.objects.values_list("name", flat=True)) == ["Refund"]


def test_renaming_a_label_renames_it_on_its_conversations(client, admin, alice, conversation, refund):
    services.add_label(conversation=conversation, label=refund, by=alice)
    login(client, admin)
    assert client.post(f"/desk/labels/{refund.pk}/", {"name": "Money back", "colour": "teal"}).status_code == 302
    conversation.refresh_from_db()
    assert conversation.labels == ["Money back"]


def test_deleting_a_label_takes_it_off_every_conversation(client, admin, alice, conversation, refund):
    services.add_label(conversation=conversation, label=refund, by=alice)
    login(client, admin)
    assert client.post(f"/desk/labels/{refund.pk}/delete/").status_code == 302
    conversation.refresh_from_db()
    assert conversation.labels == []
    assert not ConversationLabel.objects.exists()


# -- labels on a conversation ---------------------------------------------------------------------


def test_an_operator_adds_a_label_from_the_thread(client, alice, conversation, refund, bug):
    login(client, alice)
    version = conversation.version
    answer = client.post(f"/desk/c/{conversation.pk}/labels/", {"label": refund.pk}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    body = answer.content.decode()
    assert f'id="thread-header-{conversation.pk}"' in body
    assert 'class="label-chip label-red"' in body
    # The picker offers only the labels not on it yet.
    assert f'<option value="{bug.pk}">Bug</option>' in body
    assert f'<option value="{refund.pk}">Refund</option>' not in body
    conversation.refresh_from_db()
    assert conversation.labels == ["Refund"]
    assert conversation.version > version
    entry = Message.objects.get(conversation=conversation, kind="activity", text="label_added")
    assert entry.author == alice
    assert entry.metadata["label_name"] == "Refund"
    thread = client.get(f"/c/{conversation.pk}/").content.decode()
    assert "Alice added the label Refund" in thread


def test_adding_a_label_twice_changes_nothing(alice, conversation, refund):
    assert services.add_label(conversation=conversation, label=refund, by=alice) is True
    assert services.add_label(conversation=conversation, label=refund, by=alice) is False
    assert ConversationLabel.objects.count() == 1
    assert Message.objects.filter(text="label_added").count() == 1


def test_an_operator_removes_a_label(client, alice, conversation, refund, bug):
    services.add_label(conversation=conversation, label=refund, by=alice)
    services.add_label(conversation=conversation, label=bug, by=alice)
    conversation.refresh_from_db()
    assert conversation.labels == ["Bug", "Refund"]
    login(client, alice)
    answer = client.post(f"/desk/c/{conversation.pk}/labels/{refund.pk}/remove/", HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    conversation.refresh_from_db()
    assert conversation.labels == ["Bug"]
    assert Message.objects.filter(text="label_removed", metadata__label_name="Refund").exists()


@pytest.mark.parametrize("value", ["", "abc", "0", "99999999999999999999999"])
def test_a_bad_label_id_is_a_clear_400(client, alice, conversation, value):
    login(client, alice)
    answer = client.post(f"/desk/c/{conversation.pk}/labels/", {"label": value}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 400
    assert not ConversationLabel.objects.exists()


def test_an_unknown_label_is_a_400_and_an_unknown_one_to_remove_a_404(client, alice, conversation):
    login(client, alice)
    assert client.post(f"/desk/c/{conversation.pk}/labels/", {"label": 987654}).status_code == 400
    assert client.post(f"/desk/c/{conversation.pk}/labels/987654/remove/").status_code == 404


def test_another_teams_operator_cannot_label_or_unlabel(client, bob, alice, conversation, refund):
    services.add_label(conversation=conversation, label=refund, by=alice)
    login(client, bob)
    assert client.post(f"/desk/c/{conversation.pk}/labels/", {"label": refund.pk}).status_code == 404
    assert client.post(f"/desk/c/{conversation.pk}/labels/{refund.pk}/remove/").status_code == 404
    with pytest.raises(PermissionDenied):
        services.remove_label(conversation=conversation, label=refund, by=bob)
    conversation.refresh_from_db()
    assert conversation.labels == ["Refund"]


def test_a_conversation_carries_a_bounded_number_of_labels(admin, alice, conversation):
    for n in range(services.MAX_LABELS_PER_CONVERSATION):
        services.add_label(
            conversation=conversation, label=services.create_label(name=f"L{n}", colour="blue", by=admin), by=alice
        )
    extra = services.create_label(name="One too many", colour="blue", by=admin)
    with pytest.raises(ValidationError):
        services.add_label(conversation=conversation, label=extra, by=alice)


def test_the_live_header_shows_the_labels(alice, conversation, refund):
    services.add_label(conversation=conversation, label=refund, by=alice)
    html = render_header(conversation.pk, "en", Scope(is_staff=False, team_ids=tuple(alice.team_ids)))
    assert 'class="label-chip label-red"' in html
    assert f"/desk/c/{conversation.pk}/labels/{refund.pk}/remove/" in html


# -- the inbox list ----------------------------------------------------------------------------------


@pytest.fixture
def two(sms, conversation) -> Conversation:
    return receive_message(
        channel=sms, inbound=InboundMessage(provider_id="in-2", address="+15005550007", text="Hello", name="Eve")
    ).conversation


def test_the_inbox_filters_by_label_and_shows_the_chips(client, alice, conversation, two, refund):
    services.add_label(conversation=conversation, label=refund, by=alice)
    selectors.forget_colours()
    login(client, alice)
    everything = client.get("/").content.decode()
    assert f'id="row-{two.pk}"' in everything
    assert f'<option value="{refund.pk}">Refund</option>' in everything
    filtered = client.get(f"/?label={refund.pk}").content.decode()
    assert f'id="row-{conversation.pk}"' in filtered
    assert f'id="row-{two.pk}"' not in filtered
    assert 'class="label-chip label-red"' in filtered
    # The filter is kept for live re-fetches and the tabs.
    assert f"label={refund.pk}" in filtered.split('id="inbox-list"')[1].split(">")[0]
    assert f"&amp;label={refund.pk}" in filtered


def test_the_tab_counts_count_what_the_label_filter_shows(alice, conversation, two, refund):
    services.add_label(conversation=conversation, label=refund, by=alice)
    assert inbox_counts(operator=alice)["all"] == 2
    assert inbox_counts(operator=alice, extra={"label": refund.pk})["all"] == 1


@pytest.mark.parametrize("value", ["abc", "0", "-1", "99999999999999999999999"])
def test_a_bad_label_filter_is_a_bad_request(client, alice, value):
    login(client, alice)
    answer = client.get(f"/?label={value}")
    assert answer.status_code == 400


# -- reports ---------------------------------------------------------------------------------------


def test_the_reports_count_labelled_conversations_of_the_readers_teams(client, alice, bob, conversation, refund, bug):
    services.add_label(conversation=conversation, label=refund, by=alice)
    now = timezone.now()
    counts = {
        row["label"].name: row
        for row in selectors.label_counts(
            operator=alice, since=now - timedelta(days=1), until=now + timedelta(minutes=1)
        )
    }
    assert (counts["Refund"]["conversations"], counts["Bug"]["conversations"]) == (1, 0)
    theirs = {
        row["label"].name: row
        for row in selectors.label_counts(operator=bob, since=now - timedelta(days=1), until=now + timedelta(minutes=1))
    }
    assert theirs["Refund"]["conversations"] == 0
    login(client, alice)
    from reports import rollups

    rollups.rebuild()  # what the worker's refresh writes after the events (the page reads rollups)
    page = client.get("/reports/").content.decode()
    assert 'id="labels-heading"' in page
    assert f'data-label="{refund.pk}"' in page


def test_labels_written_as_names_before_become_labels(conversation):
    """What migration desk/0001 does for conversations labelled before labels were a table."""
    Conversation.objects.filter(pk=conversation.pk).update(labels=["vip", "VIP "])
    from importlib import import_module

    from django.apps import apps

    import_module("desk.migrations.0001_initial").adopt_existing_labels(apps, None)
    assert list(Label.objects.values_list("name", flat=True)) == ["vip"]
    assert ConversationLabel.objects.filter(conversation=conversation).count() == 1
