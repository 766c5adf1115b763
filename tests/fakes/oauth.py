"""A local stand-in for an OAuth 2.0 provider (Google's or Microsoft's token endpoint): a real HTTP server.

It speaks what our code and the mail peers call:

- ``POST /token``: the refresh-token grant (RFC 6749 §6) as a form: ``grant_type=refresh_token``,
  ``client_id``, ``client_secret``, ``refresh_token``, ``scope``. Answers ``{"access_token",
  "token_type": "Bearer", "expires_in"}``; a wrong client is ``401 invalid_client``, an unknown or
  revoked refresh token ``400 invalid_grant``, as the providers answer.
- ``POST /introspect`` (form ``token=…``, RFC 7662) and ``GET /introspect?token=…``: ``{"active":
  true, "username": …}`` for a live access token, ``{"active": false}`` otherwise. Dovecot's
  ``oauth2`` passdb asks this; the SMTP peer asks :meth:`FakeOAuth.user_of` in-process.

A refresh token belongs to one mailbox user (:meth:`FakeOAuth.grant`), and so does every access
token issued for it. :meth:`FakeOAuth.fail_next` queues ``"invalid_grant"``, ``"invalid_client"``,
``"503"`` or ``"timeout"`` answers; :meth:`FakeOAuth.revoke_access_tokens` makes every access token
issued so far dead (a password change, an admin's "sign out everywhere"), so a cached one is refused.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.fakes.http import LocalServer, send_json


@dataclass
class FakeOAuth(LocalServer):
    client_id: str = "parley-test-client.apps.example.test"
    client_secret: str = "test-client-secret"
    # Lifetime of the access tokens it issues, in seconds, as sent in ``expires_in``.
    expires_in: int = 3600
    # Send a new refresh token with every answer (Microsoft rotates them).
    rotate_refresh_tokens: bool = False
    # Seconds a "timeout" answer is held back (longer than the client's timeout).
    slow_seconds: float = 12.0
    # refresh token -> mailbox user
    grants: dict[str, str] = field(default_factory=dict)
    # access token -> (user, expires at, monotonic)
    issued: dict[str, tuple[str, float]] = field(default_factory=dict)
    # Every token request's form, in order.
    token_requests: list[dict[str, str]] = field(default_factory=list)
    introspections: int = 0
    _failures: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def introspection_url(self) -> str:
        return f"{self.base_url}/introspect"

    # -- control ------------------------------------------------------------------------------

    def grant(self, user: str) -> str:
        """A new refresh token for ``user`` (what the consent screen hands the admin)."""
        token = "1//refresh-" + secrets.token_urlsafe(24)
        with self._lock:
            self.grants[token] = user
        return token

    def settings(self, refresh_token: str, **extra: str) -> dict[str, str]:
        """A channel's xoauth2 settings for a grant."""
        return {
            "auth": "xoauth2",
            "oauth_token_url": self.token_url,
            "oauth_client_id": self.client_id,
            "oauth_client_secret": self.client_secret,
            "oauth_refresh_token": refresh_token,
            "oauth_scope": "https://mail.google.com/",
            **extra,
        }

    def fail_next(self, *modes: str) -> None:
        with self._lock:
            self._failures.extend(modes)

    def revoke_access_tokens(self) -> None:
        with self._lock:
            self.issued.clear()

    def user_of(self, access_token: str) -> str | None:
        """The user a live access token belongs to; None when it is unknown, revoked or expired."""
        with self._lock:
            entry = self.issued.get(access_token)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def reset(self) -> None:
        with self._lock:
            self.expires_in = 3600
            self.rotate_refresh_tokens = False
            self.grants.clear()
            self.issued.clear()
            self.token_requests.clear()
            self.introspections = 0
            self._failures.clear()

    # -- the server ---------------------------------------------------------------------------

    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length).decode() if length else ""
        form = {k: v[-1] for k, v in parse_qs(body if method == "POST" else parts.query).items()}
        if parts.path == "/token" and method == "POST":
            return self._token(handler, form)
        if parts.path == "/introspect":
            return self._introspect(handler, form)
        return send_json(handler, 404, {"error": "not_found"})

    def _token(self, handler: BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        with self._lock:
            self.token_requests.append(form)
            failure = self._failures.pop(0) if self._failures else ""
        if failure == "503":
            return send_json(handler, 503, {"error": "temporarily_unavailable"})
        if failure == "timeout":
            time.sleep(self.slow_seconds)
            return send_json(handler, 503, {"error": "too late"})
        if form.get("grant_type") != "refresh_token":
            return send_json(handler, 400, {"error": "unsupported_grant_type"})
        if (
            failure == "invalid_client"
            or form.get("client_id") != self.client_id
            or form.get("client_secret", "") != self.client_secret
        ):
            return send_json(
                handler, 401, {"error": "invalid_client", "error_description": "The OAuth client was not found."}
            )
        with self._lock:
            user = self.grants.get(form.get("refresh_token", ""))
        if failure == "invalid_grant" or user is None:
            return send_json(
                handler, 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
            )
        access_token = "ya29.fake-" + secrets.token_urlsafe(32)
        with self._lock:
            self.issued[access_token] = (user, time.monotonic() + self.expires_in)
        answer: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer", "expires_in": self.expires_in}
        if form.get("scope"):
            answer["scope"] = form["scope"]
        if self.rotate_refresh_tokens:
            answer["refresh_token"] = self.grant(user)
        return send_json(handler, 200, answer)

    def _introspect(self, handler: BaseHTTPRequestHandler, form: dict[str, str]) -> None:
        with self._lock:
            self.introspections += 1
        user = self.user_of(form.get("token", ""))
        if user is None:
            return send_json(handler, 200, {"active": False})
        return send_json(handler, 200, {"active": True, "username": user, "client_id": self.client_id})


@pytest.fixture(scope="session")
def oauth_server() -> Iterator[FakeOAuth]:
    """One provider for the session (Dovecot's passdb points at its URL); reset per test by :func:`oauth`."""
    fake = FakeOAuth().start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def oauth(oauth_server: FakeOAuth) -> Iterator[FakeOAuth]:
    oauth_server.reset()
    yield oauth_server
    oauth_server.reset()
