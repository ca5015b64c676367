"""One supervisor per ``scs.conf`` on a host: an ``flock`` on a file named after it.

The lock file is ``/tmp/scs-<hash>.lock``, the hash being of the scs.conf's
real path, so every way of naming the same file (relative, through a
symlink) finds the same lock. The directory is fixed on purpose: not
``$XDG_RUNTIME_DIR`` nor ``$TMPDIR``, which differ between a login shell, a
cron job and a service, and would let two supervisors each find a lock of
their own. The file holds the pid of the supervisor that has the lock. The
lock is the open file's: the kernel releases it when that process ends,
however it ends, and the servers it starts do not inherit it (the descriptor
is close-on-exec, and children are started with ``close_fds``).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from pathlib import Path


class AlreadySupervised(Exception):
    """Another process holds the lock for this scs.conf."""

    def __init__(self, conf: Path, lock: Path, pid: int | None) -> None:
        self.conf, self.lock, self.pid = conf, lock, pid
        who = f"pid {pid}" if pid is not None else "another process"
        super().__init__(f"{conf} is already supervised by {who} (lock {lock}); stop it first")


#: Where the lock files are (the same for every environment on the host).
LOCK_DIR = Path("/tmp")


def lock_path(conf: Path | str, directory: Path | str | None = None) -> Path:
    """The lock file for ``conf`` (by the hash of its real path), in ``directory`` or LOCK_DIR."""
    real = os.path.realpath(conf)
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    return Path(directory if directory is not None else LOCK_DIR) / f"scs-{digest}.lock"


def hold(conf: Path | str, directory: Path | str | None = None) -> int:
    """Take the lock for ``conf`` and write our pid in it; the descriptor to keep open.

    Raises:
        AlreadySupervised: another process holds it (its pid, when it wrote one).
        OSError: the lock file cannot be opened.
    """
    path = lock_path(conf, directory)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        writable = True
    except PermissionError:  # another user's lock file: it locks all the same
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        writable = False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _read_pid(fd)
        os.close(fd)
        raise AlreadySupervised(Path(conf), path, holder) from None
    except BaseException:
        os.close(fd)
        raise
    if writable:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
