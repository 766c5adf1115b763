"""What every Twilio connector shares: credentials, the REST client, signatures, media, TwiML acks."""

from __future__ import annotations

import mimetypes
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse, QueryDict
from django.utils.translation import gettext as _
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from connectors.twilio import errors
from inbox import files
from inbox.models import Attachment
from inbox.transport import (
    CheckResult,
    ConfigurationError,
    Connector,
    InboundAttachment,
    InvalidRequest,
    PermanentError,
    TransientError,
)

TWILIO_API = "https://api.twilio.com"
SIGNATURE_HEADER = "X-Twilio-Signature"
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
# What we accept from customers: pictures, sound, video, documents and contact cards. Anything
# else (SMIL layouts, executables) is listed on the message but not downloaded.
ALLOWED_MEDIA_PREFIXES = ("image/", "audio/", "video/")
ALLOWED_MEDIA_TYPES = frozenset(
    {
        "application/pdf",
        "text/plain",
        "text/csv",
        "text/calendar",
        "text/vcard",
        "text/x-vcard",
        "text/directory",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    }
)
MEDIA_LINK_MAX_AGE = 2 * 24 * 3600
# Twilio's hosts for media and recordings (see TwilioConnector.media_url_allowed): its API and
# its storage, plus the legacy public bucket, path-style on S3.
TWILIO_MEDIA_HOST_SUFFIXES = (".twilio.com", ".twiliocdn.com")
LEGACY_MEDIA_BUCKETS = frozenset({("s3-external-1.amazonaws.com", "/media.twiliocdn.com/")})
MAX_MEDIA_REDIRECTS = 3
# Types that pass :func:`media_allowed` but can carry script when a browser opens them.
SCRIPTABLE_MEDIA = frozenset({"image/svg+xml"})


def media_allowed(content_type: str) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    return kind.startswith(ALLOWED_MEDIA_PREFIXES) or kind in ALLOWED_MEDIA_TYPES


class RecordingHttpClient(TwilioHttpClient):
    """The stock client, remembering the last response's headers (for ``Retry-After``)."""

    last_headers: dict[str, str]

    def request(self, *args: Any, **kwargs: Any) -> Response:
        self.last_headers = {}
        response = super().request(*args, **kwargs)
        self.last_headers = dict(response.headers or {})
        return response


class TwilioConnector(Connector):
    """Shared behaviour; subclasses set kind, medium and endpoints."""

    identity_kind = "phone"
    secret_settings: ClassVar[tuple[str, ...]] = ("auth_token", "api_key_secret")

    # -- configuration ---------------------------------------------------------------------

    @classmethod
    def validate_settings(cls, channel_settings: Any) -> None:
        problems = []
        if not str(channel_settings.get("account_sid", "")).startswith("AC"):
            problems.append("account_sid (AC…)")
        if not any(channel_settings.get(k) for k in ("auth_token", "auth_token_env", "auth_token_file")):
            problems.append("auth_token (or auth_token_env / auth_token_file)")
        problems.extend(cls.missing_settings(channel_settings))
        if problems:
            raise ConfigurationError(f"missing settings for {cls.kind}: {', '.join(problems)}")
        base = str(channel_settings.get("api_base_url", "") or TWILIO_API)
        if urlsplit(base).scheme not in ("http", "https"):
            raise ConfigurationError("api_base_url must be an http(s) URL")

    @classmethod
    def missing_settings(cls, channel_settings: Any) -> list[str]:
        return []

    @property
    def account_sid(self) -> str:
        return self.setting("account_sid")

    def auth_token(self) -> str:
        token = self.setting("auth_token")
        if not token:
            raise ConfigurationError(f"channel {self.channel.pk} has no Twilio auth token")
        return token

    def api_base_url(self) -> str:
        return (self.setting("api_base_url") or TWILIO_API).rstrip("/")

    def client(self) -> Client:
        """The official client, pointed at this channel's API base URL (a local stand-in in tests)."""
        http = RecordingHttpClient(timeout=float(self.setting("http_timeout") or 10))
        key_sid, key_secret = self.setting("api_key_sid"), self.setting("api_key_secret")
        if key_sid and key_secret:
            client = Client(key_sid, key_secret, self.account_sid, http_client=http)
        else:
            client = Client(self.account_sid, self.auth_token(), http_client=http)
        client.api.base_url = self.api_base_url()
        return client

    def check(self) -> list[CheckResult]:
        """Fetch the account with the channel's credentials (nothing is sent), then what the
        subclass checks on top (:meth:`check_more`)."""
        try:
            client = self.client()
            account = client.api.v2010.accounts(self.account_sid).fetch()
        except ConfigurationError as exc:
            return [CheckResult("credentials", False, str(exc))]
        except TwilioRestException as exc:
            return [
                CheckResult(
                    "credentials",
                    False,
                    f"Twilio refused the credentials (HTTP {exc.status}: {exc.msg}); check account_sid and auth_token",
                )
            ]
        except Exception as exc:  # the network: requests' errors, timeouts
            return [CheckResult("credentials", False, f"Twilio could not be reached at {self.api_base_url()}: {exc}")]
        if account.status != "active":
            return [CheckResult("credentials", False, f"the Twilio account is {account.status}, not active")]
        return [
            CheckResult("credentials", True, f"account {account.friendly_name!r} is active"),
            *self.check_more(client),
        ]

    def check_more(self, client: Client) -> list[CheckResult]:
        return []

    def rest_error(self, client: Client, exc: TwilioRestException) -> TransientError | PermanentError:
        headers = getattr(client.http_client, "last_headers", {}) or {}
        retry_after = errors.parse_retry_after(headers.get("Retry-After") or headers.get("retry-after"))
        return errors.classify(status=exc.status, code=exc.code, message=exc.msg, retry_after=retry_after)

    # -- inbound ---------------------------------------------------------------------------

    def called_url(self, request: HttpRequest) -> str:
        """The URL Twilio signed: our public base URL and the path and query it called."""
        return self.public_base_url() + request.get_full_path()

    def verify(self, request: HttpRequest, endpoint: str) -> None:
        signature = request.headers.get(SIGNATURE_HEADER, "")
        if not signature:
            raise InvalidRequest("missing X-Twilio-Signature", status=403)
        body = request.body  # read first: Django cannot give the raw body after parsing a stream
        validator = RequestValidator(self.auth_token())
        url = self.called_url(request)
        if (request.content_type or "").startswith("application/json"):
            if "bodySHA256=" not in url:
                raise InvalidRequest("a JSON webhook must carry bodySHA256", status=403)
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidRequest("body is not UTF-8", status=403) from None
            valid = validator.validate(url, text, signature)
        else:
            params: Any = request.POST if request.method == "POST" else QueryDict()
            valid = validator.validate(url, params, signature)
        if not valid:
            raise InvalidRequest("bad X-Twilio-Signature", status=403)

    def headers_to_keep(self, request: HttpRequest) -> dict[str, str]:
        kept = {}
        for name in (SIGNATURE_HEADER, IDEMPOTENCY_HEADER, "User-Agent"):
            if request.headers.get(name):
                kept[name] = request.headers[name]
        return kept

    def acknowledge(self, request: HttpRequest, endpoint: str) -> HttpResponse:
        return HttpResponse(EMPTY_TWIML, content_type="text/xml; charset=utf-8")

    def media_url_allowed(self, url: str) -> bool:
        """Whether ``url`` is one of Twilio's hosts, where media (and call recordings) live.

        Twilio's media URLs are on its API host, which answers with a redirect to short-lived
        storage: ``mms.twiliocdn.com`` (media behind HTTP auth) or, for media stored before that,
        the public bucket ``media.twiliocdn.com`` on ``s3-external-1.amazonaws.com`` (path-style).
        Anything else (a URL in a forged or replayed payload, a redirect somewhere else) is never
        fetched: our server would be fetching for whoever chose the URL. HTTPS only, default port;
        the channel's ``api_base_url`` (a local stand-in in tests) is allowed as configured.
        """
        parts = urlsplit(url)
        configured = urlsplit(self.api_base_url())
        if (parts.scheme, parts.netloc) == (configured.scheme, configured.netloc) and not parts.username:
            return True
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" or parts.username or parts.password or parts.port not in (None, 443):
            return False
        if host.endswith(TWILIO_MEDIA_HOST_SUFFIXES):
            return True
        return any(
            host == bucket_host and parts.path.startswith(prefix) for bucket_host, prefix in LEGACY_MEDIA_BUCKETS
        )

    def _api_host(self, url: str) -> bool:
        """Credentials go to Twilio's API host (or the configured stand-in) only, never to storage."""
        netloc = urlsplit(url).netloc
        return netloc in {urlsplit(self.api_base_url()).netloc, urlsplit(TWILIO_API).netloc}

    def _open_media(self, url: str) -> tuple[httpx.Client, httpx.Response]:
        """GET ``url`` from Twilio's hosts, following at most a few redirects, each to Twilio again.

        Returns the open client and the streamed response (the caller closes both). A URL or a
        redirect outside Twilio's hosts is a :class:`PermanentError`, without a request sent there.
        """
        timeout = float(self.setting("http_timeout") or 10)
        http = httpx.Client(timeout=timeout, follow_redirects=False)
        try:
            for _hop in range(MAX_MEDIA_REDIRECTS + 1):
                if not self.media_url_allowed(url):
                    host = urlsplit(url).hostname or url[:80]
                    raise PermanentError(
                        _("Refused to download media from %(host)s: it is not one of Twilio's hosts.") % {"host": host}
                    )
                auth = (self.account_sid, self.auth_token()) if self._api_host(url) else None
                response = http.send(http.build_request("GET", url), auth=auth, stream=True)
                if not response.is_redirect:
                    return http, response
                location = response.headers.get("Location", "")
                response.close()
                url = str(response.url.join(location))
            raise PermanentError(_("Twilio redirected the media download too many times."))
        except BaseException:
            http.close()
            raise

    def fetch_attachment(self, attachment: InboundAttachment) -> tuple[bytes, str]:
        """Download media from Twilio's hosts only, capped in size and checked for type.

        The account's credentials go to the API host only; the redirect to storage carries none.
        """
        limit = settings.PARLEY_MAX_ATTACHMENT_BYTES
        try:
            http, response = self._open_media(attachment.url)
            try:
                if response.status_code in (429,) or response.status_code >= 500:
                    raise TransientError(f"media download answered HTTP {response.status_code}")
                if response.status_code >= 400:
                    raise PermanentError(
                        _("The media is gone or refused (HTTP %(status)s).") % {"status": response.status_code}
                    )
                content_type = response.headers.get("Content-Type", attachment.content_type).split(";")[0].strip()
                if not media_allowed(content_type):
                    raise PermanentError(_("Media of type %(type)s is not accepted.") % {"type": content_type})
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > limit:
                    raise InvalidRequest(f"attachment {attachment.filename} is larger than {limit} bytes")
                chunks, size = [], 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise InvalidRequest(f"attachment {attachment.filename} is larger than {limit} bytes")
                    chunks.append(chunk)
            finally:
                response.close()
                http.close()
        except httpx.HTTPError as exc:
            raise TransientError(f"media download failed: {type(exc).__name__}: {exc}") from exc
        return b"".join(chunks), content_type

    def open_recording(self, url: str) -> tuple[Any, str]:
        """Stream a call recording from Twilio with the account's credentials (recordings may need
        them): (an iterator of bytes that closes the connection when done, content type). Only from
        Twilio's hosts, redirects included, as media (:meth:`media_url_allowed`)."""
        if not self._api_host(url) or not self.media_url_allowed(url):
            raise PermanentError(_("The recording is not on Twilio's API."))
        try:
            http, response = self._open_media(url + ".mp3")
        except httpx.HTTPError as exc:
            raise TransientError(f"recording download failed: {type(exc).__name__}") from exc
        if response.status_code >= 400:
            response.close()
            http.close()
            raise PermanentError(
                _("Twilio answered HTTP %(status)s for the recording.") % {"status": response.status_code}
            )

        def chunks() -> Any:
            try:
                yield from response.iter_bytes()
            finally:
                response.close()
                http.close()

        return chunks(), response.headers.get("Content-Type", "audio/mpeg")

    # -- outbound media --------------------------------------------------------------------

    def _media_signer(self) -> signing.TimestampSigner:
        return signing.TimestampSigner(salt=f"twilio-media:{self.channel.key}")

    def media_url(self, attachment: Attachment) -> str:
        """A public, signed, expiring link Twilio fetches an outbound attachment from."""
        token = self._media_signer().sign(str(attachment.pk))
        return f"{self.public_base_url()}/hooks/{self.channel.key}/media/?a={token}"

    def serve_media(self, request: HttpRequest) -> HttpResponse:
        """The file behind a :meth:`media_url`, for Twilio, under the attachment serving policy.

        The link is public (Twilio fetches it without credentials) and lives on our origin, so it
        is served as the operator view serves files (:mod:`inbox.files`): a type Twilio accepts is
        named as such (Twilio needs to know a PDF is a PDF), anything else as a download, never a
        page; always ``nosniff`` and a sandboxing CSP, ``attachment`` unless image, sound or video.
        """

        if request.method not in ("GET", "HEAD"):
            raise InvalidRequest("media is fetched with GET", status=405)
        try:
            pk = int(self._media_signer().unsign(request.GET.get("a", ""), max_age=MEDIA_LINK_MAX_AGE))
        except (signing.BadSignature, ValueError):
            raise InvalidRequest("unknown or expired media link", status=404) from None
        attachment = Attachment.objects.filter(pk=pk, message__channel=self.channel).first()
        if attachment is None:
            raise InvalidRequest("unknown or expired media link", status=404)
        stored = files.base_type(attachment.content_type or mimetypes.guess_type(attachment.filename)[0] or "")
        named = stored if media_allowed(stored) and stored not in SCRIPTABLE_MEDIA else None
        content_type, headers = files.serving(attachment, content_type=named)
        # Outbound media is small (Twilio takes at most 5 MB per message): read it in one go.
        with attachment.file.open("rb") as handle:
            response = HttpResponse(handle.read(), content_type=content_type)
        for name, value in headers.items():
            response[name] = value
        response["Cache-Control"] = "private, max-age=3600"
        return response
