"""The reports' tests refresh the rollups several times a test: each refresh recomputes the days it
touched at once (the product waits ``REPORTS_DAY_REFRESH_SECONDS`` between two of one day, tested
on its own in test_rollups.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def days_refreshed_at_every_refresh(settings) -> None:
    settings.REPORTS_DAY_REFRESH_SECONDS = 0
