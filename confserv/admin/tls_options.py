"""``cfgctl``'s TLS options, given before the command (``cfgctl --tls-ca ca.pem get Person``)
or in the environment: how it reaches servers whose section says ``encryption = true``.

- ``--tls`` (``CFG_TLS=1``): speak TLS, servers verified against the system's CAs;
- ``--tls-ca FILE`` (``CFG_TLS_CA``): verified against this CA instead (implies ``--tls``);
- ``--tls-certificate FILE`` / ``--tls-private-key FILE`` (``CFG_TLS_CERTIFICATE``,
  ``CFG_TLS_PRIVATE_KEY``): the client certificate to present, for servers with
  ``tls-client-certificates = optional|required`` (implies ``--tls``);
- ``--tls-server-name NAME`` (``CFG_TLS_SERVER_NAME``): the name the server's
  certificate must carry when it is not the host given in ``--server``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # confserv.wire.tls (ssl, addp, trio) only when TLS is asked for
    from confserv.wire.tls import ClientTls

_PANEL = "TLS (servers with encryption = true)"

TlsOpt = Annotated[
    bool,
    typer.Option("--tls", envvar="CFG_TLS", help="Speak TLS (system CAs).", rich_help_panel=_PANEL),
]
TlsCaOpt = Annotated[
    Path | None,
    typer.Option(
        "--tls-ca",
        envvar="CFG_TLS_CA",
        help="Verify servers against this CA file (PEM); implies --tls.",
        rich_help_panel=_PANEL,
    ),
]
TlsCertificateOpt = Annotated[
    Path | None,
    typer.Option(
        "--tls-certificate",
        envvar="CFG_TLS_CERTIFICATE",
        help="Client certificate to present (PEM); implies --tls.",
        rich_help_panel=_PANEL,
    ),
]
TlsKeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--tls-private-key",
        envvar="CFG_TLS_PRIVATE_KEY",
        help="The client certificate's private key (default: in the certificate's file).",
        rich_help_panel=_PANEL,
    ),
]
TlsServerNameOpt = Annotated[
    str | None,
    typer.Option(
        "--tls-server-name",
        envvar="CFG_TLS_SERVER_NAME",
        help="Name the server's certificate must carry (default: the host connected to).",
        rich_help_panel=_PANEL,
    ),
]

_FLAG_OF = {
    "CA": "--tls-ca",
    "certificate": "--tls-certificate",
    "private key": "--tls-private-key",
}


def client_tls(
    tls: bool,
    ca: Path | None,
    certificate: Path | None,
    private_key: Path | None,
    server_name: str | None,
) -> ClientTls | None:
    """The client TLS those options ask for; None: plain TCP.

    Raises:
        ValueError: a file cannot be used, or a key without its certificate;
            one line naming the option and the file.
    """
    if private_key is not None and certificate is None:
        raise ValueError("--tls-private-key: given without --tls-certificate")
    if not (tls or ca or certificate or server_name):
        return None
    from confserv.wire.tls import ClientTls, TlsFileError, client_context

    try:
        return ClientTls(client_context(ca, certificate, private_key), server_name)
    except TlsFileError as exc:
        flag = _FLAG_OF[exc.what]
        if flag == "--tls-private-key" and private_key is None:
            flag = "--tls-certificate"
        raise ValueError(f"{flag}: {exc}") from None
