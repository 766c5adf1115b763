"""When two mails are one: Message-ID together with a digest of the content.

A Message-ID is chosen by the sender, so it names a mail only as far as the sender is honest and
careful: mailing-list software, broken clients and test suites (5 of CPython's 48 test messages)
reuse one for different mail, and an attacker can copy a customer's to make their next mail vanish.
So a mail is the same mail only when its Message-ID *and* its content agree:

* **Events** (what the IMAP poller and the inbound-parse webhooks store): the key is
  ``mid:<sha256 of the Message-ID>:<digest>``, the digest over what the route delivers that a second
  delivery does not change (the body and the sender's own headers, not the trace headers each hop
  adds; for a webhook, the mail's fields, not the provider's per-POST token). The same mail polled
  twice, or posted again by a retrying provider, is one event; a different mail under the same
  Message-ID is another.
* **Messages** (:func:`content_digest`, over what the parser read: sender, subject, text,
  attachments): one mail that arrived by two routes (polled and forwarded) is one message; a
  different mail under a stored Message-ID is kept as its own message (the core's
  ``receive_message`` compares the digests and logs what it collapsed).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connectors.email.parsing import ParsedMail

# The sender's own headers: a redelivery keeps them, a different mail under the same id may not.
CONTENT_HEADERS = (b"from", b"to", b"cc", b"subject", b"date", b"content-type")
_HEADER_RE = re.compile(rb"^([!-9;-~]+)[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.MULTILINE)
DIGEST_CHARS = 32


def message_id_key(message_id: str) -> str:
    """The key prefix of every event of a mail with this Message-ID."""
    return "mid:" + hashlib.sha256(message_id.encode("utf-8", "surrogateescape")).hexdigest()


def mail_key(message_id: str, digest: str) -> str:
    """An event's dedupe key: the Message-ID's prefix and the digest of the content."""
    return f"{message_id_key(message_id)}:{digest[:DIGEST_CHARS]}"


def raw_digest(raw: bytes) -> str:
    """A raw message's content, without the trace headers (Received, Delivered-To...) each delivery adds."""
    match = re.search(rb"\r?\n\r?\n", raw)
    head, body = (raw[: match.start()], raw[match.end() :]) if match else (raw, b"")
    kept = sorted(
        (name.lower(), b" ".join(value.split()))
        for name, value in _HEADER_RE.findall(head)
        if name.lower() in CONTENT_HEADERS
    )
    digest = hashlib.sha256()
    for name, value in kept:
        digest.update(name + b":" + value + b"\n")
    digest.update(b"\n")
    digest.update(b"\n".join(line.rstrip() for line in body.splitlines()).rstrip())
    return digest.hexdigest()


def fields_digest(fields: list[str], files: list[bytes]) -> str:
    """A webhook's mail fields (from, subject, bodies...) and attached files, in a stable form."""
    return hashlib.sha256(
        json.dumps([fields, sorted(hashlib.sha256(content).hexdigest() for content in files)]).encode()
    ).hexdigest()


def content_digest(mail: ParsedMail) -> str:
    """What makes two parsed mails the same mail, whichever route they came by."""
    return fields_digest(
        [mail.from_address, " ".join(mail.subject.split()), " ".join(mail.full_text.split())],
        [a.content for a in mail.attachments],
    )
