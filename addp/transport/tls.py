"""TLS under a link: the handshake of either side, bounded, and its failures in one line.

A link over TLS is an ordinary link whose stream is a :class:`trio.SSLStream`
(``https_compatible=False``: a peer's missing ``close_notify`` is an error).
The TLS handshake is done explicitly, before ADDP's, so that its failure is
told as such: :class:`TlsHandshakeError`, whose text names the reason
(``certificate verify failed: unable to get local issuer certificate``,
``the peer did not speak TLS``, ...), never a traceback.

A server looks at the first bytes a peer sends before handing them to TLS:
a TLS connection starts with a handshake record (byte ``0x16``), an ADDP
one with the frame magic ``0xAD``. A plain ADDP client on a TLS port is
therefore answered in plain ADDP (a HELLO and a CLOSE saying the port speaks
TLS), so that it too gets one clear line instead of a reset.
"""

from __future__ import annotations

import contextlib
import ssl

import trio

from .._errors import LinkBroken

#: The first byte of a TLS record carrying a handshake message (a ClientHello).
TLS_HANDSHAKE_RECORD = 0x16
#: What a client is told when it spoke plain ADDP to a TLS port.
PLAIN_ON_TLS_PORT = (
    "this port speaks TLS only: connect with TLS (encryption = true and the CA of the "
    "server's certificate)"
)
#: ``ssl`` reasons that mean the bytes received were not TLS at all.
_NOT_TLS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "HTTP_REQUEST",
        "HTTPS_PROXY_REQUEST",
        "UNKNOWN_PROTOCOL",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LAYER_FAILURE",
    }
)


class TlsHandshakeError(LinkBroken):
    """The TLS handshake failed or did not finish in time; ``str()`` says why, in one line.

    Attributes:
        where: The peer, ``host:port``.
        reason: Why, without the peer (``certificate verify failed: ...``).
    """

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"TLS handshake with {where} failed: {reason}")
        self.where = where
        self.reason = reason


def tls_reason(exc: BaseException) -> str:
    """One line saying why a TLS operation failed, from the exception or its causes
    (trio wraps :class:`ssl.SSLError` in :class:`trio.BrokenResourceError`)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {seen.verify_message}"
        if isinstance(seen, ssl.SSLError):
            reason = seen.reason or ""
            if reason == "UNEXPECTED_EOF_WHILE_READING":
                return "the peer closed the connection in the TLS handshake"
            if reason in _NOT_TLS:
                return f"the peer did not speak TLS ({reason.lower().replace('_', ' ')})"
            text = reason.lower().replace("_", " ") if reason else str(seen)
            for alert in ("sslv3 alert ", "tlsv1 alert ", "tlsv13 alert "):
                if text.startswith(alert):  # the peer's verdict, sent as a TLS alert
                    return f"the peer refused it: {text.removeprefix(alert)}"
            return text
        seen = seen.__cause__ or seen.__context__
    return _closed(exc)


def _closed(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"the connection closed during the TLS handshake ({text})"


async def client_handshake(
    stream: trio.abc.Stream, context: ssl.SSLContext, server_hostname: str, where: str
) -> trio.SSLStream[trio.abc.Stream]:
    """Wrap ``stream`` and do the client's TLS handshake (the caller bounds the time).

    Raises:
        TlsHandshakeError: the handshake failed (the server's certificate was
            not verified, the server did not speak TLS, ...): one line naming ``where``.
    """
    tls = trio.SSLStream(stream, context, server_hostname=server_hostname, https_compatible=False)
    try:
        await tls.do_handshake()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        await _send_alert(tls, stream)
        await trio.aclose_forcefully(stream)
        raise TlsHandshakeError(where, tls_reason(exc)) from None
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return tls


async def _send_alert(tls: trio.SSLStream[trio.abc.Stream], stream: trio.abc.Stream) -> None:
    """Send the TLS alert OpenSSL queued when the handshake failed, so that the peer
    learns why (``unknown ca``, ``certificate required``) instead of reading a bare
    end of stream. trio keeps it unsent in its outgoing buffer (a private one: when a
    version of trio has none, the peer only misses the reason)."""
    outgoing = getattr(tls, "_outgoing", None)
    if not isinstance(outgoing, ssl.MemoryBIO) or not outgoing.pending:
        return
    with (
        trio.move_on_after(1.0),
        contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError),
    ):
        await stream.send_all(outgoing.read())


class _Replayed(trio.abc.Stream):
    """A stream whose first ``receive_some`` returns bytes already read from it."""

    def __init__(self, stream: trio.abc.Stream, first: bytes) -> None:
        self.stream = stream
        self._first = first

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """As the wrapped stream's."""
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        """As the wrapped stream's."""
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """The bytes read ahead first, then the wrapped stream's."""
        if self._first:
            size = len(self._first) if max_bytes is None else max_bytes
            data, self._first = self._first[:size], self._first[size:]
            await trio.lowlevel.checkpoint()
            return data
        return bytes(await self.stream.receive_some(max_bytes))

    async def aclose(self) -> None:
        """Close the wrapped stream."""
        await self.stream.aclose()


class PlainPeer(Exception):
    """The peer of a TLS port sent plain bytes first (``stream`` replays them)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        super().__init__("the peer did not speak TLS")
        self.stream = stream


async def server_handshake(
    stream: trio.abc.Stream, context: ssl.SSLContext, where: str
) -> trio.SSLStream[trio.abc.Stream]:
    """Do the server's TLS handshake on an accepted stream (the caller bounds the time).

    Raises:
        PlainPeer: the first byte was not a TLS handshake record; the caller
            may answer in plain ADDP on ``exc.stream`` (which replays it).
        TlsHandshakeError: the handshake failed (a client certificate was
            required and missing or not verified, ...), one line naming ``where``.
    """
    try:
        first = bytes(await stream.receive_some(4096))
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        raise TlsHandshakeError(where, tls_reason(exc)) from None
    if not first:
        raise TlsHandshakeError(where, "the peer closed the connection before it")
    replayed: trio.abc.Stream = _Replayed(stream, first)
    if first[0] != TLS_HANDSHAKE_RECORD:
        raise PlainPeer(replayed)
    tls = trio.SSLStream(replayed, context, server_side=True, https_compatible=False)
    try:
        await tls.do_handshake()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        await _send_alert(tls, replayed)
        raise TlsHandshakeError(where, tls_reason(exc)) from None
    return tls
