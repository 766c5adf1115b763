"""Sign-ins, failed sign-ins, lock-outs and sign-outs, from Django's and django-axes' signals."""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from audit.models import Entry
from audit.services import record


@receiver(user_logged_in, dispatch_uid="audit-signed-in")
def signed_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    record(action=Entry.Action.SIGNED_IN, actor=user, request=request, target=user)


@receiver(user_logged_out, dispatch_uid="audit-signed-out")
def signed_out(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if user is not None:
        record(action=Entry.Action.SIGNED_OUT, actor=user, request=request, target=user)


@receiver(user_login_failed, dispatch_uid="audit-sign-in-failed")
def sign_in_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any) -> None:
    # Django has already masked the password in ``credentials``; only the username is kept. A
    # failure that set off or met a lock-out is recorded once, as LOCKED_OUT (below).
    if not getattr(request, "axes_locked_out", False):
        username = str(credentials.get("username") or "")
        record(action=Entry.Action.SIGN_IN_FAILED, request=request, actor_label=username or "?")


@receiver(user_locked_out, dispatch_uid="audit-locked-out")
def locked_out(sender: Any, request: HttpRequest | None = None, username: str | None = None, **kwargs: Any) -> None:
    """A sign-in refused by the throttle, or the failure that set the lock-out off."""
    record(action=Entry.Action.LOCKED_OUT, request=request, actor_label=str(username or "?"))
