"""Writing and submitting our mail: threading headers, display names, alternatives, SMTP errors."""

from __future__ import annotations

import html
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from typing import TYPE_CHECKING

from django.utils import timezone

from connectors.email import oauth
from connectors.email.parsing import message_ids, sanitise_header_value
from inbox.models import Message
from inbox.transport import CheckResult, ConfigurationError, ConnectorError, PermanentError, TransientError

if TYPE_CHECKING:
    from connectors.email.connector import EmailConnector

# RFC 5322 §3.6.4: when References grows long keep the first id and the most recent ones.
MAX_REFERENCES = 20
SMTP_TIMEOUT = 30.0
URL_RE = re.compile(r"(https?://[^\s<>\"']+)")


def provider_id(mail: EmailMessage) -> str:
    return message_ids(str(mail["Message-ID"]))[0]


def _thread(message: Message) -> tuple[str, list[str], str]:
    """(In-Reply-To, References, subject) from the conversation's earlier email messages."""
    earlier = list(
        Message.objects.filter(conversation_id=message.conversation_id, channel__medium="email", kind="message")
        .exclude(provider_id="")
        .exclude(pk=message.pk)
        .filter(created_at__lte=message.created_at)
        .order_by("created_at", "pk")
        .only("provider_id", "direction", "metadata")
    )
    if not earlier:
        return "", [], ""
    inbound = [m for m in earlier if m.direction == Message.Direction.INBOUND]
    parent = inbound[-1] if inbound else earlier[-1]
    email_meta = parent.metadata.get("email", {}) if isinstance(parent.metadata, dict) else {}
    references = [str(r) for r in email_meta.get("references", [])] if isinstance(email_meta, dict) else []
    if not references:
        references = [m.provider_id for m in earlier if m.provider_id != parent.provider_id]
    chain = list(dict.fromkeys([*references, parent.provider_id]))
    if len(chain) > MAX_REFERENCES:
        chain = [chain[0], *chain[-(MAX_REFERENCES - 1) :]]
    subject = next((str(m.metadata.get("subject", "")) for m in reversed(inbound) if m.metadata.get("subject")), "")
    return parent.provider_id, chain, subject


def reply_subject(subject: str) -> str:
    subject = sanitise_header_value(subject)
    if not subject:
        return ""
    return subject if re.match(r"^(re|aw|sv|antw|odp|r)\s*:", subject, flags=re.IGNORECASE) else f"Re: {subject}"


def with_token(subject: str, conversation_id: int) -> str:
    """The subject with our conversation token at its end (once), within the header's length."""
    from connectors.email.connector import (  # a true cycle: the connector sends through here
        SUBJECT_TOKEN_RE,
        subject_token,
    )

    token = subject_token(conversation_id)
    if token in subject:
        return subject[:250]
    subject = SUBJECT_TOKEN_RE.sub("", subject).strip()  # another conversation's token (a merge)
    return f"{subject[: 249 - len(token)]} {token}".strip()


def text_to_html(text: str) -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    rendered = []
    for paragraph in paragraphs:
        escaped = html.escape(paragraph)
        escaped = URL_RE.sub(lambda m: f'<a href="{m.group(1)}">{m.group(1)}</a>', escaped)
        rendered.append("<p>" + escaped.replace("\n", "<br>\n") + "</p>")
    return '<!doctype html><html><body style="font-family: sans-serif">\n' + "\n".join(rendered) + "\n</body></html>\n"


def compose(connector: EmailConnector, message: Message, address: str) -> EmailMessage:
    """The MIME message for one outbound :class:`Message` (deterministic Message-ID per message)."""
    channel = connector.channel
    own = connector.address
    _, _, domain = own.rpartition("@")
    mail = EmailMessage(policy=SMTP)
    from_name = connector.setting("from_name") or channel.name
    display = f"{message.author.label} ({from_name})" if message.author is not None else from_name
    mail["From"] = formataddr((sanitise_header_value(display), own))
    mail["To"] = address
    mail["Reply-To"] = formataddr((sanitise_header_value(from_name), connector.reply_address(message.conversation_id)))
    mail["Date"] = format_datetime(timezone.now())
    mail["Message-ID"] = f"<{message.public_id.hex}@{domain}>"
    in_reply_to, references, subject = _thread(message)
    if in_reply_to:
        mail["In-Reply-To"] = f"<{in_reply_to}>"
        mail["References"] = " ".join(f"<{r}>" for r in references)
    # A message may name its own subject (a website chat's reply by email) when the thread has none.
    subject = reply_subject(subject) or sanitise_header_value(
        str(message.metadata.get("subject") or "") or message.conversation.subject or from_name
    )
    mail["Subject"] = with_token(subject, message.conversation_id)
    if message.sender in (Message.Sender.BOT, Message.Sender.SYSTEM):
        # RFC 3834: machines write; their mail must not start an auto-reply loop.
        mail["Auto-Submitted"] = "auto-generated"
        mail["X-Auto-Response-Suppress"] = "All"
    mail["X-Parley-Conversation"] = str(message.conversation_id)
    mail.set_content(message.text or "")
    mail.add_alternative(message.html or text_to_html(message.text or ""), subtype="html")
    for attachment in message.attachments.all():
        with attachment.file.open("rb") as handle:
            content = handle.read()
        maintype, _, subtype = (attachment.content_type or "application/octet-stream").partition("/")
        mail.add_attachment(content, maintype=maintype, subtype=subtype or "octet-stream", filename=attachment.filename)
    return mail


def submit(connector: EmailConnector, mail: EmailMessage, *, envelope_from: str, to: list[str]) -> None:
    """Hand the message to the channel's SMTP server; 4xx and network trouble are transient."""
    host = connector.setting("smtp_host")
    if not host:
        raise ConfigurationError("smtp_host is not set")
    tls = connector.setting("smtp_tls", "starttls") or "starttls"
    default_port = {"ssl": 465, "starttls": 587}.get(tls, 25)
    port = int(connector.setting("smtp_port") or default_port)
    user = connector.setting("smtp_user")
    password = connector.setting("smtp_password")
    context = connector.tls_context() if tls != "none" else None
    try:
        client: smtplib.SMTP
        if tls == "ssl":
            client = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT)
        with client:
            client.ehlo()
            if tls == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if oauth.uses_oauth(connector):
                _log_in_xoauth2(connector, client, user or connector.address)
            elif user:
                client.login(user, password)
            refused = client.send_message(mail, from_addr=envelope_from, to_addrs=to)
    except smtplib.SMTPRecipientsRefused as exc:
        code, reason = next(iter(exc.recipients.values()))
        raise _error(code, reason, "refused the recipient") from exc
    except smtplib.SMTPAuthenticationError as exc:
        raise PermanentError(
            f"The mail server refused our login: {_text(exc.smtp_error)}", code=str(exc.smtp_code)
        ) from exc
    except smtplib.SMTPResponseException as exc:
        raise _error(exc.smtp_code, exc.smtp_error, "refused the message") from exc
    except ssl.SSLCertVerificationError as exc:
        raise PermanentError(f"The mail server's TLS certificate is not valid: {exc.verify_message}") from exc
    except smtplib.SMTPNotSupportedError as exc:
        raise PermanentError(f"The mail server does not support what this channel asks for: {exc}") from exc
    except (TimeoutError, smtplib.SMTPException, OSError) as exc:
        raise TransientError(f"Could not reach the mail server {host}:{port}: {exc}") from exc
    if refused:
        code, reason = next(iter(refused.values()))
        raise _error(code, reason, "refused the recipient")


def check_smtp(connector: EmailConnector) -> CheckResult:
    """Connect, EHLO, STARTTLS and log in as :func:`submit` does, then QUIT: nothing is sent."""
    host = connector.setting("smtp_host")
    if not host:
        return CheckResult("SMTP", False, "smtp_host is not set")
    tls = connector.setting("smtp_tls", "starttls") or "starttls"
    port = int(connector.setting("smtp_port") or {"ssl": 465, "starttls": 587}.get(tls, 25))
    user = connector.setting("smtp_user")
    try:
        context = connector.tls_context() if tls != "none" else None
        client: smtplib.SMTP
        if tls == "ssl":
            client = smtplib.SMTP_SSL(host, port, timeout=SMTP_TIMEOUT, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT)
        with client:
            client.ehlo()
            if tls == "starttls":
                client.starttls(context=context)
                client.ehlo()
            if oauth.uses_oauth(connector):
                _log_in_xoauth2(connector, client, user or connector.address)
            elif user:
                client.login(user, connector.setting("smtp_password"))
    except smtplib.SMTPAuthenticationError as exc:
        return CheckResult("SMTP", False, f"{host}:{port} refused the login of {user}: {_text(exc.smtp_error)}")
    except ssl.SSLCertVerificationError as exc:
        return CheckResult("SMTP", False, f"{host}:{port} has no valid TLS certificate: {exc.verify_message}")
    except (smtplib.SMTPException, OSError, ConnectorError) as exc:
        return CheckResult("SMTP", False, f"{host}:{port} did not take us ({tls}): {exc}")
    logged_in = " and took the login" if user or oauth.uses_oauth(connector) else ""
    return CheckResult("SMTP", True, f"{host}:{port} answered EHLO ({tls}){logged_in}")


def _log_in_xoauth2(connector: EmailConnector, client: smtplib.SMTP, user: str) -> None:
    """SASL XOAUTH2 with the channel's access token (RFC 4954 initial response).

    A server that refuses the token first sends a challenge carrying its error (Gmail, Microsoft):
    the answer to it is an empty line, after which the server says 535 (``SMTPAuthenticationError``).
    """
    offered = client.esmtp_features.get("auth", "").upper().split()
    if "XOAUTH2" not in offered:
        raise smtplib.SMTPNotSupportedError(f"AUTH XOAUTH2 is not offered (only: {' '.join(offered) or 'no AUTH'})")

    def attempt(token: str) -> None:
        initial = oauth.xoauth2_string(user, token)
        client.auth("XOAUTH2", lambda challenge=None: initial if challenge is None else "")

    oauth.log_in(connector, attempt, rejected=(smtplib.SMTPAuthenticationError,))


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _error(code: int, reason: bytes | str, what: str) -> PermanentError | TransientError:
    message = f"The mail server {what}: {code} {_text(reason)}"
    if 400 <= code < 500:
        return TransientError(message)
    return PermanentError(message, code=str(code))
