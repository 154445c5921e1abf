"""Units the project reports in: losses in nats per character, also as bits; counts
with a metric prefix."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # numpy is not loaded for this (the CLI starts without it)
    import numpy as np

T = TypeVar("T", float, "np.ndarray[Any, Any]")

LN2 = math.log(2.0)


def to_bits(nats: T) -> T:
    """Bits per character (bpc) for a loss in nats per character (a number or an array)."""
    return nats / LN2


def to_nats(bits: T) -> T:
    """Nats per character for a loss in bits per character (a number or an array)."""
    return bits * LN2


def human(n: float) -> str:
    """A count with a metric prefix and three figures: 1234567 -> '1.23M', 4321 ->
    '4.32k', 960 -> '960' (a tiny model's parameters never read as '0.0M')."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"
