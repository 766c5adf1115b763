"""The writers and the reader of API tokens: issue, revoke, and find the token of a request.

A token reads ``parley_<prefix>_<secret>``: ``prefix`` (8 hex digits) finds the row, the whole
string's SHA-256 is compared with the stored digest in constant time. The secret is 32 random
bytes (``secrets.token_urlsafe(32)``): a digest without a salt is enough for that much randomness
(nobody can try 2^256 guesses), and it keeps the check to one hash per request.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

import redis
from django.contrib.auth.hashers import make_password
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from api import throttle
from api.models import ApiToken
from audit.models import Entry
from audit.services import record
from inbox.models import Operator, Team

logger = logging.getLogger(__name__)

PREFIX_LENGTH = 8
# ``last_used_at`` is written at most this often per token: a busy integration costs one UPDATE a minute.
LAST_USED_EVERY = timedelta(minutes=1)
TOKEN_PATTERN = re.compile(r"^parley_(?P<prefix>[0-9a-f]{8})_(?P<secret>[A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class IssuedToken:
    """A new token and the one moment its full text exists: show ``text`` once, then forget it."""

    token: ApiToken
    text: str


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _new_text() -> tuple[str, str]:
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    return prefix, f"parley_{prefix}_{secrets.token_urlsafe(32)}"


def _store(*, name: str, operator: Operator, team: Team | None, by: Operator | None) -> IssuedToken:
    for _attempt in range(5):  # a prefix collision (one in four billion) draws again
        prefix, text = _new_text()
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    name=name, prefix=prefix, secret_hash=digest(text), operator=operator, team=team, created_by=by
                )
        except IntegrityError:
            continue
        return IssuedToken(token=token, text=text)
    raise RuntimeError("could not draw a free token prefix")


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise ValueError(_("Give the token a name."))
    return name[:100]


@transaction.atomic
def issue_operator_token(*, name: str, operator: Operator, by: Operator) -> IssuedToken:
    """A token that acts as ``operator`` (their own teams, or everything for staff).

    Operators make their own; staff may make one for anyone.
    """
    if by.pk != operator.pk and not by.is_staff:
        raise PermissionDenied(_("Only staff make tokens for someone else."))
    issued = _store(name=_clean_name(name), operator=operator, team=None, by=by)
    _record(Entry.Action.CREATED, issued.token, by=by)
    return issued


@transaction.atomic
def issue_integration_token(*, name: str, team: Team, by: Operator) -> IssuedToken:
    """A token for an integration of ``team``, acting as an account made for it (staff only).

    The account is a member of ``team`` only, has no usable password (it cannot sign in) and a
    capacity of 0 (routing never gives it conversations); replies sent with the token are signed
    with its name, so the thread and the audit log say which integration wrote.
    """
    if not by.is_staff:
        raise PermissionDenied(_("Only staff make integration tokens."))
    name = _clean_name(name)
    account = Operator.objects.create(
        username=f"api-{slugify(name)[:40] or 'integration'}-{secrets.token_hex(4)}",
        display_name=_("%(name)s (API)") % {"name": name},
        password=make_password(None),
        capacity=0,
    )
    account.teams.set([team])
    issued = _store(name=name, operator=account, team=team, by=by)
    _record(Entry.Action.CREATED, issued.token, by=by)
    return issued


@transaction.atomic
def revoke_token(*, token: ApiToken, by: Operator) -> ApiToken:
    """Revoke a token at once (its next request is a 401). Its owner or staff; revoking twice is a no-op."""
    if not by.is_staff and token.operator_id != by.pk:
        raise PermissionDenied(_("This token is not yours."))
    changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    transaction.on_commit(forget_recent)  # also now: a request between the UPDATE and the commit may refill it
    forget_recent()
    token.refresh_from_db(fields=["revoked_at"])
    if changed:
        _record(Entry.Action.CHANGED, token, by=by, details={"revoked": True})
    return token


def _record(action: str, token: ApiToken, *, by: Operator, details: dict[str, object] | None = None) -> None:
    record(
        action=action,
        actor=by,
        target=token,
        target_type="api token",
        details={"scope": token.scope_label, **(details or {})},
    )


def authenticate(text: str) -> ApiToken | None:
    """The live token ``text`` names, with its operator loaded; None for anything else.

    Refused: a malformed string, an unknown prefix, a wrong secret, a revoked token, and a token
    whose operator can no longer sign in (deactivated): taking someone's access away takes their
    tokens' too.
    """
    match = TOKEN_PATTERN.match(text)
    if match is None:
        return None
    token = _live_token(match["prefix"])
    if token is None or not hmac.compare_digest(token.secret_hash, digest(text)):
        return None
    if not token.operator.is_active:
        return None
    _mark_used(token)
    # A copy per request: the cached instances are shared by every thread of the process.
    answer = copy.copy(token)
    answer.operator = copy.copy(token.operator)
    return answer


# prefix → (monotonic time it expires, the token with its operator and their team ids). A busy token is looked up once
# every RECENT_SECONDS per process instead of once per request (a query and two models built: a
# seventh of an API list request, docs/performance.md). Revoking a token, saving its operator
# (deactivating them) or changing their teams empties this process's cache at once and, after the
# commit, bumps a generation number in Redis that every other process reads at most every
# GENERATION_SECONDS: they drop their copies within that quarter of a second, not 5 s.
RECENT_SECONDS = 5.0
GENERATION_SECONDS = 0.25
GENERATION_KEY = "parley:api-tokens:generation"
_recent: dict[str, tuple[float, ApiToken | None]] = {}
# (monotonic time of the last look, the generation seen then)
_generation: tuple[float, int | None] = (0.0, None)


def _live_token(prefix: str) -> ApiToken | None:
    now = time.monotonic()
    _follow_generation(now)
    cached = _recent.get(prefix)
    if cached is not None and cached[0] > now:
        return cached[1]
    token = ApiToken.objects.select_related("operator").filter(prefix=prefix, revoked_at__isnull=True).first()
    if token is not None:  # unknown prefixes are not kept: made-up ones must not grow this
        token.operator.team_ids  # noqa: B018 - read now (cached on the instance), kept with it
        if len(_recent) > 10_000:
            _recent.clear()
        _recent[prefix] = (now + RECENT_SECONDS, token)
    return token


def _follow_generation(now: float) -> None:
    """Empty this process's cache when another process changed a token or an operator since."""
    global _generation
    checked_at, seen = _generation
    if now - checked_at < GENERATION_SECONDS:
        return
    try:
        current = int(throttle.client().get(GENERATION_KEY) or 0)
    except redis.RedisError:  # Redis down: keep no copies rather than trust stale ones
        _recent.clear()
        _generation = (now, None)
        return
    if current != seen:
        _recent.clear()
    _generation = (now, current)


def forget_recent(**kwargs: object) -> None:
    """Empty the cache of recently used tokens (a token or an operator changed), here at once and
    in the other processes once the change is committed."""
    _recent.clear()
    transaction.on_commit(_bump_generation)


def _bump_generation() -> None:
    try:
        throttle.client().incr(GENERATION_KEY)
    except redis.RedisError:
        logger.warning("could not tell other processes that API tokens changed", exc_info=True)


post_save.connect(forget_recent, sender=ApiToken, dispatch_uid="api-tokens-token-saved")
post_delete.connect(forget_recent, sender=ApiToken, dispatch_uid="api-tokens-token-deleted")
post_save.connect(forget_recent, sender=Operator, dispatch_uid="api-tokens-operator-saved")
post_delete.connect(forget_recent, sender=Operator, dispatch_uid="api-tokens-operator-deleted")
# Their teams are kept with them (``Operator.team_ids``, the visibility rule's input).
m2m_changed.connect(forget_recent, sender=Operator.teams.through, dispatch_uid="api-tokens-operator-teams")


def _mark_used(token: ApiToken) -> None:
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_EVERY:
        return
    # Conditional: of many requests in the same minute, across processes, one writes.
    ApiToken.objects.filter(pk=token.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_EVERY)
    ).update(last_used_at=now)
    token.last_used_at = now
