"""The message shapes of the three ports, once: each operation and the type of each argument.

Both generators read these tables: the fast one (:mod:`tests.fuzz.frames`,
:class:`Mutator`, ``random.Random``, for the million cases) and the
hypothesis strategies (:mod:`tests.fuzz.strategies`, for the bounded test
and for the pool the runner mixes in). A request is built from its
operation's shape and then mutated: an argument of the wrong type, a huge
string, deep nesting, control characters, a missing or an extra key, an
unknown operation, a wrong or missing ``id``.

Argument kinds: ``str``, ``int``, ``bool``, ``dbid`` (an int naming an
object), ``type`` (an object type name), ``object`` (a new object's map),
``delta`` (fields to change), ``options`` (an options delta), ``filter`` (a
read filter), ``hex32`` (32 lowercase hex digits, a nonce or a proof's
length), ``scheme`` (an authentication scheme label), ``name`` (a server's
section).
"""

from __future__ import annotations

from collections.abc import Mapping

#: Operations of the client port and their arguments (name -> kind).
CLIENT_SHAPES: Mapping[str, Mapping[str, str]] = {
    "register": {
        "app": "str",
        "user": "str",
        "password": "str",
        "app_type": "str",
        "daemon": "bool",
    },
    "read": {"type": "type", "filter": "filter"},
    "create": {"type": "type", "object": "object"},
    "update": {"type": "type", "dbid": "dbid", "delta": "delta", "options": "options"},
    "delete": {"type": "type", "dbid": "dbid"},
    "subscribe": {"type": "type", "dbid": "dbid"},
    "unsubscribe": {},
    "restore": {"serial": "int"},
    "status": {},
}
#: Operations of a server's management port (only ``auth`` is answered before authentication).
MANAGEMENT_SHAPES: Mapping[str, Mapping[str, str]] = {
    "auth": {"scheme": "scheme", "server": "name", "nonce": "hex32", "proof": "hex32"},
    "status": {},
    "switch-to-primary": {"force": "bool", "over": "int"},
    "switch-to-backup": {},
    "watch": {},
    "replicate": {"serial": "int"},
    "ack": {"serial": "int"},
    "reload": {},
    "snapshot": {},
    "forward": {"request": "object"},
    "follow": {"master": "str"},
}
#: Operations of the supervisor's control port.
CONTROL_SHAPES: Mapping[str, Mapping[str, str]] = {
    "auth": {"scheme": "scheme", "server": "name", "nonce": "hex32", "proof": "hex32"},
    "status": {},
    "switchover": {"pair": "name"},
    "pause": {"pair": "name"},
    "resume": {"pair": "name"},
    "stop": {"server": "name"},
    "start": {"server": "name"},
}
#: The object types, and a few fields of each with their kinds.
TYPES: Mapping[str, Mapping[str, str]] = {
    "Tenant": {"is_service_provider": "bool"},
    "Folder": {"object_type": "str", "parent_dbid": "dbid"},
    "Host": {"ip_address": "str", "os_type": "str", "lca_port": "int"},
    "Application": {"app_type": "str", "is_server": "bool", "port": "int", "host_dbid": "dbid"},
    "Person": {"user_name": "str", "first_name": "str", "is_agent": "bool", "password": "str"},
    "Switch": {"switch_type": "str", "physical_switch": "str"},
    "DN": {"number": "str", "dn_type": "str", "switch_dbid": "dbid"},
}
#: Fields every object has.
COMMON_FIELDS: Mapping[str, str] = {
    "name": "str",
    "state": "str",
    "folder_dbid": "dbid",
    "tenant_dbid": "dbid",
}
#: Scheme labels a peer might send (the real ones and near misses).
SCHEMES = ("cfgha-mgmt-v2", "cfgha-ctl-v2", "cfgha-agent-v2", "cfgha-mgmt-v1", "cfgha-mgmt-v3", "")
#: Names a peer might give (sections of the system under test, and others).
NAMES = ("confserv", "backup", "scs", "proxy", "nope", "")
#: Strings carrying control characters: each must be escaped wherever it is logged.
NASTY_STRINGS = (
    "a\nforged 99999 line",
    "\x1b[31mred\x1b[0m",
    "nul\x00byte",
    "cr\rreturn",
    "tab\there",
    "\u2028line separator",
    "\x7fdel",
)
#: Operation names no port knows.
UNKNOWN_OPS = ("frobnicate", "", "REGISTER", "auth ", "status\n", "x" * 300)
#: Pools of object names: creations run out of new names and stop growing the database.
NAME_POOL = tuple(f"fz{i}" for i in range(20))
#: Types whose existing objects a fuzzed update or delete must not touch: the good
#: client's Person and the servers' own Applications (the probe would fail for the
#: fuzzer's rights, not the server's defect). Updates and deletes of these go to
#: dbids at or above :data:`FAR_DBID`, which do not exist.
PROTECTED_TYPES = frozenset({"Person", "Application"})
FAR_DBID = 100_000
#: Authenticated fuzz of the management and control ports (the fuzzer knows the secrets):
#: the operations that only read, sent with any arguments ...
AUTHED_SAFE: Mapping[str, tuple[str, ...]] = {
    "management": ("status", "watch", "snapshot", "follow"),
    "control": ("status",),
}
#: ... and the ones that act, always with this argument of a wrong kind, so that each
#: is refused (bad-request) and the pair under fuzz is never switched or stopped.
AUTHED_GUARDED: Mapping[str, Mapping[str, tuple[str, str]]] = {
    "management": {
        "switch-to-primary": ("force", "bool"),
        "switch-to-backup": ("force", "bool"),
        "replicate": ("serial", "int"),
        "forward": ("request", "object"),
    },
    "control": {
        "stop": ("server", "str"),
        "start": ("server", "str"),
        "pause": ("pair", "str"),
        "resume": ("pair", "str"),
        "switchover": ("pair", "str"),
    },
}
