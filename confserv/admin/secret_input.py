"""Where ``cfgctl`` takes a password or a secret from: never needed on the command line.

In this order: a file (``--password-file`` / ``--secret-file``: its first line),
the command line (``--password`` / ``--secret``: still accepted, with one warning
that every user of the machine can read it in the process list), the
environment (``CFG_PASSWORD`` / ``CFG_SECRET``), and, when standard input is a
terminal, a prompt that does not echo.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from confserv.config.permissions import exposure


class SecretInputError(ValueError):
    """No password or secret was given, or its file cannot be read."""


@dataclass(frozen=True, slots=True)
class SecretKind:
    """One kind of secret: how it is named to the operator and where it is looked for."""

    what: str  # e.g. "the administrator's password"
    flag: str  # e.g. "--password"
    env: str  # e.g. "CFG_PASSWORD"


PASSWORD = SecretKind("the password", "--password", "CFG_PASSWORD")
ADMIN_PASSWORD = SecretKind("the administrator's password", "--password", "CFG_PASSWORD")
SECRET = SecretKind("the management secret", "--secret", "CFG_SECRET")

_warned: set[str] = set()


def read_secret_file(path: Path, warn: TextIO | None = None) -> str:
    """The first line of ``path`` (without its line end); a warning on ``warn`` when
    group or others can read it."""
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretInputError(f"cannot read {path}: {exc}") from None
    note = exposure(path, mode, ["a secret"])
    if note is not None and warn is not None:
        print(note, file=warn)
    return text.split("\n", 1)[0].removesuffix("\r")


def resolve(
    kind: SecretKind,
    given: str | None,
    file: Path | None,
    *,
    environ: Mapping[str, str] = os.environ,
    stdin_is_tty: Callable[[], bool] = sys.stdin.isatty,
    prompt: Callable[[str], str] = getpass.getpass,
    warn: TextIO = sys.stderr,
    confirm: bool = False,
) -> str:
    """The secret ``kind`` from the first place that has it (module docstring)."""
    if file is not None and given is not None:
        raise SecretInputError(f"give {kind.flag} or {kind.flag}-file, not both")
    if file is not None:
        return read_secret_file(file, warn)
    if given is not None:
        if kind.flag not in _warned:
            _warned.add(kind.flag)
            print(
                f"cfgctl: warning: {kind.flag} is visible to every user of this machine "
                f"(ps, /proc/PID/cmdline); use {kind.env}, {kind.flag}-file or the prompt",
                file=warn,
            )
        return given
    if kind.env in environ:
        return environ[kind.env]
    if stdin_is_tty():
        value = prompt(f"{kind.what.capitalize()}: ")
        if confirm and prompt("Again: ") != value:
            raise SecretInputError(f"{kind.what}: the two entries differ")
        return value
    raise SecretInputError(
        f"{kind.what} is needed: set {kind.env}, give {kind.flag}-file FILE, "
        "or run from a terminal to be asked"
    )
