"""Debian packages the tests need (iptables, HAProxy), installed when missing, as root.

The project's own files install what a test needs (the developers' guide): a
test calls :func:`ensure_program`, which finds the program or, as root on
Debian, installs its package with ``apt-get``; where that cannot be done it
raises :class:`ProgramUnavailable` with one line saying why, and the test is
skipped there (failing under CI, where it must run).
"""

from __future__ import annotations

import os
import shutil
import subprocess

#: How long one ``apt-get install`` may take, in seconds.
APT_TIMEOUT = 300.0
#: Where Debian keeps the programs of root.
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


class ProgramUnavailable(RuntimeError):
    """A program a test needs is missing and could not be installed."""


def which(program: str) -> str | None:
    """``program``'s path, looking in the sbin directories too."""
    return shutil.which(program, path=SBIN_PATH)


def apt_install(package: str) -> str:
    """Install Debian's ``package``; the error line, ``""`` on success."""
    apt = which("apt-get")
    if apt is None:
        return "no apt-get to install it with"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = ["-o", "DPkg::Lock::Timeout=120"]
    install = [apt, *lock, "install", "-y", "--no-install-recommends", package]
    for attempt in range(2):
        try:
            done = subprocess.run(
                install, capture_output=True, text=True, timeout=APT_TIMEOUT, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            return f"apt-get install {package} took over {APT_TIMEOUT:g} s"
        if done.returncode == 0:
            return ""
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines() or ["no output"]
        if attempt == 0 and "Unable to locate package" in done.stderr:
            subprocess.run(
                [apt, *lock, "update"], capture_output=True, timeout=APT_TIMEOUT, env=env
            )
            continue
        return lines[-1]
    return f"apt-get could not find the {package} package"


def ensure_program(program: str, package: str | None = None) -> str:
    """The path of ``program``; as root, Debian's ``package`` (default: the program's
    name) is installed first when it is missing. ProgramUnavailable when it cannot be."""
    found = which(program)
    if found is not None:
        return found
    package = package or program
    if os.geteuid() != 0:
        raise ProgramUnavailable(f"{program} is not installed (and this process is not root)")
    error = apt_install(package)
    found = which(program)
    if error or found is None:
        raise ProgramUnavailable(
            f"{program} is missing and `apt-get install -y --no-install-recommends {package}` "
            f"failed: {error or 'no such program afterwards'}"
        )
    return found
