"""Test certificates (``trustme``): a CA, a certificate for 127.0.0.1 and localhost, and a
stranger's CA and certificate, written as PEM files; the config lines that use them.

One certificate serves every component (servers, proxy, supervisor, clients):
trustme's certificates are good for both server and client authentication.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from confserv.wire.tls import ClientTls, client_context

#: Names the test certificate is good for.
NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files in ``directory``.

    Attributes:
        ca: The CA that signed :attr:`certificate`.
        certificate: For :data:`NAMES`, client and server use.
        private_key: Its key.
        stranger_ca: A CA that signed nothing of ours.
        stranger_certificate: For :data:`NAMES` too, signed by the stranger's CA.
        stranger_key: Its key.
        client_certificates: ``tls-client-certificates`` of :meth:`lines` by default.
    """

    directory: Path
    ca: Path
    certificate: Path
    private_key: Path
    stranger_ca: Path
    stranger_certificate: Path
    stranger_key: Path
    client_certificates: str = "none"

    def lines(self, client_certificates: str | None = None) -> str:
        """The options of a section (a server's, or ``[scs]``) that turn TLS on."""
        client_certificates = client_certificates or self.client_certificates
        return (
            f"encryption = true\ntls-certificate = {self.certificate}\n"
            f"tls-private-key = {self.private_key}\ntls-ca = {self.ca}\n"
            f"tls-client-certificates = {client_certificates}\n"
        )

    def client(self, *, certificate: bool = True, ca: Path | None = None) -> ClientTls:
        """A client's TLS: verifies against :attr:`ca` (or ``ca``), presents
        :attr:`certificate` unless told not to."""
        if not certificate:
            return ClientTls(client_context(ca or self.ca))
        return ClientTls(client_context(ca or self.ca, self.certificate, self.private_key))


def make_tls_files(directory: Path) -> TlsFiles:
    """Write a CA, our certificate and a stranger's into ``directory``."""
    import trustme  # a dev dependency: imported only by the tests that make certificates

    directory.mkdir(parents=True, exist_ok=True)
    ca, stranger = trustme.CA(), trustme.CA()
    ours, theirs = ca.issue_cert(*NAMES), stranger.issue_cert(*NAMES)
    files = TlsFiles(
        directory=directory,
        ca=directory / "ca.pem",
        certificate=directory / "cert.pem",
        private_key=directory / "key.pem",
        stranger_ca=directory / "stranger-ca.pem",
        stranger_certificate=directory / "stranger-cert.pem",
        stranger_key=directory / "stranger-key.pem",
    )
    ca.cert_pem.write_to_path(files.ca)
    stranger.cert_pem.write_to_path(files.stranger_ca)
    for cert, path, key in (
        (ours, files.certificate, files.private_key),
        (theirs, files.stranger_certificate, files.stranger_key),
    ):
        path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(key)
        key.chmod(0o600)
    return files
