"""Exceptions raised by the ADDP layer.

One root, :class:`AddpError`. Below it the errors split by whose fault they
are (h11's habit): :class:`LocalProtocolError` when this program misused the
API, :class:`RemoteProtocolError` when the peer sent something that cannot be
accepted, :class:`OptionError` for a bad configuration value, and
:class:`LinkEnded` (raised by the trio adapter) saying why a link is over.
"""

from __future__ import annotations


class AddpError(Exception):
    """Root of every exception this package raises on purpose."""


class LocalProtocolError(AddpError):
    """Raised when the caller uses a connection in a way its state forbids.

    For example sending an application message before the handshake has
    completed, or after the connection was closed.
    """


class MessageTooLargeError(LocalProtocolError):
    """A message to send encodes larger than the peer's announced frame limit."""


class RemoteProtocolError(AddpError):
    """Raised when the peer sent bytes that break the protocol.

    The connection cannot go on after this: the adapter closes that one link
    and reports :class:`LinkProtocolError`. The message names what was wrong.
    """


class BadMagicError(RemoteProtocolError):
    """A frame header did not start with the two magic bytes ``0xAD 0xD9``."""


class FrameTooLargeError(RemoteProtocolError):
    """A frame header announced a payload larger than the configured limit."""


class UnknownFrameKindError(RemoteProtocolError):
    """A frame header carried a kind byte this version does not define."""


class BadFlagsError(RemoteProtocolError):
    """A frame header carried non-zero reserved flag bits."""


class MalformedPayloadError(RemoteProtocolError):
    """A frame payload was not valid msgpack, or not the shape its kind requires."""


class HandshakeError(RemoteProtocolError):
    """The peer's HELLO was malformed, repeated, or had no protocol version in common."""


class UnexpectedFrameError(RemoteProtocolError):
    """A frame arrived in a state where it is not allowed (anything before the peer's HELLO)."""


class OptionError(AddpError, ValueError):
    """An ADDP option had a value outside what it accepts.

    ``str(err)`` names the option and the value, e.g.
    ``addp-timeout: 'ten' is not a number of seconds (0 to 3600)``.
    """

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


class LinkEnded(AddpError):
    """A link is over. The subclass says why; ``str()`` gives the detail."""


class LinkClosedByPeer(LinkEnded):
    """The peer closed the link: a CLOSE frame or end of stream."""


class AddpTimeout(LinkEnded):
    """The peer was silent for ``addp-timeout``, then did not answer a poll in time."""


class LinkProtocolError(LinkEnded):
    """The peer broke the protocol; ``__cause__`` is the :class:`RemoteProtocolError`."""


class LinkBroken(LinkEnded):
    """The transport failed underneath (connection reset, broken pipe, ...)."""


class LinkClosedLocally(LinkEnded):
    """This side closed the link; raised by ``send`` after ``aclose``."""
