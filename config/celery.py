from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("parley")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def release_database(**kwargs: Any) -> None:
    """Around each task, as around a request: give back a connection that is broken or past its age.

    With the pool (``CONN_MAX_AGE`` 0) that returns it to the pool, which is cheap; it is what
    ``CELERY_DB_REUSE_MAX`` leaves to us instead of Celery's close-everything.
    """
    from django.db import close_old_connections

    close_old_connections()


task_prerun.connect(release_database, weak=False)
task_postrun.connect(release_database, weak=False)


def keep_django_logging(**kwargs: Any) -> None:
    """Celery configures no logging of its own when someone answers ``setup_logging``: the worker
    and beat log through Django's ``LOGGING`` (the same format, JSON with ``LOG_FORMAT=json``, and
    the request id), at ``LOG_LEVEL``; ``--loglevel`` is not used."""


setup_logging.connect(keep_django_logging, weak=False)
