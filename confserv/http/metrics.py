"""A running server's Prometheus metrics, through ``prometheus_client``.

One :class:`ServerMetrics` per server process, with its own registry (never
the library's global one: tests run several servers in one process). The
state is read at each scrape from the :class:`~confserv.core.runtime.Runtime`
(a custom collector); the write latency is a histogram the client port feeds
(``Runtime.write_observed``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from confserv.core.runtime import Runtime

#: The roles a server reports, each a label of ``cfgha_role``.
ROLES = ("starting", "primary", "backup", "proxy")
#: Write latency buckets, seconds: a commit on SQLite takes about a millisecond.
WRITE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _RuntimeCollector(Collector):
    """The server's state as gauges and counters, read at each scrape."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        rt, svc = self.rt, self.rt.service
        role = GaugeMetricFamily("cfgha_role", "1 for the server's current role.", labels=["role"])
        for name in sorted({*ROLES, rt.role}):
            role.add_metric([name], 1.0 if name == rt.role else 0.0)
        yield role
        gauges = {
            "cfgha_epoch": ("The epoch of the lease it serves at, or last saw.", svc.epoch),
            "cfgha_last_serial": ("The serial of the last change applied.", svc.last_serial),
            "cfgha_writable": ("1 while it accepts writes.", 1.0 if svc.writable else 0.0),
            "cfgha_clients": ("Clients connected to the client port.", rt.clients),
            "cfgha_subscribers": ("Clients subscribed to notifications.", svc.subscriber_count),
            "cfgha_objects": ("Configuration objects in memory.", len(svc)),
            "cfgha_uptime_seconds": (
                "Seconds since the process started.",
                time.time() - rt.started,
            ),
        }
        for name, (text, value) in gauges.items():
            yield GaugeMetricFamily(name, text, value=float(value))
        lag = GaugeMetricFamily(
            "cfgha_replication_lag_seconds",
            "A backup: seconds since the primary's stream last said it was up to date "
            "(absent while not following).",
        )
        if rt.following is not None and rt.replicated_at is not None:
            lag.add_metric([], max(0.0, trio.current_time() - rt.replicated_at))
        yield lag
        yield CounterMetricFamily(
            "cfgha_promotions", "Times this process became primary.", value=rt.promotions
        )


class ServerMetrics:
    """The registry of one server process (see module docstring)."""

    def __init__(self, rt: Runtime) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_RuntimeCollector(rt))
        self.writes = Histogram(
            "cfgha_write_seconds",
            "Time from a write request to its answer (create, update, delete).",
            buckets=WRITE_BUCKETS,
            registry=self.registry,
        )
        rt.write_observed = self.writes.observe

    def text(self) -> tuple[bytes, str]:
        """The Prometheus exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
