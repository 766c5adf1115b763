from __future__ import annotations

from django.apps import AppConfig


class DemoConfig(AppConfig):
    """Demo data for a first start, kept as data files in ``demo/data/``; it sits on top of every app."""

    name = "demo"
    verbose_name = "Demo"
