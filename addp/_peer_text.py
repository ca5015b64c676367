"""Peer data made safe to quote in an error text or a log line: short and on one line.

Anything a peer sent (a name, an op, a HELLO field) may be megabytes long or
carry a newline that would forge a second log line. :func:`peer_text` escapes
control characters and cuts what is left to a bounded length, saying how long
the original was; :func:`peer_repr` does the same for any value's ``repr``
without walking deep or huge containers (the repr itself is bounded). Pure
functions, no I/O.
"""

from __future__ import annotations

import reprlib
from typing import Any

#: Characters of peer data quoted by default.
PEER_TEXT_LIMIT = 200

# C0 and C1 control characters, DEL, and the Unicode line and paragraph
# separators, each as a visible escape (\n, \x1b, \u2028).
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES |= {ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"}
_ESCAPES |= {0x2028: "\\u2028", 0x2029: "\\u2029", 0x85: "\\x85"}


def escape_controls(text: str) -> str:
    """``text`` with every control character written as a visible escape (``\\n``, ``\\x1b``)."""
    return text.translate(_ESCAPES)


def peer_text(value: object, limit: int = PEER_TEXT_LIMIT) -> str:
    """``value`` as one bounded line: controls escaped, cut at ``limit`` characters.

    A cut text ends with ``…`` and the original length, e.g. ``'abc… (4194304 chars)'``,
    so the reader knows it was cut and by how much. Only the first ``limit``
    characters are escaped (a 4 MiB text costs no more than a short one).
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        escaped = escape_controls(text)
        if len(escaped) <= limit:
            return escaped
        return escaped[:limit] + f"… ({len(text)} chars)"
    return escape_controls(text[:limit])[:limit] + f"… ({len(text)} chars)"


_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxlong = 40


def peer_repr(value: Any, limit: int = PEER_TEXT_LIMIT) -> str:
    """A bounded ``repr`` of a peer's value: nesting shown 3 levels deep, strings
    and containers abridged, then :func:`peer_text` (controls escaped, cut)."""
    try:
        text = _REPR.repr(value)
    except Exception:  # a repr that fails (recursion, a broken __repr__) still names the type
        text = f"<{type(value).__name__}>"
    return peer_text(text, limit)
