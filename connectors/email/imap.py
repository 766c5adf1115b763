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

from django.core.cache import cache
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from connectors.email import oauth
from inbox import inbound
from inbox.models import Channel, InboundEvent

logger = logging.getLogger(__name__)

BATCH_SIZE = 100
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
    """The event key of a raw message: its Message-ID's hash, else a hash of its bytes."""
    from connectors.email.connector import message_id_key

    head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw[:65536] else raw.split(b"\n\n", 1)[0]
    match = MESSAGE_ID_RE.search(head)
    if match:
        return message_id_key(match.group(1).decode("utf-8", "surrogateescape"))
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def _chunks(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Mailbox:
    """One channel's IMAP folder. Use :meth:`poll` once, or :meth:`watch` to follow it with IDLE."""

    def __init__(self, channel: Channel, *, batch_size: int = BATCH_SIZE, progress: Progress | None = None) -> None:
        from connectors.email.connector import EmailConnector

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
            from inbox.transport import ConfigurationError

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
        wanted = list(batch)
        if rescan:
            wanted = self._unknown(client, batch)
            report.skipped_known += len(batch) - len(wanted)
        unreadable: dict[int, str] = {}
        try:
            bodies = client.fetch(wanted, ["BODY.PEEK[]"]) if wanted else {}
        except (imaplib.IMAP4.error, OSError) as exc:
            logger.warning(
                "channel %s: fetching %d messages failed (%s); one by one", self.channel.pk, len(wanted), exc
            )
            bodies, unreadable = self._fetch_one_by_one(wanted, uidvalidity)
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
            raw = (bodies.get(uid) or {}).get(b"BODY[]")
            if raw is None:
                continue  # expunged since the search, or unreadable (above)
            events.append(
                inbound.RawEvent(
                    dedupe_key=dedupe_key(bytes(raw)),
                    body=bytes(raw),
                    headers={"folder": self.folder, "uidvalidity": str(uidvalidity), "uid": str(uid)},
                )
            )
        del bodies
        with transaction.atomic():
            # One multi-row INSERT for the batch, and the cursor in the same transaction: a crash
            # leaves both or neither, so a restart neither skips nor fetches anything twice.
            created = inbound.record_inbound_events(
                channel=self.channel, endpoint="imap", events=events, content_type="message/rfc822"
            )
            self._advance(uidvalidity, max(batch))
        report.stored += sum(created)
        report.duplicates += len(created) - sum(created)
        report.unreadable += len(unreadable)
        report.done += len(batch)
        report.last_uid = max(batch)
        # An unreadable message stays where it is (not flagged, not moved) for whoever repairs it.
        self._after_commit(client, [uid for uid in batch if uid not in unreadable])

    def _fetch_one_by_one(self, uids: Sequence[int], uidvalidity: int) -> tuple[dict[int, Any], dict[int, str]]:
        """Fetch each message alone on a fresh connection; returns (bodies, errors by UID).

        A server that fails a FETCH may drop the connection with it (Dovecot does), so each failure
        is tried once more on a new connection before the message counts as unreadable.
        """
        bodies: dict[int, Any] = {}
        errors: dict[int, str] = {}
        self._reconnect(uidvalidity)
        for uid in uids:
            for attempt in (1, 2):
                try:
                    bodies.update(self._client.fetch([uid], ["BODY.PEEK[]"]))
                    break
                except (imaplib.IMAP4.error, OSError) as exc:
                    if attempt == 2:
                        errors[uid] = f"the mail server could not return it: {exc}"
                    self._reconnect(uidvalidity)
        return bodies, errors

    def _reconnect(self, uidvalidity: int) -> None:
        with contextlib.suppress(Exception):
            self._client.logout()
        self._client = self.connect()
        selected = self._client.select_folder(self.folder, readonly=self.processed == "keep")
        if int(selected[b"UIDVALIDITY"]) != uidvalidity:
            raise RuntimeError("UIDVALIDITY changed during the poll; the next poll rescans")

    def _unknown(self, client: Any, batch: Sequence[int]) -> list[int]:
        """The UIDs of a batch whose Message-ID is not stored yet (after a UIDVALIDITY change)."""
        try:
            heads = client.fetch(list(batch), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        except (imaplib.IMAP4.error, OSError) as exc:
            # Fetch them all: what is stored already collapses on its key, what cannot be read is
            # set aside one by one.
            logger.warning("channel %s: reading Message-IDs failed (%s)", self.channel.pk, exc)
            return list(batch)
        keys: dict[int, str] = {}
        for uid in batch:
            head = next((v for k, v in (heads.get(uid) or {}).items() if k.startswith(b"BODY[HEADER")), b"")
            match = MESSAGE_ID_RE.search(bytes(head or b""))
            if match:
                keys[uid] = dedupe_key(bytes(head))
        known = set(
            InboundEvent.objects.filter(channel=self.channel, dedupe_key__in=list(keys.values())).values_list(
                "dedupe_key", flat=True
            )
        )
        return [uid for uid in batch if keys.get(uid) not in known or uid not in keys]

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
