"""The webhook spool: where a provider's event waits, durably, while the database cannot take it.

A webhook is acknowledged only once its event is durable. Normally that is the ``InboundEvent``
row. When PostgreSQL does not answer (a restart, a failover, a cut network) the web process writes
the event, exactly as it would have stored it, to one file under ``WEBHOOK_SPOOL_DIR`` — written to
a temporary name, fsynced, renamed into place, the directory fsynced — and only then answers 2xx.
If even that fails (disk full, read-only) the provider gets a 503, never a 200 for an event we do
not hold. Twilio, by default, retries only a failed connection, once: a 5xx during a database
restart would lose the message, hence the spool rather than "answer 503 and let them retry".

Spooled files are drained into the normal path (:func:`inbox.services.inbound.drain_spool`: the
same ``INSERT … ON CONFLICT DO NOTHING`` on the provider's dedupe key, so a file drained twice, or
an event the provider also redelivered, is stored once) by the web process that wrote them, as soon
as its database answers again, and by the scheduler's ``drain-webhook-spool`` every few seconds.

The spool is local to a machine: run a worker (or keep the web process) on every machine that runs
web processes, and keep ``WEBHOOK_SPOOL_DIR`` on a disk that survives a restart (``VAR_DIR``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

# After a database error, webhooks of this process go straight to the spool for this long instead
# of each waiting for the connection pool's timeout behind a database that is not there; then one
# request at a time tries the database again (the others keep spooling) until one succeeds.
DOWN_SECONDS = 3.0
_down_until = 0.0
_probing = False
_lock = threading.Lock()


def database_down() -> bool:
    """True while this process believes the database is down (it failed lately, not yet back)."""
    return _down_until != 0.0


def skip_database() -> bool:
    """Whether this request should spool without trying the database.

    False while the database is believed up; True for a while after it failed; then False for one
    request at a time (the probe), whose outcome is reported with :func:`note_database_down` or
    :func:`note_database_up`.
    """
    global _probing
    if _down_until == 0.0:
        return False
    with _lock:
        if _down_until == 0.0:
            return False
        if time.monotonic() < _down_until or _probing:
            return True
        _probing = True
        return False


def note_database_down() -> None:
    global _down_until, _probing
    with _lock:
        _down_until = time.monotonic() + DOWN_SECONDS
        _probing = False


def note_database_up() -> None:
    global _down_until, _probing
    if _down_until == 0.0:
        return
    with _lock:
        _down_until = 0.0
        _probing = False


class NotDurable(Exception):
    """Neither the database nor the spool took the event: the provider must be told to retry (503)."""


@dataclass(frozen=True)
class SpooledEvent:
    """An event as the webhook would have stored it, read back from its file."""

    path: Path
    channel_id: int
    endpoint: str
    dedupe_key: str
    body: bytes
    headers: dict[str, str]
    content_type: str


def directory() -> Path:
    return Path(getattr(settings, "WEBHOOK_SPOOL_DIR", settings.VAR_DIR / "spool"))


def write(
    *, channel_id: int, endpoint: str, dedupe_key: str, body: bytes, headers: dict[str, str], content_type: str
) -> Path:
    """Store one event durably as its own file; returns its path. Raises :class:`NotDurable`."""
    record: dict[str, Any] = {
        "channel_id": channel_id,
        "endpoint": endpoint,
        "dedupe_key": dedupe_key,
        "body": base64.b64encode(body).decode("ascii"),
        "headers": headers,
        "content_type": content_type,
        "spooled_at": time.time(),
    }
    folder = directory()
    # Names sort by time, so the drain keeps the providers' order; pid and a random part keep two
    # processes (or threads) apart.
    name = f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:12]}.json"
    temporary = folder / "tmp" / name
    try:
        temporary.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, json.dumps(record).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        final = folder / name
        os.rename(temporary, final)
        _fsync_directory(folder)
    except OSError as exc:
        with contextlib.suppress(OSError):  # the disk that refused the file may refuse this too
            temporary.unlink(missing_ok=True)
        raise NotDurable(f"the webhook spool cannot take the event: {exc}") from exc
    return final


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable (a crash after the answer must not lose the file's name)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def pending(limit: int = 500) -> list[Path]:
    """Spooled files, oldest first (at most ``limit``)."""
    try:
        names = sorted(entry.name for entry in os.scandir(directory()) if entry.name.endswith(".json"))
    except FileNotFoundError:
        return []
    return [directory() / name for name in names[:limit]]


def read(path: Path) -> SpooledEvent:
    """The event in ``path``. Raises ``ValueError`` for a file that is not one (moved aside by the drain)."""
    record = json.loads(path.read_bytes())
    return SpooledEvent(
        path=path,
        channel_id=int(record["channel_id"]),
        endpoint=str(record["endpoint"]),
        dedupe_key=str(record["dedupe_key"]),
        body=base64.b64decode(record["body"]),
        headers={str(k): str(v) for k, v in dict(record.get("headers") or {}).items()},
        content_type=str(record.get("content_type") or ""),
    )


def remove(path: Path) -> None:
    """Forget a drained file (another drainer may have removed it first)."""
    path.unlink(missing_ok=True)


def set_aside(path: Path) -> None:
    """Keep a file that cannot be drained (unreadable, its channel deleted) for an admin to look at."""
    aside = directory() / "failed"
    aside.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):  # another drainer took it
        os.rename(path, aside / path.name)
