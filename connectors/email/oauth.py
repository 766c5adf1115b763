"""OAuth 2.0 for the mailbox (``auth=xoauth2``): access tokens from a refresh token, and the XOAUTH2 login.

Gmail and Microsoft 365 take a bearer token instead of a password over IMAP and SMTP (SASL
``XOAUTH2``). The channel keeps what the provider's consent screen handed its admin once: the token
endpoint, the OAuth client and a refresh token. Each login trades the refresh token for a short-lived
access token (RFC 6749 §6), which is cached per channel, in Redis in production so that every worker
shares it, until a little before it expires.

A provider that refuses the credentials (HTTP 4xx: ``invalid_grant``, ``invalid_client``) is a
:class:`~inbox.transport.ConfigurationError` naming the provider's error: retrying cannot help until an
admin sets a new refresh token. A provider that is down, slow or unreachable (5xx, 408, 429, timeouts,
network errors) is a :class:`~inbox.transport.TransientError`, so a reply is retried later.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from django.core.cache import cache

from inbox.transport import ConfigurationError, TransientError

if TYPE_CHECKING:
    from connectors.email.connector import EmailConnector

logger = logging.getLogger(__name__)

AUTH_MODES = ("password", "xoauth2")
REQUIRED_SETTINGS = ("oauth_token_url", "oauth_client_id", "oauth_refresh_token")
TOKEN_TIMEOUT = 10.0
# Refresh this many seconds before the provider's expiry (at most a tenth of the lifetime), so that
# a token handed to the mail server does not run out during the login.
EXPIRY_MARGIN = 60
# When the provider leaves out ``expires_in`` (RFC 6749 makes it optional); a token refused
# earlier than that is replaced anyway (:func:`log_in`).
DEFAULT_LIFETIME = 3600
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class AccessToken:
    value: str
    # From the cache (may have been revoked since), or fresh from the provider.
    cached: bool


def uses_oauth(connector: EmailConnector) -> bool:
    return connector.setting("auth", "password") == "xoauth2"


def validate_settings(values: Mapping[str, Any]) -> None:
    """``auth`` is password or xoauth2; xoauth2 needs its token URL, client id and refresh token."""
    auth = str(values.get("auth") or "password")
    if auth not in AUTH_MODES:
        raise ConfigurationError(f"auth must be one of {', '.join(AUTH_MODES)}, not {auth!r}")
    if auth != "xoauth2":
        return
    # Any of them may come from a file or a variable, as secrets do (``KEY_file``, ``KEY_env``).
    missing = [key for key in REQUIRED_SETTINGS if not any(values.get(k) for k in (key, f"{key}_file", f"{key}_env"))]
    if missing:
        raise ConfigurationError(f"auth=xoauth2 needs {', '.join(missing)}")
    if values.get("oauth_token_url"):
        check_token_url(str(values["oauth_token_url"]))


def check_token_url(url: str) -> None:
    """The refresh token and client secret go to this URL: https only (plain http on loopback only)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and _is_loopback(parts.hostname or ""):
        return
    raise ConfigurationError(
        f"oauth_token_url must be the provider's https:// token endpoint "
        f"(such as https://oauth2.googleapis.com/token), not {url!r}"
    )


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def xoauth2_string(user: str, access_token: str) -> str:
    """The SASL XOAUTH2 initial response (before base64), as Google and Microsoft document it."""
    return f"user={user}\x01auth=Bearer {access_token}\x01\x01"


def _cache_key(connector: EmailConnector) -> str:
    # The hash changes with the credentials: a new refresh token or client never reuses a token
    # of the old one. No secret is part of the key itself.
    material = "\0".join(
        connector.setting(key) for key in ("oauth_token_url", "oauth_client_id", "oauth_refresh_token", "oauth_scope")
    )
    digest = hashlib.sha256(material.encode()).hexdigest()[:32]
    return f"email:oauth:{connector.channel.pk}:{digest}"


def access_token(connector: EmailConnector) -> AccessToken:
    """The channel's access token: the cached one while it lives, else a new one from the provider."""
    key = _cache_key(connector)
    cached = cache.get(key)
    if isinstance(cached, str) and cached:
        return AccessToken(cached, cached=True)
    value, lifetime = _refresh(connector)
    ttl = lifetime - min(EXPIRY_MARGIN, lifetime // 10)
    if ttl > 0:
        cache.set(key, value, ttl)
    return AccessToken(value, cached=False)


def forget(connector: EmailConnector) -> None:
    """Drop the cached access token (the mail server refused it)."""
    cache.delete(_cache_key(connector))


def log_in(connector: EmailConnector, login: Callable[[str], object], *, rejected: tuple[type[Exception], ...]) -> None:
    """Call ``login(access_token)``; when the server refuses a cached token, once more with a fresh one.

    A token can die before its expiry (revoked, the account's password changed). A fresh token
    that is refused is refused for good: the error ``login`` raised (one of ``rejected``) goes up.
    """
    token = access_token(connector)
    try:
        login(token.value)
    except rejected:
        if not token.cached:
            raise
        logger.info(
            "channel %s: the mail server refused the cached OAuth access token; getting a new one", connector.channel.pk
        )
        forget(connector)
        login(access_token(connector).value)


def _refresh(connector: EmailConnector) -> tuple[str, int]:
    """(access token, lifetime in seconds) by the refresh-token grant."""
    url = connector.setting("oauth_token_url")
    check_token_url(url)
    form = {
        "grant_type": "refresh_token",
        "client_id": connector.setting("oauth_client_id"),
        "refresh_token": connector.setting("oauth_refresh_token"),
    }
    if not form["client_id"] or not form["refresh_token"]:
        raise ConfigurationError("auth=xoauth2 needs oauth_client_id and oauth_refresh_token")
    if secret := connector.setting("oauth_client_secret"):
        form["client_secret"] = secret
    if scope := connector.setting("oauth_scope"):
        form["scope"] = scope
    where = f"the OAuth token endpoint {url}"
    try:
        response = httpx.post(
            url,
            data=form,
            headers={"Accept": "application/json"},
            timeout=TOKEN_TIMEOUT,
            verify=connector.tls_context(),
        )
    except httpx.UnsupportedProtocol as exc:
        raise ConfigurationError(f"oauth_token_url cannot be used: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise TransientError(f"{where} did not answer within {TOKEN_TIMEOUT:.0f} s") from exc
    except httpx.TransportError as exc:
        raise TransientError(f"Could not reach {where}: {exc}") from exc
    payload = _json(response)
    status = response.status_code
    answer = f"{status}{_described(payload) or ' ' + response.reason_phrase}".strip()
    if status in (408, 429) or status >= 500:
        raise TransientError(f"{where} answered {answer}", retry_after=_retry_after(response))
    if status != 200:
        raise ConfigurationError(
            f"{where} refused the channel's OAuth credentials ({answer}); "
            "check oauth_client_id and oauth_client_secret, or get a new oauth_refresh_token"
        )
    value = payload.get("access_token")
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{where} answered without an access_token: is oauth_token_url the token endpoint?")
    if payload.get("refresh_token") and payload["refresh_token"] != form["refresh_token"]:
        # We never write secrets: the configured token stays in use (providers keep it valid).
        logger.info(
            "channel %s: the OAuth provider issued a new refresh token; the configured oauth_refresh_token "
            "stays in use (replace it if the provider ever refuses it with invalid_grant)",
            connector.channel.pk,
        )
    try:
        lifetime = int(payload.get("expires_in", DEFAULT_LIFETIME))
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME
    return value, max(lifetime, 0)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _described(payload: Mapping[str, Any]) -> str:
    """``: invalid_grant (Token has been expired or revoked.)`` from an RFC 6749 §5.2 error body."""
    error = str(payload.get("error") or "")
    description = str(payload.get("error_description") or "")[:300]
    if not error:
        return ""
    return f": {error}" + (f" ({description})" if description else "")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None
