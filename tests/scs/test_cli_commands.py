"""``scs stop|start|restart SERVER`` and ``scs status --wait-healthy``, as typed by an operator."""

from __future__ import annotations

import trio

from ..helpers.system import BIN, System, healthy, primary_of


async def scs(system: System, *args: str) -> tuple[int, str, str]:
    with trio.fail_after(120):
        done = await trio.run_process(
            [str(BIN / "scs"), *args, "-f", str(system.scs_conf)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_stop_start_restart_and_wait_healthy(system: System) -> None:
    assert (await scs(system, "status", "--wait-healthy", "--timeout", "60"))[:2] == (
        0,
        "healthy\n",
    )
    rows = await system.wait(healthy)
    code, out, _ = await scs(system, "stop", "backup")
    assert (code, out) == (0, "backup: stopping (not restarted until 'scs start backup')\n")
    await system.wait(lambda r: r["backup"]["state"] == "stopped")
    assert (await scs(system, "status", "--wait-healthy", "--timeout", "1"))[:2] == (
        1,
        "degraded\n",
    )
    assert (await scs(system, "start", "backup"))[0] == 0
    await system.wait(healthy)
    old = primary_of(rows)
    code, out, _ = await scs(system, "restart", old)
    assert (code, out) == (0, f"{old}: restarting\n")
    after = await system.wait(lambda r: healthy(r) and r[old]["pid"] != rows[old]["pid"])
    assert primary_of(after) != old  # the primary failed over first, came back as backup
    code, _, err = await scs(system, "stop", "nope")
    assert code == 1
    assert err == "scs: no server [nope]\n"
