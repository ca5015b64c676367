"""The shim between the agent and one process it starts: ``python -m lca.shim``.

The agent starts every process through a shim, as container runtimes do
(containerd's shim, conmon), so that the process and its exit outlive the
agent. The shim detaches from the agent (a double fork: it is
nobody's child the agent must reap), forks the command, writes the record of both pids (with their
start times, against pid reuse) and then waits for the command. When it ends,
the shim writes how it ended *while the command is still a zombie*
(``waitid`` with ``WNOWAIT``), and only then reaps it and exits. So:

- the command keeps running when the agent goes away, and an agent started
  again reads the records and finds it (or its exit) again;
- while the exit record is absent, the command's pid is still the command's
  (it has not been reaped), so a pidfd opened on it refers to the right process.

Usage: ``python -m lca.shim RECORD_DIR NAME CWD NOTIFY_FD -- ARGV...``: the
command's output goes where the shim's does (the agent opens the log file);
once the record is written, the command's pid is written to ``NOTIFY_FD``
(``-1``: none) and that descriptor closed, so the agent needs no polling. The
shim starts no event loop and imports nothing heavy: it costs one small process.
"""

from __future__ import annotations

import os
import signal
import sys

from .records import Record, exit_path, proc_start_time, record_path, write_atomically


def describe(si_code: int, status: int) -> str:
    """How a process ended, from ``waitid``'s ``si_code`` and ``si_status``."""
    if si_code == os.CLD_EXITED:
        return f"exit code {status}"
    try:
        name = signal.Signals(status).name
    except ValueError:
        name = f"signal {status}"
    return f"killed by {name}" + (" (core dumped)" if si_code == os.CLD_DUMPED else "")


def main(argv: list[str]) -> int:
    """Run the shim (see the module docstring); its exit code is 0 once it recorded an exit."""
    if len(argv) < 6 or argv[4] != "--" or not argv[3].lstrip("-").isdigit():
        print("usage: python -m lca.shim RECORD_DIR NAME CWD NOTIFY_FD -- ARGV...", file=sys.stderr)
        return 2
    directory, name, cwd, notify, command = argv[0], argv[1], argv[2], int(argv[3]), argv[5:]
    # The shim ignores the signals meant for a session (a terminal's SIGHUP, a Ctrl-C):
    # the agent signals the command itself, and the shim must live to record its end.
    for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    # Leave the agent at once (it reaps this first process): the shim goes on as an
    # orphan, so that it is nobody's child to reap and outlives the agent alike.
    if os.fork() > 0:
        os._exit(0)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the command
        os.close(read_end)
        try:
            for signum in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, signal.SIG_DFL)
            if notify >= 0:
                os.close(notify)
            os.chdir(cwd)
            os.execvp(command[0], command)
        except OSError as exc:
            os.write(write_end, f"{command[0]}: {exc.strerror or exc}".encode())
        os._exit(127)
    os.close(write_end)
    failure = os.read(read_end, 4096).decode(errors="replace")  # empty: exec succeeded
    os.close(read_end)
    record = Record(
        name=name,
        shim_pid=os.getpid(),
        shim_started=proc_start_time(os.getpid()),
        pid=pid,
        started=proc_start_time(pid),
        argv=command,
    )
    write_atomically(record_path(directory, name), record.to_json(), durable=False)
    if not failure:  # a command that could not start: its exit is recorded first
        _notify(notify, pid)
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    assert info is not None
    how = f"could not start: {failure}" if failure else describe(info.si_code, info.si_status)
    write_atomically(exit_path(directory, name, pid), how + "\n", durable=False)
    if failure:
        _notify(notify, pid)
    os.waitpid(pid, 0)
    return 0


def _notify(fd: int, pid: int) -> None:
    """Tell the agent the record is written (``fd`` -1: nobody to tell)."""
    if fd >= 0:
        os.write(fd, f"{pid}\n".encode())
        os.close(fd)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # At once: the agent waits for this exit to learn the command's (its report is
    # proof of death); the interpreter's own shutdown took ~10 ms more.
    sys.stderr.flush()
    os._exit(code)
