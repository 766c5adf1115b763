"""The email connector: one mailbox, read over IMAP (or an inbound-parse webhook), answered over SMTP.

Settings (``channel add email --set key=value``; any secret also as ``key_file=/path`` or
``key_env=VARIABLE``): ``address`` (required), ``imap_host``, ``imap_port``, ``imap_user`` (default:
the address), ``imap_password``, ``imap_tls`` (none/starttls/ssl, default ssl), ``imap_folder``
(default INBOX), ``processed`` (keep / seen / move:<folder>, default keep), ``smtp_host``
(required), ``smtp_port``, ``smtp_user``, ``smtp_password``, ``smtp_tls`` (none/starttls/ssl,
default starttls), ``tls_ca_file`` (a PEM file of the CA certificates that sign a self-hosted mail
server's certificate, trusted for IMAP and SMTP besides the system's; or the PEM text itself in
``tls_ca`` / ``tls_ca_env``), ``from_name``, ``sent_folder`` (keep a copy of replies there over
IMAP), ``mailgun_signing_key`` (Mailgun inbound-parse), ``postmark_inbound_auth``
(``user:password``, Postmark inbound). Certificates are always verified, chain and host name: a
server Parley cannot verify is refused, never used unchecked.

``auth`` is how IMAP and SMTP log in: ``password`` (default; ``imap_password``, ``smtp_password``) or
``xoauth2``, OAuth 2.0 bearer tokens as Gmail and Microsoft 365 want them
(:mod:`connectors.email.oauth`): ``oauth_token_url`` (required; the provider's token endpoint,
https), ``oauth_client_id`` (required), ``oauth_client_secret`` (secret; when the client has one),
``oauth_refresh_token`` (required; secret), ``oauth_scope`` (optional; as granted). Both log in as
``imap_user`` / ``smtp_user``, defaulting to the address; the token endpoint is verified like the
mail servers (``tls_ca_file`` adds trust there too).

Events are raw RFC 822 bytes (endpoint ``imap``) or a provider's inbound-parse POST (endpoints
``inbound-parse`` and ``postmark-inbound``); all are read by :mod:`connectors.email.parsing`.
Replies carry our Message-ID (stored as the message's provider id), In-Reply-To/References built
from the thread, a per-conversation reply address ``local+c<id>@domain`` and the subject token
``[#c<id>]``. A customer's answer joins their open conversation (one customer, one active
conversation); when they have none, the one their reply address names, else the one the threading
headers name, else the one the subject token names (used only when the headers name nothing we
know: docs/connectors/email.md, "Threading"), else one resolved lately. A token is only ever
honoured among the sender's own conversations; a different person answering it (a colleague) gets
their own thread, linked to the one they answered (:mod:`connectors.email.receivers`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import ssl
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from django.conf import settings
from django.http import HttpRequest

from common.html import sanitize_html
from connectors.email import dedupe, inbound_parse, oauth, outbound
from connectors.email.imap import Mailbox, fetch_messages
from connectors.email.parsing import MailLimits, ParsedMail, UnreadableMail, parse_mail
from customers.models import Identity
from customers.services import InvalidAddress, normalise_address
from inbox.models import Channel, Conversation, InboundEvent, Message
from inbox.transport import (
    CheckResult,
    ConfigurationError,
    Connector,
    InboundAttachment,
    InboundMessage,
    InvalidRequest,
    Parsed,
    SendResult,
    StatusUpdate,
    register,
)

logger = logging.getLogger(__name__)

# Our own addresses change only when a channel is added: read them at most once a minute per process.
OWN_ADDRESSES_TTL = 60.0
_own_cache: tuple[float, frozenset[str]] | None = None

TLS_MODES = ("none", "starttls", "ssl")
# Names of attachments not kept (past the mail limits) listed on the message; the rest are counted.
MAX_NAMES_LISTED = 20
# Metadata copies of the full text are capped: the raw message stays in its InboundEvent anyway.
MAX_QUOTED_CHARS = 100_000
IMAP_ENDPOINT = "imap"
PARSE_ENDPOINT = "inbound-parse"
POSTMARK_ENDPOINT = "postmark-inbound"
# The conversation token our subjects carry (``Re: Order arrived broken [#c123]``): it survives
# clients and forwards that drop In-Reply-To/References and the reply address.
SUBJECT_TOKEN_RE = re.compile(r"\[#(c\d{1,12})\]")


def subject_token(conversation_id: int) -> str:
    return f"[#c{conversation_id}]"


def split_address(address: str) -> tuple[str, str]:
    local, _, domain = address.strip().lower().rpartition("@")
    return local, domain


def message_id_key(message_id: str) -> str:
    """The prefix of the inbound-event dedupe keys of mail with this Message-ID (see :mod:`.dedupe`)."""
    return dedupe.message_id_key(message_id)


@register
class EmailConnector(Connector):
    kind = "email"
    label = "Email"
    medium = "email"
    identity_kind = "email"
    required_settings = ("address", "smtp_host")
    secret_settings = (
        "imap_password",
        "smtp_password",
        "mailgun_signing_key",
        "postmark_inbound_auth",
        "oauth_client_secret",
        "oauth_refresh_token",
    )
    endpoints: ClassVar[tuple[str, ...]] = (PARSE_ENDPOINT, POSTMARK_ENDPOINT)

    # -- configuration ---------------------------------------------------------------------

    @classmethod
    def validate_settings(cls, channel_settings: Mapping[str, Any]) -> None:
        super().validate_settings(channel_settings)
        values = dict(channel_settings)
        if "@" not in str(values["address"]):
            raise ConfigurationError(f"address must be an email address, not {values['address']!r}")
        for key in ("imap_tls", "smtp_tls"):
            if values.get(key, "") and values[key] not in TLS_MODES:
                raise ConfigurationError(f"{key} must be one of {', '.join(TLS_MODES)}")
        processed = str(values.get("processed", "keep"))
        if processed not in ("keep", "seen") and not (processed.startswith("move:") and len(processed) > 5):
            raise ConfigurationError("processed must be keep, seen or move:<folder>")
        for key in ("imap_port", "smtp_port"):
            if values.get(key) and not str(values[key]).isdigit():
                raise ConfigurationError(f"{key} must be a port number")
        oauth.validate_settings(values)
        # A CA file that is missing, unreadable or not PEM fails here, not at the first poll.
        cls(Channel(kind=cls.kind, settings=values)).tls_context()

    def tls_context(self) -> ssl.SSLContext:
        """How IMAP and SMTP verify the mail servers: the system's CAs plus the channel's own.

        A channel can add trust (``tls_ca_file``, for a server with its own CA) but never switch
        verification off: the chain and the host name are always checked.
        """
        context = ssl.create_default_context()
        ca_file = self.channel.settings.get("tls_ca_file")
        source = f"tls_ca_file {ca_file}" if ca_file else "tls_ca"
        try:
            pem = self.setting("tls_ca")
            if pem or ca_file:  # an empty file is a mistake, not "no CA of our own"
                context.load_verify_locations(cadata=pem)
        except (ssl.SSLError, ValueError) as exc:  # caught before OSError: SSLError is one
            raise ConfigurationError(f"{source} holds no usable PEM certificate: {exc}") from exc
        except OSError as exc:
            raise ConfigurationError(f"{source} cannot be read: {exc}") from exc
        except ConfigurationError as exc:  # from Connector.setting: the file is missing or not text
            if isinstance(exc.__cause__, UnicodeDecodeError):
                raise ConfigurationError(f"{source} holds no usable PEM certificate: {exc.__cause__}") from exc
            raise
        return context

    @property
    def address(self) -> str:
        return self.setting("address").strip().lower()

    def reply_address(self, conversation_id: int) -> str:
        local, domain = split_address(self.address)
        return f"{local}+c{conversation_id}@{domain}"

    def bounce_address(self, message: Message) -> str:
        """VERP: the envelope sender names the message, so a bounce tells us which one failed."""
        local, domain = split_address(self.address)
        return f"{local}+b{message.public_id.hex}@{domain}"

    def own_addresses(self) -> set[str]:
        """Every address of our email channels (mail from them is a loop, never a customer)."""
        global _own_cache
        now = time.monotonic()
        if _own_cache is None or now - _own_cache[0] > OWN_ADDRESSES_TTL:
            addresses = set()
            for values in Channel.objects.filter(kind=self.kind).values_list("settings", flat=True):
                if isinstance(values, dict) and values.get("address"):
                    addresses.add(str(values["address"]).strip().lower())
            _own_cache = (now, frozenset(addresses))
        return {self.address, *_own_cache[1]}

    # -- inbound ---------------------------------------------------------------------------

    def verify(self, request: HttpRequest, endpoint: str) -> None:
        if endpoint == POSTMARK_ENDPOINT:
            inbound_parse.verify_postmark(request, self.setting("postmark_inbound_auth"))
        else:
            inbound_parse.verify(request, self.setting("mailgun_signing_key"), scope=self.channel.key)

    def dedupe_key(self, request: HttpRequest, endpoint: str) -> str:
        if endpoint == POSTMARK_ENDPOINT:
            return inbound_parse.postmark_dedupe_key(request.body) or super().dedupe_key(request, endpoint)
        return inbound_parse.dedupe_key(request)

    def parse(self, event: InboundEvent) -> Iterable[Parsed]:
        hints: dict[str, Any] = {}
        truncated = 0
        if event.endpoint == PARSE_ENDPOINT:
            raw, hints = inbound_parse.to_mime(bytes(event.body), event.content_type)
        elif event.endpoint == POSTMARK_ENDPOINT:
            raw, hints = inbound_parse.postmark_to_mime(bytes(event.body))
        else:
            raw = bytes(event.body)
            truncated = int(event.headers.get("truncated_from") or 0)
            if not raw and event.headers.get("fetch_error"):
                raw, truncated = self._refetch(event.headers)
        try:
            mail = parse_mail(raw, limits=MailLimits.from_settings())
        except UnreadableMail as exc:
            raise InvalidRequest(str(exc)) from exc
        if truncated:
            # Only the headers and the start of the body were fetched (too large): what looks like
            # attachments in it is cut off, so none is kept; the note says where the mail is.
            mail.attachments, mail.omitted, mail.not_kept = [], [], []
            mail.truncated_from = truncated
        stripped = str(hints.get("stripped_text") or "").strip()
        if stripped and mail.text == mail.full_text and stripped in mail.full_text:
            # The provider's own quote stripping, when ours found nothing (and it is of this text).
            mail.text = stripped
        if mail.bounce is not None:
            if mail.bounce.action != "failed":
                # "Delayed" reports: the server is still trying; the raw report stays in the event.
                logger.info("event %s: delivery delayed for %s", event.pk, mail.bounce.recipient)
                return
            update = self._bounce_update(mail)
            if update is None:
                raise InvalidRequest(
                    f"a delivery failure report for a message this channel did not send ({mail.bounce.reason})"
                )
            yield update
            return
        yield self._inbound(mail)

    def _refetch(self, headers: Mapping[str, str]) -> tuple[bytes, int]:
        """A message the server could not return when it was polled, asked for again (a replay):
        (raw, 0), or (its start, its size) when it is over PARLEY_MAIL_MAX_BYTES."""
        import imaplib

        folder, uid = headers.get("folder", "INBOX"), int(headers.get("uid", "0"))
        where = f"message UID {uid} of {folder}"
        try:
            client = Mailbox(self.channel).connect()
        except (imaplib.IMAP4.error, OSError) as exc:
            raise InvalidRequest(f"{where} could not be fetched again: {exc}") from exc
        try:
            selected = client.select_folder(folder, readonly=True)
            if str(selected[b"UIDVALIDITY"]) != headers.get("uidvalidity"):
                raise InvalidRequest(f"{where}: the folder was renumbered since (UIDVALIDITY changed)")
            found = fetch_messages(client, [uid]).get(uid)
        except (imaplib.IMAP4.error, OSError) as exc:
            raise InvalidRequest(
                f"the mail server could not return {where} ({headers.get('fetch_error', '')}); "
                f"fetching it again failed too: {exc}"
            ) from exc
        finally:
            with contextlib.suppress(Exception):
                client.logout()
        if found is None:
            raise InvalidRequest(f"{where} is no longer in the mailbox")
        return found

    def _inbound(self, mail: ParsedMail) -> InboundMessage:
        own = self.own_addresses()
        replies_to = [a for a in mail.reply_to if a not in own]
        address = replies_to[0] if len(replies_to) == 1 else mail.from_address
        if not address:
            raise InvalidRequest("the message names no sender (no From, Sender or Reply-To address)")
        auto_reply = mail.auto_reply or mail.from_address in own
        metadata: dict[str, Any] = {
            "subject": mail.subject,
            "message_id": mail.message_id,
            "email": {
                "from": mail.from_address,
                "to": mail.to,
                "cc": mail.cc,
                "in_reply_to": mail.in_reply_to,
                "references": mail.references[-20:],
                **({"date": mail.date.isoformat()} if mail.date else {}),
            },
        }
        if " ".join(mail.text.split()) != " ".join(mail.full_text.split()):
            metadata["quoted_text"] = mail.full_text[:MAX_QUOTED_CHARS]
        if mail.html:
            # Compared as shown (sanitised, whitespace aside): the quote parser re-serialises
            # HTML, so a mail without any quote differs from its original only in form.
            whole = sanitize_html(block_remote_images(mail.full_html[:MAX_QUOTED_CHARS]))
            shown = sanitize_html(block_remote_images(mail.html))
            if " ".join(shown.split()) != " ".join(whole.split()):
                metadata["quoted_html"] = whole
        if mail.signature:
            metadata["signature"] = mail.signature[:2000]
        if auto_reply:
            metadata["auto_reason"] = mail.auto_reason or "sent by one of our own addresses"
        if mail.omitted:
            metadata["omitted_attachments"] = mail.omitted
        limits = self._limits_note(mail)
        if limits:
            metadata["mail_limits"] = limits
        if mail.defects:
            metadata["mime_defects"] = mail.defects
        token = self._token(mail) or self._subject_token(mail)
        related = self._related_conversation(token, address) if token and not auto_reply else None
        if related is not None:
            metadata["related_conversation"] = related
        text = mail.text
        if not text.strip() and not mail.html.strip() and not mail.attachments:
            text = mail.subject
        return InboundMessage(
            provider_id=mail.message_id[:255] or f"sha256:{mail.content_hash}",
            content_digest=dedupe.content_digest(mail),
            address=address,
            name=mail.from_name if address == mail.from_address else "",
            text=text,
            html=block_remote_images(mail.html) if mail.html else "",
            sent_at=mail.date,
            attachments=tuple(
                InboundAttachment(
                    filename=a.filename,
                    content_type=a.content_type,
                    content=a.content,
                    content_id=a.content_id,
                    inline=a.inline,
                )
                for a in mail.attachments
            ),
            replies_to=mail.thread_ids,
            conversation_token=token,
            auto_reply=auto_reply,
            metadata=metadata,
        )

    @staticmethod
    def _limits_note(mail: ParsedMail) -> dict[str, Any]:
        """What the mail limits left out, for the note under the message (docs/security.md)."""
        note: dict[str, Any] = {}
        if mail.not_kept:
            note |= {
                "attachments_not_kept": len(mail.not_kept),
                "names": mail.not_kept[:MAX_NAMES_LISTED],
                "max_attachments": settings.PARLEY_MAIL_MAX_ATTACHMENTS,
                "max_attachments_bytes": settings.PARLEY_MAIL_MAX_ATTACHMENTS_BYTES,
            }
        if mail.parts_not_read:
            note |= {"parts_not_read": mail.parts_not_read, "max_parts": settings.PARLEY_MAIL_MAX_PARTS}
        if mail.truncated_from:
            note |= {"truncated_from": mail.truncated_from, "max_bytes": settings.PARLEY_MAIL_MAX_BYTES}
        if note:
            logger.info(
                "mail %s exceeded the mail limits: %s", mail.message_id, {k: v for k, v in note.items() if k != "names"}
            )
        return note

    def _token(self, mail: ParsedMail) -> str:
        local, domain = split_address(self.address)
        pattern = re.compile(rf"^{re.escape(local)}\+(c\d+)@{re.escape(domain)}$")
        for recipient in mail.all_recipients:
            match = pattern.match(recipient)
            if match:
                return match.group(1)
        return ""

    def _subject_token(self, mail: ParsedMail) -> str:
        """The token in the subject, when the threading headers name nothing we know.

        In-Reply-To/References come first (docs/connectors/email.md, "Threading"); the subject is
        the fallback for clients that strip them. The core only ever honours a token among the
        sender's own conversations, so a token typed into a stranger's subject joins nothing.
        """
        match = SUBJECT_TOKEN_RE.search(mail.subject)
        if match is None:
            return ""
        if mail.thread_ids and Message.objects.filter(channel=self.channel, provider_id__in=mail.thread_ids).exists():
            return ""
        return match.group(1)

    def _related_conversation(self, token: str, address: str) -> int | None:
        """The conversation a token names when the sender is NOT its customer (a colleague, say).

        Such a sender is their own customer with their own thread (one person, one thread; a reply
        to them goes to them), and the message records the conversation it answered so operators
        can follow it both ways: :mod:`connectors.email.receivers` notes it in that conversation.
        The same customer writing from another of their known addresses simply joins it.
        """

        digits = token[1:]
        if not digits.isdigit():
            return None
        owner = Conversation.objects.filter(pk=int(digits)).values_list("customer_id", flat=True).first()
        if owner is None or not Message.objects.filter(conversation_id=int(digits), channel=self.channel).exists():
            return None  # not a conversation this mailbox ever wrote in
        try:
            value = normalise_address(self.identity_kind, address)
        except InvalidAddress:
            return None
        if Identity.objects.filter(customer_id=owner, kind=self.identity_kind, value=value).exists():
            return None
        return int(digits)

    def _bounce_update(self, mail: ParsedMail) -> StatusUpdate | None:
        """Which of our messages bounced: VERP address first, then the returned Message-ID."""
        assert mail.bounce is not None  # noqa: S101
        ours = Message.objects.filter(channel=self.channel, direction=Message.Direction.OUTBOUND).exclude(
            provider_id=""
        )
        candidates: list[str] = []
        local, domain = split_address(self.address)
        verp = re.compile(rf"^(?:{re.escape(local)}\+b|bounces\+)([0-9a-f-]{{32,36}})@{re.escape(domain)}$")
        for recipient in mail.all_recipients:
            match = verp.match(recipient)
            if match:
                try:
                    public_id = uuid.UUID(match.group(1))
                except ValueError:
                    continue
                found = ours.filter(public_id=public_id).values_list("provider_id", flat=True).first()
                if found:
                    candidates.append(found)
        if mail.bounce.original_message_id:
            candidates.append(mail.bounce.original_message_id)
        candidates.extend(mail.thread_ids)
        for provider_id in candidates:
            if ours.filter(provider_id=provider_id).exists():
                return StatusUpdate(provider_id=provider_id, status="failed", reason=mail.bounce.reason[:500])
        return None

    # -- outbound --------------------------------------------------------------------------

    def send(self, message: Message, address: str) -> SendResult:
        mail = outbound.compose(self, message, address)
        outbound.submit(self, mail, envelope_from=self.bounce_address(message), to=[address])
        self._sent_copy = mail
        return SendResult(provider_id=outbound.provider_id(mail))

    def check(self) -> list[CheckResult]:
        """Log in to the IMAP server (when the channel polls one) and to the SMTP server; send nothing."""
        return [self.check_imap(), outbound.check_smtp(self)]

    def check_imap(self) -> CheckResult:
        if not self.setting("imap_host"):
            return CheckResult("IMAP", True, "not used (mail arrives by an inbound-parse webhook)")
        where = f"{self.setting('imap_host')}:{self.setting('imap_port') or 'default port'}"
        try:
            client = Mailbox(self.channel).connect()
        except Exception as exc:  # IMAPClient's LoginError, sockets, TLS, a refused OAuth grant
            return CheckResult("IMAP", False, f"{where} refused us or did not answer: {type(exc).__name__}: {exc}")
        with contextlib.suppress(Exception):
            client.logout()
        return CheckResult("IMAP", True, f"{where} took the login")

    def sent(self, message: Message) -> None:
        """With ``sent_folder`` set, keep a copy in that IMAP folder, as a mail client would."""
        folder = self.setting("sent_folder")
        mail = getattr(self, "_sent_copy", None)
        if not folder or mail is None or not self.setting("imap_host"):
            return

        client = Mailbox(self.channel).connect()
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, mail.as_bytes(), flags=[b"\\Seen"])
        finally:
            client.logout()


def block_remote_images(html: str) -> str:
    """Drop remote images (tracking pixels, surprise downloads); inline ``cid:`` and data images stay."""
    import nh3

    def keep(element: str, attribute: str, value: str) -> str | None:
        if element == "img" and attribute == "src":
            return value if value.lower().startswith(("cid:", "data:image/")) else None
        return value

    return str(
        nh3.clean(
            html,
            tags=nh3.ALLOWED_TAGS | {"img", "div", "span", "table", "tbody", "thead", "tr", "td", "th"},
            attributes={**nh3.ALLOWED_ATTRIBUTES, "img": {"src", "alt", "width", "height"}},
            attribute_filter=keep,
            url_schemes={"http", "https", "mailto", "cid", "data"},
        )
    )
