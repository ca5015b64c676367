"""``[scs] http-port``: the supervisor's /metrics (parsed by prometheus_client) and /status."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import trio
from prometheus_client.parser import text_string_to_metric_families

from ..helpers.http import http_get, raw_exchange
from ..helpers.system import System, free_port, healthy, primary_of


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): float(s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_a_failover_and_status_is_the_json_document(tmp_path: Path) -> None:
    port = free_port()
    system = System(tmp_path, own_lines=f"http-port = {port}\n")
    system.start()
    try:
        rows = await system.wait(healthy, timeout=60)
        status, body = await http_get(port, "/status")
        document = json.loads(body)
        assert status == 200
        assert document["supervisor"]["mode"] == "single"
        assert {r["section"] for r in document["servers"]} == set(rows)
        with trio.fail_after(10):
            while True:
                got = samples((await http_get(port, "/metrics"))[1].decode())
                if all(got[("cfgha_scs_link_up", (("server", s),))] == 1.0 for s in rows):
                    break
                await trio.sleep(0.05)
        assert got[("cfgha_scs_acting", ())] == 1.0
        assert got[("cfgha_scs_failovers_total", (("cause", "proof-of-death"),))] == 0.0

        old = primary_of(rows)
        os.kill(int(rows[old]["pid"]), signal.SIGKILL)
        await system.wait(lambda r: healthy(r) and primary_of(r) != old, timeout=60)
        got = samples((await http_get(port, "/metrics"))[1].decode())
        assert got[("cfgha_scs_failovers_total", (("cause", "proof-of-death"),))] == 1.0
        assert got[("cfgha_scs_failover_seconds_count", ())] == 1.0
        assert got[("cfgha_scs_restarts_total", (("server", old),))] >= 1.0
        assert (await http_get(port, "/nope"))[0] == 404
        out = await raw_exchange(port, b"BREW /coffee HTCPCP/1.0\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400")
        assert system.logged(40802) == 1
    finally:
        system.stop()
