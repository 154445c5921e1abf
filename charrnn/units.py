"""Units the project reports in: losses in nats per character, also as bits."""

from __future__ import annotations

import math

LN2 = math.log(2.0)


def to_bits(nats: float) -> float:
    """Bits per character (bpc) for a loss in nats per character."""
    return nats / LN2
