"""Writes to the knowledge base: articles with their example questions, and file imports.

The only writers of articles outside Django admin. They keep the bot's caches right without
touching them: vectors are cached by text (:func:`bot.knowledge.embed`), so an example
question whose text is kept is never re-embedded, and each write changes
:func:`bot.knowledge.fingerprint` (article ``updated_at``, example count and newest
``updated_at``/pk), so every process rebuilds its index and retrains the head on its next message.
Examples are therefore replaced by difference, never deleted and re-created wholesale.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.services import record
from bot import transfer
from bot.models import Article, Calibration, ExampleQuestion, ImportJob, KnownOutOfScope
from bot.transfer import ArticleInput, ExampleInput, RowError
from inbox.models import Operator

logger = logging.getLogger(__name__)

# Files with more articles than this are imported by the worker, with a progress display.
INLINE_IMPORT_ROWS = 100
_PROGRESS_EVERY = 25


def _check_admin(by: Operator | None) -> None:
    if by is not None and not by.is_staff:
        raise PermissionDenied(_("Only admins may change the knowledge base."))


def _save_examples(article: Article, examples: Sequence[ExampleInput]) -> None:
    """Make the article's example questions exactly ``examples``, touching only what differs."""
    existing = {e.text: e for e in ExampleQuestion.objects.filter(article=article)}
    wanted = {e.text: e for e in examples}
    gone = [e.pk for text, e in existing.items() if text not in wanted]
    if gone:
        ExampleQuestion.objects.filter(pk__in=gone).delete()
    for text, example in wanted.items():
        row = existing.get(text)
        if row is not None and row.language != example.language:
            row.language = example.language
            row.save(update_fields=["language", "updated_at"])
    new = [
        ExampleQuestion(article=article, text=e.text, language=e.language)
        for t, e in wanted.items()
        if t not in existing
    ]
    ExampleQuestion.objects.bulk_create(new)


def _write(article: Article, data: ArticleInput) -> Article:
    article.title = data.title
    article.answer = data.answer
    article.language = data.language
    article.tags = list(data.tags)
    article.channels = list(data.channels)
    article.is_active = data.is_active
    if article._state.adding:
        article.save()
    else:
        # Always saved, with updated_at: the bot's index fingerprint must move on every edit.
        article.save(update_fields=["title", "answer", "language", "tags", "channels", "is_active", "updated_at"])
    _save_examples(article, data.examples)
    return article


def create_article(*, data: ArticleInput, by: Operator | None) -> Article:
    _check_admin(by)
    with transaction.atomic():
        article = _write(Article(), data)
        record(action="created", actor=by, target=article)
    logger.info("knowledge base: %s created article %s", by, article.pk)
    return article


def update_article(*, article: Article, data: ArticleInput, by: Operator | None) -> Article:
    _check_admin(by)
    with transaction.atomic():
        locked = Article.objects.select_for_update().get(pk=article.pk)
        _write(locked, data)
        record(action="changed", actor=by, target=locked)
    logger.info("knowledge base: %s updated article %s", by, article.pk)
    return locked


def delete_article(*, article: Article, by: Operator | None) -> None:
    """Delete an article and its example questions (bot decisions keep their scores; their link goes)."""
    _check_admin(by)
    pk = article.pk
    with transaction.atomic():
        Article.objects.filter(pk=pk).delete()
        record(action="deleted", actor=by, target_type="article", target_id=pk, target_label=article.title)
    logger.info("knowledge base: %s deleted article %s", by, pk)


# -- imports ----------------------------------------------------------------------------------------------


class ImportInvalid(Exception):
    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} problems")
        self.errors = errors


@dataclass(frozen=True)
class ImportPlan:
    """Which stored article each article of a file updates (None: a new one)."""

    rows: list[tuple[ArticleInput, int | None]]

    @property
    def total(self) -> int:
        return len(self.rows)


def plan_import(articles: Sequence[ArticleInput]) -> ImportPlan:
    """Match a file's articles with stored ones: by id when it is one here, else by title; raises ImportInvalid."""
    errors: list[RowError] = []
    wanted_ids = {a.id for a in articles if a.id is not None}
    known_ids = set(Article.objects.filter(pk__in=wanted_ids).values_list("pk", flat=True)) if wanted_ids else set()
    by_title: dict[str, list[int]] = {}
    for pk, title in Article.objects.values_list("pk", "title"):
        by_title.setdefault(title.casefold(), []).append(pk)
    rows: list[tuple[ArticleInput, int | None]] = []
    for article in articles:
        if article.id is not None and article.id in known_ids:
            rows.append((article, article.id))
            continue
        # An id that is not here (a deleted article, a file from elsewhere) is ignored: match by title.
        matches = by_title.get(article.title.casefold(), [])
        if len(matches) > 1:
            errors.append(
                RowError(
                    article.row,
                    "title",
                    _("Several articles are titled “%(title)s”: give the id (%(ids)s) of the one to update.")
                    % {"title": article.title, "ids": ", ".join(map(str, matches))},
                )
            )
        rows.append((article, matches[0] if matches else None))
    if errors:
        raise ImportInvalid(errors)
    return ImportPlan(rows)


def check_file(*, content: str, fmt: str) -> ImportPlan:
    """Read and match a whole file without writing anything; raises ImportInvalid with every problem."""
    articles, errors = transfer.read(content, fmt)
    if errors:
        raise ImportInvalid(errors)
    return plan_import(articles)


def _progress_key(job_id: int) -> str:
    return f"bot:import:{job_id}:processed"


def progress(job: ImportJob) -> int:
    """Articles written so far. The writes commit together at the end, so the count lives in the cache."""
    if job.status == ImportJob.Status.RUNNING:
        value = cache.get(_progress_key(job.pk))
        return int(value) if value is not None else 0
    return job.processed


def apply_plan(plan: ImportPlan, *, on_progress: Callable[[int], None] | None = None) -> tuple[int, int]:
    """Write every article of a checked plan (call inside a transaction); returns (created, updated)."""
    created = updated = 0
    existing = Article.objects.select_for_update().in_bulk([pk for _, pk in plan.rows if pk is not None])
    for done, (data, pk) in enumerate(plan.rows, start=1):
        article = existing.get(pk) if pk is not None else None
        if pk is not None and article is None:
            raise ImportInvalid([RowError(data.row, "id", _("This article was deleted while the file was imported."))])
        _write(article or Article(), data)
        if article is None:
            created += 1
        else:
            updated += 1
        if on_progress is not None and (done % _PROGRESS_EVERY == 0 or done == plan.total):
            on_progress(done)
    return created, updated


def start_import(*, data: bytes, filename: str, by: Operator | None) -> ImportJob:
    """Check an uploaded file and store it as an import; small files are imported at once, large ones by the worker.

    Raises ImportInvalid (nothing stored) when the file cannot be read or any article in it is wrong.
    """
    _check_admin(by)
    fmt = "csv" if filename.lower().endswith((".csv", ".tsv", ".txt")) else "json"
    if not filename.lower().endswith((".csv", ".tsv", ".txt", ".json")):
        raise ImportInvalid([RowError(0, "", _("Choose a .json or .csv file."))])
    try:
        content = transfer.decode(data)
    except ValueError as exc:
        raise ImportInvalid([RowError(0, "", str(exc))]) from None
    plan = check_file(content=content, fmt=fmt)
    job = ImportJob.objects.create(
        created_by=by, filename=filename[:255], format=fmt, content=content, total=plan.total
    )
    if plan.total <= getattr(settings, "PARLEY_KB_IMPORT_INLINE_ROWS", INLINE_IMPORT_ROWS):
        return run_import(job_id=job.pk)
    from bot.tasks import import_knowledge  # a true cycle: the tasks call this module

    transaction.on_commit(lambda: import_knowledge.delay(job.pk))
    return job


def run_import(*, job_id: int) -> ImportJob:
    """Import one stored file, all or nothing; safe to run again (a finished import stays as it is)."""
    claimed = ImportJob.objects.filter(
        pk=job_id, status__in=[ImportJob.Status.PENDING, ImportJob.Status.RUNNING]
    ).update(status=ImportJob.Status.RUNNING)
    job = ImportJob.objects.get(pk=job_id)
    if not claimed:
        return job
    key = _progress_key(job.pk)
    cache.set(key, 0, timeout=24 * 3600)
    try:
        with transaction.atomic():
            plan = check_file(content=job.content, fmt=job.format)
            job.total = plan.total
            created, updated = apply_plan(plan, on_progress=lambda done: cache.set(key, done, timeout=24 * 3600))
            job.status, job.processed, job.created, job.updated = ImportJob.Status.DONE, plan.total, created, updated
            job.errors, job.finished_at, job.content = [], timezone.now(), ""
            job.save(
                update_fields=["status", "total", "processed", "created", "updated", "errors", "finished_at", "content"]
            )
            record(
                action="imported", actor=job.created_by, target=job, details={"created": created, "updated": updated}
            )
    except ImportInvalid as invalid:
        _fail(job, [e.as_dict() for e in invalid.errors])
    except Exception:
        logger.exception("knowledge-base import %s failed", job_id)
        message = _("The import stopped on an unexpected error; nothing of this file was stored. Try again.")
        _fail(job, [RowError(0, "", message).as_dict()])
    finally:
        cache.delete(key)
    logger.info("knowledge-base import %s: %s (%s created, %s updated)", job.pk, job.status, job.created, job.updated)
    return job


def _fail(job: ImportJob, errors: list[dict[str, object]]) -> None:
    job.status, job.processed, job.created, job.updated = ImportJob.Status.FAILED, 0, 0, 0
    job.errors, job.finished_at, job.content = errors, timezone.now(), ""  # the admin has the file
    job.save(update_fields=["status", "processed", "created", "updated", "errors", "finished_at", "content"])


# -- calibration ---------------------------------------------------------------------------------------------

CALIBRATION_KEY = "bot:calibration:started"
CALIBRATION_TIMEOUT = 30 * 60  # the recalibrate task's own time limit


def calibration_started() -> datetime | None:
    """When an admin last asked for a calibration that has not finished yet (None: none is running)."""
    value = cache.get(CALIBRATION_KEY)
    if value is None:
        return None
    started = datetime.fromisoformat(str(value))
    latest = Calibration.objects.order_by("-computed_at", "-pk").values_list("computed_at", flat=True).first()
    return None if latest is not None and latest >= started else started


def start_calibration(*, by: Operator | None) -> tuple[bool, datetime]:
    """Recompute the bot's thresholds in the worker (``tasks.recalibrate``); (False, since) when one is running."""
    _check_admin(by)
    running = calibration_started()
    if running is not None:
        return False, running
    started = timezone.now()
    cache.set(CALIBRATION_KEY, started.isoformat(), timeout=CALIBRATION_TIMEOUT)
    from bot.tasks import recalibrate  # a true cycle: the tasks call this module

    transaction.on_commit(lambda: recalibrate.delay())
    logger.info("knowledge base: %s started a calibration", by)
    return True, started


# -- calibration when the knowledge base changed -----------------------------------------------------------

# The scheduler looks every minute (``tasks.calibrate_if_changed``); a knowledge base edited in the
# last QUIET_SECONDS is being written: it waits, so that twenty new articles cost one calibration.
QUIET_SECONDS = 120
SIGNATURE_KEY = "bot:calibration:signature"


def knowledge_signature() -> tuple[str, datetime | None]:
    """What the calibration depends on (:func:`bot.knowledge.fingerprint`: an edit, an addition
    and a deletion each change it) and when the knowledge base last changed."""
    from bot import knowledge  # the calibration's own module, loaded by the worker anyway

    changes = [
        Article.objects.aggregate(last=Max("updated_at"))["last"],
        ExampleQuestion.objects.aggregate(last=Max("updated_at"))["last"],
        KnownOutOfScope.objects.aggregate(last=Max("created_at"))["last"],
    ]
    known = [change for change in changes if change is not None]
    return knowledge.fingerprint(), max(known) if known else None


def remember_calibrated(signature: str) -> None:
    """Note the knowledge base a finished calibration saw (``tasks.recalibrate``)."""
    cache.set(SIGNATURE_KEY, signature, timeout=None)


def calibrate_if_changed(*, now: datetime | None = None) -> bool:
    """Start a calibration when the knowledge base changed since the last one and has been quiet
    for :data:`QUIET_SECONDS`; True when one was started. A new team's first articles so reach
    the customers without anyone pressing "Calibrate now" (the shipped prior gives a point from
    the first articles; docs/bot.md)."""
    signature, latest = knowledge_signature()
    if latest is None or cache.get(SIGNATURE_KEY) == signature:
        return False  # nothing written yet (or everything deleted), or calibrated as it is
    now = now or timezone.now()
    if now - latest < timedelta(seconds=QUIET_SECONDS):
        return False
    if calibration_started() is not None:
        return False
    cache.set(CALIBRATION_KEY, now.isoformat(), timeout=CALIBRATION_TIMEOUT)
    from bot.tasks import recalibrate  # a true cycle: the tasks call this module

    recalibrate.delay()
    logger.info("knowledge base changed (%s): calibration started", signature)
    return True
