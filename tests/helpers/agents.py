"""One host agent (``lca``) of a test, as a process of its own on 127.0.0.1."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .system import BIN, free_port

AGENT_SECRET = "agent-secret-of-host-a"


class AgentProcess:
    """One ``lca -c FILE`` process of "hostA" on 127.0.0.1."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.conf = tmp / "lca.conf"
        self.conf.write_text(
            f"[lca]\nport = {self.port}\nagent-secret = {AGENT_SECRET}\n"
            f"state-dir = {tmp / 'lca-state'}\nlisten-address = 127.0.0.1\nhost-name = hostA\n"
        )
        self.conf.chmod(0o600)
        self.log = tmp / "lca.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BIN / "lca"), "-c", str(self.conf)], stdout=out, stderr=out
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def section(self) -> str:
        return (
            f"[hostA]\ntype = host\naddress = 127.0.0.1\nagent-port = {self.port}\n"
            f"agent-secret = {AGENT_SECRET}\n"
        )
