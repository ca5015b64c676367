"""The management and control challenge-response: HMAC-SHA256 over a server's nonce.

Apart from the management port so that the client library (``cfgctl``, the
supervisor) computes its answer without loading the server.
"""

from __future__ import annotations

import hashlib
import hmac

#: Prefix of the signed challenge, naming the scheme and its version.
CHALLENGE_CONTEXT = b"cfgha-mgmt-v1:"


def challenge_response(secret: str, nonce: str) -> str:
    """The answer to a management challenge (used by clients and the server)."""
    return hmac.new(secret.encode(), CHALLENGE_CONTEXT + nonce.encode(), hashlib.sha256).hexdigest()
