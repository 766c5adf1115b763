"""CSV import of customers: a CRM's export as a first load. Checked whole, written all or nothing.

The file has a header row. Known columns: ``external_id``, ``email``, ``phone``, ``name``,
``language``; every other column is an attribute (typed when staff defined it, text otherwise; an
empty cell leaves the attribute as it is). Each row is an upsert (:func:`customers.crm.upsert_customer`):
matched by external id, then email, then phone — never by name — so two existing customers are
never merged, and a row whose keys name two different customers is an error of that row.

Cells are read back with :func:`common.cells.cell_text` (a spreadsheet-safe export's leading
apostrophe is dropped), so a file Parley or a careful CRM wrote imports as it was meant.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import Entry
from audit.services import record
from common.cells import cell_text
from customers.crm import clean_attributes, clean_external_id, upsert_customer
from customers.models import CustomerImport, Identity
from customers.services import InvalidAddress, normalise_address

logger = logging.getLogger(__name__)

KNOWN = ("external_id", "email", "phone", "name", "language")
MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 50_000
# Files up to this many rows are imported in the request; larger ones by the worker.
INLINE_ROWS = 200
PROGRESS_EVERY = 50
# A running import whose worker has not been heard of for this long may be resumed.
STALLED_AFTER = timedelta(minutes=2)


@dataclass(frozen=True)
class RowError:
    row: int  # 1 = the first data row (the header is row 0)
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


class ImportInvalid(Exception):
    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} errors")
        self.errors = errors


@dataclass(frozen=True)
class Row:
    number: int
    external_id: str
    email: str
    phone: str
    name: str
    language: str
    attributes: dict[str, str]


def decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise ImportInvalid([RowError(0, "", _("The file is larger than 10 MB; split it."))])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportInvalid([RowError(0, "", _("Save the file as UTF-8 CSV."))]) from None


def read(content: str) -> list[Row]:
    """Every row of the file, checked; raises :class:`ImportInvalid` with every row's errors."""
    reader = csv.reader(io.StringIO(content))
    try:
        header = [cell_text(h).strip().lower() for h in next(reader)]
    except (StopIteration, csv.Error):
        raise ImportInvalid([RowError(0, "", _("The file is empty or not CSV."))]) from None
    if not {"external_id", "email", "phone"} & set(header):
        raise ImportInvalid([RowError(0, "", _("The header needs an external_id, email or phone column."))])
    if len(set(header)) != len(header) or "" in header:
        raise ImportInvalid([RowError(0, "", _("Every column needs a name of its own in the header."))])
    rows: list[Row] = []
    errors: list[RowError] = []
    try:
        for number, cells in enumerate(reader, start=1):
            if number > MAX_ROWS:
                raise ImportInvalid([RowError(0, "", _("At most 50 000 rows per file; split it."))])
            if not any(c.strip() for c in cells):
                continue
            if len(cells) != len(header):
                errors.append(RowError(number, "", _("This row has a different number of cells than the header.")))
                continue
            values = {key: cell_text(cell).strip() for key, cell in zip(header, cells, strict=True)}
            row, row_errors = _check(number, values)
            errors += row_errors
            if row is not None:
                rows.append(row)
    except csv.Error as exc:
        errors.append(RowError(0, "", _("The file is not valid CSV: %(error)s") % {"error": exc}))
    if not rows and not errors:
        errors.append(RowError(0, "", _("The file has no customers.")))
    if errors:
        raise ImportInvalid(errors)
    return rows


def _check(number: int, values: dict[str, str]) -> tuple[Row | None, list[RowError]]:
    errors: list[RowError] = []
    for kind in (Identity.Kind.EMAIL, Identity.Kind.PHONE):
        if values.get(kind):
            try:
                normalise_address(kind, values[kind])
            except InvalidAddress:
                errors.append(RowError(number, kind, _("Not a valid %(kind)s.") % {"kind": kind}))
    try:
        clean_external_id(values.get("external_id", ""))
    except ValidationError as exc:
        errors += [RowError(number, "external_id", m) for m in exc.messages]
    if not (values.get("external_id") or values.get("email") or values.get("phone")):
        errors.append(RowError(number, "", _("Give an external id, an email address or a phone number.")))
    attributes = {k: v for k, v in values.items() if k not in KNOWN and v}
    try:
        clean_attributes(attributes, current={})
    except ValidationError as exc:
        errors += [RowError(number, key, m) for key, messages in exc.message_dict.items() for m in messages]
    if errors:
        return None, errors
    return Row(
        number=number,
        external_id=values.get("external_id", ""),
        email=values.get("email", ""),
        phone=values.get("phone", ""),
        name=values.get("name", ""),
        language=values.get("language", "")[:16],
        attributes=attributes,
    ), []


# -- the job ---------------------------------------------------------------------------------------


def _progress_key(job_id: int) -> str:
    return f"customers:import:{job_id}:processed"


def _alive_key(job_id: int) -> str:
    return f"customers:import:{job_id}:alive"


def stalled(job: CustomerImport) -> bool:
    """Whether an unfinished import has no worker on it (it died, or its task was lost): resumable."""
    if job.finished or not job.content:
        return False
    if cache.get(_alive_key(job.pk)) is not None:
        return False
    return job.heartbeat_at is None or job.heartbeat_at < timezone.now() - STALLED_AFTER


def progress(job: CustomerImport) -> int:
    """Rows written so far (they commit together at the end, so the count lives in the cache)."""
    if job.status == CustomerImport.Status.RUNNING:
        value = cache.get(_progress_key(job.pk))
        return int(value) if value is not None else 0
    return job.total if job.status == CustomerImport.Status.DONE else 0


def start_import(*, data: bytes, filename: str, by: Any) -> CustomerImport:
    """Check an uploaded file and store it as an import; a small one is imported at once.

    Raises :class:`ImportInvalid` (nothing stored) when the file cannot be read or a row is wrong.
    """
    if not filename.lower().endswith((".csv", ".txt")):
        raise ImportInvalid([RowError(0, "", _("Choose a .csv file."))])
    content = decode(data)
    rows = read(content)
    job = CustomerImport.objects.create(created_by=by, filename=filename[:255], content=content, total=len(rows))
    if len(rows) <= getattr(settings, "PARLEY_CUSTOMER_IMPORT_INLINE_ROWS", INLINE_ROWS):
        return run_import(job_id=job.pk)
    _enqueue(job.pk)
    return job


def _enqueue(job_id: int) -> None:
    from customers.tasks import import_customers  # a true cycle: the task calls this module

    transaction.on_commit(lambda: import_customers.delay(job_id))


def resume_import(*, job: CustomerImport, by: Any) -> bool:
    """Start again an import whose worker stopped (or that never got one). Returns whether it was restarted."""
    if not stalled(job):
        return False
    restarted = (
        CustomerImport.objects.filter(pk=job.pk, status=job.status, heartbeat_at=job.heartbeat_at)
        .exclude(content="")
        .update(status=CustomerImport.Status.PENDING, heartbeat_at=None)
    )
    if restarted:
        record(action=Entry.Action.CHANGED, actor=by, target=job, details={"resumed": True})
        _enqueue(job.pk)
    return bool(restarted)


def run_import(*, job_id: int) -> CustomerImport:
    """Import one stored file, all or nothing; safe to run again (a finished import stays as it is)."""
    now = timezone.now()
    claimed = CustomerImport.objects.filter(pk=job_id, status=CustomerImport.Status.PENDING).update(
        status=CustomerImport.Status.RUNNING, heartbeat_at=now
    )
    job = CustomerImport.objects.get(pk=job_id)
    if not claimed:
        return job
    key = _progress_key(job.pk)
    cache.set(key, 0, timeout=24 * 3600)

    alive = _alive_key(job.pk)
    cache.set(alive, 1, timeout=int(STALLED_AFTER.total_seconds()))

    def beat(done: int) -> None:
        # The writes commit together at the end: progress and liveness go through the cache.
        cache.set(key, done, timeout=24 * 3600)
        cache.set(alive, 1, timeout=int(STALLED_AFTER.total_seconds()))

    try:
        rows = read(job.content)
        job.total = len(rows)
        with transaction.atomic():
            created, updated = _write(rows, by=job.created_by, on_progress=beat)
            job.status, job.created, job.updated = CustomerImport.Status.DONE, created, updated
            job.errors, job.finished_at, job.content = [], timezone.now(), ""
            job.save(update_fields=["status", "total", "created", "updated", "errors", "finished_at", "content"])
            record(
                action=Entry.Action.IMPORTED,
                actor=job.created_by,
                target=job,
                details={"created": created, "updated": updated, "file": job.filename},
            )
    except ImportInvalid as invalid:
        _fail(job, [e.as_dict() for e in invalid.errors])
    except Exception:
        logger.exception("customer import %s failed", job_id)
        message = _("The import stopped on an unexpected error; nothing of this file was stored. Try again.")
        _fail(job, [RowError(0, "", message).as_dict()])
    finally:
        cache.delete_many([key, alive])
    logger.info("customer import %s: %s (%s created, %s updated)", job.pk, job.status, job.created, job.updated)
    return job


def _write(rows: list[Row], *, by: Any, on_progress: Callable[[int], None]) -> tuple[int, int]:
    """Upsert every row (inside the caller's transaction); raises :class:`ImportInvalid` with every conflict."""
    created = updated = 0
    errors: list[RowError] = []
    for done, row in enumerate(rows, start=1):
        try:
            result = upsert_customer(
                external_id=row.external_id,
                email=row.email,
                phone=row.phone,
                name=row.name,
                language=row.language,
                attributes=row.attributes,
                by=by,
            )
        except ValidationError as exc:
            errors += [
                RowError(row.number, field, message)
                for field, messages in exc.message_dict.items()
                for message in messages
            ]
            continue
        created += result.created
        updated += bool(result.changed) and not result.created
        if done % PROGRESS_EVERY == 0 or done == len(rows):
            on_progress(done)
    if errors:
        raise ImportInvalid(errors)
    return created, updated


def _fail(job: CustomerImport, errors: list[dict[str, Any]]) -> None:
    job.status, job.created, job.updated = CustomerImport.Status.FAILED, 0, 0
    job.errors, job.finished_at, job.content = errors[:1000], timezone.now(), ""  # the admin has the file
    job.save(update_fields=["status", "created", "updated", "errors", "finished_at", "content"])
