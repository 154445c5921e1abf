"""Synthetic English-like text for benchmarks: no corpus we did not write is needed."""

from __future__ import annotations

import random
from pathlib import Path

_WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his "
    "from at which but have an they you were her she there one all we their been has "
    "when who will more no if out so said what up its about into than them can only "
    "other new some could time these two may then do first any my now such like our "
    "over man me even most made after also did many before must through back years "
    "where much your way well down should because each just those people how too little "
    "state good very make world still own see men work long get here between both life "
    "being under never day same another know while last might us great old year off "
    "come since against go came right used take three"
).split()


def make_block(n_chars: int, seed: int = 0) -> str:
    """About ``n_chars`` characters of sentences and paragraphs."""
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < n_chars:
        words = [rng.choice(_WORDS) for _ in range(rng.randint(5, 18))]
        sentence = " ".join(words).capitalize() + rng.choice(".....?!;:")
        sentence += "\n\n" if rng.random() < 0.1 else " "
        parts.append(sentence)
        size += len(sentence)
    return "".join(parts)


def write_corpus(path: Path, megabytes: float, seed: int = 0) -> Path:
    """A file of ``megabytes`` MB made by repeating a 1 MB generated block."""
    block = make_block(1_000_000, seed).encode("utf-8")
    target = int(megabytes * 1_000_000)
    with path.open("wb") as handle:
        written = 0
        while written < target:
            piece = block[: target - written]
            handle.write(piece)
            written += len(piece)
    return path
