"""Files holding secrets must be readable by their owner only: a pure check, and a
one-line warning at load when one is not.

:func:`exposure` decides from a path, its mode and what secrets it holds;
:func:`warn_if_exposed` looks at the file and writes the line (once per file
and mode in a process) on standard error.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

_warned: set[tuple[str, int]] = set()


def exposure(path: Path | str, mode: int, holds: Sequence[str]) -> str | None:
    """The warning for a file of ``mode`` holding ``holds`` (option names), or None
    when it holds none or only its owner can read it."""
    if not holds or not mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    who = " and ".join(
        w for bit, w in ((stat.S_IRGRP, "its group"), (stat.S_IROTH, "all users")) if mode & bit
    )
    return (
        f"warning: {path} holds {', '.join(holds)} and is readable by {who} "
        f"(mode {stat.S_IMODE(mode):04o}): run 'chmod 600 {path}'"
    )


def warn_if_exposed(
    path: Path | str, holds: Sequence[str], stream: TextIO | None = None
) -> str | None:
    """Write :func:`exposure`'s line for the file at ``path`` (once per file and mode),
    and return it; None when there is nothing to say or the file cannot be stat'ed."""
    if not holds:
        return None
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    note = exposure(path, mode, holds)
    key = (str(Path(path).resolve()), mode)
    if note is not None and key not in _warned:
        _warned.add(key)
        print(note, file=stream or sys.stderr)
    return note
