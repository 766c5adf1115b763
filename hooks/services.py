"""Webhooks out: subscribe, record deliveries in the writer's transaction, send them signed, in order.

Why the outbox is written *in* the writer's transaction (``common.events.recorded``) rather than by
an after-commit receiver: an after-commit receiver runs after the change is durable; a process that
dies between the commit and the receiver (a deploy, an OOM kill) would lose the event for good. A
row written in the same transaction commits with the change or not at all, so every committed
change has its deliveries, and the worker sends each until the receiver says 2xx: at least once.
The receiver deduplicates on ``webhook-id`` (the same for every attempt and a replay).

Order: the deliveries of one subscription that share an ``ordering_key`` (one conversation's
events; one customer's) go out strictly in the order they were written. One task drains one key:
it sends the earliest pending row, and only when that one is delivered (or given up on) the next.
A later event waits for an earlier undelivered one, retries included.

Signing follows the Standard Webhooks specification: ``webhook-id``, ``webhook-timestamp`` (the
attempt's, in seconds) and ``webhook-signature`` = ``v1,`` + base64(HMAC-SHA256(secret,
"{id}.{timestamp}.{body}")), the secret being the base64 after ``whsec_``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import mail_admins
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import Entry
from audit.services import record
from hooks.models import Delivery, Subscription
from inbox import signals
from inbox.models import Conversation, Team

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
EVENT_NAMES: tuple[str, ...] = tuple(event.name for event in signals.EVENTS)
# How long a worker holds a row it is sending; longer than any request may take.
LEASE = timedelta(seconds=60)
# Rows one task sends for one key before it hands over (a fair share for the other keys).
DRAIN_BATCH = 100
# Retries further away than this wait for the sweeper rather than a Celery countdown (a Redis
# broker redelivers far-future tasks after its visibility timeout).
COUNTDOWN_LIMIT = 300.0


# -- secrets and signatures ----------------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(*, secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header for one attempt (Standard Webhooks, ``v1``)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


# -- where deliveries may go -------------------------------------------------------------------


def _private(host: str) -> bool:
    """Whether ``host`` (a name or an address) is or resolves to a loopback, private or link-local address."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False  # it does not resolve now: the delivery fails and is retried
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global or address.is_multicast:
            return True
    return False


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """A subscription URL as stored; raises ``ValidationError`` unless deliveries may go there.

    https only; plain http just for a loopback receiver, and loopback or private addresses only
    where ``PARLEY_HOOKS_ALLOW_PRIVATE`` is on (development and tests): an integrator's URL must not
    reach into the network Parley runs in.
    """
    url = url.strip()
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host or parts.scheme not in {"https", "http"} or parts.username or parts.password:
        raise ValidationError(_("Enter an https:// address without a user name or password."))
    allow_private = settings.PARLEY_HOOKS_ALLOW_PRIVATE
    if parts.scheme == "http" and not (allow_private and _loopback(host)):
        raise ValidationError(
            _("Use https://. Plain http is allowed only for a receiver on this machine in development.")
        )
    if not allow_private and (_loopback(host) or _private(host)):
        raise ValidationError(_("This address is inside a private network; deliveries cannot go there."))
    return url


# -- subscriptions ----------------------------------------------------------------------------------


def check_events(events: Iterable[str]) -> list[str]:
    chosen = list(dict.fromkeys(events))
    unknown = [name for name in chosen if name not in EVENT_NAMES]
    if unknown:
        raise ValidationError(_("Unknown events: %(events)s.") % {"events": ", ".join(unknown)})
    if not chosen:
        raise ValidationError(_("Choose at least one event."))
    return chosen


def create_subscription(
    *, name: str, url: str, events: Iterable[str], team: Team | None, by: Any
) -> tuple[Subscription, str]:
    """A new subscription and its secret: the only time the secret is handed out."""
    secret = new_secret()
    with transaction.atomic():
        subscription = Subscription.objects.create(
            name=name.strip()[:100],
            url=check_url(url),
            events=check_events(events),
            team=team,
            secret=secret,
            created_by=by if getattr(by, "pk", None) else None,
        )
        record(action=Entry.Action.CREATED, actor=by, target=subscription, details={"url": subscription.url})
        forget_subscriptions()
        transaction.on_commit(forget_subscriptions)
    return subscription, secret


def update_subscription(*, subscription: Subscription, by: Any, **fields: Any) -> Subscription:
    """Change name, URL, events, team or switch it on and off (on again: the failure count restarts)."""
    allowed = {"name", "url", "events", "team", "is_active"}
    if set(fields) - allowed:
        raise ValueError(f"cannot update {', '.join(sorted(set(fields) - allowed))}")
    if "url" in fields:
        fields["url"] = check_url(fields["url"])
    if "events" in fields:
        fields["events"] = check_events(fields["events"])
    with transaction.atomic():
        for key, value in fields.items():
            setattr(subscription, key, value)
        names = list(fields)
        if fields.get("is_active"):
            subscription.disabled_reason, subscription.consecutive_failures, subscription.failing_since = "", 0, None
            names += ["disabled_reason", "consecutive_failures", "failing_since"]
        subscription.save(update_fields=names)
        record(action=Entry.Action.CHANGED, actor=by, target=subscription, details={"fields": sorted(fields)})
        forget_subscriptions()
        transaction.on_commit(forget_subscriptions)
        if fields.get("is_active"):
            transaction.on_commit(lambda: enqueue_due(subscription_id=subscription.pk))
    return subscription


def rotate_secret(*, subscription: Subscription, by: Any) -> str:
    """A new secret, effective at once; returned this one time."""
    secret = new_secret()
    with transaction.atomic():
        Subscription.objects.filter(pk=subscription.pk).update(secret=secret)
        record(action=Entry.Action.CHANGED, actor=by, target=subscription, details={"secret_keys": ["secret"]})
    subscription.secret = secret
    return secret


# -- recording: in the writer's transaction -----------------------------------------------------------


@dataclass(frozen=True)
class _Active:
    pk: int
    team_id: int | None
    events: frozenset[str]


# The active subscriptions, read at most every few seconds per process: most changes in a busy
# inbox are events, and most installations have no or few subscriptions. A new subscription gets
# events from at most CACHE_SECONDS after it was made (at once in the process that made it).
CACHE_SECONDS = 5.0
_cache_lock = threading.Lock()
_cache: tuple[float, list[_Active]] = (0.0, [])


def forget_subscriptions() -> None:
    global _cache
    with _cache_lock:
        _cache = (0.0, [])


def active_subscriptions() -> list[_Active]:
    global _cache
    loaded_at, active = _cache
    if time.monotonic() - loaded_at < CACHE_SECONDS:
        return active
    rows = Subscription.objects.filter(is_active=True).values_list("pk", "team_id", "events")
    active = [_Active(pk, team_id, frozenset(events)) for pk, team_id, events in rows]
    with _cache_lock:
        _cache = (time.monotonic(), active)
    return active


def _key_and_teams(payload: Mapping[str, Any], *, need_teams: bool) -> tuple[str, set[int | None]]:
    teams: set[int | None] = set()
    conversation_id = payload.get("conversation_id")
    if conversation_id is not None:
        if need_teams:
            teams = set(Conversation.objects.filter(pk=conversation_id).values_list("team_id", flat=True))
        return f"conversation:{conversation_id}", teams
    customer_id = payload.get("customer_id")
    if customer_id is not None:
        if need_teams:
            teams = set(Conversation.objects.filter(customer_id=customer_id).values_list("team_id", flat=True))
        return f"customer:{customer_id}", teams
    return "", set()


def record_event(*, event: str, payload: Mapping[str, Any]) -> list[int]:
    """Write one delivery per subscription that wants ``event`` and may see it; enqueue them on commit.

    Called inside the writer's transaction. A team's subscription gets the events of its team's
    conversations, and the customer events of customers who have a conversation with its team.
    """
    wanted = [s for s in active_subscriptions() if event in s.events]
    if not wanted:
        return []
    key, teams = _key_and_teams(payload, need_teams=any(s.team_id is not None for s in wanted))
    now = timezone.now()
    body = {"type": event, "timestamp": now.isoformat().replace("+00:00", "Z"), "data": dict(payload)}
    rows = [
        Delivery(subscription_id=s.pk, event=event, payload=body, ordering_key=key, next_attempt_at=now)
        for s in wanted
        if s.team_id is None or s.team_id in teams
    ]
    if not rows:
        return []
    Delivery.objects.bulk_create(rows)
    queues = sorted({(row.subscription_id, key) for row in rows})
    transaction.on_commit(lambda: enqueue(queues))
    return [row.pk for row in rows]


def enqueue(queues: Iterable[tuple[int, str]], *, countdown: float | None = None) -> None:
    from hooks import tasks  # a true cycle: the task calls these services

    for subscription_id, key in queues:
        try:
            tasks.deliver_queue.apply_async(
                args=(subscription_id, key), countdown=countdown, queue=settings.PARLEY_HOOKS_QUEUE
            )
        except Exception:
            logger.exception("could not enqueue webhooks of subscription %s; the sweeper will", subscription_id)


# -- sending ---------------------------------------------------------------------------------------

_clients = threading.local()


def _client() -> httpx.Client:
    """One keep-alive client per thread: most deliveries go to the same few receivers."""
    client: httpx.Client | None = getattr(_clients, "client", None)
    if client is None:
        client = httpx.Client(
            timeout=settings.PARLEY_HOOKS_TIMEOUT,
            follow_redirects=False,
            headers={"User-Agent": "Parley-Webhooks/1"},
        )
        _clients.client = client
    return client


@dataclass(frozen=True)
class Attempt:
    ok: bool
    retry: bool  # worth trying again (5xx, 408, 429, a timeout, no connection)
    code: int | None
    latency_ms: int
    error: str


def post(subscription: Subscription, delivery: Delivery) -> Attempt:
    """One signed POST of one delivery."""
    body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(
            secret=subscription.secret, event_id=delivery.event_id, timestamp=timestamp, body=body
        ),
    }
    started = time.monotonic()
    host = (urlsplit(subscription.url).hostname or "").lower()
    if not settings.PARLEY_HOOKS_ALLOW_PRIVATE and (_loopback(host) or _private(host)):
        # Checked again at each attempt: a name can start resolving into the private network later.
        return Attempt(False, False, None, 0, "The address resolves into a private network.")
    try:
        response = _client().post(
            subscription.url, content=body, headers=headers, timeout=settings.PARLEY_HOOKS_TIMEOUT
        )
    except httpx.TimeoutException:
        return Attempt(False, True, None, _since(started), "Timed out.")
    except httpx.HTTPError as exc:
        return Attempt(False, True, None, _since(started), f"Could not connect: {type(exc).__name__}: {exc}"[:500])
    latency = _since(started)
    code = response.status_code
    if 200 <= code < 300:
        return Attempt(True, False, code, latency, "")
    retry = code >= 500 or code in {408, 429}
    return Attempt(False, retry, code, latency, f"The receiver answered {code}.")


def _since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def backoff(attempts: int) -> float:
    """Seconds before attempt ``attempts + 1``: exponential from RETRY_BASE, capped, ±10 % jitter."""
    base, most = float(settings.PARLEY_HOOKS_RETRY_BASE), float(settings.PARLEY_HOOKS_RETRY_MAX)
    delay = min(base * 2.0 ** max(attempts - 1, 0), most)
    return delay * random.uniform(0.9, 1.1)  # noqa: S311 - spreading retries, not a secret


def _claim(delivery: Delivery, now: datetime) -> bool:
    return bool(
        Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.PENDING)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
        .update(leased_until=now + LEASE)
    )


def deliver_queue(*, subscription_id: int, ordering_key: str) -> float | None:
    """Send one subscription's pending deliveries of one key, in order. Safe to call twice at once.

    Returns the seconds until the earliest row left is due (a retry), or None when nothing waits.
    """
    for _round in range(DRAIN_BATCH):
        subscription = Subscription.objects.filter(pk=subscription_id, is_active=True).first()
        if subscription is None:
            return None  # switched off or gone: the rows wait (a replay or switching it on sends them)
        delivery = (
            Delivery.objects.filter(subscription_id=subscription_id, ordering_key=ordering_key, status="pending")
            .order_by("id")
            .first()
        )
        if delivery is None:
            return None
        now = timezone.now()
        if delivery.next_attempt_at > now:
            return (delivery.next_attempt_at - now).total_seconds()
        if not _claim(delivery, now):
            return None  # another worker is sending this key; it drains the rest
        attempt = post(subscription, delivery)
        if not _settle(subscription, delivery, attempt):
            return (delivery.next_attempt_at - timezone.now()).total_seconds()
    enqueue([(subscription_id, ordering_key)])  # more waiting: a new task, behind the other keys
    return None


def _settle(subscription: Subscription, delivery: Delivery, attempt: Attempt) -> bool:
    """Record an attempt; returns whether the queue may move on (delivered, or given up on)."""
    now = timezone.now()
    delivery.attempts += 1
    fields: dict[str, Any] = {
        "attempts": F("attempts") + 1,
        "last_attempt_at": now,
        "response_code": attempt.code,
        "latency_ms": attempt.latency_ms,
        "error": attempt.error,
        "leased_until": None,
    }
    window = timedelta(hours=settings.PARLEY_HOOKS_RETRY_HOURS)
    if attempt.ok:
        fields.update(status=Delivery.Status.DELIVERED, delivered_at=now)
    elif attempt.retry and now - delivery.created_at < window:
        delivery.next_attempt_at = now + timedelta(seconds=backoff(delivery.attempts))
        fields["next_attempt_at"] = delivery.next_attempt_at
    else:
        fields["status"] = Delivery.Status.FAILED
    with transaction.atomic():
        Delivery.objects.filter(pk=delivery.pk).update(**fields)
        if attempt.ok:
            if subscription.consecutive_failures or subscription.failing_since:
                Subscription.objects.filter(pk=subscription.pk).update(consecutive_failures=0, failing_since=None)
        else:
            _count_failure(subscription, now)
    return attempt.ok or fields.get("status") == Delivery.Status.FAILED


def _count_failure(subscription: Subscription, now: datetime) -> None:
    Subscription.objects.filter(pk=subscription.pk).update(
        consecutive_failures=F("consecutive_failures") + 1, failing_since=Coalesce("failing_since", now)
    )
    failures, since = (
        Subscription.objects.filter(pk=subscription.pk).values_list("consecutive_failures", "failing_since").get()
    )
    too_many = failures >= settings.PARLEY_HOOKS_DISABLE_AFTER_FAILURES
    too_long = since is not None and now - since >= timedelta(days=settings.PARLEY_HOOKS_DISABLE_AFTER_DAYS)
    if too_many or too_long:
        disable_subscription(
            subscription=subscription,
            reason=_("Switched off after %(count)d failed attempts in a row (failing since %(since)s).")
            % {"count": failures, "since": since.isoformat(timespec="minutes") if since else "?"},
        )


def disable_subscription(*, subscription: Subscription, reason: str) -> bool:
    """Switch a failing subscription off and tell staff (the audit log, mail to ADMINS, the log)."""
    with transaction.atomic():
        if not Subscription.objects.filter(pk=subscription.pk, is_active=True).update(
            is_active=False, disabled_reason=reason[:300]
        ):
            return False
        record(
            action=Entry.Action.CHANGED,
            target=subscription,
            details={"fields": ["is_active"], "reason": reason, "switched_off": True},
        )
        forget_subscriptions()
        transaction.on_commit(forget_subscriptions)
    logger.warning("webhook subscription %s (%s) switched off: %s", subscription.pk, subscription.url, reason)
    mail_admins(
        f"Webhook subscription {subscription.name!r} was switched off",
        f"{reason}\n\nURL: {subscription.url}\nSwitch it on again in the admin (Webhooks out) once the receiver works.",
        fail_silently=True,
    )
    return True


# -- the log's actions, and the sweeper -------------------------------------------------------------


def replay_deliveries(*, deliveries: Iterable[Delivery], by: Any) -> int:
    """Send these deliveries again (same ``webhook-id``: the receiver may deduplicate); in order per key."""
    ids = [d.pk for d in deliveries]
    with transaction.atomic():
        now = timezone.now()
        count = Delivery.objects.filter(pk__in=ids).update(
            status=Delivery.Status.PENDING, next_attempt_at=now, leased_until=None, error=""
        )
        queues = set(Delivery.objects.filter(pk__in=ids).values_list("subscription_id", "ordering_key"))
        for subscription_id in {s for s, _k in queues}:
            record(
                action=Entry.Action.CHANGED,
                actor=by,
                target_type="hooks.subscription",
                target_id=subscription_id,
                details={"replayed": ids[:100]},
            )
        transaction.on_commit(lambda: enqueue(sorted(queues)))
    return count


def prune_deliveries(*, batch: int = 5000) -> int:
    """Forget settled deliveries older than ``PARLEY_HOOKS_KEEP_DAYS`` (the log keeps the recent ones)."""
    before = timezone.now() - timedelta(days=settings.PARLEY_HOOKS_KEEP_DAYS)
    old = Delivery.objects.filter(created_at__lt=before).exclude(status=Delivery.Status.PENDING)
    deleted, _by_model = Delivery.objects.filter(pk__in=list(old.values_list("pk", flat=True)[:batch])).delete()
    return deleted


def enqueue_due(*, subscription_id: int | None = None, limit: int = 500) -> int:
    """Enqueue every key with a due, unleased pending delivery (lost tasks, retries); returns how many."""
    now = timezone.now()
    due = Delivery.objects.filter(status=Delivery.Status.PENDING, next_attempt_at__lte=now).filter(
        Q(leased_until__isnull=True) | Q(leased_until__lt=now)
    )
    if subscription_id is not None:
        due = due.filter(subscription_id=subscription_id)
    due = due.filter(subscription__is_active=True)
    queues = sorted(set(due.values_list("subscription_id", "ordering_key")[:limit]))
    enqueue(queues)
    return len(queues)
