"""Item (document) mode: a text that is a list of things — one per line, or one per
paragraph — learned as separate items, the way makemore learns names.

``--docs lines`` makes each non-empty line an item; ``--docs blank-lines`` each block
of text between blank lines (a paragraph, a poem, a function). The end of an item is
the break the text already has: one newline after a line, a blank line (two
newlines) after a paragraph. Items never contain their own end, so the model learns
to write it, and sampling stops there — no extra symbol in the vocabulary, and a
sample prints exactly like the training text. Every item starts from a zero state
with a newline as its first input::

    input   \\n  c   a   t        (lines)        \\n  a  \\n  b  \\n   (blank-lines)
    target   c   a   t  \\n                        a  \\n  b  \\n  \\n

A batch holds ``batch_size`` whole items padded to the longest; padded targets are
``IGNORE`` (cross-entropy skips them). Validation holds out whole items, drawn at
random with a fixed seed, so a sorted list does not put all of one letter there.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from charrnn.config import Docs
from charrnn.data.streams import Window
from charrnn.errors import CorpusError

IGNORE = -100  # F.cross_entropy's default ignore_index
_SPLIT_SEED = 20151  # the validation items do not depend on the training seed


@dataclass(frozen=True)
class Items:
    """Items of an encoded text: ``ids[starts[i] : starts[i] + lengths[i]]`` is item i."""

    ids: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    newline: int
    docs: str

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def span(self) -> int:
        """The window the longest item needs: its characters plus its end."""
        return int(self.lengths.max()) + Docs(self.docs).end_length if len(self) else 0

    @property
    def num_targets(self) -> int:
        """Characters predicted over all items, their ends included."""
        return int(self.lengths.sum()) + len(self) * Docs(self.docs).end_length

    def subset(self, chosen: np.ndarray) -> Items:
        return Items(self.ids, self.starts[chosen], self.lengths[chosen], self.newline, self.docs)

    def keys(self) -> set[bytes]:
        """Every item as :func:`item_key`s, for membership tests."""
        return {
            item_key(self.ids[s : s + n]) for s, n in zip(self.starts, self.lengths, strict=True)
        }

    def batch(self, chosen: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets (len(chosen), longest span) for the items ``chosen``."""
        starts, lengths = self.starts[chosen], self.lengths[chosen]
        width = int(lengths.max()) + Docs(self.docs).end_length
        offsets = np.arange(width)[None, :]
        inside = offsets < lengths[:, None]
        at = np.where(inside, starts[:, None] + offsets, 0)
        y = np.where(inside, np.asarray(self.ids[at], dtype=np.int64), self.newline)
        y = np.where(offsets < lengths[:, None] + Docs(self.docs).end_length, y, IGNORE)
        x = np.concatenate([np.full((len(chosen), 1), self.newline), y[:, :-1]], axis=1)
        x = np.where(x == IGNORE, self.newline, x)  # padding inputs: any id, never scored
        return torch.from_numpy(x), torch.from_numpy(y)


def item_key(ids: np.ndarray) -> bytes:
    """An item's ids as a hashable key, whatever their integer dtype."""
    return np.asarray(ids, dtype=np.int64).tobytes()


def find_items(ids: np.ndarray, newline: int | None, docs: str) -> Items:
    """The items of ``ids`` (the whole encoded text) for ``--docs lines|blank-lines``."""
    if newline is None or not bool((ids == newline).any()):
        raise CorpusError(
            f"--docs {docs}: the text has no line breaks, so it is one item; "
            "use a text with one item per line (or per paragraph), or drop --docs"
        )
    breaks = np.flatnonzero(ids == newline)
    if docs == "lines":
        starts = np.concatenate([[0], breaks + 1])
        ends = np.concatenate([breaks, [len(ids)]])
    else:
        # Separators are runs of two or more newlines; a single newline at an item's
        # edge (the file's first or last character) is not part of it.
        run_start = breaks[np.concatenate([[True], np.diff(breaks) > 1])]
        run_end = breaks[np.concatenate([np.diff(breaks) > 1, [True]])] + 1
        separators = run_end - run_start >= 2
        starts = np.concatenate([[0], run_end[separators]])
        ends = np.concatenate([run_start[separators], [len(ids)]])
        edge = np.asarray(ids[np.minimum(starts, len(ids) - 1)]) == newline
        starts = starts + (edge & (starts < ends))
        edge = np.asarray(ids[np.maximum(ends - 1, 0)]) == newline
        ends = ends - (edge & (ends > starts))
    keep = ends > starts
    starts, lengths = starts[keep].astype(np.int64), (ends - starts)[keep].astype(np.int64)
    if len(starts) == 0:
        raise CorpusError(f"--docs {docs}: the text has no non-empty items")
    return Items(ids, starts, lengths, newline, docs)


def split_items(items: Items, val_frac: float) -> tuple[Items, Items]:
    """(train, validation): a ``val_frac`` share of whole items, chosen at random."""
    n_val = round(len(items) * val_frac)
    if n_val < 1 or len(items) - n_val < 1:
        raise CorpusError(
            f"the text has {len(items)} items: too few to hold out {val_frac:g} of them for "
            "validation; use a longer list, a larger --val-frac, or --val-file"
        )
    order = np.random.default_rng(_SPLIT_SEED).permutation(len(items))
    return items.subset(np.sort(order[n_val:])), items.subset(np.sort(order[:n_val]))


def check_window(items: Items, seq_len: int, what: str = "training") -> None:
    """An item must fit in a window with its end: say which one does not."""
    if items.span > seq_len:
        longest = int(np.argmax(items.lengths))
        raise CorpusError(
            f"a {what} item has {int(items.lengths[longest])} characters (at character "
            f"{int(items.starts[longest]):,} of the text); with its end it needs a window of "
            f"{items.span}, longer than --seq-len {seq_len}: raise --seq-len, or shorten it"
        )


class ItemBatches:
    """Training batches of whole items, an epoch a seeded shuffle of them.

    Batches of similar-length items would pad less, but measured worse: on the names
    list, sorting pools of 50 batches by length gave 28 % more steps in 60 s and a
    worse validation loss in both pairs of runs (1.4415 vs 1.4244, 1.4476 vs 1.4311).
    """

    def __init__(self, items: Items, batch_size: int, seq_len: int, *, seed: int) -> None:
        check_window(items, seq_len)
        if len(items) < batch_size:
            raise CorpusError(
                f"the training text has {len(items)} items; batch size {batch_size} needs at "
                f"least {batch_size}: use a longer list or a lower --batch-size"
            )
        self.items = items
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.seed = seed
        self.windows_per_epoch = len(items) // batch_size
        mean_span = float(items.lengths.mean()) + Docs(items.docs).end_length
        self.chars_per_window = round(batch_size * mean_span)

    def cold_starts(self) -> torch.Tensor:
        """(1, B) all false: every item already starts from a zero state."""
        return torch.zeros(1, self.batch_size, dtype=torch.bool)

    def window(self, step: int) -> Window:
        epoch, index = divmod(step, self.windows_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.items))
        chosen = order[index * self.batch_size : (index + 1) * self.batch_size]
        x, y = self.items.batch(chosen)
        return Window(x, y, epoch, index, independent=True)


class ItemValidation:
    """Every validation item once, ``max_rows`` at a time, each from a zero state."""

    carries_state = False

    def __init__(self, items: Items, max_rows: int, seq_len: int) -> None:
        check_window(items, seq_len, "validation")
        self.items = items
        self.rows = max(1, min(max_rows, len(items)))
        self.seq_len = seq_len
        self.whole = True

    def subset(self, max_chars: int, seed: int) -> ItemValidation:
        """Seeded items (the same ones for the same seed) with about ``max_chars``
        targets; itself when all of them are no more."""
        if self.items.num_targets <= max_chars:
            return self
        order = np.random.default_rng([seed, 0x5EED]).permutation(len(self.items))
        sizes = self.items.lengths[order] + Docs(self.items.docs).end_length
        count = max(1, int(np.searchsorted(np.cumsum(sizes), max_chars)) + 1)
        chosen = np.sort(order[:count])
        items = self.items
        picked = Items(
            items.ids, items.starts[chosen], items.lengths[chosen], items.newline, items.docs
        )
        part = ItemValidation(picked, self.rows, self.seq_len)
        part.whole = False
        return part

    @property
    def num_targets(self) -> int:
        return self.items.num_targets

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # Items of similar length together, so little of each batch is padding.
        order = np.argsort(self.items.lengths, kind="stable")
        for start in range(0, len(order), self.rows):
            yield self.items.batch(order[start : start + self.rows])
