"""The security tests reuse the browser tests' Chromium fixtures (tests/browser/conftest.py)."""

from __future__ import annotations

from tests.browser.conftest import browser, new_page, page  # noqa: F401 - fixtures, found by name
