"""Units the project reports in: losses in nats per character, also as bits."""

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
