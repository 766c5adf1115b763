"""/metrics: the numbers someone running Parley watches, in Prometheus' text format.

Gauges (what waits now) are read at scrape time from the database and Redis with indexed queries
(``ops.queues``); counters and the delivery-time histogram come from ``ops.counters`` (Redis, added
up over every process on every machine). A source that does not answer leaves its metrics out and
says so in ``parley_metrics_source_up``; the scrape itself still succeeds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Iterator

from django.db.models import QuerySet
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from inbox.models import Channel
from ops import counters, periodic, queues

logger = logging.getLogger(__name__)

# Seconds from a reply's creation to the provider's acceptance.
DELIVERY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)

# Counter names in ops.counters (and the receivers in ops.receivers that count them).
WEBHOOKS = "webhooks"  # labels: key (a channel's webhook key, never exposed; "-" unknown), status
DELIVERY = "delivery_seconds"  # labels: kind
BOT_DECISIONS = "bot_decisions"  # labels: action
LOGIN_FAILURES = "login_failures"
LOGIN_LOCKOUTS = "login_lockouts"
WEBSOCKETS = "websockets"  # per-process gauge; labels: kind (operator, webchat)


def channel_kinds(keys: set[str]) -> dict[str, str]:
    rows: QuerySet[Channel, tuple[str, str]] = Channel.objects.filter(key__in=keys).values_list("key", "kind")
    return dict(rows)


class ParleyCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "parley_metrics_source_up", "Whether a source of these metrics answered", labels=["source"]
        )
        up.add_metric(["database"], float(bool((yield from self.database()))))
        up.add_metric(["redis"], float(bool((yield from self.redis()))))
        yield up

    def database(self) -> Generator[Metric, None, bool]:
        try:
            backlog = queues.backlog()
        except Exception as exc:
            logger.warning("metrics: the database does not answer: %s", exc)
            return False
        inbound = GaugeMetricFamily("parley_inbound_events", "Stored provider events by state", labels=["state"])
        for state, count in backlog.inbound.items():
            inbound.add_metric([state], count)
        yield inbound
        yield GaugeMetricFamily(
            "parley_inbound_oldest_pending_seconds",
            "Age of the oldest inbound event waiting to be processed (0: none)",
            value=backlog.oldest_pending_seconds,
        )
        outbox = GaugeMetricFamily("parley_outbox_messages", "Outbound messages by delivery state", labels=["state"])
        for state, count in backlog.outbox.items():
            outbox.add_metric([state], count)
        yield outbox
        yield GaugeMetricFamily(
            "parley_outbox_oldest_queued_seconds",
            "Age of the oldest outbound message still queued (0: none)",
            value=backlog.oldest_queued_seconds,
        )
        return True

    def redis(self) -> Generator[Metric, None, bool]:
        counters.flush()  # this process's own latest counts
        try:
            totals = counters.read_counters()
            gauges = counters.read_gauges()
            lengths, unacked = queues.celery_queues()
            runs = periodic.last_runs()
        except Exception as exc:
            logger.warning("metrics: Redis does not answer: %s", exc)
            return False
        yield from self.counted(totals)
        sockets = GaugeMetricFamily(
            "parley_websocket_connections", "Open websockets, over every web process", labels=["kind"]
        )
        for kind in ("operator", "webchat"):
            sockets.add_metric([kind], gauges.get((WEBSOCKETS, json.dumps({"kind": kind})), 0))
        yield sockets
        queue = GaugeMetricFamily("parley_celery_queue_length", "Tasks waiting in a Celery queue", labels=["queue"])
        for name, length in lengths.items():
            queue.add_metric([name], length)
        yield queue
        yield GaugeMetricFamily(
            "parley_celery_unacked_tasks", "Tasks a worker took and has not finished (acks late)", value=unacked
        )
        last = GaugeMetricFamily(
            "parley_periodic_task_last_success_timestamp_seconds",
            "When a periodic task (sweeper, poll) last completed, Unix time",
            labels=["task"],
        )
        for name in sorted(periodic.scheduled()):
            if name in runs:
                last.add_metric([name], runs[name])
        yield last
        return True

    def counted(self, totals: dict[tuple[str, str], float]) -> Iterator[Metric]:
        def labelled(name: str) -> Iterator[tuple[dict[str, str], float]]:
            for (counter, labels), value in sorted(totals.items()):
                if counter == name:
                    yield json.loads(labels), value

        webhooks = CounterMetricFamily(
            "parley_webhooks_received",
            "Provider webhook requests answered, by channel kind and status",
            labels=["kind", "status"],
        )
        by_key = list(labelled(WEBHOOKS))
        kinds = channel_kinds({labels["key"] for labels, _ in by_key if labels["key"] != "-"}) if by_key else {}
        summed: dict[tuple[str, str], float] = {}
        for labels, value in by_key:
            index = (kinds.get(labels["key"], "unknown"), labels["status"])
            summed[index] = summed.get(index, 0) + value
        for (kind, status), value in sorted(summed.items()):
            webhooks.add_metric([kind, status], value)
        yield webhooks

        decisions = CounterMetricFamily(
            "parley_bot_decisions", "What the bot did with customer messages", labels=["action"]
        )
        for labels, value in labelled(BOT_DECISIONS):
            decisions.add_metric([labels["action"]], value)
        yield decisions
        yield CounterMetricFamily(
            "parley_login_failures", "Failed sign-ins", value=next((v for _l, v in labelled(LOGIN_FAILURES)), 0)
        )
        yield CounterMetricFamily(
            "parley_login_lockouts",
            "Sign-ins locked out by the throttle",
            value=next((v for _l, v in labelled(LOGIN_LOCKOUTS)), 0),
        )
        yield self.histogram(totals)

    def histogram(self, totals: dict[tuple[str, str], float]) -> Metric:
        family = HistogramMetricFamily(
            "parley_delivery_seconds", "Seconds from a reply's creation to the provider accepting it", labels=["kind"]
        )
        buckets: dict[str, dict[str, float]] = {}
        sums: dict[str, float] = {}
        for (name, raw), value in totals.items():
            labels = json.loads(raw)
            if name == f"{DELIVERY}_bucket":
                buckets.setdefault(labels["kind"], {})[labels["le"]] = value
            elif name == f"{DELIVERY}_sum":
                sums[labels["kind"]] = value
        for kind in sorted(buckets):
            running = 0.0
            cumulative = []
            for bound in [str(float(b)) for b in DELIVERY_BUCKETS] + ["+Inf"]:
                running += buckets[kind].get(bound, 0)
                cumulative.append((bound, running))
            family.add_metric([kind], cumulative, sums.get(kind, 0.0))
        return family


def render() -> bytes:
    """The whole exposition, freshly read (about 8 queries and 4 Redis round trips)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ParleyCollector())
    return generate_latest(registry)
