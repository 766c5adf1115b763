"""Real Chromium (Debian's) driven by Playwright against the real stack (Daphne + Celery worker)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still sync.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# How long an ``expect(...)`` waits for the page (Playwright's default is 5 s). A page that is right
# gets there in well under a second on a quiet machine; CI shares two cores with real workers, web
# processes and Chromium, where a live update or a rendered Swagger UI took more than 5 s.
EXPECT_TIMEOUT_MS = 15_000


def pytest_configure(config: pytest.Config) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope: Playwright's sync API holds an event loop in this thread while it runs, which
    # would stop async tests (consumers) from running their own loop afterwards.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Callable[[], Any]]:
    """Open pages in fresh browser contexts (separate cookies: separate operators)."""
    contexts: list[Any] = []

    def open_page(viewport: dict[str, int] | None = None) -> Any:
        context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800})
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[[], Any]) -> Any:
    return new_page()


def log_in(page: Any, base_url: str, username: str, password: str) -> Any:
    """Log in through the login form and wait until the page's live connection is up."""
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}/")
    page.wait_for_selector("body[data-live=online]")
    return page


class WebProcess:
    """Stop and start the stack's Daphne on the same port, as a deploy or a crash would."""

    def __init__(self, stack: Any) -> None:
        self.stack = stack
        self.port = int(stack.base_url.rsplit(":", 1)[1])

    def _running(self) -> Any:
        for process, log in zip(self.stack.processes, self.stack.logs, strict=True):
            if log.name == "web.log" and process.poll() is None:
                return process
        return None

    def stop(self) -> None:
        process = self._running()
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:  # still closing its sockets on a busy machine: a crash, then
                process.kill()
                process.wait(timeout=15)

    def start(self) -> None:
        self.stack.start(
            "web",
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "config.asgi:application"],
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("the web process did not come back:\n" + self.stack.tail())


@pytest.fixture
def web(stack: Any) -> Iterator[WebProcess]:
    process = WebProcess(stack)
    yield process
    if process._running() is None:
        process.start()
