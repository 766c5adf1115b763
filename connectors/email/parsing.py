"""Reading whatever a real mail server delivers: raw RFC 822 bytes in, a :class:`ParsedMail` out.

Pure functions, no database. The rules, in the order a support team feels them:

* Always produce something: the best text and HTML the message has, its attachments, its threading
  ids. Bad charsets are decoded by a fallback chain, broken MIME is read as far as it goes, a
  message with no headers at all is still a message. Only bytes that are not mail at all (empty,
  binary junk) raise :class:`UnreadableMail`.
* Quoted history and signatures are folded away from ``text``/``html`` and kept whole in
  ``full_text``/``full_html`` for "show quoted text".
* Automatic mail (RFC 3834 and the de-facto headers) is flagged; delivery status notifications are
  recognised and read for the failed recipient, the reason and our original Message-ID.
"""

from __future__ import annotations

import email
import email.policy
import functools
import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

logger = logging.getLogger(__name__)

MAX_FILENAME = 150
# The languages whose "On ... wrote:" lines and signatures the reply parser knows to fold away.
REPLY_LANGUAGES = ["en", "de", "fr", "es", "it", "nl", "pl", "pt", "ru", "sv", "cs", "da", "fi", "ja", "ko", "zh"]
SIGNATURE_TYPES = {"application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature"}
AUTO_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
DAEMON_LOCALPARTS = {"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"}
MSGID_RE = re.compile(r"<([^<>\s]+)>")
COMPAT32 = email.policy.compat32


class UnreadableMail(ValueError):
    """The bytes are not an email message that anything can be read from."""


class MailTooDeep(UnreadableMail):
    """The message nests its parts deeper than :attr:`MailLimits.max_depth`: refused, kept raw.

    A real mail nests a handful of levels (a forward of a forward...); thousands are an attack on
    the parser (Python's own recurses per level). The event fails with this reason and can be
    replayed once the limit is raised.
    """


@dataclass(frozen=True)
class MailLimits:
    """What one message may make us read and store (settings ``PARLEY_MAIL_*``, docs/security.md).

    Past a cap the rest is not kept but listed on the message (the raw mail keeps it); the text
    of the message is always kept.
    """

    max_attachment_bytes: int = 20 * 1024 * 1024  # one attachment
    max_parts: int = 500  # MIME parts read
    max_attachments: int = 50  # attachments kept
    max_attachments_bytes: int = 50 * 1024 * 1024  # attachments kept, in all
    max_depth: int = 50  # nesting of multiparts and attached messages

    @classmethod
    def from_settings(cls) -> MailLimits:
        from django.conf import settings

        return cls(
            max_attachment_bytes=settings.PARLEY_MAX_ATTACHMENT_BYTES,
            max_parts=settings.PARLEY_MAIL_MAX_PARTS,
            max_attachments=settings.PARLEY_MAIL_MAX_ATTACHMENTS,
            max_attachments_bytes=settings.PARLEY_MAIL_MAX_ATTACHMENTS_BYTES,
            max_depth=settings.PARLEY_MAIL_MAX_DEPTH,
        )


@dataclass(frozen=True)
class MailAttachment:
    filename: str
    content_type: str
    content: bytes
    content_id: str = ""
    inline: bool = False


@dataclass(frozen=True)
class Bounce:
    """A delivery status notification: which of our messages failed, for whom, and why."""

    original_message_id: str
    recipient: str
    reason: str
    permanent: bool
    action: str = "failed"


@dataclass
class ParsedMail:
    message_id: str = ""
    from_address: str = ""
    from_name: str = ""
    reply_to: list[str] = field(default_factory=list)
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    delivered_to: list[str] = field(default_factory=list)
    subject: str = ""
    date: datetime | None = None
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    text: str = ""
    html: str = ""
    full_text: str = ""
    full_html: str = ""
    signature: str = ""
    attachments: list[MailAttachment] = field(default_factory=list)
    # Attachments not kept, as "name (N bytes)": each larger than the per-attachment cap...
    omitted: list[str] = field(default_factory=list)
    # ...and those past the per-message caps (count, bytes in all).
    not_kept: list[str] = field(default_factory=list)
    attachment_bytes: int = 0
    # MIME parts read, and those past the cap that were not.
    parts_seen: int = 0
    parts_not_read: int = 0
    # Set by the caller when only the start of a too-large message was fetched: its real size.
    truncated_from: int = 0
    auto_reply: bool = False
    auto_reason: str = ""
    bounce: Bounce | None = None
    return_path: str = ""
    defects: list[str] = field(default_factory=list)
    content_hash: str = ""

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Ids this message answers, nearest first, without repeats."""
        seen: dict[str, None] = {}
        for mid in [*self.in_reply_to, *reversed(self.references)]:
            seen.setdefault(mid, None)
        return tuple(seen)

    @property
    def all_recipients(self) -> list[str]:
        return [*self.delivered_to, *self.to, *self.cc]


# -- entry point ----------------------------------------------------------------------------------


def parse_mail(raw: bytes, *, max_attachment_bytes: int | None = None, limits: MailLimits | None = None) -> ParsedMail:
    """Read one raw message. Raises :class:`UnreadableMail` only for bytes that are not mail, and
    :class:`MailTooDeep` for absurd nesting; anything else past ``limits`` is listed, not kept."""
    limits = limits or MailLimits()
    if max_attachment_bytes is not None:
        limits = replace(limits, max_attachment_bytes=max_attachment_bytes)
    if not raw or not raw.strip():
        raise UnreadableMail("the message is empty")
    if b"\x00" in raw[:4096] and not _looks_like_headers(raw):
        raise UnreadableMail("binary data, not an email message")
    # Before the stdlib parser, which recurses once per level (3 000 levels: RecursionError).
    _refuse_deep(nesting_depth(raw, limits.max_depth), limits)
    # compat32: headers stay plain strings, read raw and decoded by us. The "default" policy parses
    # every header through its registry on each access (25 Content-Type parses per message).
    try:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    except RecursionError:
        raise MailTooDeep(
            "the message nests its parts too deep for the mail parser; "
            f"Parley reads at most {limits.max_depth} levels (PARLEY_MAIL_MAX_DEPTH)"
        ) from None
    _refuse_deep(tree_depth(msg, limits.max_depth), limits)  # what the parser really built
    parsed = ParsedMail(content_hash=hashlib.sha256(raw).hexdigest())
    parsed.defects = sorted({type(d).__name__ for d in _all_defects(msg)})
    _read_headers(msg, parsed)
    _read_body(msg, parsed, limits)
    _detect_automatic(msg, parsed)
    read_nonstandard_bounce(raw, parsed)
    if not (parsed.full_text or parsed.full_html or parsed.attachments or parsed.subject or parsed.from_address):
        raise UnreadableMail("no sender, subject, text or attachment could be read")
    _fold_quotes(parsed)
    return parsed


def _refuse_deep(depth: int, limits: MailLimits) -> None:
    if depth > limits.max_depth:
        raise MailTooDeep(
            f"the message nests its parts {depth} or more levels deep; Parley reads at most "
            f"{limits.max_depth} (PARLEY_MAIL_MAX_DEPTH). The raw message is kept: raise the limit "
            "and replay the event to read it."
        )


_LEVEL_RE = re.compile(rb"boundary\s*\*?\d*\*?\s*=|content-type\s*:\s*message/", re.IGNORECASE)
_CONTENT_TYPE_RE = re.compile(rb"^content-type\s*:\s*([^;\s]+)(.*)$", re.IGNORECASE | re.DOTALL)
_BOUNDARY_RE = re.compile(rb'boundary\s*=\s*(?:"([^"]*)"|([^\s;]+))', re.IGNORECASE)


def nesting_depth(raw: bytes, stop_at: int) -> int:
    """How deep multiparts and attached messages nest in ``raw``, read line by line as the parser
    will (counting stops a level past ``stop_at``). Cheap: without more level declarations in the
    bytes than ``stop_at``, nothing can nest deeper, and the lines are not even split."""
    if len(_LEVEL_RE.findall(raw)) <= stop_at:
        return 0
    open_levels: list[bytes | None] = []  # "--boundary" of each open multipart; None: an attached message
    deepest = 0
    in_headers = True
    headers: list[bytes] = []
    for line in raw.splitlines():
        if in_headers:
            if line.strip():
                if line[:1] in (b" ", b"\t") and headers:
                    headers[-1] += b" " + line.strip()
                else:
                    headers.append(line)
                continue
            ctype, boundary = _declared_type(headers)
            headers = []
            in_headers = False
            if ctype.startswith(b"multipart/") and boundary:
                open_levels.append(b"--" + boundary)
            elif ctype.startswith(b"message/") and ctype != b"message/delivery-status":
                open_levels.append(None)
                in_headers = True  # the attached message's own headers come next
            deepest = max(deepest, len(open_levels))
            if deepest > stop_at:
                return deepest
            continue
        if not line.startswith(b"--"):
            continue
        line = line.rstrip()
        for level in range(len(open_levels) - 1, -1, -1):
            delimiter = open_levels[level]
            if delimiter is None:
                continue
            if line == delimiter + b"--":  # the multipart ends, with everything inside it
                del open_levels[level:]
                break
            if line == delimiter:  # its next part begins, with headers
                del open_levels[level + 1 :]
                in_headers = True
                break
    return deepest


def _declared_type(headers: list[bytes]) -> tuple[bytes, bytes]:
    """(content type, boundary) of a header block, lower-cased type; b'' where absent."""
    for header_line in headers:
        match = _CONTENT_TYPE_RE.match(header_line)
        if match:
            boundary = _BOUNDARY_RE.search(match.group(2))
            return match.group(1).lower(), (boundary.group(1) or boundary.group(2)) if boundary else b""
    return b"", b""


def tree_depth(msg: Message, stop_at: int) -> int:
    """How many containers nest in a parsed message (without recursion; stops past ``stop_at``)."""
    deepest = 0
    pending: list[tuple[Message, int]] = [(msg, 0)]
    while pending:
        part, level = pending.pop()
        payload = part.get_payload()
        if isinstance(payload, list):
            deepest = max(deepest, level + 1)
            if deepest > stop_at:
                return deepest
            pending.extend((sub, level + 1) for sub in payload if isinstance(sub, Message))
    return deepest


def _looks_like_headers(raw: bytes) -> bool:
    return re.match(rb"^[!-9;-~]+:", raw) is not None


def _all_defects(msg: Message) -> list[Any]:
    defects: list[Any] = []
    pending = [msg]
    while pending:
        part = pending.pop()
        defects.extend(part.defects)
        if part.is_multipart():
            pending.extend(sub for sub in part.get_payload() if isinstance(sub, Message))
    return defects


# -- headers --------------------------------------------------------------------------------------


def _raw_values(msg: Message, name: str) -> list[str]:
    """A header's raw values, unfolded, without the (slow) header registry parse."""
    wanted = name.lower()
    return [" ".join(str(raw).split()) for key, raw in msg.raw_items() if key.lower() == wanted]


def _decode_words(value: str) -> str:
    """RFC 2047 encoded words decoded; the raw value when they are malformed."""
    if "=?" not in value:
        return value
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, ValueError, UnicodeError):
        return value


def header(msg: Message, name: str) -> str:
    """A header as text (first occurrence); never raises on malformed headers."""
    values = _raw_values(msg, name)
    if not values:
        return ""
    return _fix_c1(" ".join(_decode_words(values[0]).split()))


def _fix_c1(text: str) -> str:
    """Headers labelled ISO-8859-1 that are really windows-1252 decode to C1 controls: map them back."""
    if not any("\x80" <= ch <= "\x9f" for ch in text):
        return text
    return "".join(bytes([ord(ch)]).decode("cp1252", errors="replace") if "\x80" <= ch <= "\x9f" else ch for ch in text)


def message_ids(value: str) -> list[str]:
    """Message-IDs in a header, without angle brackets; tolerant of ids written without them."""
    ids = MSGID_RE.findall(value)
    if not ids and value.strip() and "@" in value:
        ids = [token.strip("<>,;") for token in value.split() if "@" in token]
    return [mid for mid in ids if mid]


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs of an address header; tolerant of junk."""
    pairs = getaddresses(_raw_values(msg, name))
    return [
        (_fix_c1(_decode_words(n).strip()), a.strip().lower())
        for n, a in pairs
        if a and "@" in a and " " not in a.strip()
    ]


def _read_headers(msg: Message, parsed: ParsedMail) -> None:
    ids = message_ids(header(msg, "Message-ID"))
    parsed.message_id = ids[0] if ids else ""
    senders = _addresses(msg, "From") or _addresses(msg, "Sender")
    if senders:
        parsed.from_name, parsed.from_address = senders[0]
    parsed.reply_to = [a for _, a in _addresses(msg, "Reply-To")]
    parsed.to = [a for _, a in _addresses(msg, "To")]
    parsed.cc = [a for _, a in _addresses(msg, "Cc")]
    parsed.delivered_to = [
        a for name in ("Delivered-To", "X-Original-To", "Envelope-To") for _, a in _addresses(msg, name)
    ]
    parsed.subject = header(msg, "Subject")[:998]
    parsed.in_reply_to = message_ids(header(msg, "In-Reply-To"))
    parsed.references = message_ids(header(msg, "References"))
    parsed.return_path = header(msg, "Return-Path")
    if not parsed.from_address:
        # No From (a bare body handed to the MTA): the envelope sender the server recorded is the sender.
        envelope = [a for _, a in _addresses(msg, "Return-Path")]
        parsed.from_address = envelope[0] if envelope else ""
    date = header(msg, "Date")
    if date:
        try:
            parsed.date = parsedate_to_datetime(date)
        except (TypeError, ValueError, IndexError):
            parsed.date = None
        if parsed.date is not None and parsed.date.tzinfo is None:
            parsed.date = None


# -- charsets -------------------------------------------------------------------------------------


def decode_bytes(data: bytes, declared: str | None) -> str:
    """Text from bytes whatever the label says: declared → UTF-8 → a guess → windows-1252."""
    charset = (declared or "").strip().strip('"').lower()
    if charset in {"iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii", "iso_8859-1"}:
        # Mislabelled windows-1252 is the norm (curly quotes, euro sign); it is a superset anyway.
        charset = "cp1252"
    if charset and charset not in {"unknown-8bit", "x-unknown", "8bit", "default", "unknown"}:
        try:
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if len(data) < 200:
        # Too little text for a statistical guess (it would read "Grüße" as Arabic): Western default.
        return data.decode("cp1252", errors="replace")
    try:
        from charset_normalizer import from_bytes

        best = from_bytes(data[:65536]).best()
        if best is not None:
            return data.decode(best.encoding, errors="replace")
    except Exception:  # noqa: S110 - the guess is optional; windows-1252 below never fails
        pass
    return data.decode("cp1252", errors="replace")


def payload_bytes(part: Message) -> bytes:
    """A leaf part's decoded bytes (transfer encoding undone); b'' when there are none."""
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return b""
    return payload if isinstance(payload, bytes) else b""


def _part_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    return decode_bytes(payload, part.get_content_charset())


# -- body and attachments -------------------------------------------------------------------------


def _read_body(msg: Message, parsed: ParsedMail, limits: MailLimits) -> None:
    texts: list[str] = []
    htmls: list[str] = []
    _walk(msg, parsed, texts, htmls, limits, depth=0)
    parsed.full_text = "\n\n".join(t.strip("\n") for t in texts if t.strip()).strip()
    parsed.full_html = "\n".join(h for h in htmls if h.strip())
    referenced = set(re.findall(r"cid:([^\"'\s>)]+)", parsed.full_html, flags=re.IGNORECASE))
    if referenced:
        parsed.attachments = [
            MailAttachment(a.filename, a.content_type, a.content, a.content_id, inline=True)
            if a.content_id and a.content_id in referenced
            else a
            for a in parsed.attachments
        ]
    if not parsed.full_text and parsed.full_html:
        parsed.full_text = html_to_text(parsed.full_html)


def _walk(
    part: Message, parsed: ParsedMail, texts: list[str], htmls: list[str], limits: MailLimits, depth: int
) -> None:
    ctype = part.get_content_type()
    parsed.parts_seen += 1
    if depth > limits.max_depth:  # only a salvaged piece gets here: deeper mail was refused
        parsed.parts_not_read += 1
        return
    if parsed.parts_seen > limits.max_parts and not (
        ctype.startswith("multipart/") or _first_body_text(part, ctype, texts, htmls)
    ):
        # Past the cap only the message's text is still read (its first plain and HTML bodies).
        parsed.parts_not_read += 1
        return
    if ctype == "message/rfc822" or ctype == "text/rfc822-headers":
        _attach_message(part, parsed, texts, limits)
        return
    if ctype.startswith("multipart/") and not part.is_multipart():
        _salvage(part, parsed, texts, htmls, limits, depth)
        return
    if part.is_multipart():
        children = [p for p in part.get_payload() if isinstance(p, Message)]
        if ctype == "multipart/alternative":
            plain = next((c for c in children if c.get_content_type() == "text/plain"), None)
            rich = _best_alternative(children)
            if plain is not None and plain is not rich:
                texts.append(_part_text(plain))
            for child in children:
                if child is rich:
                    _walk(child, parsed, texts, htmls, limits, depth + 1)
                elif child is not plain and child.is_multipart():
                    _attachments_only(child, parsed, limits)
            return
        if ctype == "multipart/report":
            _read_report(children, parsed)
        for child in children:
            _walk(child, parsed, texts, htmls, limits, depth + 1)
        return
    if ctype in SIGNATURE_TYPES:
        return
    if ctype in {"message/delivery-status", "message/disposition-notification"} and parsed.bounce is not None:
        return
    if ctype in {"application/ms-tnef", "application/vnd.ms-tnef"} or _filename(part).lower() == "winmail.dat":
        _read_tnef(part, parsed, texts, htmls, limits)
        return
    disposition = part.get_content_disposition()
    filename = _filename(part)
    if ctype in {"text/plain", "text/html"} and disposition != "attachment" and not filename:
        body = _part_text(part)
        (htmls if ctype == "text/html" else texts).append(body)
        return
    if ctype.startswith("text/") and disposition != "attachment" and not filename and not part.get("Content-ID"):
        texts.append(_part_text(part))
        return
    _add_attachment(part, parsed, limits)


def _first_body_text(part: Message, ctype: str, texts: list[str], htmls: list[str]) -> bool:
    """A plain or HTML body (not an attached file) of a kind the message has no text of yet."""
    if ctype not in {"text/plain", "text/html"} or part.get_content_disposition() == "attachment" or _filename(part):
        return False
    return not (htmls if ctype == "text/html" else texts)


def _attachments_only(part: Message, parsed: ParsedMail, limits: MailLimits) -> None:
    for sub in part.walk():
        if sub.is_multipart():
            continue
        parsed.parts_seen += 1
        if parsed.parts_seen > limits.max_parts:
            parsed.parts_not_read += 1
            continue
        if sub.get_content_disposition() == "attachment" or sub.get("Content-ID"):
            _add_attachment(sub, parsed, limits)


def _salvage(
    part: Message, parsed: ParsedMail, texts: list[str], htmls: list[str], limits: MailLimits, depth: int
) -> None:
    """A multipart whose boundary never shows up: split on any boundary-looking line and read each piece."""
    raw = part.get_payload()
    body = raw if isinstance(raw, str) else ""
    pieces = [p.strip("\r\n") for p in re.split(r"(?m)^--[^\s]{1,70}(?:--)?[ \t]*\r?$", body)]
    for piece in pieces:
        if not piece.strip():
            continue
        if re.match(r"^[A-Za-z][A-Za-z0-9-]*:", piece):
            # A piece is parsed on its own: the nesting inside it was not counted with the mail's.
            room = limits.max_depth - depth - 1
            data = piece.encode("utf-8", "surrogateescape")
            try:
                sub = None if nesting_depth(data, room) > room else email.message_from_string(piece, policy=COMPAT32)
            except RecursionError:
                sub = None
            if sub is None or tree_depth(sub, room) > room:
                parsed.parts_not_read += 1
                continue
            _walk(sub, parsed, texts, htmls, limits, depth + 1)
        else:
            texts.append(piece)


def _best_alternative(children: list[Message]) -> Message | None:
    """The richest alternative we read: the last one we understand (RFC 2046 orders by fidelity)."""

    def rank(child: Message) -> int:
        ctype = child.get_content_type()
        if child.is_multipart():
            return 3 if any(p.get_content_type() == "text/html" for p in child.walk()) else 1
        return {"text/html": 2, "text/plain": 1}.get(ctype, 0)

    understood = [c for c in children if rank(c)]
    if not understood:
        return children[-1] if children else None
    best = max(rank(c) for c in understood)
    chosen = [c for c in understood if rank(c) == best][-1]
    return chosen


def _filename(part: Message) -> str:
    try:
        name = _decode_words(part.get_filename() or "")
    except Exception:
        name = ""
    return str(name)


def safe_filename(name: str, fallback: str = "attachment") -> str:
    """A file name without paths, control characters or leading dots, at most 150 characters."""
    name = unicodedata.normalize("NFC", name)
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().lstrip(".")
    if not name:
        return fallback
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: MAX_FILENAME - len(ext) - 1] + dot + ext) if dot and len(ext) < 10 else name[:MAX_FILENAME]
    return name


_EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "application/pdf": ".pdf",
    "text/calendar": ".ics",
    "message/rfc822": ".eml",
    "text/plain": ".txt",
    "text/html": ".html",
}


def _add_attachment(part: Message, parsed: ParsedMail, limits: MailLimits) -> None:
    ctype = part.get_content_type()
    try:
        content = part.get_payload(decode=True)
    except Exception:
        content = None
    if not isinstance(content, bytes):
        content = str(part.get_payload()).encode("utf-8", errors="replace")
    name = safe_filename(_filename(part), fallback="")
    if not name:
        name = "attachment" + _EXTENSIONS.get(ctype, ".bin")
    cid = message_ids(header(part, "Content-ID"))
    content_id = cid[0] if cid else header(part, "Content-ID").strip("<> ")
    inline = bool(content_id) and part.get_content_disposition() != "attachment"
    _keep(parsed, MailAttachment(name, ctype, content, content_id, inline=inline), limits)


def _keep(parsed: ParsedMail, attachment: MailAttachment, limits: MailLimits) -> bool:
    """Keep an attachment unless it is past a cap; a file not kept is named in ``omitted`` (too
    large itself) or ``not_kept`` (past the message's count or bytes in all). True when kept."""
    size = len(attachment.content)
    label = f"{attachment.filename} ({size} bytes)"
    if size > limits.max_attachment_bytes:
        parsed.omitted.append(label)
        return False
    if (
        len(parsed.attachments) >= limits.max_attachments
        or parsed.attachment_bytes + size > limits.max_attachments_bytes
    ):
        parsed.not_kept.append(label)
        return False
    parsed.attachments.append(attachment)
    parsed.attachment_bytes += size
    return True


def _attach_message(part: Message, parsed: ParsedMail, texts: list[str], limits: MailLimits) -> None:
    """A forwarded message (or the headers of one we sent, in a bounce) becomes an .eml attachment."""
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if isinstance(inner, Message):
        content = inner.as_bytes(policy=email.policy.default.clone(linesep="\r\n"))
        subject = header(inner, "Subject")
    else:
        content = payload_bytes(part)
        subject = ""
    name = safe_filename(_filename(part) or (subject + ".eml" if subject else ""), fallback="forwarded.eml")
    if not name.lower().endswith(".eml"):
        name += ".eml"
    _keep(parsed, MailAttachment(name, "message/rfc822", content), limits)
    if isinstance(inner, Message) and not any(t.strip() for t in texts):
        # A forward with no words of its own shows the forwarded text (Outlook "forward as attachment").
        inner_texts: list[str] = []
        _walk_text_only(inner, inner_texts)
        forwarded = "\n\n".join(inner_texts).strip()
        if forwarded:
            texts.append(
                f"---------- Forwarded message ----------\nFrom: {header(inner, 'From')}\n"
                f"Subject: {subject}\n\n{forwarded}"
            )


def _walk_text_only(part: Message, texts: list[str]) -> None:
    """The text of a forwarded message: its first plain part, else its first HTML part as text."""
    leaves = [p for p in part.walk() if not p.is_multipart() and p.get_content_disposition() != "attachment"]
    for wanted in ("text/plain", "text/html"):
        body = next((p for p in leaves if p.get_content_type() == wanted), None)
        if body is not None:
            text = _part_text(body)
            texts.append(html_to_text(text) if wanted == "text/html" else text)
            return


def _read_tnef(part: Message, parsed: ParsedMail, texts: list[str], htmls: list[str], limits: MailLimits) -> None:
    """Outlook's winmail.dat: unpack the files and the body it hides; keep it whole if it is broken."""
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return
    try:
        from tnefparse import TNEF  # type: ignore[import-untyped]

        tnef = TNEF(data, do_checksum=False)
        files = [(a.long_filename() or a.name, a.data) for a in tnef.attachments if a.data]
        body = tnef.body
        html = tnef.htmlbody
    except Exception as exc:
        logger.info("could not unpack a TNEF attachment: %s", exc)
        _add_attachment(part, parsed, limits)
        return
    for name, content in files:
        filename = safe_filename(name.decode("cp1252", "replace") if isinstance(name, bytes) else str(name))
        _keep(parsed, MailAttachment(filename, _guess_type(filename), bytes(content)), limits)
    if body and not any(t.strip() for t in texts):
        texts.append((decode_bytes(body, None) if isinstance(body, bytes) else str(body)).strip("\x00"))
    if html and not htmls:
        htmls.append(decode_bytes(html, None) if isinstance(html, bytes) else str(html))


def _guess_type(filename: str) -> str:
    import mimetypes

    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def html_to_text(html: str) -> str:
    """A readable plain-text rendering of an HTML body (for previews, search and notifications)."""
    import html2text

    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.ignore_links = False
    converter.protect_links = True
    try:
        return str(converter.handle(html)).strip()
    except Exception:
        return re.sub(r"<[^>]+>", " ", html).strip()


# -- automatic mail and bounces -------------------------------------------------------------------


def _detect_automatic(msg: Message, parsed: ParsedMail) -> None:
    reason = automatic_reason(msg, parsed)
    if reason:
        parsed.auto_reply = True
        parsed.auto_reason = reason


def automatic_reason(msg: Message, parsed: ParsedMail) -> str:
    """Why this mail was written by a machine (RFC 3834 and de-facto headers), or '' for a person."""
    auto_submitted = header(msg, "Auto-Submitted").lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return f"Auto-Submitted: {auto_submitted}"
    if parsed.return_path.strip() == "<>":
        return "empty envelope sender"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autogenerated", "X-AutoReply-From", "X-Mail-Autoreply"):
        if name in msg:
            return name
    suppress = header(msg, "X-Auto-Response-Suppress").lower()
    if any(word in suppress for word in ("all", "autoreply", "oof")):
        return f"X-Auto-Response-Suppress: {suppress}"
    precedence = header(msg, "Precedence").lower()
    if precedence in AUTO_PRECEDENCE:
        return f"Precedence: {precedence}"
    for name in ("List-Id", "List-Unsubscribe", "List-Post"):
        if name in msg:
            return f"mailing list ({name})"
    if parsed.from_address.split("@")[0] in DAEMON_LOCALPARTS:
        return "sent by a mail server"
    if msg.get_content_type() == "multipart/report":
        return "delivery or read report"
    if parsed.bounce is not None:
        return "delivery status notification"
    return ""


def _read_report(children: list[Message], parsed: ParsedMail) -> None:
    """RFC 3464: the delivery-status part says who failed and why; the returned part says which mail."""
    status_part = next((c for c in children if c.get_content_type() == "message/delivery-status"), None)
    if status_part is None:
        return
    fields = _status_fields(status_part)
    original = ""
    for child in children:
        ctype = child.get_content_type()
        if ctype == "message/rfc822":
            inner = child.get_payload()
            inner_msg = inner[0] if isinstance(inner, list) and inner else None
            if isinstance(inner_msg, Message):
                ids = message_ids(header(inner_msg, "Message-ID"))
                original = ids[0] if ids else ""
        elif ctype == "text/rfc822-headers":
            headers = email.message_from_bytes(payload_bytes(child), policy=email.policy.compat32)
            ids = message_ids(header(headers, "Message-ID"))
            original = ids[0] if ids else ""
    recipients = [f for f in fields if f.get("action")]
    if not recipients:
        return
    failed = [f for f in recipients if f.get("action") == "failed"] or recipients
    first = failed[0]
    recipient = first.get("final-recipient", first.get("original-recipient", "")).split(";")[-1].strip()
    status = first.get("status", "")
    diagnostic = first.get("diagnostic-code", "").split(";", 1)[-1].strip()
    reason = diagnostic or (f"status {status}" if status else "the receiving server refused it")
    parsed.bounce = Bounce(
        original_message_id=original,
        recipient=recipient,
        reason=f"Not delivered to {recipient}: {reason}" if recipient else f"Not delivered: {reason}",
        permanent=status.startswith("5") or first.get("action") == "failed",
        action=first.get("action", "failed"),
    )


def _status_fields(part: Message) -> list[dict[str, str]]:
    """The per-message and per-recipient field groups of a message/delivery-status part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        # The stdlib parses each group as a headers-only Message.
        groups = [
            {k.lower(): " ".join(str(v).split()) for k, v in p.items()} for p in payload if isinstance(p, Message)
        ]
        return groups
    text = decode_bytes(payload_bytes(part), "utf-8")
    groups = []
    for block in re.split(r"\r?\n\s*\r?\n", text):
        fields: dict[str, str] = {}
        for line in re.sub(r"\r?\n[ \t]+", " ", block).splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key.strip().lower()] = value.strip()
        if fields:
            groups.append(fields)
    return groups


def flufl_failures(raw_msg: Message) -> tuple[set[str], set[str]]:
    """Mailman's bounce detectors, for the many non-standard bounces (temporary, permanent)."""
    try:
        from flufl.bounce import all_failures

        temporary, permanent = all_failures(raw_msg)
    except Exception:
        return set(), set()

    def text(values: Any) -> set[str]:
        return {v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values}

    return text(temporary), text(permanent)


def read_nonstandard_bounce(raw: bytes, parsed: ParsedMail) -> None:
    """A bounce without a delivery-status part (qmail, old Exim, Yahoo...): find who and which mail."""
    if parsed.bounce is not None or not parsed.auto_reply:
        return
    if parsed.from_address.split("@")[0] not in DAEMON_LOCALPARTS and parsed.return_path.strip() != "<>":
        return
    msg = email.message_from_bytes(raw)  # flufl.bounce expects the compat32 API
    temporary, permanent = flufl_failures(msg)
    if not temporary and not permanent:
        return
    recipient = sorted(permanent or temporary)[0]
    original = ""
    for mid in re.findall(r"Message-ID:\s*<([^<>\s]+)>", parsed.full_text, flags=re.IGNORECASE):
        original = mid
        break
    parsed.bounce = Bounce(
        original_message_id=original,
        recipient=recipient,
        reason=f"Not delivered to {recipient}: {parsed.subject or 'the receiving server refused it'}",
        permanent=bool(permanent),
        action="failed" if permanent else "delayed",
    )


# -- quotes and signatures ------------------------------------------------------------------------


@functools.cache
def _reply_parser() -> Any:
    """One parser for the process: it compiles its many patterns once, not per message."""
    from mailparser_reply import EmailReplyParser  # type: ignore[import-untyped]

    return EmailReplyParser(languages=REPLY_LANGUAGES)


def _fold_quotes(parsed: ParsedMail) -> None:
    parsed.text = parsed.full_text
    parsed.html = parsed.full_html
    if re.match(r"^\s*(fwd?|wg|tr|rv|i)\s*:", parsed.subject, flags=re.IGNORECASE):
        return  # in a forward the "quoted" part is the content
    if parsed.full_text:
        try:
            replies = _reply_parser().read(text=parsed.full_text).replies
            if replies:
                latest = replies[0]
                body = (latest.body or "").strip()
                if body:
                    parsed.text = body
                    parsed.signature = (latest.signatures or "").strip()
        except Exception as exc:  # a parser bug must never cost us the message
            logger.info("reply parser failed: %s", exc)
    if parsed.full_html:
        try:
            import quotequail  # type: ignore[import-untyped]

            segments = quotequail.quote_html(parsed.full_html)
            shown = "".join(html for expanded, html in segments if expanded)
            if shown.strip():
                parsed.html = shown
        except Exception as exc:
            logger.info("quote detection failed on HTML: %s", exc)


def own_address(address: str) -> Address:
    username, _, domain = address.partition("@")
    return Address(username=username, domain=domain)


def sanitise_header_value(value: str) -> str:
    """No CR/LF in a header we write (header injection)."""
    return " ".join(value.replace("\r", " ").replace("\n", " ").split())
