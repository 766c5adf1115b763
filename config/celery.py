from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun

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
