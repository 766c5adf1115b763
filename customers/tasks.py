"""The worker's half of the customer CSV import."""

from __future__ import annotations

from celery import shared_task

from customers import imports


@shared_task(acks_late=True)
def import_customers(job_id: int) -> str:
    return str(imports.run_import(job_id=job_id).status)
