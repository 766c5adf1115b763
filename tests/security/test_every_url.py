"""Every URL of the project, walked as an anonymous visitor and as an operator of another team.

The list comes from Django's URL resolver (walked recursively), so a URL added without an entry in
``TABLE`` fails ``test_every_url_has_an_entry``; an entry whose URL is gone fails too. For each URL
pattern the table says how to fill its parameters (objects of team A, "Support"), what an anonymous
visitor gets (the login page, or public and why) and what an operator of team B ("Sales", Bob) gets
(403/404, or allowed and why). Each URL is then requested with GET and with POST (a body that would
work for team A) by both, and:

- the answer is the expected one, never a 5xx;
- nothing of team A shows in it (marker texts planted in team A's customer, messages and notes);
- nothing of team A changed (conversations, messages, notes, customers, saved replies, channels...);
- and, so that a refusal is not a broken request, the same request succeeds for team A's operator
  (or an admin, for admin pages) afterwards.

Django's admin (``admin/``) is one entry: every URL under it, whatever models get registered, must
send non-staff to the admin's login; its login and logout pages are public. The operator websocket
is walked in test_every_socket.py.

Team A's objects are built once for the module (``built_world``); each test runs in a savepoint, so
what one request changes is undone before the next test.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from api.tokens import issue_operator_token
from bot.models import Article, ExampleQuestion, ImportJob
from customers import services
from customers.models import Customer, CustomerImport, CustomerMerge, CustomerNote, Identity
from desk import rules as desk_rules
from desk import services as desk_services
from desk.models import ConversationLabel, Label, Macro, Rule, SlaPolicy
from inbox.models import Attachment, Channel, Conversation, InboundEvent, Message, Operator, SavedReply
from inbox.services import channels, outbound, replies
from inbox.services.customers import merge_customers
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from tests.conftest import PASSWORD, free_port, make_admin, make_operator, make_sms_line, make_team

CUSTOMER_NAME = "Quentin Zarnowski"
MARKERS = (CUSTOMER_NAME, "marker-message-7f3", "marker-note-9c1", "marker-cnote-4d2", "marker-reply-2b8")
PHONE = "+15005550006"


# -- the world: team A's objects ----------------------------------------------------------------------


@dataclass
class World:
    alice: Operator  # team A
    bob: Operator  # team B
    admin: Operator
    sms: Channel
    voice: Channel
    customer: Customer
    source: Customer  # another customer of team A, to merge
    merge: CustomerMerge  # a merge into ``customer``, to undo
    conversation: Conversation
    inbound: Message
    answer: Message  # alice's reply to the customer
    failed: Message
    scheduled: Message  # alice's reply, to go out tomorrow
    call: Message
    attachment: Attachment
    saved_reply: SavedReply
    label: Label  # staff-defined, on team A's conversation
    macro: Macro  # team A's
    rule: Rule  # an automation rule of team A
    sla_policy: SlaPolicy  # an SLA policy of team A
    article: Article
    import_job: ImportJob


def receive(sms: Channel, provider_id: str, address: str, text: str, name: str = "") -> Message:
    return receive_message(
        channel=sms, inbound=InboundMessage(provider_id=provider_id, address=address, text=text, name=name)
    )


def build_world() -> World:
    """Team A ("Support", Alice, an SMS line) with one object behind every kind of URL parameter, and
    team B ("Sales", Bob) beside it."""
    support = make_team("Support")
    alice = make_operator("alice", support, "Alice")
    bob = make_operator("bob", make_team("Sales"), "Bob")
    admin = make_admin()
    sms = make_sms_line(support)
    closed = f"http://127.0.0.1:{free_port()}"  # Twilio's API for this line: nothing listens there
    voice = channels.create_channel(
        kind="twilio-voice",
        name="Phone",
        team=support,
        channel_settings={"account_sid": "AC" + "0" * 32, "auth_token": "x" * 32, "api_base_url": closed},
    )
    inbound = receive(sms, "a-1", PHONE, "marker-message-7f3 where is my parcel?", CUSTOMER_NAME)
    conversation = inbound.conversation
    outbound.add_note(conversation=conversation, text="marker-note-9c1", by=alice)
    answer = outbound.reply(conversation=conversation, text="It ships today.", by=alice)
    failed = outbound.reply(conversation=conversation, text="This one failed.", by=alice)
    Message.objects.filter(pk=failed.pk).update(status=Message.Status.FAILED, status_reason="test")
    scheduled = outbound.reply(
        conversation=conversation, text="Tomorrow, then.", by=alice, send_at=timezone.now() + timedelta(days=1)
    )
    call = Message.objects.create(
        conversation=conversation,
        customer=conversation.customer,
        channel=voice,
        kind=Message.Kind.CALL,
        direction=Message.Direction.INBOUND,
        sender=Message.Sender.CUSTOMER,
        text="Voicemail",
        metadata={"call": {"recording_url": f"{closed}/2010-04-01/Accounts/AC0/Recordings/RE1"}},
        created_at=timezone.now(),
    )
    attachment = Attachment(message=inbound, filename="invoice.txt", content_type="text/plain", size=7)
    attachment.file.save("invoice.txt", ContentFile(b"invoice"), save=True)
    services.add_customer_note(customer=conversation.customer, author=alice, text="marker-cnote-4d2")
    source = receive(sms, "a-2", "+15005550007", "Hi, it is me again", "Quentin Z.").customer
    merged = receive(sms, "a-3", "+15005550008", "Me a third time", "Q. Zarnowski").customer
    merge = merge_customers(source=merged, target=conversation.customer, by=alice)
    saved_reply = replies.create_saved_reply(title="Parcel", text="marker-reply-2b8", team=support, by=alice)
    label = desk_services.create_label(name="Refund", colour="red", by=admin)
    desk_services.add_label(conversation=conversation, label=label, by=alice)
    macro = desk_services.create_macro(
        name="Tag and prioritise",
        team_id=support.pk,
        actions=[{"action": "add_label", "label": label.pk}, {"action": "priority", "priority": 2}],
        by=admin,
    )
    rule = desk_rules.save_rule(
        rule=Rule(
            name="Urgent parcels", team=support, when=Rule.When.INBOUND, actions=[{"action": "priority", "priority": 3}]
        ),
        by=admin,
    )
    sla_policy = desk_services.save_policy(
        policy=SlaPolicy(name="Support hours", team=support, first_response_minutes=30), by=admin
    )
    article = Article.objects.create(title="Where is my parcel", answer="Track it online.")
    import_job = ImportJob.objects.create(created_by=admin, filename="kb.json", format="json", content="[]")
    return World(
        alice=alice,
        bob=bob,
        admin=admin,
        sms=sms,
        voice=voice,
        customer=conversation.customer,
        source=source,
        merge=merge,
        conversation=conversation,
        inbound=inbound,
        answer=answer,
        failed=failed,
        scheduled=scheduled,
        call=call,
        attachment=attachment,
        saved_reply=saved_reply,
        label=label,
        macro=macro,
        rule=rule,
        sla_policy=sla_policy,
        article=article,
        import_job=import_job,
    )


@pytest.fixture(scope="module")
def built_world(django_db_setup: None, django_db_blocker: Any) -> Iterator[World]:
    """The world, built once for the module's hundreds of walks (as ``TestCase.setUpTestData`` does).

    It lives in a transaction that is rolled back when the module ends; each test runs in a savepoint
    inside it (the ``db`` fixture), so whatever a request changed is undone before the next test."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield build_world()
        transaction.set_rollback(True)


@pytest.fixture
def world(built_world: World, db: None) -> World:
    return built_world


def team_a_state(w: World) -> dict[str, Any]:
    """Everything of team A that an outsider must not be able to change."""
    customers = [w.customer.pk, w.source.pk, w.merge.source_id]
    return {
        "conversations": list(Conversation.objects.filter(team=w.sms.team).order_by("pk").values()),
        "messages": list(Message.objects.filter(conversation__team=w.sms.team).order_by("pk").values()),
        "attachments": list(Attachment.objects.order_by("pk").values()),
        "customers": list(Customer.objects.filter(pk__in=customers).order_by("pk").values()),
        "identities": list(Identity.objects.filter(customer__in=customers).order_by("pk").values()),
        "notes": list(CustomerNote.objects.filter(customer__in=customers).order_by("pk").values()),
        "merges": list(CustomerMerge.objects.order_by("pk").values()),
        "saved_replies": list(SavedReply.objects.filter(team=w.sms.team).order_by("pk").values()),
        "channels": list(Channel.objects.order_by("pk").values()),
        "articles": list(Article.objects.order_by("pk").values()),
        "examples": list(ExampleQuestion.objects.order_by("pk").values()),
        "imports": list(ImportJob.objects.order_by("pk").values("pk", "status")),
        "events": InboundEvent.objects.count(),
        "labels": list(Label.objects.order_by("pk").values()),
        "macros": list(Macro.objects.order_by("pk").values()),
        "rules": list(Rule.objects.order_by("pk").values()),
        "sla_policies": list(SlaPolicy.objects.order_by("pk").values()),
        "conversation_labels": list(ConversationLabel.objects.order_by("pk").values("conversation", "label")),
        "alice": list(Operator.objects.filter(pk=w.alice.pk).values("is_active", "is_staff", "password")),
    }


# -- the table --------------------------------------------------------------------------------------------

LOGIN = "login"  # anonymous: redirected to /login/
ADMIN_LOGIN = "admin login"  # anonymous and non-staff: redirected to /admin/login/
DENIED = "denied"  # team B: 403 or 404


def public(reason: str) -> str:
    return f"public: {reason}"


def allowed(reason: str) -> str:
    return f"allowed: {reason}"


Params = Callable[[World], dict[str, Any]]


def nothing(w: World) -> dict[str, Any]:
    return {}


def conversation(w: World) -> dict[str, Any]:
    return {"pk": w.conversation.pk}


def customer(w: World) -> dict[str, Any]:
    return {"customer_id": w.customer.pk}


def customer_import(w: World) -> dict[str, Any]:
    """A customer import nobody works on (resumable), made by the admin."""
    job, _created = CustomerImport.objects.get_or_create(
        filename="contacts.csv", defaults={"content": "email\nimported@example.com\n", "created_by": w.admin}
    )
    return {"pk": job.pk}


@dataclass(frozen=True)
class Entry:
    anonymous: str
    other_team: str
    methods: tuple[str, ...]  # what the view answers
    params: Params = nothing
    query: Callable[[World], str] = lambda w: ""
    data: Params = nothing  # a POST body that does the job when access is right
    owner: str = "alice"  # who shows the request works: alice (team A), admin, or "" for none
    owner_gets: frozenset[int] = frozenset({200})
    statuses: frozenset[int] = frozenset()  # public/allowed: the statuses anyone gets (empty: any < 500)
    path: Callable[[World], str] | None = None  # for regex patterns: the path to request
    known_defect: str = ""  # fixed on another branch of issue 12: strict xfail until it lands
    debug_only: bool = False  # in the URLconf only when it was first read with DEBUG on
    # Walked by a test of its own instead (the route still needs its entry here): a view that stores
    # on threads of its own cannot run inside this test's transaction.
    elsewhere: str = ""


GET, POST, BOTH = ("GET",), ("POST",), ("GET", "POST")
OK, REDIRECT = frozenset({200}), frozenset({302})
# Every API operation answers a request without a token 401, whatever the session. The walk with
# tokens (anonymous, another team's token: 404, the owner's token works) is tests/api/test_access.py.
API = Entry(
    public("a bearer token is required: 401 without one, whatever the session"),
    allowed("a session gives nothing: a token is still required"),
    BOTH,
    params=lambda w: {
        "article_id": w.article.pk,
        "channel_id": w.sms.pk,
        "conversation_id": w.conversation.pk,
        "customer_id": w.customer.pk,
        "external_id": "crm-42",
        "label_id": 1,
        "operator_id": w.alice.pk,
        "saved_reply_id": w.saved_reply.pk,
        "team_id": w.sms.team_id,
    },
    owner="",
    statuses=frozenset({401, 405}),
)

TABLE: dict[str, Entry] = {
    # -- public by design --
    "healthz": Entry(
        public("load balancers and monitors probe it; it answers states, never data"),
        allowed("the same for everyone"),
        BOTH,
        owner="",
        statuses=frozenset({200, 503}),
    ),
    "metrics": Entry(
        public("for a scraper: 404 until METRICS_TOKEN or METRICS_ALLOW_FROM is set, then the token or address"),
        allowed("a session gives nothing: the token is still required (tests/ops/test_metrics.py)"),
        GET,
        owner="",
        statuses=frozenset({404, 405}),
    ),
    "healthz/deep": Entry(
        public("for a monitor: 404 until a token or allowed network is set, then the token or address"),
        allowed("a session gives nothing: the token is still required (tests/ops/test_health.py)"),
        GET,
        owner="",
        statuses=frozenset({404, 405}),
    ),
    "hooks/<str:key>/<str:endpoint>/": Entry(
        public("providers call it; the channel's signature is required (unsigned: 403)"),
        allowed("a session gives nothing: the signature is still required"),
        BOTH,
        params=lambda w: {"key": w.sms.key, "endpoint": "inbound"},
        data=lambda w: {"From": PHONE, "Body": "marker-forged"},
        owner="",
        statuses=frozenset({403}),
    ),
    "login/": Entry(
        public("signing in"),
        allowed("signing in again"),
        BOTH,
        data=lambda w: {"username": "alice", "password": "wrong"},
        owner="",
    ),
    "logout/": Entry(public("ends the caller's own session"), allowed("ends their own session"), BOTH, owner=""),
    "i18n/setlang/": Entry(
        public("the caller's own language cookie"),
        allowed("their own language"),
        BOTH,
        data=lambda w: {"language": "ru"},
        owner="",
    ),
    "admin/login/": Entry(
        public("the admin's login form"),
        allowed("the admin's login form (a non-staff session cannot use the admin)"),
        BOTH,
        data=lambda w: {"username": "bob", "password": PASSWORD},
        owner="",
    ),
    "admin/logout/": Entry(
        public("ends the caller's own admin session"), allowed("ends their own session"), BOTH, owner=""
    ),
    # Every other admin URL, whatever models are registered: staff only.
    "admin/": Entry(ADMIN_LOGIN, ADMIN_LOGIN, BOTH, owner="admin"),
    # -- the inbox --
    "": Entry(LOGIN, allowed("their own teams' conversations"), GET),
    "more/": Entry(LOGIN, allowed("their own teams' conversations"), GET, query=lambda w: "?tab=all"),
    "reports/": Entry(LOGIN, allowed("their own teams' numbers"), GET),
    # -- the website chat: public to visitors, who carry a signed visitor token and come from an allowed origin --
    "webchat/^parley-webchat\\.(?P<version>[0-9]+\\.[0-9]+\\.[0-9]+)\\.js$": Entry(
        public("the widget's script, embedded on the business's own site"),
        allowed("the same script for everyone"),
        GET,
        path=lambda w: "/webchat/parley-webchat.1.2.0.js",
        owner="",
        statuses=frozenset({200}),
        elsewhere="tests/connectors/webchat/test_http.py (anonymous, other origins, an operator's session)",
    ),
    "webchat/try/": Entry(
        LOGIN,
        DENIED,
        GET,
        owner_gets=frozenset({200, 404}),  # 404: the team has no website chat channel to try
        elsewhere="tests/connectors/webchat/test_http.py (anonymous, other origins, an operator's session)",
    ),
    "webchat/<str:key>/frames/": Entry(
        public("a visitor's frames over HTTP: the channel's origin and a visitor token are required"),
        allowed("a session gives nothing: the visitor token is still required"),
        BOTH,
        params=lambda w: {"key": w.sms.key},
        data=lambda w: {"text": "marker-forged"},
        owner="",
        statuses=frozenset({400, 401, 403, 404, 405}),
        elsewhere="tests/connectors/webchat/test_http.py (anonymous, other origins, an operator's session)",
    ),
    "webchat/<str:key>/poll/": Entry(
        public("a visitor's long poll: the channel's origin and a visitor token are required"),
        allowed("a session gives nothing: the visitor token is still required"),
        BOTH,
        params=lambda w: {"key": w.sms.key},
        owner="",
        statuses=frozenset({400, 401, 403, 404, 405}),
        elsewhere="tests/connectors/webchat/test_http.py (anonymous, other origins, an operator's session)",
    ),
    "webchat/<str:key>/upload/": Entry(
        public("a visitor's upload: the channel's origin and a visitor token are required"),
        allowed("a session gives nothing: the visitor token is still required"),
        BOTH,
        params=lambda w: {"key": w.sms.key},
        owner="",
        statuses=frozenset({400, 401, 403, 404, 405}),
    ),
    "webchat/<str:key>/files/<str:token>/": Entry(
        public("a visitor's attachment behind a signed, per-visitor link"),
        allowed("a session gives nothing: the signed link is still required"),
        BOTH,
        params=lambda w: {"key": w.sms.key, "token": "forged"},
        owner="",
        statuses=frozenset({400, 403, 404, 405}),
    ),
    # -- the audit log: staff only --
    "audit/": Entry(LOGIN, DENIED, GET, owner="admin"),
    "audit/export/": Entry(LOGIN, DENIED, GET, owner="admin"),
    "search/": Entry(LOGIN, allowed("their own teams' messages"), GET, query=lambda w: "?q=marker"),
    "c/<int:pk>/": Entry(LOGIN, DENIED, GET, params=conversation),
    "c/<int:pk>/older/": Entry(LOGIN, DENIED, GET, params=conversation),
    "c/<int:pk>/composer/": Entry(LOGIN, DENIED, GET, params=conversation, query=lambda w: f"?channel={w.sms.pk}"),
    "c/<int:pk>/send/": Entry(
        LOGIN, DENIED, POST, params=conversation, data=lambda w: {"text": "marker-forged", "mode": "note"}
    ),
    "c/<int:pk>/ask-phone/": Entry(
        LOGIN,
        DENIED,
        POST,
        params=conversation,
        owner_gets=frozenset({200, 400, 409, 422}),  # past the access check: an SMS line cannot ask for a number
    ),
    "c/<int:pk>/template/": Entry(
        LOGIN,
        DENIED,
        POST,
        params=conversation,
        data=lambda w: {"channel": w.sms.pk, "template": "order"},
        owner_gets=frozenset({400, 409, 422}),  # past the access check: the simulated line has no templates
    ),
    "c/<int:pk>/assign/": Entry(LOGIN, DENIED, POST, params=conversation, data=lambda w: {"operator": "me"}),
    "c/<int:pk>/unassign/": Entry(LOGIN, DENIED, POST, params=conversation),
    "c/<int:pk>/resolve/": Entry(LOGIN, DENIED, POST, params=conversation),
    "c/<int:pk>/reopen/": Entry(LOGIN, DENIED, POST, params=conversation, owner_gets=frozenset({200, 409})),
    "c/<int:pk>/snooze/": Entry(LOGIN, DENIED, POST, params=conversation, data=lambda w: {"preset": "4h"}),
    "c/<int:pk>/priority/": Entry(LOGIN, DENIED, POST, params=conversation, data=lambda w: {"priority": "2"}),
    # 409: past the access check, the simulated line has no bot to give the conversation back to.
    "c/<int:pk>/give-back/": Entry(LOGIN, DENIED, POST, params=conversation, owner_gets=frozenset({200, 409})),
    "c/<int:pk>/replies/": Entry(LOGIN, DENIED, GET, params=conversation, query=lambda w: "?q=Parcel"),
    "c/<int:pk>/replies/<int:reply_id>/": Entry(
        LOGIN, DENIED, GET, params=lambda w: {"pk": w.conversation.pk, "reply_id": w.saved_reply.pk}
    ),
    "m/<int:pk>/retry/": Entry(LOGIN, DENIED, POST, params=lambda w: {"pk": w.failed.pk}),
    "m/<int:pk>/resend/": Entry(
        LOGIN, DENIED, POST, params=lambda w: {"pk": w.failed.pk}, data=lambda w: {"channel": w.sms.pk}
    ),
    "m/<int:pk>/scheduled/": Entry(
        LOGIN,
        DENIED,
        POST,
        params=lambda w: {"pk": w.scheduled.pk},
        data=lambda w: {
            "text": "marker-forged",
            "send_at": (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"),
        },
    ),
    "m/<int:pk>/cancel/": Entry(LOGIN, DENIED, POST, params=lambda w: {"pk": w.scheduled.pk}),
    "m/<int:pk>/example/": Entry(
        LOGIN, DENIED, POST, params=lambda w: {"pk": w.answer.pk}, data=lambda w: {"choice": w.article.pk}
    ),
    "m/<int:pk>/example/pick/": Entry(LOGIN, DENIED, GET, params=lambda w: {"pk": w.answer.pk}),
    "a/<int:pk>/": Entry(LOGIN, DENIED, GET, params=lambda w: {"pk": w.attachment.pk}),
    # -- saved replies --
    "replies/": Entry(LOGIN, allowed("everyone's and their own teams' saved replies"), GET),
    "replies/new/": Entry(
        LOGIN,
        allowed("adds saved replies to their own teams only (team A's is refused: 400)"),
        BOTH,
        data=lambda w: {"title": "Forged", "text": "marker-forged", "team": w.sms.team_id},
        owner_gets=frozenset({200, 302}),
    ),
    "replies/<int:pk>/": Entry(
        LOGIN,
        DENIED,
        BOTH,
        params=lambda w: {"pk": w.saved_reply.pk},
        data=lambda w: {"title": "Changed", "text": "marker-forged", "team": w.sms.team_id},
        owner_gets=frozenset({200, 302}),
    ),
    "replies/<int:pk>/delete/": Entry(
        LOGIN, DENIED, POST, params=lambda w: {"pk": w.saved_reply.pk}, owner_gets=REDIRECT
    ),
    # -- the manager's tools (desk/) --
    "desk/labels/": Entry(
        LOGIN,
        DENIED,
        BOTH,
        data=lambda w: {"name": "Forged", "colour": "blue"},
        owner="admin",
        owner_gets=frozenset({200, 302}),
    ),
    "desk/labels/<int:pk>/": Entry(
        LOGIN,
        DENIED,
        BOTH,
        params=lambda w: {"pk": w.label.pk},
        data=lambda w: {"name": "Forged", "colour": "blue"},
        owner="admin",
        owner_gets=frozenset({200, 302}),
    ),
    "desk/labels/<int:pk>/delete/": Entry(
        LOGIN, DENIED, POST, params=lambda w: {"pk": w.label.pk}, owner="admin", owner_gets=REDIRECT
    ),
    "desk/c/<int:pk>/labels/": Entry(LOGIN, DENIED, POST, params=conversation, data=lambda w: {"label": w.label.pk}),
    "desk/c/<int:pk>/labels/<int:label_id>/remove/": Entry(
        LOGIN, DENIED, POST, params=lambda w: {"pk": w.conversation.pk, "label_id": w.label.pk}
    ),
    "desk/macros/": Entry(
        LOGIN,
        DENIED,
        BOTH,
        data=lambda w: {"name": "Forged", "resolve": "on"},
        owner="admin",
        owner_gets=frozenset({200, 302}),
    ),
    "desk/macros/<int:pk>/": Entry(
        LOGIN,
        DENIED,
        BOTH,
        params=lambda w: {"pk": w.macro.pk},
        data=lambda w: {"name": "Forged", "resolve": "on"},
        owner="admin",
        owner_gets=frozenset({200, 302}),
    ),
    "desk/macros/<int:pk>/delete/": Entry(
        LOGIN, DENIED, POST, params=lambda w: {"pk": w.macro.pk}, owner="admin", owner_gets=REDIRECT
    ),
    "desk/c/<int:pk>/macros/": Entry(LOGIN, DENIED, POST, params=conversation, data=lambda w: {"macro": w.macro.pk}),
    "desk/rules/": Entry(
        LOGIN,
        DENIED,
        BOTH,
        data=lambda w: {"name": "Forged", "when": "message.inbound", "position": 1, "resolve": "on"},
        owner="admin",
        owner_gets=frozenset({200, 302}),
    ),
    "desk/rules/<int:pk>/": Entry(
        LOGIN,
        DENIED,
        BOTH,
        params=lambda w: {"pk": w.rule.pk},
        data=lambda w: {"name": "Forged", "when": "message.inbound", "position": 1, "resolve": "on"},
        owner="admin",
        owner_gets=frozenset({200, 302}),
    ),
    "desk/rules/<int:pk>/delete/": Entry(
        LOGIN, DENIED, POST, params=lambda w: {"pk": w.rule.pk}, owner="admin", owner_gets=REDIRECT
    ),
    "desk/sla/": Entry(
        LOGIN,
        DENIED,
        BOTH,
        data=lambda w: {"name": "Forged", "team": w.sms.team_id, "first_response_minutes": 5, "position": 1},
        owner="admin",
        owner_gets=frozenset({200, 302}),
    ),
    "desk/sla/<int:pk>/": Entry(
        LOGIN,
        DENIED,
        BOTH,
        params=lambda w: {"pk": w.sla_policy.pk},
        data=lambda w: {"name": "Forged", "team": w.sms.team_id, "first_response_minutes": 5, "position": 1},
        owner="admin",
        owner_gets=frozenset({200, 302}),
    ),
    "desk/sla/<int:pk>/delete/": Entry(
        LOGIN, DENIED, POST, params=lambda w: {"pk": w.sla_policy.pk}, owner="admin", owner_gets=REDIRECT
    ),
    "csat/<str:token>/": Entry(
        public("a customer's signed survey link from an email; a forged token is a 400 page (tests/desk/test_csat.py)"),
        allowed("a session gives nothing: the signed token is still required"),
        BOTH,
        params=lambda w: {"token": "forged-token"},
        data=lambda w: {"comment": "marker-forged"},
        owner="",
        statuses=frozenset({400}),
    ),
    # -- customers --
    "customers/": Entry(LOGIN, allowed("customers of their own teams"), GET, query=lambda w: "?q=Quentin"),
    "customers/<int:customer_id>/": Entry(LOGIN, DENIED, GET, params=customer),
    # -- the customer CSV import: staff only --
    "customers/import/": Entry(
        LOGIN,
        DENIED,
        BOTH,
        data=lambda w: {"file": SimpleUploadedFile("c.csv", b"email,name\nforged@example.com,marker-forged\n")},
        owner="admin",
        owner_gets=frozenset({200, 302}),
    ),
    "customers/imports/<int:pk>/": Entry(LOGIN, DENIED, GET, params=customer_import, owner="admin"),
    "customers/imports/<int:pk>/resume/": Entry(
        LOGIN, DENIED, POST, params=customer_import, owner="admin", owner_gets=frozenset({302, 409})
    ),
    "customers/<int:customer_id>/edit/": Entry(
        LOGIN, DENIED, POST, params=customer, data=lambda w: {"name": "Renamed", "language": "en"}, owner_gets=REDIRECT
    ),
    "customers/<int:customer_id>/notes/": Entry(
        LOGIN, DENIED, POST, params=customer, data=lambda w: {"text": "marker-forged"}, owner_gets=REDIRECT
    ),
    "customers/<int:customer_id>/identities/": Entry(
        LOGIN,
        DENIED,
        POST,
        params=customer,
        data=lambda w: {"kind": "email", "value": "forged@example.test"},
        owner_gets=REDIRECT,
    ),
    "customers/<int:customer_id>/merge/<int:source_id>/": Entry(
        LOGIN,
        DENIED,
        BOTH,
        params=lambda w: {"customer_id": w.customer.pk, "source_id": w.source.pk},
        data=lambda w: {"confirm": "on"},
        owner_gets=frozenset({200, 302}),
    ),
    "customers/<int:customer_id>/merges/<int:merge_id>/undo/": Entry(
        LOGIN,
        DENIED,
        POST,
        params=lambda w: {"customer_id": w.customer.pk, "merge_id": w.merge.pk},
        owner_gets=REDIRECT,
    ),
    # -- the simulator and the browser phone --
    "simulator/": Entry(
        LOGIN,
        allowed("simulates customers on the operator's own teams' simulated channels"),
        BOTH,
        data=lambda w: {"channel": w.sms.pk, "address": "+15005550099", "name": "A forger", "text": "marker-forged"},
        owner_gets=frozenset({200, 302}),  # the page, or its redirect after a message was sent
    ),
    "simulator/outbox/": Entry(LOGIN, allowed("their own teams' simulated replies"), GET),
    "twilio/voice/token/": Entry(
        LOGIN,
        allowed("a token for their own teams' phone line (404 without one)"),
        GET,
        owner_gets=frozenset({503}),  # alice's line has no browser keys: a clear 503, past the access check
    ),
    "twilio/voice/caller/": Entry(
        LOGIN,
        allowed("who is calling, among the customers they may see"),
        GET,
        query=lambda w: f"?number={PHONE}",
    ),
    "twilio/voice/recording/<int:pk>/": Entry(
        LOGIN,
        DENIED,
        GET,
        params=lambda w: {"pk": w.call.pk},
        owner_gets=frozenset({503}),  # past the access check, Twilio (a closed local port) does not answer
    ),
    # -- the knowledge base: admins only --
    "kb/": Entry(LOGIN, DENIED, GET, owner="admin"),
    "kb/articles/new/": Entry(
        LOGIN,
        DENIED,
        BOTH,
        data=lambda w: {"title": "Forged", "answer": "marker-forged", "language": "en"},
        owner="admin",
        owner_gets=frozenset({200, 302}),
    ),
    "kb/articles/<int:pk>/": Entry(
        LOGIN,
        DENIED,
        BOTH,
        params=lambda w: {"pk": w.article.pk},
        data=lambda w: {"title": "Changed", "answer": "marker-forged", "language": "en"},
        owner="admin",
        owner_gets=frozenset({200, 302}),
    ),
    "kb/articles/<int:pk>/delete/": Entry(
        LOGIN, DENIED, POST, params=lambda w: {"pk": w.article.pk}, owner="admin", owner_gets=frozenset({200, 302})
    ),
    "kb/examples/row/": Entry(LOGIN, DENIED, GET, owner="admin"),
    "kb/try/": Entry(
        LOGIN, DENIED, POST, data=lambda w: {"text": "where is my parcel", "channel": w.sms.pk}, owner="admin"
    ),
    "kb/calibrate/": Entry(LOGIN, DENIED, BOTH, owner="admin", owner_gets=frozenset({200, 202, 302})),
    "kb/import/": Entry(
        LOGIN,
        DENIED,
        POST,
        data=lambda w: {"file": SimpleUploadedFile("kb.json", b'[{"title": "Forged", "answer": "marker-forged"}]')},
        owner="admin",
        owner_gets=frozenset({200, 202, 302}),
    ),
    "kb/imports/<int:pk>/": Entry(LOGIN, DENIED, GET, params=lambda w: {"pk": w.import_job.pk}, owner="admin"),
    "kb/export/": Entry(LOGIN, DENIED, GET, owner="admin"),
    # -- the API: a token, never a session (tests/api/test_access.py walks every operation) --
    "api/v1/": Entry(
        public("nothing there: the API's root answers 404"),
        allowed("the same for everyone"),
        GET,
        owner="",
        statuses=frozenset({404, 405}),
    ),
    "api/v1/openapi.json": Entry(
        public("the API's description: what it offers, no data"),
        allowed("the same for everyone"),
        GET,
        owner="",
        statuses=frozenset({200, 405}),
    ),
    "api/v1/docs/": Entry(
        public("the API's documentation page, as public as the description it renders"),
        allowed("the same for everyone"),
        GET,
        owner="",
        statuses=frozenset({200, 405}),
    ),
    "api/tokens/": Entry(
        LOGIN,
        allowed("their own tokens only"),
        BOTH,
        data=lambda w: {"name": "a script"},
        owner_gets=frozenset({200, 201}),
    ),
    "api/tokens/<int:pk>/revoke/": Entry(
        LOGIN,
        DENIED,
        POST,
        params=lambda w: {"pk": issue_operator_token(name="alice's", operator=w.alice, by=w.alice).token.pk},
        owner_gets=frozenset({302}),
    ),
    "api/v1/articles": API,
    "api/v1/articles/<article_id>": API,
    "api/v1/channels": API,
    "api/v1/channels/<channel_id>": API,
    "api/v1/conversations": API,
    "api/v1/conversations/<conversation_id>": API,
    "api/v1/conversations/<conversation_id>/assignment": API,
    "api/v1/conversations/<conversation_id>/messages": API,
    "api/v1/conversations/<conversation_id>/priority": API,
    "api/v1/conversations/<conversation_id>/status": API,
    "api/v1/customers": API,
    "api/v1/customers/<customer_id>": API,
    "api/v1/customers/<customer_id>/notes": API,
    "api/v1/customers/by-external-id/<external_id>": API,
    "api/v1/customers/upsert": API,
    "api/v1/labels": API,
    "api/v1/conversations/<conversation_id>/labels": API,
    "api/v1/conversations/<conversation_id>/labels/<label_id>": API,
    "api/v1/me": API,
    "api/v1/operators": API,
    "api/v1/operators/<operator_id>": API,
    "api/v1/reports/channels": API,
    "api/v1/saved-replies": API,
    "api/v1/saved-replies/<saved_reply_id>": API,
    "api/v1/teams": API,
    "api/v1/teams/<team_id>": API,
    # -- development only --
    # config/urls.py serves MEDIA_ROOT when DEBUG is on (the embedded default): attachments without
    # login. Tests run with DEBUG off, but a test module that resolves a URL at import reads the
    # URLconf earlier, with DEBUG still on.
}


# -- the URLs, from the resolver ----------------------------------------------------------------------------


def walk(patterns: list[Any], prefix: str = "") -> Iterator[str]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def project_routes() -> list[str]:
    # Tests run with DEBUG off (pytest-django); the URLconf is read here, at collection, before
    # that happens: read it as the tests will see it, and as it is cached for every other test.
    with override_settings(DEBUG=False):
        return sorted(set(walk(get_resolver().url_patterns)))


ROUTES = project_routes()


def entry_for(route: str) -> Entry | None:
    if route in TABLE:
        return TABLE[route]
    if route.startswith("admin/"):
        return TABLE["admin/"]
    return None


def test_every_url_has_an_entry():
    missing = [route for route in ROUTES if entry_for(route) is None]
    assert not missing, f"URLs without an entry in tests/security/test_every_url.py TABLE: {missing}"


def test_every_entry_names_a_url():
    stale = [route for route, entry in TABLE.items() if route not in ROUTES and not entry.debug_only]
    assert not stale, f"entries for URLs that no longer exist: {stale}"


def test_the_walk_finds_the_whole_project():
    assert len(ROUTES) > 100  # the admin alone has a hundred
    assert "c/<int:pk>/send/" in ROUTES
    assert any(route.startswith("admin/inbox/channel/") for route in ROUTES)


# -- requests ------------------------------------------------------------------------------------------------

_PARAM = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")


def path_for(route: str, entry: Entry, w: World) -> str:
    if entry.path is not None:
        return entry.path(w)
    if route.startswith("admin/") and route not in TABLE:
        # One rule for the whole admin: any object id will do, non-staff never reach the view.
        if route.startswith("admin/^"):
            return "/admin/inbox/"
        if "(?P<url>" in route:
            return "/admin/no-such-page/"
        return "/" + _PARAM.sub(lambda m: str(w.conversation.pk), route)
    values = entry.params(w)
    return "/" + _PARAM.sub(lambda m: str(values[m.group("name")]), route) + entry.query(w)


def request(client: Client, method: str, path: str, data: dict[str, Any]) -> Any:
    if method == "GET":
        return client.get(path)
    return client.post(path, data)


def is_redirect_to(response: Any, prefix: str) -> bool:
    return response.status_code == 302 and response["Location"].startswith(prefix)


def body(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def check_outsider(who: str, expectation: str, entry: Entry, responses: dict[str, Any]) -> None:
    """The answers one outsider (anonymous or team B) got for GET and POST."""
    for method, response in responses.items():
        status = response.status_code
        assert status < 500 or status in entry.statuses, f"{who} {method}: {status}"
        leaked = [marker for marker in MARKERS if marker in body(response)]
        assert not leaked, f"{who} {method} sees team A's {leaked}"
        answered = method in entry.methods
        if expectation == LOGIN:
            assert is_redirect_to(response, "/login/") or (not answered and status == 405), f"{who} {method}: {status}"
            if answered:
                assert is_redirect_to(response, "/login/"), f"{who} {method}: {status}"
        elif expectation == ADMIN_LOGIN:
            assert is_redirect_to(response, "/admin/login/"), f"{who} {method}: {status}"
        elif expectation == DENIED:
            expected = {403, 404} if answered else {403, 404, 405}
            assert status in expected, f"{who} {method}: {status}"
        else:
            assert expectation.startswith(("public: ", "allowed: ")), expectation
            if entry.statuses:
                assert status in entry.statuses, f"{who} {method}: {status}"
            elif not answered:
                assert status in {302, 403, 404, 405}, f"{who} {method}: {status}"


def outsider_cases() -> list[Any]:
    cases = []
    for route in ROUTES:
        entry = entry_for(route)
        if entry is None:
            continue  # test_every_url_has_an_entry reports it
        marks = [pytest.mark.xfail(reason=entry.known_defect, strict=True)] if entry.known_defect else []
        if entry.elsewhere:
            marks.append(pytest.mark.skip(reason=f"walked by {entry.elsewhere}"))
        cases.append(pytest.param(route, marks=marks, id=route or "(index)"))
    return cases


@pytest.mark.parametrize("route", outsider_cases())
def test_url_as_anonymous_and_as_another_team(route, world, client):
    entry = entry_for(route)
    assert entry is not None
    path = path_for(route, entry, world)
    before = team_a_state(world)

    anonymous = {method: request(Client(), method, path, entry.data(world)) for method in ("GET", "POST")}
    check_outsider("anonymous", entry.anonymous, entry, anonymous)
    assert team_a_state(world) == before, "an anonymous request changed team A's data"

    client.force_login(world.bob)
    other = {method: request(client, method, path, entry.data(world)) for method in ("GET", "POST")}
    check_outsider("team B", entry.other_team, entry, other)
    assert team_a_state(world) == before, "team B changed team A's data"

    # The same requests work for those they are for: a refusal above is not a broken request.
    if entry.owner:
        owner = Client()
        owner.force_login(world.admin if entry.owner == "admin" else world.alice)
        # The admin's forms are Django's: staff reaching every page is the point, not posting them.
        for method in GET if entry is TABLE["admin/"] else entry.methods:
            response = request(owner, method, path, entry.data(world))
            if entry is TABLE["admin/"]:
                assert not is_redirect_to(response, "/admin/login/"), f"staff {method}: {response.status_code}"
                assert response.status_code < 500
            else:
                assert response.status_code in entry.owner_gets, f"{entry.owner} {method}: {response.status_code}"


def test_an_unsigned_webhook_is_refused_and_a_signed_one_is_stored(world, client):
    """The positive side of the webhook's entry: the signature, not a session, decides."""
    from connectors.simulator import SIGNATURE_HEADER, SimulatorConnector

    body = b'{"from": "+15005550006", "text": "signed"}'
    path = f"/hooks/{world.sms.key}/inbound/"
    assert client.post(path, body, content_type="application/json").status_code == 403
    signature = SimulatorConnector(world.sms).sign(body)
    response = client.post(path, body, content_type="application/json", headers={SIGNATURE_HEADER: signature})
    assert response.status_code == 200
    assert InboundEvent.objects.filter(channel=world.sms).count() == 1
