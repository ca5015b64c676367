"""Every event the supervisor logs, with its stable id (listed in docs/log-events.md).

Ids 40000-40999 are the supervisor's; this project's own, not Genesys ids. A
failover reads as a short story: 40301/40302 detected (how), 40304/40305
decided (why), 40306 promoted (epoch, how long), 40308 proxies redirected,
40101 old primary restarted, 40309 healthy again.
"""

from __future__ import annotations

from confserv.logs.catalog import Level, LogEvent

STARTED = LogEvent(
    40001, Level.STD, "Solution Control Server started: pid {pid}, {count} servers from {file}"
)
STOPPING = LogEvent(40002, Level.STD, "Solution Control Server stopping: {reason}; {then}")
CONTROL_LISTENING = LogEvent(40003, Level.STD, "Control port listening on {host}:{port}")

PROCESS_STARTED = LogEvent(40101, Level.STD, "Server '{server}' started: pid {pid}{why}")
PROCESS_EXITED = LogEvent(40102, Level.STD, "Server '{server}' pid {pid} exited: {how}")
RESTART_SCHEDULED = LogEvent(
    40103, Level.STD, "Server '{server}' restart {attempt} in {delay:.2f} s (back-off)"
)
RESTART_LIMIT = LogEvent(
    40104,
    Level.ALR,
    "Server '{server}' restarted {count} times in {window:g} s: crash loop; "
    "retrying every {delay:g} s",
)
NOT_RESTARTED = LogEvent(40105, Level.STD, "Server '{server}' not restarted: {reason}")
START_FAILED = LogEvent(40106, Level.ALR, "Server '{server}' could not be started: {reason}")
STOPPED = LogEvent(40107, Level.STD, "Server '{server}' stopped by {who}")
PROCESS_ADOPTED = LogEvent(
    40108, Level.STD, "Server '{server}' already running as pid {pid}: watching it, not starting it"
)
EXIT_NOT_PROOF = LogEvent(
    40109, Level.STD, "Server '{server}': exit of pid {pid} is not proof of death: {why}"
)
NOT_WATCHED = LogEvent(
    40110, Level.ALR, "Server '{server}': pid {pid} cannot be watched ({reason}); {why}"
)

LINK_UP = LogEvent(
    40201, Level.STD, "Watching '{server}' at {where}: {role}, epoch {epoch}, serial {serial}"
)
LINK_LOST = LogEvent(40202, Level.STD, "Lost '{server}' at {where}: {reason}")
ROLE_SEEN = LogEvent(40203, Level.STD, "Server '{server}' is now {role} at epoch {epoch}")

FAILOVER_EXIT = LogEvent(
    40301, Level.ALR, "Pair '{pair}': primary '{server}' died ({how}): failover"
)
FAILOVER_SILENT = LogEvent(
    40302,
    Level.ALR,
    "Pair '{pair}': primary '{server}' silent ({reason}): failover in {wait:g} s unless it returns",
)
FAILOVER_CANCELLED = LogEvent(
    40303, Level.STD, "Pair '{pair}': primary '{server}' is back within the wait: no failover"
)
DECIDED_FORCE = LogEvent(
    40304,
    Level.STD,
    "Pair '{pair}': force-promoting '{server}' at once (proof of death: process exit)",
)
DECIDED_WAIT = LogEvent(
    40305,
    Level.STD,
    "Pair '{pair}': promoting '{server}' once the old primary's lease expires (no proof of death)",
)
PROMOTED = LogEvent(
    40306,
    Level.STD,
    "Pair '{pair}': '{server}' is primary at epoch {epoch}, {ms:.0f} ms after the fault was seen",
)
PROMOTE_REFUSED = LogEvent(
    40307, Level.TRC, "Pair '{pair}': promotion of '{server}' refused ({reason}); retrying"
)
PROXIES_REDIRECTED = LogEvent(
    40308, Level.STD, "Proxy '{proxy}' redirected to '{server}' at {where}"
)
HEALTHY = LogEvent(
    40309, Level.STD, "Pair '{pair}' healthy again: '{primary}' primary, '{backup}' backup"
)
SPLIT_BRAIN = LogEvent(
    40310,
    Level.ALR,
    "Pair '{pair}': SPLIT BRAIN: both '{a}' (epoch {ea}) and '{b}' (epoch {eb}) report primary",
)
NO_BACKUP = LogEvent(
    40311, Level.ALR, "Pair '{pair}': primary '{server}' lost and no backup can take over: {why}"
)
FENCING = LogEvent(
    40312,
    Level.ALR,
    "Pair '{pair}': primary '{server}' silent for {after:g} s and the backup cannot take over: "
    "killing pid {pid} (fencing) to prove it dead",
)
NO_PRIMARY = LogEvent(
    40313, Level.ALR, "Pair '{pair}': no primary for {after:g} s: promoting '{server}'"
)
STEP_DOWN = LogEvent(
    40314,
    Level.ALR,
    "Pair '{pair}': telling '{server}' (epoch {epoch}) to step down: "
    "'{other}' is primary at the newer epoch {newer}",
)
NOT_FENCED = LogEvent(
    40315,
    Level.ALR,
    "Pair '{pair}': primary '{server}' silent for {after:g} s and the backup cannot take over, "
    "but pid {pid} is not a process the supervisor watches: not fencing it",
)

SWITCHOVER = LogEvent(
    40401, Level.STD, "Pair '{pair}': switchover asked by {who}: '{primary}' -> '{backup}'"
)
SWITCHOVER_FAILED = LogEvent(40402, Level.ALR, "Pair '{pair}': switchover failed: {reason}")
PAUSED = LogEvent(40403, Level.STD, "Pair '{pair}' paused by {who}: no automatic action")
RESUMED = LogEvent(40404, Level.STD, "Pair '{pair}' resumed by {who}")

CONTROL_AUTH_FAILED = LogEvent(
    40501, Level.ALR, "Control client {peer} failed to authenticate: {reason}"
)
CONTROL_COMMAND = LogEvent(40502, Level.STD, "Control command '{command}' from {peer}")
ACTION_FAILED = LogEvent(40503, Level.ALR, "Action {action} on '{server}' failed: {reason}")

AGENT_UP = LogEvent(
    40601,
    Level.STD,
    "Host '{host}': agent at {where} connected, {running} of its processes running",
)
AGENT_LOST = LogEvent(
    40602,
    Level.ALR,
    "Host '{host}': agent at {where} lost ({reason}): exits there are not seen until it returns "
    "(a silent server of that host is failed over by lease, not as a death)",
)
PAIR_HEALTHY = LogEvent(
    40316, Level.STD, "Pair '{pair}' healthy: '{primary}' primary, '{backup}' backup"
)

# -- the supervisor lease (issue 14): several supervisors, one active
SUPERVISOR_ACTIVE = LogEvent(
    40701,
    Level.STD,
    "Supervisor '{name}' took the supervisor lease at epoch {epoch}: active, "
    "every command carries that epoch",
)
SUPERVISOR_STANDBY = LogEvent(
    40702,
    Level.STD,
    "Supervisor '{name}' standby: the supervisor lease is held by {holder} at epoch {epoch}; "
    "watching, sending no command",
)
SUPERVISOR_LOST = LogEvent(
    40703,
    Level.ALR,
    "Supervisor '{name}' stopped acting at epoch {epoch}: {reason}; its servers run on",
)
SUPERVISOR_DB_UNREACHABLE = LogEvent(
    40704,
    Level.ALR,
    "Supervisor '{name}': the database of the supervisor lease cannot be reached: {reason}",
)
SUPERVISOR_DB_BACK = LogEvent(
    40705, Level.STD, "Supervisor '{name}': the database of the supervisor lease answers again"
)
SUPERVISOR_RELEASED = LogEvent(
    40706,
    Level.STD,
    "Supervisor '{name}' gave the supervisor lease up at epoch {epoch}: a standby may take over",
)
SUPERVISOR_SINGLE = LogEvent(
    40707,
    Level.DBG,
    "No [scs] database: no supervisor lease; run only one scs for these servers",
)

# -- issue 15: HTTP for machines
HTTP_LISTENING = LogEvent(40801, Level.STD, "HTTP metrics and status listening on {host}:{port}")
HTTP_REFUSED = LogEvent(40802, Level.STD, "HTTP request from {peer} refused: {reason}")

ALL_EVENTS: tuple[LogEvent, ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, LogEvent)
)
