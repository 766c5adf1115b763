"""Counters and per-process gauges shared by every process through Redis, written in batches.

Why Redis and not prometheus-client's multiprocess mode: that mode shares numbers through files in
one directory, so it only adds up the processes of one machine, and a worker on a machine without a
web process would have nobody to expose its numbers. Parley's processes may sit on several
machines (docs/operations.md); all of them share Redis.

Why batches: a webhook must not wait for Redis, nor fail or slow down when Redis is away. Counting
is an in-memory addition; a thread per process adds the sums to Redis every
``FLUSH_SECONDS`` (and the process answering a scrape adds its own first). What a process counted in
its last second is lost if it is killed: counters are for rates and alerts, not for bookkeeping.

Storage: one Redis hash of counters (field: the JSON of ``[name, {labels}]``, value: the total) and
one hash of per-process gauges (field: ``[name, {labels}, process]``, value: ``count timestamp``);
gauges of a process that stopped refreshing them for ``GAUGE_STALE_SECONDS`` are dropped at read.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping

from ops import store

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
GAUGE_REFRESH_SECONDS = 10.0
GAUGE_STALE_SECONDS = 35.0
# Deltas kept while Redis is away, at most: past it the oldest numbers are dropped, not memory.
MAX_PENDING_FIELDS = 10_000

Labels = Mapping[str, str]


def field(name: str, labels: Labels) -> str:
    return json.dumps([name, dict(sorted(labels.items()))], separators=(",", ":"))


def parse_field(raw: bytes | str) -> tuple[str, dict[str, str]]:
    name, labels = json.loads(raw)
    return str(name), {str(k): str(v) for k, v in labels.items()}


class Batch:
    """This process's unsent counts and its current gauges, and the thread that sends them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, float] = {}
        self.gauges: dict[str, float] = {}
        self.gauges_changed = False
        self.gauges_sent_at = 0.0
        self.pid = 0
        self.process = ""

    def add(self, name: str, labels: Labels, amount: float) -> None:
        key = field(name, labels)
        with self.lock:
            self._start()
            if key not in self.counts and len(self.counts) >= MAX_PENDING_FIELDS:
                return
            self.counts[key] = self.counts.get(key, 0) + amount

    def change_gauge(self, name: str, labels: Labels, amount: float) -> None:
        key = field(name, labels)
        with self.lock:
            self._start()
            self.gauges[key] = self.gauges.get(key, 0) + amount
            self.gauges_changed = True

    def _start(self) -> None:
        if self.pid == os.getpid():
            return
        # First use in this process (a forked worker inherits the parent's numbers: not its own).
        self.pid = os.getpid()
        self.process = f"{socket.gethostname()}:{self.pid}"
        self.counts, self.gauges = {}, {}
        threading.Thread(target=self._flush_forever, name="parley-ops-counters", daemon=True).start()

    def _flush_forever(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()

    def flush(self) -> bool:
        """Send what this process counted; False when Redis did not take it (kept for next time)."""
        with self.lock:
            counts, self.counts = self.counts, {}
            now = time.time()
            gauges = None
            if self.gauges_changed or now - self.gauges_sent_at > GAUGE_REFRESH_SECONDS:
                gauges = {
                    json.dumps([*json.loads(key), self.process], separators=(",", ":")): f"{value:g} {now:.3f}"
                    for key, value in self.gauges.items()
                }
                self.gauges_changed = False
        if not counts and not gauges:
            return True
        try:
            pipe = store.client().pipeline(transaction=False)
            for key, amount in counts.items():
                if float(amount).is_integer():
                    pipe.hincrby(store.key("counters"), key, int(amount))
                else:
                    pipe.hincrbyfloat(store.key("counters"), key, amount)
            if gauges:
                pipe.hset(store.key("gauges"), mapping=gauges)  # type: ignore[arg-type]
            pipe.execute()
        except Exception as exc:
            logger.debug("operations counters not sent: %s", exc)
            with self.lock:
                for key, amount in counts.items():
                    if key in self.counts or len(self.counts) < MAX_PENDING_FIELDS:
                        self.counts[key] = self.counts.get(key, 0) + amount
                if gauges:
                    self.gauges_changed = True
            return False
        if gauges:
            self.gauges_sent_at = now
        return True


_batch = Batch()
atexit.register(_batch.flush)


def increment(name: str, labels: Labels | None = None, amount: float = 1) -> None:
    """Add ``amount`` to a counter shared by every process (sent within ``FLUSH_SECONDS``)."""
    _batch.add(name, labels or {}, amount)


def change_gauge(name: str, labels: Labels | None = None, amount: float = 1) -> None:
    """Move this process's share of a gauge (websocket connections); the total adds up processes."""
    _batch.change_gauge(name, labels or {}, amount)


def observe(name: str, labels: Labels, value: float, buckets: tuple[float, ...]) -> None:
    """Count ``value`` into a histogram: its bucket (the smallest bound it fits under), sum and count.

    Buckets are stored apart and made cumulative at read (``metrics``), so one observation is
    three additions whatever the number of buckets."""
    bound = next((str(float(b)) for b in buckets if value <= b), "+Inf")
    increment(f"{name}_bucket", {**labels, "le": bound})
    increment(f"{name}_sum", labels, value)
    increment(f"{name}_count", labels)


def flush() -> bool:
    return _batch.flush()


def read_counters() -> dict[tuple[str, str], float]:
    """Every counter: ``(name, labels as JSON) -> total``. Raises when Redis does not answer."""
    raw = store.client().hgetall(store.key("counters"))
    totals: dict[tuple[str, str], float] = {}
    for key, value in raw.items():
        name, labels = parse_field(key)
        totals[(name, json.dumps(labels, sort_keys=True))] = float(value)
    return totals


def read_gauges() -> dict[tuple[str, str], float]:
    """Every gauge summed over the processes that refreshed it lately; stale processes are removed."""
    redis_client = store.client()
    raw = redis_client.hgetall(store.key("gauges"))
    now = time.time()
    totals: dict[tuple[str, str], float] = {}
    stale = []
    for key, value in raw.items():
        count, at = value.decode().split() if isinstance(value, bytes) else str(value).split()
        if now - float(at) > GAUGE_STALE_SECONDS:
            stale.append(key)
            continue
        name, labels, _process = json.loads(key)
        index = (str(name), json.dumps(labels, sort_keys=True))
        totals[index] = totals.get(index, 0) + float(count)
    if stale:
        redis_client.hdel(store.key("gauges"), *stale)
    return totals
