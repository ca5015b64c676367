"""The TLS contexts of the links (:mod:`addp.tls_contexts`), under the wire layer's name."""

from __future__ import annotations

from addp.tls_contexts import (
    ClientCertificates,
    ClientTls,
    TlsFileError,
    client_context,
    server_context,
)

__all__ = ["ClientCertificates", "ClientTls", "TlsFileError", "client_context", "server_context"]
