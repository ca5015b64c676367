"""How many examples the heaviest property tests draw: make test's count, scaled.

``make test`` keeps under five minutes, so the state-machine properties that take
longest draw a count sized for it; ``HYPOTHESIS_SCALE`` (a positive number, default
1) multiplies every such count for a longer search (``make chaos`` runs them at 4).
"""

from __future__ import annotations

import os

#: The variable that scales every count given to :func:`examples`.
SCALE_ENV = "HYPOTHESIS_SCALE"


class ExampleScaleError(ValueError):
    """``HYPOTHESIS_SCALE`` is not a positive number."""


def examples(count: int) -> int:
    """``count`` times ``HYPOTHESIS_SCALE`` (at least 1)."""
    text = os.environ.get(SCALE_ENV, "1")
    try:
        scale = float(text)
    except ValueError:
        scale = -1.0
    if not scale > 0:
        raise ExampleScaleError(f"{SCALE_ENV}={text!r}: give a positive number, like 4")
    return max(1, round(count * scale))
