"""The trio adapter of ADDP: the :class:`Link` and the ways to open one.

The only part of ``addp`` that imports trio; ``addp`` itself is the sans-IO
core and imports none of this.
"""

from .link import HandshakeTimeout, Link
from .net import connect, open_link, serve

__all__ = ["HandshakeTimeout", "Link", "connect", "open_link", "serve"]
