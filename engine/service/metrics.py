"""Prometheus metrics of one service instance (a registry of its own, so tests can run several side by side).

Counters are per process (events taken, processed, runs, actions, Salesforce calls); the queue gauges (inbox and
outbox depth, oldest unprocessed age) are read from the database when scraped, so they are the same from any
instance.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from engine.service.queue import Depth
from engine.store.store import Person

log = logging.getLogger("smartcampaign.service")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Probes(Collector):
    """Gauges computed at scrape time."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = self.metrics.read_depth()
        if depth is not None:
            yield GaugeMetricFamily("smartcampaign_inbox_depth", "Events in the inbox not processed yet", depth.inbox)
            age = time.time() - depth.oldest_received_at if depth.oldest_received_at is not None else 0.0
            yield GaugeMetricFamily(
                "smartcampaign_inbox_oldest_age_seconds", "Age of the oldest unprocessed event", max(age, 0.0)
            )
            yield GaugeMetricFamily("smartcampaign_outbox_depth", "CRM operations not sent yet", depth.outbox)
            out_age = time.time() - depth.oldest_outbox_at if depth.oldest_outbox_at is not None else 0.0
            yield GaugeMetricFamily(
                "smartcampaign_outbox_oldest_age_seconds", "Age of the oldest CRM operation not sent yet",
                max(out_age, 0.0),
            )  # fmt: skip
            yield GaugeMetricFamily(
                "smartcampaign_dead_letters", "Events that could not be processed (kept with their error)",
                depth.dead_letters,
            )  # fmt: skip
        usage = self.metrics.read_salesforce_usage()
        if usage is not None:
            used, limit = usage
            yield GaugeMetricFamily(
                "smartcampaign_salesforce_api_remaining", "Daily API requests left (Sforce-Limit-Info)",
                max(limit - used, 0),
            )  # fmt: skip
            yield GaugeMetricFamily("smartcampaign_salesforce_api_limit", "Daily API request maximum", limit)
        yield GaugeMetricFamily(
            "smartcampaign_rules_loaded", "1 when a rule set is loaded", 1 if self.metrics.rules_loaded() else 0
        )


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_received = Counter(
            "smartcampaign_events_received", "Events taken into the inbox", ["source"], registry=r
        )
        self.events_duplicate = Counter(
            "smartcampaign_events_duplicate", "Events whose id was already in the inbox", ["source"], registry=r
        )
        self.events_rejected = Counter("smartcampaign_events_rejected", "Requests refused (422)", registry=r)
        self.events_processed = Counter(
            "smartcampaign_events_processed", "Events run through the engine", ["outcome"], registry=r
        )
        self.runs = Counter("smartcampaign_runs", "Smart campaign runs started", ["campaign"], registry=r)
        self.scheduled_runs = Counter(
            "smartcampaign_scheduled_runs", "Batch campaign runs queued by the scheduler", ["campaign"], registry=r
        )
        self.batch_members_queued = Counter(
            "smartcampaign_batch_members_queued", "Persons queued for a batch campaign's scheduled run", ["campaign"],
            registry=r,
        )  # fmt: skip
        self.campaign_requests = Counter(
            "smartcampaign_campaign_requests", "Persons queued by POST /campaigns/{name}/request", ["campaign"],
            registry=r,
        )  # fmt: skip
        self.actions = Counter(
            "smartcampaign_actions", "Flow steps by kind and outcome", ["kind", "outcome"], registry=r
        )
        self.engine_errors = Counter("smartcampaign_engine_errors", "Errors the interpreter reported", registry=r)
        self.salesforce_calls = Counter(
            "smartcampaign_salesforce_api_calls", "Salesforce API calls by endpoint", ["endpoint"], registry=r
        )
        self.outbox_refused = Counter(
            "smartcampaign_salesforce_refused_records", "Records Salesforce refused, by error code", ["code"],
            registry=r,
        )  # fmt: skip
        self.outbox_sent = Counter(
            "smartcampaign_outbox_sent", "CRM operations sent from the outbox", ["outcome"], registry=r
        )
        self.latency = Histogram(
            "smartcampaign_event_latency_seconds",
            "From taken into the inbox to processed",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.depth_probe: Callable[[], Depth] | None = None
        self.usage_probe: Callable[[], tuple[int, int] | None] | None = None
        self.rules_probe: Callable[[], bool] = lambda: False
        self._lock = threading.Lock()
        self.registry.register(_Probes(self))

    def read_depth(self) -> Depth | None:
        if self.depth_probe is None:
            return None
        try:
            return self.depth_probe()
        except Exception as error:  # a scrape must not fail because the store is down: /readyz says so
            log.warning("metrics: cannot read the queue depth: %s", error)
            return None

    def read_salesforce_usage(self) -> tuple[int, int] | None:
        return self.usage_probe() if self.usage_probe is not None else None

    def rules_loaded(self) -> bool:
        return self.rules_probe()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsRecorder:
    """The interpreter's recorder for the service: counts runs, steps and errors once their transaction commits."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self.metrics = metrics
        self._pending: list[tuple[str, tuple[Any, ...]]] = []

    def run_started(self, run_id: int, campaign: str, person: Person, trigger: dict[str, Any], at: float) -> None:
        self._pending.append(("run", (campaign,)))

    def step(self, run_id: int, step: dict[str, Any]) -> None:
        self._pending.append(("step", (str(step.get("action")), str(step.get("outcome")))))

    def error(self, message: str, at: float) -> None:
        self._pending.append(("error", (message,)))

    def committed(self) -> None:
        for kind, data in self._pending:
            if kind == "run":
                self.metrics.runs.labels(campaign=data[0]).inc()
            elif kind == "step":
                self.metrics.actions.labels(kind=data[0], outcome=data[1]).inc()
            else:
                self.metrics.engine_errors.inc()
                log.warning("engine: %s", data[0])
        self._pending.clear()

    def rolled_back(self) -> None:
        self._pending.clear()
