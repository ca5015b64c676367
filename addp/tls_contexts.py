"""TLS contexts of the links: a server's and a client's, from certificate files.

In :mod:`addp` because every end of a link builds them: the Configuration
Server, the supervisor and the host agent (``lca``, which uses only addp);
:mod:`confserv.wire.tls` gives the same names to the server's code.

Python's standard :mod:`ssl`, TLS 1.2 at least. A server presents its
certificate chain and, when told so, asks clients for a certificate signed by
its CA (``optional``: a certificate that is sent must verify; ``required``:
one must be sent). A client verifies the server's certificate against its CA
(the system's CAs when none is given) and the host name or address it
connects to (or the name it is told to expect), and presents its own
certificate when it has one. Used by the servers' and the supervisor's
listeners, the client library, ``cfgctl``, the backup, the proxy and the
supervisor's links; every failure to load a file is one :class:`TlsFileError`
naming the file and the reason.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

#: Whether a server asks its clients for a certificate.
ClientCertificates = Literal["none", "optional", "required"]

_VERIFY_MODES: dict[str, ssl.VerifyMode] = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


class TlsFileError(ValueError):
    """A certificate, private key or CA file cannot be used.

    Attributes:
        what: Which file: ``certificate``, ``private key`` or ``CA``.
        path: The file.
        reason: Why, in a few words (``no such file``, ``not a PEM certificate``, ...).
    """

    def __init__(self, what: str, path: Path, reason: str) -> None:
        super().__init__(f"{what} {str(path)!r}: {reason}")
        self.what, self.path, self.reason = what, path, reason


@dataclass(frozen=True, slots=True)
class ClientTls:
    """What a connecting side needs for TLS: its context, and the name to verify.

    Attributes:
        context: A client-side context (:func:`client_context`).
        server_name: The name the server's certificate must carry; None: the
            host (name or address) connected to.
    """

    context: ssl.SSLContext
    server_name: str | None = None


def server_context(
    certificate: Path,
    private_key: Path | None = None,
    *,
    ca: Path | None = None,
    client_certificates: ClientCertificates = "none",
) -> ssl.SSLContext:
    """A server's context: ``certificate`` (a PEM chain; its key in ``private_key`` or
    in the same file) and, unless ``client_certificates`` is ``none``, client
    certificates verified against ``ca``.

    Raises:
        TlsFileError: a file is missing, unreadable or not what it should be.
        ValueError: client certificates are asked for without a CA.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, certificate, private_key)
    if client_certificates != "none":
        if ca is None:
            raise ValueError("client certificates need a CA to verify them")
        _load_ca(context, ca)
    context.verify_mode = _VERIFY_MODES[client_certificates]
    return context


def client_context(
    ca: Path | None = None,
    certificate: Path | None = None,
    private_key: Path | None = None,
) -> ssl.SSLContext:
    """A client's context: servers verified against ``ca`` (the system's CAs when
    None), host names checked; ``certificate`` presented when given.

    Raises:
        TlsFileError: a file is missing, unreadable or not what it should be.
    """
    if ca is None:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, checks host names
        _load_ca(context, ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certificate is not None:
        _load_chain(context, certificate, private_key)
    return context


def _load_chain(context: ssl.SSLContext, certificate: Path, private_key: Path | None) -> None:
    """The certificate is parsed alone first, so that an error names the right file."""
    _load_ca(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), certificate, "certificate")
    if private_key is not None:
        _readable("private key", private_key)
    try:
        context.load_cert_chain(certificate, private_key)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TlsFileError(
                "private key", private_key or certificate, "does not match the certificate"
            ) from None
        if private_key is None:
            raise TlsFileError(
                "certificate", certificate, "holds no private key (give the private key's file)"
            ) from None
        raise TlsFileError(
            "private key", private_key, f"not a PEM private key ({_why(exc)})"
        ) from None


def _load_ca(context: ssl.SSLContext, path: Path, what: str = "CA") -> None:
    _readable(what, path)
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise TlsFileError(what, path, f"not a PEM certificate ({_why(exc)})") from None


def _why(exc: ssl.SSLError) -> str:
    """OpenSSL's reason in words; "bad PEM data" when it gives none."""
    return exc.reason.lower().replace("_", " ") if exc.reason else "bad PEM data"


def _readable(what: str, path: Path) -> None:
    try:
        with path.open("rb") as file:
            head = file.read(1 << 16)
    except OSError as exc:
        raise TlsFileError(what, path, (exc.strerror or str(exc)).lower()) from None
    if b"-----BEGIN " not in head:
        raise TlsFileError(what, path, "not a PEM file (no -----BEGIN line)")
