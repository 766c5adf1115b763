"""Teams, operators, channels (never their settings or secrets), saved replies, the knowledge base
and reports, each as the token's operator sees them."""

from __future__ import annotations

from bot.models import Article
from desk.models import ConversationLabel, Label
from inbox.services import replies


def test_teams_and_operators_are_the_tokens_own(api_world, as_alice, as_admin):
    assert [t["name"] for t in as_alice.get("/teams").json()] == ["Support"]
    assert {t["name"] for t in as_admin.get("/teams").json()} == {"Support", "Sales"}
    assert [o["username"] for o in as_alice.get("/operators").json()] == ["alice"]
    assert as_alice.get(f"/operators/{api_world.bob.pk}").status_code == 404
    assert as_alice.get(f"/teams/{api_world.sales.pk}").status_code == 404


def test_channels_never_show_settings_secrets_or_webhook_keys(api_world, as_alice):
    api_world.sms.settings = {**api_world.sms.settings, "secret": "s3cr3t-value"}
    api_world.sms.save(update_fields=["settings"])
    listed = as_alice.get("/channels")
    one = as_alice.get(f"/channels/{api_world.sms.pk}")
    for response in (listed, one):
        text = response.content.decode()
        assert "s3cr3t-value" not in text
        assert api_world.sms.key not in text
        assert "settings" not in text
    assert one.json()["medium"] == "sms"


def test_saved_replies_are_everyones_and_the_tokens_teams(api_world, as_alice, as_bob):
    mine = replies.create_saved_reply(title="Parcel", text="On its way", team=api_world.support, by=api_world.alice)
    everyone = replies.create_saved_reply(title="Hello", text="Hi there", team=None, by=api_world.admin)
    assert {r["id"] for r in as_alice.get("/saved-replies").json()} == {mine.pk, everyone.pk}
    assert [r["id"] for r in as_alice.get("/saved-replies", q="parcel").json()] == [mine.pk]
    assert [r["id"] for r in as_bob.get("/saved-replies").json()] == [everyone.pk]
    assert as_bob.get(f"/saved-replies/{mine.pk}").status_code == 404
    assert as_alice.get(f"/saved-replies/{mine.pk}").json()["text"] == "On its way"


def test_the_knowledge_base_is_for_staff(api_world, as_alice, as_admin):
    article = Article.objects.create(title="Delivery", answer="Two days.", tags=["shipping"])
    Article.objects.create(title="Returns", answer="Thirty days.", is_active=False)
    assert as_alice.get("/articles").status_code == 403
    page = as_admin.get("/articles", limit=1).json()
    assert [a["title"] for a in page["items"]] == ["Delivery"]
    assert [a["title"] for a in as_admin.get("/articles", cursor=page["next_cursor"]).json()["items"]] == ["Returns"]
    assert [a["title"] for a in as_admin.get("/articles", active="false").json()["items"]] == ["Returns"]
    assert as_admin.get(f"/articles/{article.pk}").json()["tags"] == ["shipping"]


def test_reports_give_the_reports_pages_figures_for_the_tokens_teams(api_world, as_alice, as_bob):
    from reports import rollups

    rollups.rebuild()  # what the worker's refresh writes after the events (reports read rollups)
    report = as_alice.get("/reports/channels", days=7).json()
    assert [row["name"] for row in report["rows"]] == ["SMS"]
    assert report["total"]["inbound"] == 1
    assert report["total"]["customers"] == 1
    assert as_bob.get("/reports/channels").json()["rows"] == []
    refused = as_bob.get("/reports/channels", team=api_world.support.pk)
    assert refused.status_code == 404
    assert as_alice.get("/reports/channels", days=5).status_code == 422


def test_labels_go_on_and_off_a_conversation_and_filter_the_list(api_world, as_alice, as_bob):
    label = Label.objects.get(name="Refund")
    assert [item["name"] for item in as_alice.get("/labels").json()] == ["Refund"]
    path = f"/conversations/{api_world.conversation.pk}/labels"
    added = as_alice.post(path, {"label_id": label.pk})
    assert added.status_code == 200
    assert added.json()["labels"] == ["Refund"]
    assert as_alice.post(path, {"label_id": label.pk}).status_code == 200  # already there: nothing changes
    assert ConversationLabel.objects.count() == 1
    listed = as_alice.get("/conversations", label=label.pk).json()["items"]
    assert [c["id"] for c in listed] == [api_world.conversation.pk]
    assert as_bob.post(path, {"label_id": label.pk}).status_code == 404
    assert as_alice.post(path, {"label_id": 999_999}).status_code == 422
    removed = as_alice.send("DELETE", f"{path}/{label.pk}")
    assert removed.status_code == 200
    assert removed.json()["labels"] == []
    assert as_alice.get("/conversations", label=label.pk).json()["items"] == []
