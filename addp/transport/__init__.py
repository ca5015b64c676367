"""The trio adapter of ADDP: the :class:`Link` and the ways to open one.

The only part of ``addp`` that imports trio; ``addp`` itself is the sans-IO
core and imports none of this. Links reach the network through a
replaceable :class:`Network` (real TCP unless :func:`use_network` says otherwise),
over TLS when given an ``ssl.SSLContext`` (:mod:`addp.transport.tls`).
"""

from .link import HandshakeTimeout, Link
from .net import TCP, Network, TcpNetwork, connect, current_network, open_link, serve, use_network
from .tls import TlsHandshakeError

__all__ = [
    "TCP",
    "HandshakeTimeout",
    "Link",
    "Network",
    "TcpNetwork",
    "TlsHandshakeError",
    "connect",
    "current_network",
    "open_link",
    "serve",
    "use_network",
]
