"""``http-port`` on a real pair under ``scs``: the role checks follow a switchover, and
``/metrics`` is Prometheus text that ``prometheus_client``'s own parser reads."""

from __future__ import annotations

import json
from pathlib import Path

import trio
from prometheus_client.parser import text_string_to_metric_families

from ..helpers.http import http_get
from ..helpers.system import MEMBERS, System, Writer, free_port, healthy, primary_of


def metric(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and (labels is None or sample.labels == labels):
                return float(sample.value)
    raise AssertionError(f"no sample {name} {labels or ''} in:\n{text}")


async def roles_by_http(ports: dict[str, int]) -> dict[str, tuple[int, int]]:
    return {
        s: ((await http_get(p, "/primary"))[0], (await http_get(p, "/backup"))[0])
        for s, p in ports.items()
    }


async def test_the_role_checks_follow_a_switchover_and_metrics_parse(tmp_path: Path) -> None:
    http = {s: free_port() for s in MEMBERS}
    system = System(
        tmp_path, server_lines={s: f"http-port = {http[s]}\n" for s in MEMBERS}, proxy=False
    )
    system.start()
    try:
        rows = await system.wait(healthy, timeout=60)
        old = primary_of(rows)
        new = next(s for s in MEMBERS if s != old)
        with trio.fail_after(30):  # the backup's stream is up: /backup says so
            while (await roles_by_http(http)) != {old: (200, 503), new: (503, 200)}:
                await trio.sleep(0.05)
        status, body = await http_get(http[old], "/health")
        health = json.loads(body)
        assert (status, health["role"], health["epoch"]) == (200, "primary", rows[old]["epoch"])
        writer = Writer.for_system(system)
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            await writer.until(5)
            writer.stop.set()
        _, text = await http_get(http[old], "/metrics")
        metrics = text.decode()
        assert metric(metrics, "cfgha_role", {"role": "primary"}) == 1.0
        assert metric(metrics, "cfgha_role", {"role": "backup"}) == 0.0
        assert metric(metrics, "cfgha_epoch") == rows[old]["epoch"]
        assert metric(metrics, "cfgha_write_seconds_count") >= 5
        assert metric(metrics, "cfgha_clients") >= 0
        _, backup_text = await http_get(http[new], "/metrics")
        assert metric(backup_text.decode(), "cfgha_replication_lag_seconds") < 5.0

        await system.control("switchover", pair="confserv")
        with trio.fail_after(30):
            while (await roles_by_http(http)) != {new: (200, 503), old: (503, 200)}:
                await trio.sleep(0.05)
        _, text = await http_get(http[new], "/metrics")
        assert metric(text.decode(), "cfgha_promotions_total") == 1.0
    finally:
        system.stop()
