"""The supervisor's Prometheus metrics and its ``/status``, on ``[scs] http-port``.

Counted from the events the supervisor emits (:attr:`EventLog.observers`),
so that a metric and the log line an operator reads never disagree:
failovers by cause (40304 proof of death, 40305 the lease, 40313 no primary),
the failover time (40306's fault-to-promotion), restarts (40103). Read at each
scrape: each server's management link and each host agent's link, whether this
supervisor acts, and its supervisor epoch. ``/status`` is the document of
``scs status --json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import trio
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from confserv.http.probe import JSON, Reply
from confserv.logs.catalog import LogEvent

if TYPE_CHECKING:
    from .supervisor import Supervisor

#: The events that decide a failover, by the cause they name.
CAUSES = {40304: "proof-of-death", 40305: "lease", 40313: "no-primary"}
#: Failover time buckets, seconds (a kill takes ~0.1 s; a lease failover ~ttl).
FAILOVER_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)


class _LinkCollector(Collector):
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup

    def collect(self) -> Iterator[Metric]:
        sup = self.sup
        links = GaugeMetricFamily(
            "cfgha_scs_link_up", "1 while the management link to a server is up.", labels=["server"]
        )
        for name in sup.settings.servers:
            links.add_metric([name], 1.0 if name in sup.seen else 0.0)
        yield links
        agents = GaugeMetricFamily(
            "cfgha_scs_agent_up", "1 while the link to a host's agent is up.", labels=["host"]
        )
        for host, agent in sup.agents.items():
            agents.add_metric([host], 1.0 if agent.up else 0.0)
        yield agents
        yield GaugeMetricFamily(
            "cfgha_scs_acting", "1 while this supervisor acts.", value=1.0 if sup.acting else 0.0
        )
        epoch = sup.describe().get("epoch")
        yield GaugeMetricFamily(
            "cfgha_scs_supervisor_epoch",
            "The supervisor epoch it acts at (0 while standby or without a lease).",
            value=float(epoch or 0),
        )


class SupervisorMetrics:
    """The supervisor's registry, fed by its event log (see module docstring)."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_LinkCollector(sup))
        self.failovers = Counter(
            "cfgha_scs_failovers", "Failovers decided, by cause.", ["cause"], registry=self.registry
        )
        for cause in CAUSES.values():
            self.failovers.labels(cause=cause)
        self.failover_seconds = Histogram(
            "cfgha_scs_failover_seconds",
            "From the fault seen to the backup promoted (event 40306).",
            buckets=FAILOVER_BUCKETS,
            registry=self.registry,
        )
        self.restarts = Counter(
            "cfgha_scs_restarts",
            "Restarts scheduled, by server.",
            ["server"],
            registry=self.registry,
        )
        sup.log.observers.append(self.observe)

    def observe(self, event: LogEvent, fields: Mapping[str, Any]) -> None:
        """Count what ``event`` tells."""
        if event.id in CAUSES:
            self.failovers.labels(cause=CAUSES[event.id]).inc()
        elif event.id == 40306 and isinstance(fields.get("ms"), (int, float)):
            self.failover_seconds.observe(float(fields["ms"]) / 1000.0)
        elif event.id == 40103:
            self.restarts.labels(server=str(fields.get("server"))).inc()

    def answer(self, method: str, target: str) -> Reply:
        """``GET /metrics`` and ``GET /status``; 404 and 405 as on a server's port."""
        if method not in ("GET", "HEAD"):
            return Reply(405, JSON, b'{"error": "use GET"}\n')
        path = target.split("?", 1)[0]
        if path == "/metrics":
            return Reply(200, CONTENT_TYPE_LATEST, generate_latest(self.registry))
        if path == "/status":
            document = {
                "supervisor": self.sup.describe(),
                "servers": self.sup.snapshot(trio.current_time()),
            }
            return Reply(200, JSON, (json.dumps(document, sort_keys=True) + "\n").encode())
        missing = {"error": "no such path (paths: /metrics, /status)"}
        return Reply(404, JSON, (json.dumps(missing) + "\n").encode())
