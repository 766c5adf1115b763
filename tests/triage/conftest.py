from __future__ import annotations

from django.apps import apps

# The database tests need the triage app; until settings install it, only the engine is tested.
collect_ignore = [] if apps.is_installed("inbox.triage") else ["test_knowledge.py"]
