"""Peer data in log lines and error answers: bounded and on one line.

The functions live in :mod:`addp` (its handshake errors quote peer data too);
this is where the server's code takes them from. See
:func:`~addp._peer_text.peer_text` and :func:`~addp._peer_text.peer_repr`.
"""

from __future__ import annotations

from addp._peer_text import PEER_TEXT_LIMIT, escape_controls, peer_repr, peer_text

__all__ = ["PEER_TEXT_LIMIT", "escape_controls", "peer_repr", "peer_text"]
