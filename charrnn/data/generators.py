"""Generated corpora: the lecture's sequences and long-range dependency tasks.

Every generator draws its random parts from a seeded ``random.Random`` and adds up
their negative log-probability as it goes, so it knows the exact cross-entropy of
its own text under the true process: the **best achievable loss**. A model can only
approach it; the gap between a cell's validation loss and this floor shows how much
of the structure it learned.

Sequences (a model must learn the rule, not one string — every line starts at random)::

    counting     483 484 485 486 487 488 489 490
    alphabet     qrstuvwxyzabcdefghijklmnop
    arithmetic   17 24 31 38 45 52 59 66
    geometric    5 15 45 135 405 1215 3645

Long-range tasks (``distance`` sets how far back the answer lies)::

    recall       k:....................=k              the key must survive the filler
    brackets     ([..{..}..])                           closers must match their openers

In ``recall`` and ``brackets`` the filler is deterministic, so all the uncertainty is in
the keys and bracket choices; what a vanilla RNN loses as ``distance`` grows is its
memory of them — the vanishing gradient that LSTM and GRU gates were made to fix.
"""

from __future__ import annotations

import math
import random
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from charrnn.errors import ConfigError
from charrnn.units import to_bits

GeneratorFn = Callable[[random.Random, int, int], tuple[str, float]]


@dataclass(frozen=True)
class Generated:
    """A generated text and its exact negative log-likelihood under its own process."""

    text: str
    nll_nats: float

    @property
    def floor_nats(self) -> float:
        """Best achievable mean loss per predicted character, in nats."""
        return self.nll_nats / max(len(self.text) - 1, 1)

    @property
    def floor_bpc(self) -> float:
        return to_bits(self.floor_nats)

    @property
    def symbols(self) -> int:
        return len(set(self.text))

    @property
    def unigram_nats(self) -> float:
        """The loss of a model that ignores context (the baseline to beat)."""
        return unigram_entropy(tuple(Counter(self.text).values()))


@dataclass(frozen=True)
class GeneratorSpec:
    """A named generator: what it teaches and its default distance (None: no distance)."""

    name: str
    description: str
    make: GeneratorFn
    default_distance: int | None = None


def _lines(
    rng: random.Random, size: int, line: Callable[[random.Random], tuple[str, float]]
) -> tuple[str, float]:
    """Whole lines until ``size`` characters are reached; sums their log-probabilities."""
    parts: list[str] = []
    total, nll = 0, 0.0
    while total < size:
        text, cost = line(rng)
        parts.append(text)
        total += len(text)
        nll += cost
    return "".join(parts), nll


def counting(rng: random.Random, size: int, distance: int) -> tuple[str, float]:
    """Lines of 8 consecutive integers from a random start in [0, 10000)."""

    def line(r: random.Random) -> tuple[str, float]:
        start = r.randrange(10_000)
        return " ".join(str(n) for n in range(start, start + 8)) + "\n", math.log(10_000)

    return _lines(rng, size, line)


def alphabet(rng: random.Random, size: int, distance: int) -> tuple[str, float]:
    """The 26 letters in order, each line from a random letter, wrapping around."""
    letters = string.ascii_lowercase

    def line(r: random.Random) -> tuple[str, float]:
        start = r.randrange(26)
        return letters[start:] + letters[:start] + "\n", math.log(26)

    return _lines(rng, size, line)


def arithmetic(rng: random.Random, size: int, distance: int) -> tuple[str, float]:
    """8 terms of a + k·d with a in [0, 100), d in [1, 20]."""

    def line(r: random.Random) -> tuple[str, float]:
        a, d = r.randrange(100), r.randint(1, 20)
        return " ".join(str(a + k * d) for k in range(8)) + "\n", math.log(100 * 20)

    return _lines(rng, size, line)


def geometric(rng: random.Random, size: int, distance: int) -> tuple[str, float]:
    """7 terms of a·r^k with a in [1, 9], r in [2, 5]."""

    def line(r: random.Random) -> tuple[str, float]:
        a, ratio = r.randint(1, 9), r.randint(2, 5)
        return " ".join(str(a * ratio**k) for k in range(7)) + "\n", math.log(9 * 4)

    return _lines(rng, size, line)


def recall(rng: random.Random, size: int, distance: int) -> tuple[str, float]:
    """A random letter (the key), ``distance`` dots, then the key again.

    One letter is the cleanest test of memory: everything but the key is fixed, so the
    only thing to learn is to carry log2(26) = 4.7 bits across the filler.
    """

    def line(r: random.Random) -> tuple[str, float]:
        key = r.choice(string.ascii_lowercase)
        return f"{key}:{'.' * distance}={key}\n", math.log(26)

    return _lines(rng, size, line)


_PAIRS = {"(": ")", "[": "]", "{": "}", "<": ">"}


def brackets(rng: random.Random, size: int, distance: int) -> tuple[str, float]:
    """Balanced brackets of four kinds, nested up to 4 deep, ``distance`` dots apart.

    Each line holds 6 pairs. At each symbol: with nothing open, open (kind uniform);
    at depth 4 or with all 6 opened, close; otherwise open or close with even odds.
    A closer is forced by its opener, which may lie many characters back.
    """
    gap = "." * distance

    def line(r: random.Random) -> tuple[str, float]:
        stack: list[str] = []
        symbols: list[str] = []
        opened, nll = 0, 0.0
        while opened < 6 or stack:
            can_open = opened < 6 and len(stack) < 4
            must_open = not stack
            if can_open and (must_open or r.random() < 0.5):
                kind = r.choice(list(_PAIRS))
                nll += math.log(4) + (0.0 if must_open else math.log(2))
                stack.append(kind)
                symbols.append(kind)
                opened += 1
            else:
                nll += 0.0 if not can_open else math.log(2)
                symbols.append(_PAIRS[stack.pop()])
        return gap.join(symbols) + "\n", nll

    return _lines(rng, size, line)


GENERATORS: dict[str, GeneratorSpec] = {
    spec.name: spec
    for spec in (
        GeneratorSpec(
            "counting", "consecutive integers from a random start: learn to count", counting
        ),
        GeneratorSpec("alphabet", "the alphabet from a random letter: the simplest rule", alphabet),
        GeneratorSpec("arithmetic", "5, 10, 15, ...: infer the step from two terms", arithmetic),
        GeneratorSpec("geometric", "1, 3, 9, 27, ...: infer the ratio, multiply", geometric),
        GeneratorSpec(
            "recall", "a key, --distance filler, the key again: long-range memory", recall, 20
        ),
        GeneratorSpec(
            "brackets", "nested brackets --distance apart: a stack held in memory", brackets, 10
        ),
    )
}


def generate(
    name: str, *, size: int = 1_000_000, seed: int = 0, distance: int | None = None
) -> Generated:
    """Generate corpus ``name``: about ``size`` characters (whole lines).

    Raises:
        ConfigError: unknown name, bad size, or a distance the generator does not take.
    """
    spec = GENERATORS.get(name)
    if spec is None:
        raise ConfigError(f"no generator named {name!r}: choose one of {', '.join(GENERATORS)}")
    if size < 1:
        raise ConfigError(f"--size must be a positive number of characters, got {size}")
    if distance is not None and spec.default_distance is None:
        raise ConfigError(f"{name} has no --distance (only {', '.join(long_range())} do)")
    if distance is not None and distance < 0:
        raise ConfigError(f"--distance must be >= 0, got {distance}")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {seed}")
    chosen = distance if distance is not None else (spec.default_distance or 0)
    text, nll = spec.make(random.Random(seed), size, chosen)
    return Generated(text, nll)


def long_range() -> list[str]:
    """Names of the generators that take a ``distance``."""
    return [name for name, spec in GENERATORS.items() if spec.default_distance is not None]


def unigram_entropy(counts: list[int] | tuple[int, ...]) -> float:
    """Entropy in nats of the character frequencies: the loss of a model that ignores
    context entirely (the unigram baseline a trained model must beat)."""
    total = sum(counts)
    return -sum(c / total * math.log(c / total) for c in counts if c)
