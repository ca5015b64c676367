"""The TLS options of a section (a server's, or ``[scs]``), checked and turned into contexts.

``encryption = true`` makes every port of the section's owner speak TLS and
its links to other servers too; the certificate options say with what:

- ``tls-certificate``: the PEM certificate chain presented (required with
  ``encryption = true``); its private key in ``tls-private-key`` or in the
  same file;
- ``tls-ca``: the CA file that signs the peers' certificates: servers are
  verified against it (the system's CAs when not set), and so are client
  certificates;
- ``tls-client-certificates``: ``none`` (default), ``optional`` or
  ``required``: whether clients must present a certificate signed by ``tls-ca``;
- ``tls-server-name``: the name a peer's certificate must carry when it is
  not the host connected to.

Files are read and checked at load, so a missing, unreadable or bad file is
one :class:`~.format.ConfigError` line naming the option and the file.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

from addp.optionspec import OptionSpec, OptionTable
from confserv.wire.tls import (
    ClientCertificates,
    ClientTls,
    TlsFileError,
    client_context,
    server_context,
)

from .format import ConfigError, Section

#: ``encryption`` of a server's section (the supervisor's and the agent's say more).
ENCRYPTION = OptionSpec(
    name="encryption",
    kind="boolean",
    default="false",
    meaning="`true`: the client port and the management port speak TLS only, and this "
    "server's own links (a backup's to its primary, a proxy's to its master) use TLS too. "
    "Needs `tls-certificate`. Compared between primary and backup.",
)

#: The certificate options (``encryption`` itself is an older option of the sections).
TLS_TABLE = OptionTable.of(
    OptionSpec(
        name="tls-certificate",
        kind="path",
        shown="none (required with `encryption = true`)",
        meaning="PEM certificate chain this side presents; also its client certificate on "
        "its own links. Relative to the file's directory.",
    ),
    OptionSpec(
        name="tls-private-key",
        kind="path",
        shown="in `tls-certificate`'s file",
        meaning="PEM private key of the certificate.",
    ),
    OptionSpec(
        name="tls-ca",
        kind="path",
        shown="the system's CAs",
        meaning="CA file (PEM) that signs the peers' certificates: the servers this side "
        "connects to are verified against it, and so are client certificates.",
    ),
    OptionSpec(
        name="tls-client-certificates",
        kind="choice",
        default="none",
        choices=("none", "optional", "required"),
        meaning="Whether clients present a certificate: `optional` (one sent must verify "
        "against `tls-ca`) or `required` (one must be sent). Needs `tls-ca`.",
    ),
    OptionSpec(
        name="tls-server-name",
        kind="text",
        shown="the host connected to",
        meaning="The name the peer's certificate must carry, when it differs from the host "
        "(for example the lease's advertised address).",
    ),
)
TLS_OPTIONS: frozenset[str] = TLS_TABLE.names
_CLIENT_CERTIFICATES: dict[str, ClientCertificates] = {
    "none": "none",
    "optional": "optional",
    "required": "required",
}
_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True}
_BOOLEANS |= {"false": False, "no": False, "off": False, "0": False}
_OPTION_OF = {"certificate": "tls-certificate", "private key": "tls-private-key", "CA": "tls-ca"}


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """A section's TLS options; the contexts built from them (None: plain TCP).

    Attributes:
        encryption: ``encryption``.
        certificate: ``tls-certificate``, absolute.
        private_key: ``tls-private-key``, absolute (None: in the certificate's file).
        ca: ``tls-ca``, absolute (None: the system's CAs verify servers).
        client_certificates: ``tls-client-certificates``.
        server_name: ``tls-server-name`` (None: the host connected to).
        server: The listeners' context; None without encryption.
        client: What this side's own connections use; None without encryption.
    """

    encryption: bool = False
    certificate: Path | None = None
    private_key: Path | None = None
    ca: Path | None = None
    client_certificates: ClientCertificates = "none"
    server_name: str | None = None
    server: ssl.SSLContext | None = field(default=None, compare=False, repr=False)
    client: ClientTls | None = field(default=None, compare=False, repr=False)


def parse_tls(
    own: Section, base: Path, *, encryption: bool | None = None, serve: bool = True
) -> TlsSettings:
    """The section's TLS options; ``encryption`` overrides the section's own (the
    supervisor: any of its links on TLS). Without encryption no other TLS option
    may be set (it would do nothing). ``serve`` false: the owner listens without
    TLS, only connects with it (no certificate needed, no server context).

    Raises:
        ConfigError: a bad value, a missing certificate, a file that cannot be used.
    """
    on = own.choice(ENCRYPTION, _BOOLEANS) if encryption is None else encryption
    paths = {name: _path(own, name, base) for name in ("tls-certificate", "tls-private-key")}
    ca = _path(own, "tls-ca", base)
    wanted = own.choice(TLS_TABLE["tls-client-certificates"], _CLIENT_CERTIFICATES)
    server_name = own.text("tls-server-name")
    if not on:
        for name in sorted(TLS_OPTIONS):
            if own.text(name) is not None:
                raise own.error(name, "not used when encryption is false (set encryption = true)")
        return TlsSettings()
    certificate, key = paths["tls-certificate"], paths["tls-private-key"]
    if certificate is None and serve:
        raise own.error(
            "tls-certificate", "missing (encryption = true needs the certificate to present)"
        )
    if wanted != "none" and ca is None:
        raise own.error(
            "tls-ca", f"missing (tls-client-certificates = {wanted} needs the CA of the clients)"
        )
    try:
        server = None
        if certificate is not None and serve:
            server = server_context(certificate, key, ca=ca, client_certificates=wanted)
        client = ClientTls(client_context(ca, certificate, key), server_name)
    except TlsFileError as exc:
        option = _OPTION_OF[exc.what]
        if option == "tls-private-key" and key is None:
            option = "tls-certificate"
        raise own.error(option, str(exc)) from None
    return TlsSettings(
        encryption=True,
        certificate=certificate,
        private_key=key,
        ca=ca,
        client_certificates=wanted,
        server_name=server_name,
        server=server,
        client=client,
    )


def _path(own: Section, option: str, base: Path) -> Path | None:
    text = own.text(option)
    return None if text is None else (base / text).resolve()


__all__ = ["ENCRYPTION", "TLS_OPTIONS", "TLS_TABLE", "ConfigError", "TlsSettings", "parse_tls"]
