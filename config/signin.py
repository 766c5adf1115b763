"""Sign-in throttling with django-axes: the authentication backend and the lock-out page.

Axes counts failed sign-ins per account and per address (``AXES_LOCKOUT_PARAMETERS``) and, past
``LOGIN_FAILURE_LIMIT``, refuses every sign-in of that account or from that address — the right
password included — until ``LOGIN_LOCKOUT_MINUTES`` have passed. The page says so with a 429 and
``Retry-After``. Both the operators' login page and ``/admin/login/`` authenticate through here.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import ngettext


class SignInThrottle(AxesStandaloneBackend):
    """Axes' check before the password is looked at; a sign-in without a request is not throttled.

    Only the web's sign-ins carry a request (the login pages, the admin's). An ``authenticate``
    call without one (the test client's ``login``, a shell) reaches no attacker, so this backend
    stands aside and the next backend decides, instead of refusing as axes' own backend does.
    """

    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)  # type: ignore[no-any-return]


def lockout_minutes() -> int:
    return max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))


def lockout_response(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """The login page again, saying why and for how long (429, ``Retry-After``).

    Axes calls this with ``(request, response, credentials)`` or, on its async path,
    ``(request, credentials)``; neither is needed here.
    """
    minutes = lockout_minutes()
    message = ngettext(
        "Too many failed sign-in attempts for this account or from this address. "
        "Signing in is blocked for %(minutes)s minute; try again later.",
        "Too many failed sign-in attempts for this account or from this address. "
        "Signing in is blocked for %(minutes)s minutes; try again later.",
        minutes,
    ) % {"minutes": minutes}
    context = {"form": AuthenticationForm(request), "locked_out": message, "next": request.POST.get("next", "")}
    response = render(request, "registration/login.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)
    response["Retry-After"] = str(minutes * 60)
    return response
