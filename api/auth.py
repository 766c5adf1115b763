"""``Authorization: Bearer parley_…``: the only way into the API (no session, so no CSRF to forge)."""

from __future__ import annotations

from django.http import HttpRequest
from ninja.security import HttpBearer

from api import tokens
from api.models import ApiToken
from inbox.models import Operator


class BearerToken(HttpBearer):
    """Sets ``request.auth`` to the :class:`ApiToken`; a missing or bad token is a 401 problem."""

    openapi_description = "An API token: `Authorization: Bearer parley_<prefix>_<secret>` (docs/api.md)."

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        return tokens.authenticate(token)


def token_of(request: HttpRequest) -> ApiToken:
    token = getattr(request, "auth", None)
    assert isinstance(token, ApiToken)  # noqa: S101 - every endpoint requires BearerToken
    return token


def operator_of(request: HttpRequest) -> Operator:
    """Who the request acts as: the token's operator (or its integration's account)."""
    operator = token_of(request).operator
    assert isinstance(operator, Operator)  # noqa: S101 - AUTH_USER_MODEL is the inbox's operator
    return operator
