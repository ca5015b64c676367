"""The fixed prose of ``docs/configuration.md``, around the generated option tables.

:mod:`scs.reference` puts these Markdown texts between the tables it renders
from the code's option tables; edit them here, then run ``python -m
scs.reference`` to write the file.
"""

from __future__ import annotations

#: Intro.
INTRO = """\
Both `confserv.conf` and `scs.conf` use the seed's format: a `[section]` line,
then `option = value` lines. `#` and `;` start a comment line (a comment takes
the whole line). Section names are case-sensitive and may contain spaces
(`[Backup CS]`); option names are not. An empty value (`server =`) counts as
not set. An unknown option, a bad value or a broken link is one line naming
the file, the section and the option, and exit status 2, for example
`confserv.conf: [confserv] port: 'abc' is not a port number (1 to 65535)`.

The commented examples are in `examples/`: `confserv.conf` and `backup.conf`
(the seed's side-by-side files of the primary and the backup), `proxy.conf`,
`scs.conf` and `lca.conf`; every option is in them, those that stay off
commented out (`#http-port = 8080`).

The tables below are generated from the option tables in the code
(`confserv/config/server_options.py`, `database.py`, `tls.py`, `bounds.py`;
`scs/options.py`, `scs/hosts.py`, `scs/redundancy.py`; `lca/config.py`) by
`python -m scs.reference`; `tests/test_configuration_reference.py` fails when
this file, the parsers or the examples disagree with them. Edit the tables
(and the prose in `scs/reference_prose.py`), not this file. *Range* is what a
value may be; a number outside it is refused. *Default* is what leaving the
option out means.
"""

#: From the database.
FROM_THE_DATABASE = """\
The seed makes the Configuration Database, not the files, the authority on
the pair; so does this project:

- **The pair.** The server's section (`-s`) is the name of its Application
  object. The pair is the Configuration Server Application whose
  `backup_server_dbid` names another one: that is the primary, the other its
  backup. `cfgctl init -s <primary> -c <file> --backup-section <backup>
  [--backup-config <file>]` creates both objects and links them. A master
  whose Application is neither of the two refuses to start (exit 2, one line
  naming the object and what to change), and so does one whose Application
  is missing or not of type `ConfigServer`. One database holds one pair:
  objects that link two pairs, or name one backup from two primaries, are
  refused with the same kind of line. With no backup linked anywhere, a
  single master runs alone.
- **Who is primary.** The database's one lease (see the README). No file can
  create a second one.
- **The database itself.** `cfgctl init` creates the schema and gives the
  database its identity (a uuid, printed as `database <uuid>`); a server
  never creates a schema, and refuses (exit 2) a SQLite file that does not
  exist, an empty database, one that holds other tables, or an older schema
  (`cfgctl init` upgrades schema 1, with the servers stopped).
"""

#: Confserv intro.
CONFSERV_INTRO = """\
A server reads its own section, the database section its `server` option
names, `[log]` and `[history-log]`. Every option of those sections must be
known. Other sections (`[hca]`, `[soap]`, the other server's section) are not
read, so the primary and the backup can share one file.
"""

#: Server notes.
SERVER_NOTES = """\
**Options the seed makes the operator keep equal.** All options above but
the ports, the listen and advertise addresses and `[log]` must be the same on
the primary and the backup, and so must the database section (but for its
`dbserver`/`host` list, `port` and `connect-timeout`: each server may reach
the database by its own route)
and `[history-log]`. When the backup connects to the primary both compare them;
any difference raises alarm 20173 on both, naming each option and both values,
shown by `cfgctl status` and `scs status`.

Every `tls-*` option is refused with `encryption = false`. A file that is
missing, unreadable, not PEM, or a key that does not match its certificate is
one line naming the option and the file, and the server exits 2
(`confserv.conf: [confserv] tls-private-key: private key '/…/key.pem': no such
file or directory`). TLS 1.2 is the minimum. The files are read at start: a
renewed certificate needs a restart (one server at a time, backup first).
"""

#: Passwords.
PASSWORDS = """\
- **Password cost.** `CONFSERV_PASSWORD_COST` (environment of `confserv` and
  `cfgctl`; default `owasp` = scrypt N=2^17, r=8, p=1, about 0.45 s and 128 MiB
  per hash here). Values: `owasp` or `n=2^K[,r=R][,p=P]` (n a power of two from
  2 to 2^20, r at most 32, p at most 16, at most 1 GiB); OWASP's equivalents
  are `n=2^16,r=8,p=2` and `n=2^15,r=8,p=3`. Lower costs are for tests only.
  Each hash stores its own parameters, so changing the cost never breaks a
  password; a hash weaker than the current cost is rehashed at its next
  successful login on the primary (event 20192, one committed change). An
  unreadable value makes a server use `owasp`; `cfgctl init` refuses it (one
  line, exit 2). Give both servers and `cfgctl init` the same value.
  `cfgctl init --password-cost COST` sets the administrator's hash for that run.
- **Guessing.** Failed logins back off: a user after 5 failures within 60 s, a
  source address after 10. Attempts are then refused without being checked
  for 1 s, doubling with each further failure up to 60 s, and forgotten after
  10 quiet minutes (events 20190, 20191: once per episode, with counts). The
  right password is refused too while blocked. Unknown and known users cost
  the same (a dummy hash of the same cost). At most 2 hashes run at once per
  server.
- **Files.** `cfgctl init` creates the SQLite file 0600 (SQLite gives its
  `-wal`/`-shm`/`-journal` files the same mode) and makes an existing group-
  or world-readable database 0600. A `confserv.conf` holding
  `management-secret` or a database `password`, or an `scs.conf` holding
  `control-secret` or `management-secret`, that its group or all users can
  read gives one line on stderr at load: `warning: PATH holds
  management-secret and is readable by its group and all users (mode 0644):
  run 'chmod 600 PATH'`. `make run` makes the example files 0600.
- **cfgctl** takes the password (the management secret) from, in this order:
  `--password-file FILE` (`--secret-file FILE`, its first line); `--password`
  / `--secret` (still accepted, with one warning that every user can read it
  in the process list); `CFG_PASSWORD` (`CFG_SECRET`); a prompt that does not
  echo when stdin is a terminal (`init` asks twice). With none of these it
  exits 2 with one line.
- **cfgctl over TLS.** Before the command: `--tls` (the system's CAs),
  `--tls-ca FILE`, `--tls-certificate FILE`, `--tls-private-key FILE`,
  `--tls-server-name NAME`, or `CFG_TLS`, `CFG_TLS_CA`, `CFG_TLS_CERTIFICATE`,
  `CFG_TLS_PRIVATE_KEY`, `CFG_TLS_SERVER_NAME`. Any of them turns TLS on.
  Example: `cfgctl --tls-ca ca.pem get Person`.
"""

#: Scs intro.
SCS_INTRO = """\
One section per supervised server (the seed's `host`, `port`, `name` and
`server = <peer section>`, plus what supervising needs), `[scs]` for the
supervisor itself, and a section with `type = host` per host. Every other
section is a server's; `[scs] database` names one more, the database section
of the supervisor lease (the keys of `confserv.conf`'s, above).
"""

#: Scs notes.
SCS_NOTES = """\
**Secrets.** Three kinds, each of its own: `[scs] control-secret` (the
control port's), each server section's `management-secret` (the same as in
that server's own file), and each host section's `agent-secret` (that host's
agent's). A server's section in `scs.conf` must be named as that server's own
section (`-s`): the supervisor refuses a management port that proves another
name.

**TLS.** `[scs] encryption = true` puts the control port on TLS (with
`[scs] tls-certificate`, `tls-private-key`, `tls-client-certificates`) and,
by default, the supervisor's links to every server. A server's section may say
`encryption = true|false` and `tls-server-name` for the supervisor's link to
it. `[scs] tls-ca` verifies the servers (and control clients' certificates);
the supervisor presents `[scs] tls-certificate` as its client certificate.
With only the servers on TLS, `[scs]` needs just `tls-ca` (or the system's
CAs). `scs status` uses `[scs]`'s files and the name 127.0.0.1 (or `[scs]
tls-server-name`).

**One supervisor per `scs.conf`.** `scs -f FILE` takes an exclusive `flock`
on `/tmp/scs-<hash>.lock`, the hash of FILE's real path (any name for the same
file finds the same lock; the directory does not depend on `$XDG_RUNTIME_DIR`
or `$TMPDIR`, so a shell, a cron job and a service agree). The file holds the
supervisor's pid. A second `scs -f` on the same file on the same host exits 2
with one line, `scs: FILE is already supervised by pid N (lock
/tmp/scs-....lock); stop it first`, with or without a control port. The
kernel releases the lock when the supervisor ends, however it ends; the
servers it started never hold it. Several supervisors of one installation,
on several hosts, are what `[scs] database` is for (below).

**HTTP for machines** (`[scs] http-port`, `http-address`). `GET /metrics` is
Prometheus text:
`cfgha_scs_failovers_total{cause}` (`proof-of-death`: 40304, `lease`: 40305,
`no-primary`: 40313), the histogram `cfgha_scs_failover_seconds` (40306: from
the fault seen to the backup promoted), `cfgha_scs_restarts_total{server}`
(40103), `cfgha_scs_link_up{server}`, `cfgha_scs_agent_up{host}`,
`cfgha_scs_acting` and `cfgha_scs_supervisor_epoch`. `GET /status` is the
document `scs status --json` prints. The same HTTP bounds as a server's
`http-port` (docs/protocol.md 10.19); no authentication, so keep it on an
address only the scrapers reach.

**The state directory** (`[scs] state-dir`). The servers of the supervisor's
own host are started
by the agent's own code, in-process: each under a shim that records its pids
(with their start times) and how it ended. A supervisor started again reads
the records and watches what still runs, so it never starts a second copy of
a server it finds there, even one too busy to answer its status.
"""

#: After the table of a supervised server's section.
SCS_SERVER_NOTES = """\
**Restarts** (`restart-*`). Only failed starts count towards `restart-limit`
restarts in `restart-window`: a server that served (primary, backup or proxy)
for `restart-min-uptime` was started successfully, and its death starts the
count again, as supervisord's `startsecs`. A server that dies before (or while
still starting) counts; past the limit it is retried every
`restart-backoff-max` seconds with alarm 40104.

**Fencing** (`fence-after`; 0 turns it off). When a primary has gone silent
and the backup still has not taken over, the supervisor kills ("fences") the
silent primary. It only kills the very process it started or adopted, and only
if that process answered as the primary; the exit is then proof of death, and
the backup is force-promoted. A supervisor started again while the primary is
stopped hears nothing from it: it adopts the process its host's records (or the
host's agent) name for that server, may fence that one, and the promotion then
goes on without force (the lease decides). When `fence-after` is not set it
follows from the lease the servers report on their management port (`lease_ttl`, `engine`):
on SQLite the primary is fenced `max(lease-ttl, failover-wait)` seconds after
its silence was detected. By then its lease has expired, so a backup that
still cannot take over is blocked by the stopped process itself (a primary
stopped inside a transaction keeps SQLite's write lock); such a primary is
failed over within `lease-ttl` + 2 x `addp-timeout` (the detection) + 1 s. On
PostgreSQL, which ends a stopped server's transaction by itself, and with
servers that do not report their engine and lease, the default is 10 s. An
explicit `fence-after` always wins. Sooner on SQLite: a promotion the backup
has not answered 0.3 s after it was asked waits on the write lock the silent
primary holds (a lease take is a few ms), so the primary is fenced then (with
`fence-after` not 0). A process the supervisor does not watch is never killed
(40315).
"""

#: Redundancy.
REDUNDANCY = """\
Run the same `scs.conf` on two or more hosts, each `scs -f scs.conf --name
NAME` with a name of its own (default: the host name). With `[scs] database`
they elect one *active* supervisor through a supervisor lease, its own row
(`supervisor`, with its own epoch) in the Configuration Database beside the
servers' lease; the others are *standby*: their links to the servers and the
agents stay up, they send no command. Without it there is no election: one
supervisor, whose commands carry supervisor epoch 0 (run only one).

```ini
[scs]
control-port = 2190
control-secret = ...
database = confdb             # a section of this file, as confserv.conf's database section
supervisor-lease-ttl = 6
on-stop = leave-running

[confdb]
dbengine = postgre
host = db1:5432, db2:5432
dbname = config
username = cfg
password = ...

`--name` (command line): this supervisor among the installation's; a second
live process under one name is refused at start (one line, exit 2). The
supervisors announce themselves in the database every `retry` seconds (rows
`scs:<name>`), so `scs status` on any of them lists the active one (name,
process, epoch) and the standby ones. A standby answers `status` and refuses
`switchover`, `pause` and `resume` with one line naming the active one.

Each take-over begins a fresh *term*: the new active learns what runs from
its links and the agents' lists and adopts it (never a second copy; 40108),
restarts what the agents report dead, and finishes a failover the former one
had begun (a backup alone without a primary is promoted after 2 s, without
force: the servers' lease decides). Put every server on a host with an
agent (`type = host` with `agent-secret`): a server on "the supervisor's
own host" is started on whichever host the active supervisor runs.

The supervisor lease's rules (the ordering bound, the take-over bound) are in
`scs/election.py` and `docs/protocol.md`; its events are 40701-40707.
"""

#: Hosts intro.
HOSTS_INTRO = """\
The seed's deployment puts the primary and the backup on separate hosts. A
section with `type = host` describes one host, like a Genesys Host object,
and a server's `host` names it:

```
[hostA]
type = host
address = 198.18.0.1
agent-port = 4999
agent-secret = change-me-agent-secret

[confserv]
host = hostA
...
```
"""

#: Hosts notes.
HOSTS_NOTES = """\
The agent's `host-name` (its identity in the mutual authentication) must be
the host section's name. A server is placed on a host by the section's name
only, never by address (two hosts may be reached at one address). A server
whose `host` is an address, or names a host without an agent, is on the
supervisor's own host. The working directory, the command and the log file
of a server are paths on its own host.

Through an agent the supervisor starts, stops and signals a server, and the
agent reports every exit: that report is proof of death (a forced failover
at once, 40301/40304). A lost agent link is not proof of anything (40602):
the host may be dead or only cut off, so a silent primary there is failed
over by its lease (40302/40305; the backup promoted once the lease has
expired; the primary, cut off from the database, fences itself by its
lease), and nothing there is restarted. When the agent is back (40601) it
reports what runs and the exits it owes; the supervisor adopts what runs
(an agent never starts a second copy) and restarts what died, as backup.

A pair whose two members are on different hosts must share a PostgreSQL
database: SQLite is a file of one host. `scs` refuses such a pair on SQLite
at load with one line (when the server's own `-c` file can be read on the
supervisor's host), e.g. `scs.conf: [confserv] host: [confserv] and [backup]
run on different hosts but [confserv] (on hostA) uses SQLite, a file of one
host: put the pair on a shared PostgreSQL database (dbengine = postgre), or
both on one host`.
"""

#: Lca intro.
LCA_INTRO = """\
`lca -c FILE [-s SECTION]` (section `[lca]` by default); `examples/lca.conf`.
One per host; the supervisor reaches it through the host's section of
`scs.conf` (above).
"""

#: Lca notes.
LCA_NOTES = """\
An unknown option, a missing secret, a bad port or a busy port is one line
and exit 2.
"""
