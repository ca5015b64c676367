"""Slowing down the guessing of a shared secret (management, control) without a lock-out.

A wrong secret cannot be told from a guess, and the peers that know the secret
(the supervisor, a backup, a proxy) often connect from the same address as
whoever guesses (on one host, everything is ``127.0.0.1``). Locking a source
out after failures would lock them out too: one process guessing on the
supervisor's host would stop the supervisor from reconnecting to the primary.
So every proof is checked, and a right one is answered at once; only the
*answer to a wrong one* is held back. After ``threshold`` wrong proofs from one
source within ``window`` seconds, each further wrong proof from it waits
``base_delay`` seconds, doubling per failure up to ``max_delay``, before it is
answered and its connection closed (the port's authentication deadline may
close it first, unanswered). A guesser then has at most one answer per
connection per delay, and the port's cap on unauthenticated connections bounds
how many it can wait on at once: 64 connections on the management port, each
held for up to the authentication deadline (5 s by default), is at most about
13 guesses a second where it was 1,500 (see ``docs/protocol.md``).

The policy is :class:`~confserv.core.auth_backoff.Backoff`'s; the log has one
line (20194) when a source starts being slowed, and one (20195) with the count
when it has been quiet for ``quiet`` seconds.
"""

from __future__ import annotations

import trio

from confserv.logs import events

from .auth_backoff import BackoffPolicy
from .auth_throttle import AuthThrottle, Emit, source_of

#: Wrong secrets from one source before its answers are delayed, and how much.
TARPIT_POLICY = BackoffPolicy(threshold=5, window=60.0, base_delay=1.0, max_delay=30.0)


class SecretTarpit:
    """Per-source delay of the answers to wrong ``what`` proofs (one per port)."""

    def __init__(self, what: str, emit: Emit | None, policy: BackoffPolicy = TARPIT_POLICY) -> None:
        self._throttle = AuthThrottle(
            what,
            policy,
            emit,
            started=events.SECRET_TARPIT_STARTED,
            ended=events.SECRET_TARPIT_ENDED,
        )

    def delay_for(self, peer: str) -> float:
        """Record a wrong proof from ``peer`` (``host:port``); the seconds to wait
        before answering it (0.0 until the source passed the threshold)."""
        key = f"source {source_of(peer)}"
        self._throttle.failed(key)
        return self._throttle.backoff(key).delay(key, trio.current_time())

    async def wrong_proof(self, peer: str) -> None:
        """Record a wrong proof from ``peer`` and sleep the delay it earned."""
        delay = self.delay_for(peer)
        if delay > 0:
            await trio.sleep(delay)
