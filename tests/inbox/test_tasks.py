"""Webhooks' events go to the worker one by one when they are few, several to a task when they crowd."""

from __future__ import annotations

import time

from inbox.tasks import Coalescer
from tests.conftest import wait_for


def test_a_lone_id_goes_at_once_and_a_crowd_waits_for_the_window_and_goes_together() -> None:
    sent: list[list[int]] = []
    coalescer = Coalescer(sent.append, window=0.3)

    coalescer.add(1)
    assert sent == [[1]]  # nothing to wait for: handed over in the caller's own call

    started = time.monotonic()
    for pk in (2, 3, 4):
        coalescer.add(pk)
    assert sent == [[1]]
    wait_for(lambda: len(sent) == 2, timeout=5)
    assert sent == [[1], [2, 3, 4]]
    assert time.monotonic() - started < 1.0  # the end of the window, not a timeout

    time.sleep(0.4)  # quiet for longer than the window
    coalescer.add(5)
    assert sent[-1] == [5]
