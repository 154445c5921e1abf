"""Telling new text from training text.

Items (``--docs``) are compared whole: a sample is new, a training item, or a
validation item, as makemore reports. A stream is compared by spans: an
:class:`NgramIndex` holds a 64-bit hash of every ``n``-character span of the
training text, sorted, so a drawing loop can ask, for every possible next character
at once, whether it would complete a span the training text already has. The index
is built once per (text, n) and cached beside the encoded corpus.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.data.items import Items, item_key
from charrnn.files import atomic_file

_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd: a multiplier with every bit mixing
MAX_SPAN = 1000


def _powers(n: int) -> np.ndarray:
    """BASE^(n-1), ..., BASE^0 with uint64 wrap-around."""
    powers = np.ones(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(n - 2, -1, -1):
            powers[i] = powers[i + 1] * _BASE
    return powers


def span_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """The hash of each ``ids[i : i + n]``, shape (len(ids) - n + 1,) uint64."""
    count = len(ids) - n + 1
    if count <= 0:
        return np.zeros(0, dtype=np.uint64)
    hashes = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j, power in enumerate(_powers(n)):
            hashes += (np.asarray(ids[j : j + count], dtype=np.uint64) + np.uint64(1)) * power
    return hashes


@dataclass(frozen=True)
class NgramIndex:
    """The sorted distinct span hashes of a text, for spans of ``n`` characters."""

    n: int
    hashes: np.ndarray

    @classmethod
    def build(cls, ids: np.ndarray, n: int, cache: Path | None = None) -> NgramIndex:
        """The index of ``ids``, read from ``cache`` if there, else built and saved there."""
        if cache is not None and cache.is_file():
            try:
                return cls(n, np.load(cache, allow_pickle=False))
            except (OSError, ValueError):
                pass  # damaged: build it again
        hashes = np.unique(span_hashes(ids, n))
        if cache is not None:
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                with atomic_file(cache) as handle:
                    np.save(handle, hashes, allow_pickle=False)
            except OSError:
                pass  # a cache we cannot write costs time next run, nothing else
        return cls(n, hashes)

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """Whether each hash is one of the index's (same shape, bool)."""
        at = np.searchsorted(self.hashes, hashes)
        found = np.zeros(hashes.shape, dtype=bool)
        inside = at < len(self.hashes)
        found[inside] = self.hashes[at[inside]] == hashes[inside]
        return found

    def completing(self, context: np.ndarray, vocab_size: int) -> np.ndarray:
        """(rows, vocab_size) bools: which next characters would complete a known span,
        given each row's last ``n - 1`` ids ``context`` (rows, n - 1)."""
        powers = _powers(self.n)
        with np.errstate(over="ignore"):
            head = ((context.astype(np.uint64) + np.uint64(1)) * powers[:-1]).sum(
                axis=1, dtype=np.uint64
            )
            candidates = head[:, None] + (np.arange(vocab_size, dtype=np.uint64) + np.uint64(1))
        return self.contains(candidates)

    def share_known(self, ids: np.ndarray) -> tuple[int, int]:
        """(spans of ``ids`` found in the index, all its spans)."""
        hashes = span_hashes(ids, self.n)
        return int(self.contains(hashes).sum()), len(hashes)


@dataclass(frozen=True)
class ItemSets:
    """The training and validation items, for telling a sample's origin."""

    train: set[bytes]
    val: set[bytes]

    @classmethod
    def of(cls, train: Items, val: Items) -> ItemSets:
        return cls(train.keys(), val.keys())

    def origin(self, ids: np.ndarray) -> str:
        """'train', 'val' or 'new'."""
        key = item_key(ids)
        return "train" if key in self.train else "val" if key in self.val else "new"
