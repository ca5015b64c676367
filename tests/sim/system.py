"""The simulated installation: its files, its processes' names and hosts, its first database.

One pair (``confserv`` and ``backup``) and a proxy, with the options of the
real chaos runs (``tests/helpers/system.py``): lease-ttl 2 s, lease-renew
0.4 s, ADDP timeout 1 s, failover-wait 0. Each process has a host of its own
(``confserv.sim``, ...), so its ports are its own. The files are written
once per worker process into a temporary directory; the database is made
once by ``cfgctl init``'s own code (:func:`confserv.admin.bootstrap.init_database`)
on a :class:`~tests.sim.store.SimDatabase` and copied for every schedule.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trio

from confserv.admin.bootstrap import init_database
from confserv.config.settings import ServerSettings, load_server_settings
from confserv.model.objects import STORED_SECRET
from confserv.model.passwords import COST_ENV
from confserv.store.engines import use_store_opener
from scs.config import ScsSettings, load_scs_settings

from ..helpers.system import TEST_PASSWORD_COST
from .gate import Gate
from .store import SimDatabase

# The simulated servers hash at the test cost too: at OWASP's (the default), each
# registration rehashed the simulation's cheap hashes at 0.45 s of real CPU and
# checked unknown users against an OWASP dummy (100 schedules took 75 s, not 8).
os.environ.setdefault(COST_ENV, TEST_PASSWORD_COST)

#: The pair's two masters (the first is meant as primary), then the proxy.
PAIR = ("confserv", "backup")
PROXY = "proxy"
SERVERS = (*PAIR, PROXY)
SECRET = "s3"
PASSWORD = "pw"
USER = "default"
CLIENT_PORT = 2020
MANAGEMENT_PORT = 2021
LEASE_TTL = 2.0
LEASE_RENEW = 0.4
ADDP_TIMEOUT = 1.0
#: Two ADDP timeouts of the supervisor's links: no failover for a shorter silence.
DETECTION_BOUND = 2 * ADDP_TIMEOUT
#: lease-ttl - self-fence margin (0.2 s) - lease-renew: a primary cut off from its
#: database for less renews in time and is not replaced.
DB_BOUND = 1.4


def host_of(process: str) -> str:
    """The host a simulated process runs on (one each)."""
    return f"{process}.sim"


@dataclass(frozen=True)
class Files:
    """The configuration files and the settings read from them."""

    directory: Path
    confserv_conf: Path
    scs_conf: Path
    servers: dict[str, ServerSettings]
    scs: ScsSettings

    def argv(self, section: str) -> list[str]:
        """The command line the supervisor starts ``section`` with."""
        return ["confserv", "-s", section, "-c", str(self.confserv_conf)]


def write_files(directory: Path) -> Files:
    """Write confserv.conf and scs.conf for the simulated installation into ``directory``."""
    common = (
        f"management-secret = {SECRET}\nlease-ttl = {LEASE_TTL:g}\n"
        f"lease-renew = {LEASE_RENEW:g}\nprotocol = addp\naddp-timeout = {ADDP_TIMEOUT:g}\n"
    )
    masters = ",".join(f"{host_of(s)}:{MANAGEMENT_PORT}" for s in PAIR)
    text = "".join(
        f"[{s}]\nport = {CLIENT_PORT}\nmanagement-port = {MANAGEMENT_PORT}\n"
        f"listen-address = {host_of(s)}\nserver = db\n{common}"
        for s in PAIR
    )
    text += (
        f"[{PROXY}]\nmode = proxy\nport = {CLIENT_PORT}\nmanagement-port = {MANAGEMENT_PORT}\n"
        f"listen-address = {host_of(PROXY)}\nmanagement-secret = {SECRET}\nmaster = {masters}\n"
        "[log]\nverbose = all\n[db]\ndbengine = sqlite\ndbname = simulated.sqlite\n"
    )
    conf = directory / "confserv.conf"
    conf.write_text(text)
    conf.chmod(0o600)  # it holds secrets (else a warning at every load)

    def supervised(section: str, peer: str | None) -> str:
        link = f"server = {peer}\n" if peer else "type = proxy\n"
        return (
            f"[{section}]\nhost = {host_of(section)}\nport = {CLIENT_PORT}\n{link}"
            f"management-port = {MANAGEMENT_PORT}\nmanagement-secret = {SECRET}\n"
            f"command = confserv -s {section} -c {conf}\nworking-directory = {directory}\n"
            f"protocol = addp\naddp-timeout = {ADDP_TIMEOUT:g}\n"
            f"addp-remote-timeout = {ADDP_TIMEOUT:g}\n"
            "failover-wait = 0\npromote-retry = 0.05\nrestart-backoff = 0.2\n"
        )

    scs_conf = directory / "scs.conf"
    scs_conf.write_text(
        "[scs]\nverbose = all\n"
        + supervised(PAIR[0], PAIR[1])
        + supervised(PAIR[1], PAIR[0])
        + supervised(PROXY, None)
    )
    scs_conf.chmod(0o600)
    return Files(
        directory=directory,
        confserv_conf=conf,
        scs_conf=scs_conf,
        servers={s: load_server_settings(conf, s) for s in SERVERS},
        scs=load_scs_settings(scs_conf),
    )


def cheap_hash(password: str) -> str:
    """The stored form of ``password`` with the cheapest scrypt (the simulation's
    registrations check it; the real cost, OWASP's 2**17, would dominate the run)."""
    n, r, p, salt = 2, 1, 1, b"simulated-salt!!"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


async def _initialise(db: SimDatabase, files: Files) -> None:
    gate = Gate()
    with use_store_opener(db.opener("cfgctl", gate)):
        await init_database(files.servers[PAIR[0]], files.servers[PAIR[1]], PASSWORD)


def make_template(files: Files) -> sqlite3.Connection:
    """A database as ``cfgctl init`` leaves it (with a cheap password hash)."""
    db = SimDatabase()
    trio.run(_initialise, db, files)
    for dbid, data in db.conn.execute("SELECT dbid, data FROM cfg_object WHERE type = 'Person'"):
        obj = json.loads(data)
        obj[STORED_SECRET] = cheap_hash(PASSWORD)
        db.conn.execute(
            "UPDATE cfg_object SET data = ? WHERE type = 'Person' AND dbid = ?",
            (json.dumps(obj, separators=(",", ":"), sort_keys=True), dbid),
        )
    return db.conn


@functools.cache
def installation() -> tuple[Files, sqlite3.Connection]:
    """The files and the template database of this worker process (made once)."""
    directory = Path(tempfile.mkdtemp(prefix="cfgha-sim-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    files = write_files(directory)
    return files, make_template(files)
