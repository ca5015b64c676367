"""Peer data in log lines and error answers: bounded and on one line.

The functions live in :mod:`addp` (its handshake errors quote peer data too);
this is where the server's code takes them from, with :func:`source_of`. See
:func:`~addp._peer_text.peer_text` and :func:`~addp._peer_text.peer_repr`.
"""

from __future__ import annotations

from addp._peer_text import PEER_TEXT_LIMIT, escape_controls, peer_repr, peer_text

__all__ = ["PEER_TEXT_LIMIT", "escape_controls", "peer_repr", "peer_text", "source_of"]


def source_of(peer: str) -> str:
    """The address part of a ``host:port`` peer name (the port changes every connection)."""
    host, colon, port = peer.rpartition(":")
    return host if colon and port.isdigit() else peer
