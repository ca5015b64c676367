"""Every event the Configuration Server logs, with its stable id (listed in docs/log-events.md).

Ids 20000-20999 belong to ``confserv``; the supervisor uses 40000-40999. The
ids are this project's own: Genesys publishes no ids for these events (the
04503/04504 connection events follow the Genesys meaning).
"""

from __future__ import annotations

from .catalog import Level, LogEvent

CONNECTED = LogEvent(4503, Level.STD, "Connection to {what} at {where} established")
CONNECTION_LOST = LogEvent(4504, Level.STD, "Connection to {what} at {where} lost: {reason}")

STARTED = LogEvent(
    20001, Level.STD, "Configuration Server '{name}' started: pid {pid}, {engine} database {db}"
)
LISTENING = LogEvent(20002, Level.STD, "Listening for {what} on {host}:{port}")
LOADED = LogEvent(
    20003, Level.STD, "Loaded {count} objects up to serial {serial} in {seconds:.3f} s"
)
STOPPING = LogEvent(20004, Level.STD, "Configuration Server '{name}' stopping: {reason}")
NO_RESUME_KEY = LogEvent(
    20007,
    Level.STD,
    "No resumption key in the database: sessions log in again with their password after "
    "a failover; run 'cfgctl init' once more to add one",
)
LOG_REOPENED = LogEvent(20006, Level.STD, "SIGHUP: {count} log files reopened")
NO_ADMIN = LogEvent(
    20005, Level.ALR, "No Person can log in: run 'cfgctl init' to create the administrator"
)

CLIENT_REGISTERED = LogEvent(
    20110, Level.STD, "Client '{app}' ({app_type}) user '{user}' registered from {peer}"
)
CLIENT_RESUMED = LogEvent(
    20128,
    Level.STD,
    "Client '{app}' ({app_type}) user '{user}' resumed its session from {peer} "
    "(resumption ticket: no password check)",
)
CLIENT_GONE = LogEvent(20111, Level.STD, "Client '{app}' from {peer} disconnected: {reason}")
REGISTRATION_REFUSED = LogEvent(20112, Level.STD, "Registration from {peer} refused: {reason}")
REQUEST_REFUSED = LogEvent(20113, Level.INT, "Request {op} from {peer} refused: {code}: {reason}")
SUBSCRIBER_TOO_SLOW = LogEvent(
    20114, Level.STD, "Client '{app}' from {peer} cut off: {count} notifications unread"
)
BAD_PEER = LogEvent(20115, Level.STD, "ADDP {text}")

OBJECT_CHANGED = LogEvent(
    20130, Level.INT, "Serial {serial} epoch {epoch}: {op} {type} {dbid} ('{name}') by {by}"
)
HISTORY_TRIMMED = LogEvent(
    20140, Level.TRC, "History Log: {count} records older than {days} days removed"
)
HISTORY_EXPIRED = LogEvent(
    20141, Level.STD, "Session restore from serial {serial} for {peer} failed: history expired"
)

DB_ERROR = LogEvent(20150, Level.ALR, "Configuration Database error: {reason}")

MGMT_AUTH_OK = LogEvent(20120, Level.STD, "Management client {peer} authenticated")
MGMT_AUTH_FAILED = LogEvent(
    20121, Level.ALR, "Management client {peer} failed to authenticate: {reason}"
)
MGMT_COMMAND = LogEvent(20122, Level.STD, "Management command '{command}' from {peer}")

LEASE_TAKEN = LogEvent(
    20160, Level.STD, "Lease of the database taken at epoch {epoch} (ttl {ttl:g} s{how})"
)
LEASE_LOST = LogEvent(20161, Level.ALR, "Lease of the database lost at epoch {epoch}: {reason}")
ROLE_CHANGED = LogEvent(
    20162, Level.STD, "Role changed from {old} to {new} at epoch {epoch}: {reason}"
)

PROMOTION_REFUSED = LogEvent(20163, Level.STD, "Switch to primary refused: {reason}")
WRITES_STOPPED = LogEvent(20164, Level.ALR, "Writes stopped, role kept: {reason}")
REPLICA_CONNECTED = LogEvent(
    20165, Level.STD, "Backup '{name}' replicating from serial {serial} ({mode})"
)
STALE_EPOCH = LogEvent(20166, Level.ALR, "Change refused: {reason}")
HOLDER_DEAD = LogEvent(
    20167,
    Level.STD,
    "The lease (epoch {epoch}) is held by '{app}' as {process}, which is gone: taking it",
)
CLAIM_LOST = LogEvent(20168, Level.ALR, "Stopping: {reason}")
DB_MISMATCH = LogEvent(
    20170, Level.ALR, "Serving nothing, writes stopped: {reason}; reload with 'cfgctl reload'"
)
RELOADED = LogEvent(
    20171, Level.STD, "Reloaded from the database by {who}: {count} objects, serial {serial}"
)
APPLY_FAILED = LogEvent(
    20172, Level.ALR, "A change could not be applied ({reason}): reloading from the database"
)
OPTIONS_DIFFER = LogEvent(
    20173,
    Level.ALR,
    "Options differ from {other}'s, which the seed says must be the same: {diff}",
)
PAIR_MEMBERSHIP = LogEvent(
    20174,
    Level.STD,
    "Member of the pair '{primary}' (backup {backup}) as {app}, instance {instance}",
)

# security helper C: login back-off and password rehash
AUTH_BACKOFF_STARTED = LogEvent(
    20190,
    Level.STD,
    "{what}: {failures} failed attempts for {key} within {window} s: its attempts are "
    "refused unchecked for {delay} s, doubling with each further failure",
)
AUTH_BACKOFF_ENDED = LogEvent(
    20191,
    Level.STD,
    "{what}: {key} is quiet again: {failures} failed and {refused} refused attempts "
    "over {seconds} s",
)
PASSWORD_REHASHED = LogEvent(
    20192, Level.INT, "Person '{person}': password rehashed from {old} to {new} at login"
)
PASSWORD_REHASH_FAILED = LogEvent(
    20193, Level.STD, "Person '{person}': password not rehashed at login: {reason}"
)

# the secret tarpit: answers to wrong management/control secrets delayed per source
SECRET_TARPIT_STARTED = LogEvent(
    20194,
    Level.STD,
    "{what}: {failures} wrong proofs from {key} within {window} s: its wrong proofs are "
    "answered {delay} s late from now on, doubling with each further one (right ones at once)",
)
SECRET_TARPIT_ENDED = LogEvent(
    20195,
    Level.STD,
    "{what}: {key} is quiet again: {failures} wrong proofs over {seconds} s",
)

# security helper AC: access control
ACCESS_DENIED = LogEvent(20198, Level.STD, "Request {op} from {peer} denied: {reason}")

ADDP_TRACE = LogEvent(20900, Level.TRC, "ADDP {text}")

# supervisor helper S3: the supervisor fence on the management port
SUPERVISOR_COMMAND_REFUSED = LogEvent(
    20123, Level.STD, "Management command '{command}' from {peer} refused: {reason}"
)
SUPERVISOR_EPOCH_SEEN = LogEvent(
    20124,
    Level.STD,
    "Supervisor epoch {epoch} seen in '{command}' from {peer} (newest before: {was}): "
    "commands of older supervisor epochs are refused from now on",
)
SUPERVISOR_COMMAND_ADMITTED = LogEvent(
    20125,
    Level.STD,
    "Management command '{command}' from {peer} admitted at supervisor epoch {epoch}",
)
HTTP_LISTENING = LogEvent(20126, Level.STD, "HTTP health and metrics listening on {host}:{port}")
HTTP_REFUSED = LogEvent(20127, Level.STD, "HTTP request from {peer} refused: {reason}")

ALL_EVENTS: tuple[LogEvent, ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, LogEvent)
)
