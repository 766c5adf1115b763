"""A small Graph API client on httpx: one base URL and version per channel (a stand-in in tests).

Every call sends the channel's token as ``Authorization: Bearer`` (never in the query string, so it
stays out of access logs), and turns a failed answer into the transport's errors through
:func:`connectors.meta.errors.classify`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
from django.utils.translation import gettext as _

from connectors.meta import errors
from inbox.transport import PermanentError, TransientError

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_VERSION = "v25.0"

# What we accept from customers: pictures, sound, video, documents and contact cards.
ALLOWED_MEDIA_PREFIXES = ("image/", "audio/", "video/")
ALLOWED_MEDIA_TYPES = frozenset(
    {
        "application/pdf",
        "text/plain",
        "text/csv",
        "text/vcard",
        "text/x-vcard",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    }
)


def media_allowed(content_type: str) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    return kind.startswith(ALLOWED_MEDIA_PREFIXES) or kind in ALLOWED_MEDIA_TYPES


class Graph:
    def __init__(self, *, base_url: str, version: str, token: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.version = version.strip("/")
        self.token = token
        self.timeout = timeout

    def url(self, path: str) -> str:
        return f"{self.base_url}/{self.version}/{path.lstrip('/')}"

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        sends: bool = False,
    ) -> dict[str, Any]:
        """One Graph API call; its JSON answer, or a transport error.

        ``sends`` says the call delivers something to a customer: when the request left but no
        answer came (a read timeout, a dropped connection), it may have gone out, and trying again
        could send it twice, so that is a permanent error the operator sees and can retry.
        """
        headers = {"Authorization": f"Bearer {self.token}"}
        try:
            response = httpx.request(
                method,
                self.url(path),
                json=json,
                params=params,
                data=data,
                files=files,
                headers=headers,
                timeout=self.timeout,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientError(_("Meta could not be reached: %(error)s") % {"error": type(exc).__name__}) from exc
        except httpx.HTTPError as exc:
            if sends:
                raise PermanentError(
                    _(
                        "Meta did not answer in time, so the message may or may not have gone out; "
                        "retry it if the customer did not get it."
                    )
                ) from exc
            raise TransientError(_("Meta did not answer: %(error)s") % {"error": type(exc).__name__}) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        error = body.get("error")
        if response.status_code >= 400 or isinstance(error, dict):
            raise errors.classify(
                status=response.status_code,
                error=error if isinstance(error, dict) else None,
                retry_after=errors.retry_hint(response.headers),
            )
        return body

    def download(self, url: str, *, limit: int, authorised: bool) -> tuple[bytes, str]:
        """Fetch media (with the token when ``authorised``), capped in size and checked for type."""
        if urlsplit(url).scheme not in ("http", "https"):
            raise PermanentError(_("Refused to download media from %(url)s.") % {"url": url})
        headers = {"Authorization": f"Bearer {self.token}"} if authorised else {}
        try:
            with (
                httpx.Client(timeout=self.timeout, follow_redirects=True) as http,
                http.stream("GET", url, headers=headers) as response,
            ):
                if response.status_code == 429 or response.status_code >= 500:
                    raise TransientError(f"media download answered HTTP {response.status_code}")
                if response.status_code >= 400:
                    raise PermanentError(
                        _("The media is gone or refused (HTTP %(status)s).") % {"status": response.status_code}
                    )
                content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
                if not media_allowed(content_type):
                    raise PermanentError(_("Media of type %(type)s is not accepted.") % {"type": content_type})
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise PermanentError(_("The media is larger than %(limit)s bytes.") % {"limit": limit})
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise PermanentError(_("The media is larger than %(limit)s bytes.") % {"limit": limit})
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise TransientError(f"media download failed: {type(exc).__name__}: {exc}") from exc
        return b"".join(chunks), content_type
