"""Fetching a mailbox over IMAP without losing or repeating a message.

Per folder the channel keeps ``(UIDVALIDITY, last UID)`` in ``Channel.state["imap"][folder]``. A
poll selects the folder, asks for ``UID last+1:*`` (and drops the answer's UIDs that are not above
the cursor: ``n:*`` always matches the newest message), fetches bodies with ``BODY.PEEK[]`` in
batches, stores each raw message as an :class:`~inbox.models.InboundEvent` and advances the cursor
in the same transaction. A crash between two batches resumes after the last stored one; a message
stored twice (a UIDVALIDITY change makes every UID new) collapses on its dedupe key, the hash of its
Message-ID, and the body is not even fetched again: after a UIDVALIDITY change the poll first reads
the Message-ID headers and skips what is already stored.

Only after the commit are processed messages marked ``\\Seen`` or moved, so nothing is flagged that
was not stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import imaplib
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connection, transaction
from django.db.models import Q
from django.utils import timezone

from connectors.email import dedupe, oauth
from inbox.models import Channel, InboundEvent
from inbox.services import inbound
from inbox.transport import ConfigurationError

logger = logging.getLogger(__name__)

BATCH_SIZE = 100
# Bytes of mail (sizes on the server) fetched and stored in one go; a larger message goes alone.
BATCH_BYTES = 32 * 1024 * 1024
# Servers drop an idle client after 30 minutes (RFC 2177): renew well before.
IDLE_RENEW_SECONDS = 25 * 60
# Even with IDLE, poll in full now and then: a push can be missed across a reconnect.
SAFETY_POLL_SECONDS = 5 * 60
LOCK_SECONDS = 15 * 60
MESSAGE_ID_RE = re.compile(rb"^Message-ID:[ \t]*(?:\r?\n[ \t]+)?<([^<>\s]+)>", re.IGNORECASE | re.MULTILINE)

Progress = Callable[["PollReport"], None]


@dataclass
class PollReport:
    folder: str
    uidvalidity: int = 0
    last_uid: int = 0
    total: int = 0
    done: int = 0
    stored: int = 0
    duplicates: int = 0
    skipped_known: int = 0
    unreadable: int = 0
    rescanned: bool = False
    locked: bool = False


def dedupe_key(raw: bytes) -> str:
    """The event key of a raw message: its Message-ID with a digest of its content (the same mail
    delivered twice is one event, another mail under the same id is not: :mod:`.dedupe`), else a
    hash of its bytes."""
    message_id = _message_id(raw)
    if message_id:
        return dedupe.mail_key(message_id, dedupe.raw_digest(raw))
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _message_id(raw: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw[:65536] else raw.split(b"\n\n", 1)[0]
    match = MESSAGE_ID_RE.search(head)
    return match.group(1).decode("utf-8", "surrogateescape") if match else ""


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _by_size(uids: Sequence[int], sizes: dict[int, int], limit: int) -> Iterator[Sequence[int]]:
    """Consecutive groups of ``uids`` of at most ``limit`` bytes on the server (a larger message
    alone); one group when the sizes are unknown (each is then checked when it is fetched)."""
    group: list[int] = []
    total = 0
    for uid in uids:
        size = min(sizes.get(uid, 0), settings.PARLEY_MAIL_MAX_BYTES)
        if group and total + size > limit:
            yield group
            group, total = [], 0
        group.append(uid)
        total += size
    if group:
        yield group


def message_sizes(client: Any, uids: Sequence[int]) -> dict[int, int]:
    """RFC822.SIZE of each UID still in the folder: what fetching it would bring into memory."""
    if not uids:
        return {}
    answer = client.fetch(list(uids), ["RFC822.SIZE"])
    return {int(uid): int(data[b"RFC822.SIZE"]) for uid, data in answer.items() if b"RFC822.SIZE" in data}


def fetch_messages(
    client: Any, uids: Sequence[int], sizes: dict[int, int] | None = None
) -> dict[int, tuple[bytes, int]]:
    """Raw messages by UID, each one's size checked on the server before it is fetched.

    ``(raw, 0)`` for a message fetched whole; ``(its headers and the first
    PARLEY_MAIL_PREVIEW_BYTES of its body, its size)`` for one larger than PARLEY_MAIL_MAX_BYTES,
    which is never read into memory whole (it stays in the mailbox). Expunged UIDs are missing.
    """
    if not uids:
        return {}
    if sizes is None or any(uid not in sizes for uid in uids):
        sizes = {**(sizes or {}), **message_sizes(client, uids)}
    limit = settings.PARLEY_MAIL_MAX_BYTES
    whole = [uid for uid in uids if uid in sizes and sizes[uid] <= limit]
    large = [uid for uid in uids if uid in sizes and sizes[uid] > limit]
    fetched: dict[int, tuple[bytes, int]] = {}
    if whole:
        for uid, data in client.fetch(whole, ["BODY.PEEK[]"]).items():
            raw = data.get(b"BODY[]")
            if raw is not None:
                fetched[int(uid)] = (bytes(raw), 0)
    if large:
        preview = f"BODY.PEEK[TEXT]<0.{settings.PARLEY_MAIL_PREVIEW_BYTES}>"
        for uid, data in client.fetch(large, ["BODY.PEEK[HEADER]", preview]).items():
            head = data.get(b"BODY[HEADER]")
            if head is None:
                continue
            start = next((v for k, v in data.items() if k.startswith(b"BODY[TEXT]")), b"")
            fetched[int(uid)] = (bytes(head) + bytes(start or b""), sizes[int(uid)])
    return fetched


class Mailbox:
    """One channel's IMAP folder. Use :meth:`poll` once, or :meth:`watch` to follow it with IDLE."""

    def __init__(self, channel: Channel, *, batch_size: int = BATCH_SIZE, progress: Progress | None = None) -> None:
        from connectors.email.connector import EmailConnector  # a true cycle: the connector reads mailboxes here

        self.channel = channel
        self.connector = EmailConnector(channel)
        self.folder = self.connector.setting("imap_folder") or "INBOX"
        self.processed = self.connector.setting("processed") or "keep"
        self.batch_size = batch_size
        self.progress = progress
        self._client: Any = None

    # -- connection ------------------------------------------------------------------------

    def connect(self) -> Any:
        from imapclient import IMAPClient  # type: ignore[import-untyped]

        setting = self.connector.setting
        host = setting("imap_host")
        if not host:
            raise ConfigurationError(f"channel {self.channel.pk} has no imap_host")
        tls = setting("imap_tls", "ssl") or "ssl"
        port = int(setting("imap_port") or (993 if tls == "ssl" else 143))
        context = self.connector.tls_context() if tls != "none" else None
        client = IMAPClient(host, port=port, ssl=tls == "ssl", ssl_context=context, timeout=60)
        try:
            if tls == "starttls":
                client.starttls(context)
            self._log_in(client)
        except BaseException:
            with contextlib.suppress(Exception):  # not logged in: nothing to log out of
                client.shutdown()
            raise
        return client

    def _log_in(self, client: Any) -> None:
        """Password login, or XOAUTH2 with the channel's OAuth access token (a refused cached one
        is replaced once; a refused fresh one raises IMAPClient's ``LoginError`` as a password does)."""
        from imapclient.exceptions import LoginError  # type: ignore[import-untyped]

        user = self.connector.setting("imap_user") or self.connector.address
        if oauth.uses_oauth(self.connector):
            oauth.log_in(self.connector, lambda token: client.oauth2_login(user, token), rejected=(LoginError,))
        else:
            client.login(user, self.connector.setting("imap_password"))

    # -- cursor ----------------------------------------------------------------------------

    def cursor(self) -> tuple[int, int]:
        state = Channel.objects.filter(pk=self.channel.pk).values_list("state", flat=True).get() or {}
        entry = (state.get("imap") or {}).get(self.folder) or {}
        return int(entry.get("uidvalidity", 0)), int(entry.get("last_uid", 0))

    def _advance(self, uidvalidity: int, last_uid: int, *, total: int | None = None) -> None:
        """Move the cursor forward (never back) in the caller's transaction."""
        channel = Channel.objects.select_for_update().get(pk=self.channel.pk)
        state = dict(channel.state or {})
        folders = dict(state.get("imap") or {})
        entry = dict(folders.get(self.folder) or {})
        if entry.get("uidvalidity") == uidvalidity and int(entry.get("last_uid", 0)) >= last_uid:
            return
        entry.update(uidvalidity=uidvalidity, last_uid=last_uid, updated_at=timezone.now().isoformat())
        if total is not None:
            entry["pending"] = total
        folders[self.folder] = entry
        state["imap"] = folders
        Channel.objects.filter(pk=self.channel.pk).update(state=state)

    def _last_error(self) -> str:
        state = Channel.objects.filter(pk=self.channel.pk).values_list("state", flat=True).get() or {}
        return str(((state.get("imap") or {}).get(self.folder) or {}).get("error", ""))

    def _record_error(self, error: str) -> None:
        """Keep the last failure (or clear it) where admins see the channel's state."""
        with transaction.atomic():
            channel = Channel.objects.select_for_update().get(pk=self.channel.pk)
            state = dict(channel.state or {})
            folders = dict(state.get("imap") or {})
            entry = dict(folders.get(self.folder) or {})
            entry["error"] = error[:500]
            entry["error_at"] = timezone.now().isoformat() if error else ""
            folders[self.folder] = entry
            state["imap"] = folders
            Channel.objects.filter(pk=self.channel.pk).update(state=state)

    # -- polling ---------------------------------------------------------------------------

    def poll(self, client: Any | None = None) -> PollReport:
        """Fetch and store everything new. Skips (reports ``locked``) when another poller is at it."""
        report = PollReport(folder=self.folder)
        lock_key = f"email:poll:{self.channel.pk}:{self.folder}"
        token = secrets.token_hex(8)
        if not cache.add(lock_key, token, LOCK_SECONDS):
            report.locked = True
            return report
        own_client = client is None
        self._client = client
        try:
            if own_client:
                client = self._client = self.connect()
            self._poll(client, report)
        except Exception as exc:
            self._record_error(f"{type(exc).__name__}: {exc}")
            raise
        else:
            if self._last_error():
                self._record_error("")
        finally:
            # Ours, or one that replaced the caller's after the server dropped it (the caller's
            # own then fails on its next use and is reconnected by the watcher).
            if self._client is not None and (own_client or self._client is not client):
                with contextlib.suppress(Exception):  # the connection is going away anyway
                    self._client.logout()
            self._client = None
            if cache.get(lock_key) == token:
                cache.delete(lock_key)
        return report

    def _poll(self, client: Any, report: PollReport) -> None:
        readonly = self.processed == "keep"
        selected = client.select_folder(self.folder, readonly=readonly)
        uidvalidity = int(selected[b"UIDVALIDITY"])
        known_validity, last_uid = self.cursor()
        if known_validity and known_validity != uidvalidity:
            logger.warning(
                "channel %s folder %s: UIDVALIDITY changed %s -> %s; rescanning (deduplicated by Message-ID)",
                self.channel.pk,
                self.folder,
                known_validity,
                uidvalidity,
            )
            report.rescanned = True
            last_uid = 0
        elif not known_validity:
            last_uid = 0
        report.uidvalidity = uidvalidity
        uids = sorted(uid for uid in client.search(["UID", f"{last_uid + 1}:*"]) if uid > last_uid)
        report.total = len(uids)
        report.last_uid = last_uid
        lock_key = f"email:poll:{self.channel.pk}:{self.folder}"
        for batch in _chunks(uids, self.batch_size):
            self._store_batch(self._client, batch, uidvalidity, report, rescan=report.rescanned)
            cache.touch(lock_key, LOCK_SECONDS)  # a long first import keeps its claim on the folder
            if self.progress is not None:
                self.progress(report)

    def _store_batch(
        self, client: Any, batch: Sequence[int], uidvalidity: int, report: PollReport, *, rescan: bool
    ) -> None:
        """Store a batch of UIDs: sizes first (RFC822.SIZE), then the bodies in groups of at most
        :data:`BATCH_BYTES`, each group with the cursor in one transaction."""
        try:
            sizes = message_sizes(client, batch)
        except (imaplib.IMAP4.error, OSError) as exc:
            # Unknown sizes: each message is fetched on its own below, its size checked first.
            logger.warning("channel %s: reading message sizes failed (%s)", self.channel.pk, exc)
            self._reconnect(uidvalidity)
            client, sizes = self._client, {}
        for group in _by_size(batch, sizes, BATCH_BYTES):
            client = self._store_group(client, group, sizes, uidvalidity, report, rescan=rescan)

    def _store_group(
        self,
        client: Any,
        group: Sequence[int],
        sizes: dict[int, int],
        uidvalidity: int,
        report: PollReport,
        *,
        rescan: bool,
    ) -> Any:
        wanted = list(group)
        if rescan:
            wanted = self._unknown(client, group, sizes)
            report.skipped_known += len(group) - len(wanted)
        unreadable: dict[int, str] = {}
        try:
            fetched = fetch_messages(client, wanted, sizes if sizes else None) if wanted else {}
        except (imaplib.IMAP4.error, OSError) as exc:
            logger.warning(
                "channel %s: fetching %d messages failed (%s); one by one", self.channel.pk, len(wanted), exc
            )
            fetched, unreadable = self._fetch_one_by_one(wanted, uidvalidity)
            client = self._client
        events: list[inbound.RawEvent] = []
        for uid, error in unreadable.items():
            # Kept as an event an admin sees (and replays once the server can return it): the
            # rest of the mailbox goes on instead of stopping behind one message.
            events.append(
                inbound.RawEvent(
                    dedupe_key=f"imap-unreadable:{self.folder}:{uidvalidity}:{uid}",
                    body=b"",
                    headers={
                        "folder": self.folder,
                        "uidvalidity": str(uidvalidity),
                        "uid": str(uid),
                        "fetch_error": error[:500],
                    },
                )
            )
        for uid in wanted:
            if uid not in fetched:
                continue  # expunged since the search, or unreadable (above)
            raw, truncated_from = fetched[uid]
            headers = {"folder": self.folder, "uidvalidity": str(uidvalidity), "uid": str(uid)}
            if uid in sizes:
                headers["size"] = str(sizes[uid])
            if truncated_from:
                headers["truncated_from"] = str(truncated_from)
                logger.warning(
                    "channel %s: message UID %s is %s bytes, over PARLEY_MAIL_MAX_BYTES; stored its start only",
                    self.channel.pk,
                    uid,
                    truncated_from,
                )
            events.append(inbound.RawEvent(dedupe_key=dedupe_key(raw), body=raw, headers=headers))
        del fetched
        with transaction.atomic():
            # One multi-row INSERT for the group, and the cursor in the same transaction: a crash
            # leaves both or neither, so a restart neither skips nor fetches anything twice.
            created = inbound.record_inbound_events(
                channel=self.channel, endpoint="imap", events=events, content_type="message/rfc822"
            )
            self._advance(uidvalidity, max(group))
        for event, new in zip(events, created, strict=True):
            if not new:
                logger.info(
                    "channel %s: UID %s is a mail stored already (%s); collapsed",
                    self.channel.pk,
                    event.headers.get("uid") if event.headers else "?",
                    event.dedupe_key,
                )
        report.stored += sum(created)
        report.duplicates += len(created) - sum(created)
        report.unreadable += len(unreadable)
        report.done += len(group)
        report.last_uid = max(group)
        # An unreadable message stays where it is (not flagged, not moved) for whoever repairs it.
        self._after_commit(client, [uid for uid in group if uid not in unreadable])
        return client

    def _fetch_one_by_one(
        self, uids: Sequence[int], uidvalidity: int
    ) -> tuple[dict[int, tuple[bytes, int]], dict[int, str]]:
        """Fetch each message alone on a fresh connection; returns (messages, errors by UID).

        A server that fails a FETCH may drop the connection with it (Dovecot does), so each failure
        is tried once more on a new connection before the message counts as unreadable.
        """
        fetched: dict[int, tuple[bytes, int]] = {}
        errors: dict[int, str] = {}
        self._reconnect(uidvalidity)
        for uid in uids:
            for attempt in (1, 2):
                try:
                    fetched.update(fetch_messages(self._client, [uid]))
                    break
                except (imaplib.IMAP4.error, OSError) as exc:
                    if attempt == 2:
                        errors[uid] = f"the mail server could not return it: {exc}"
                    self._reconnect(uidvalidity)
        return fetched, errors

    def _reconnect(self, uidvalidity: int) -> None:
        with contextlib.suppress(Exception):
            self._client.logout()
        self._client = self.connect()
        selected = self._client.select_folder(self.folder, readonly=self.processed == "keep")
        if int(selected[b"UIDVALIDITY"]) != uidvalidity:
            raise RuntimeError("UIDVALIDITY changed during the poll; the next poll rescans")

    def _unknown(self, client: Any, group: Sequence[int], sizes: dict[int, int]) -> list[int]:
        """The UIDs of a group not stored yet (after a UIDVALIDITY change), told by Message-ID and size.

        A stored event of the same Message-ID and the same size on the server is the same mail;
        another size under the same Message-ID is fetched (its content decides: :mod:`.dedupe`).
        """
        try:
            heads = client.fetch(list(group), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        except (imaplib.IMAP4.error, OSError) as exc:
            # Fetch them all: what is stored already collapses on its key, what cannot be read is
            # set aside one by one.
            logger.warning("channel %s: reading Message-IDs failed (%s)", self.channel.pk, exc)
            return list(group)
        prefixes: dict[int, str] = {}
        for uid in group:
            head = next((v for k, v in (heads.get(uid) or {}).items() if k.startswith(b"BODY[HEADER")), b"")
            message_id = _message_id(bytes(head or b""))
            if message_id:
                prefixes[uid] = dedupe.message_id_key(message_id)
        if not prefixes:
            return list(group)
        matching = Q()
        for prefix in set(prefixes.values()):
            matching |= Q(dedupe_key=prefix) | Q(dedupe_key__startswith=prefix + ":")
        stored: dict[str, set[str]] = {}
        for key, headers in InboundEvent.objects.filter(matching, channel=self.channel).values_list(
            "dedupe_key", "headers"
        ):
            # Events stored before sizes were kept ("mid:<hash>" alone) count as the same mail.
            size = str((headers or {}).get("size", "")) if ":" in key[4:] else ""
            stored.setdefault(key[: len("mid:") + 64], set()).add(size)

        def known(uid: int) -> bool:
            seen = stored.get(prefixes.get(uid, ""))
            return seen is not None and ("" in seen or str(sizes.get(uid, "")) in seen)

        return [uid for uid in group if not known(uid)]

    def _after_commit(self, client: Any, uids: list[int]) -> None:
        if not uids or self.processed == "keep":
            return
        try:
            if self.processed == "seen":
                client.add_flags(uids, [b"\\Seen"])
            elif self.processed.startswith("move:"):
                target = self.processed[5:]
                if not client.folder_exists(target):
                    client.create_folder(target)
                if client.has_capability("MOVE"):
                    client.move(uids, target)
                else:
                    client.copy(uids, target)
                    client.delete_messages(uids)
                    if client.has_capability("UIDPLUS"):
                        client.uid_expunge(uids)
                    else:
                        client.expunge()
        except Exception as exc:
            # The messages are stored; failing to flag them must not make us fetch them again.
            logger.warning("channel %s: could not mark %d messages processed: %s", self.channel.pk, len(uids), exc)

    # -- following the mailbox -------------------------------------------------------------

    def watch(self, stop: threading.Event, *, poll_interval: float = 60.0, idle_slice: float = 30.0) -> None:
        """Follow the folder until ``stop`` is set: IDLE when offered, polling otherwise; reconnect on errors."""
        try:
            self._watch(stop, poll_interval, idle_slice)
        finally:
            connection.close()  # this thread's own database connection

    def _watch(self, stop: threading.Event, poll_interval: float, idle_slice: float) -> None:
        backoff = 1.0
        while not stop.is_set():
            client = None
            try:
                client = self.connect()
                self._poll_with(client)
                backoff = 1.0
                if client.has_capability("IDLE"):
                    self._idle_loop(client, stop, idle_slice)
                else:
                    while not stop.wait(poll_interval):
                        self._poll_with(client)
            except Exception as exc:
                logger.warning(
                    "channel %s: mailbox connection failed (%s); retrying in %.0fs", self.channel.pk, exc, backoff
                )
                stop.wait(backoff)
                backoff = min(backoff * 2, 120.0)
            finally:
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.logout()

    def _poll_with(self, client: Any) -> None:
        # A watcher lives for days: never poll on a database connection that died meanwhile.
        close_old_connections()
        report = self.poll(client)
        if report.stored:
            logger.info("channel %s: stored %d new messages", self.channel.pk, report.stored)

    def _idle_loop(self, client: Any, stop: threading.Event, idle_slice: float) -> None:
        last_poll = time.monotonic()
        while not stop.is_set():
            client.idle()
            started = time.monotonic()
            news = False
            try:
                while not stop.is_set() and time.monotonic() - started < IDLE_RENEW_SECONDS:
                    responses = client.idle_check(timeout=idle_slice)
                    if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                        news = True
                        break
                    if time.monotonic() - last_poll > SAFETY_POLL_SECONDS:
                        break
            finally:
                client.idle_done()
            if news or time.monotonic() - last_poll > SAFETY_POLL_SECONDS:
                self._poll_with(client)
                last_poll = time.monotonic()
