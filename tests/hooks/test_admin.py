"""Staff manage webhooks in the admin: the secret is shown once, bad URLs are refused, the log replays."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from hooks import services
from hooks.models import Delivery, Subscription
from inbox.services.inbound import receive_message
from inbox.transport import InboundMessage
from tests.conftest import PASSWORD


def staff_client(admin) -> Client:
    client = Client()
    assert client.login(username=admin.username, password=PASSWORD)
    return client


def test_staff_subscribe_and_see_the_secret_once(admin, receiver):
    client = staff_client(admin)
    response = client.post(
        reverse("admin:hooks_subscription_add"),
        {"name": "CRM", "url": receiver.base_url, "events": ["message.created"], "team": "", "is_active": "on"},
        follow=True,
    )
    assert response.status_code == 200
    subscription = Subscription.objects.get()
    assert subscription.secret.startswith("whsec_")
    assert subscription.secret in response.content.decode()
    page = client.get(reverse("admin:hooks_subscription_change", args=[subscription.pk]))
    assert page.status_code == 200
    assert subscription.secret not in page.content.decode()


def test_a_bad_url_or_no_event_is_a_form_error_not_a_500(admin, settings):
    settings.PARLEY_HOOKS_ALLOW_PRIVATE = False
    client = staff_client(admin)
    response = client.post(
        reverse("admin:hooks_subscription_add"),
        {"name": "CRM", "url": "http://10.0.0.1/hook", "events": [], "is_active": "on"},
    )
    assert response.status_code == 200
    assert "errornote" in response.content.decode()
    assert not Subscription.objects.exists()


def test_the_delivery_log_shows_attempts_and_replays(admin, sms, receiver):
    subscription, _secret = services.create_subscription(
        name="CRM", url=receiver.base_url, events=["message.created"], team=None, by=None
    )
    receive_message(channel=sms, inbound=InboundMessage(provider_id="a", address="+15005550006", text="Hi"))
    delivery = Delivery.objects.get()
    services.deliver_queue(subscription_id=subscription.pk, ordering_key=delivery.ordering_key)
    client = staff_client(admin)
    log = client.get(reverse("admin:hooks_delivery_changelist") + f"?subscription__id__exact={subscription.pk}")
    assert log.status_code == 200
    assert "message.created" in log.content.decode()
    response = client.post(
        reverse("admin:hooks_delivery_changelist"),
        {"action": "replay", "_selected_action": [delivery.pk]},
        follow=True,
    )
    assert response.status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == "pending"
