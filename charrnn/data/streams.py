"""Truncated-BPTT batches: B contiguous streams read in consecutive windows of T.

The training ids are cut into ``B`` rows of ``L = N // B`` characters; row ``b`` is
the text from ``b * L`` on. Step ``k`` of an epoch feeds every row's ``k``-th window::

                 window 0        window 1        window 2
    row 0    [t0 ... t(T-1)] [tT ... t(2T-1)] [...]        <- ids[0*L : 1*L]
    row 1    [ ...         ] [ ...          ] [...]        <- ids[1*L : 2*L]
    ...
    row B-1  [ ...         ] [ ...          ] [...]        <- ids[(B-1)*L : B*L]

Targets are the inputs shifted left by one, so window ``k`` reads ``T + 1`` ids
and the next window starts where its inputs ended: the hidden state at the end of
window ``k`` is exactly the state the model needs at the start of window ``k + 1``.
When the stream wraps to window 0 the trainer resets that state.

Each row also starts cold (from a zero state) every :data:`COLD_START_CHARS`
characters or so, at staggered steps so a few rows do at any step. Without it, a
model trained for less than an epoch has met the zero state only in its first steps,
yet sampling and validation start there: a 1x768 LSTM after 75 s scored 2.29 nats
on Tiny Shakespeare's validation text (its samples were noise), and 1.52 on the
same windows started from a warm state.

Windows are gathered from the (memory-mapped) ids on demand, so memory use does
not grow with the corpus.
"""

from __future__ import annotations

import contextlib
import mmap
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from charrnn.errors import CorpusError

_RELEASE_EVERY = 256  # windows between releases of memory-mapped pages
COLD_START_CHARS = 2048  # how often each training stream restarts from a zero state


@dataclass(frozen=True)
class Window:
    """One batch: inputs ``x`` and targets ``y``, both (B, T) int64.

    ``epoch`` and ``index`` locate the window; ``reset`` is true for the first window
    of an epoch, where the streams restart and carried state must be dropped.
    """

    x: torch.Tensor
    y: torch.Tensor
    epoch: int
    index: int
    independent: bool = False  # random windows: nothing carries over between steps
    fresh: torch.Tensor | None = None  # (B,) rows whose last window crossed into a new file

    @property
    def reset(self) -> bool:
        return self.index == 0 or self.independent


def release_pages(ids: np.ndarray) -> None:
    """Let go of the pages of a memory-mapped corpus that reading has made resident.

    They are file-backed and would be re-read from the page cache if needed, but the
    kernel counts them in this process's resident memory (RSS) until released, and an
    epoch over a large corpus would touch them all.
    """
    mapping = getattr(ids, "_mmap", None)  # set by numpy on memmaps and their views
    if mapping is None or not hasattr(mmap, "MADV_DONTNEED"):
        return
    with contextlib.suppress(OSError, ValueError):
        mapping.madvise(mmap.MADV_DONTNEED)


def _gather(ids: np.ndarray, starts: np.ndarray, length: int) -> torch.Tensor:
    """ids[start : start + length] for each start, as a (len(starts), length) int64 tensor."""
    index = starts[:, None] + np.arange(length)[None, :]
    return torch.from_numpy(np.asarray(ids[index], dtype=np.int64))


class StreamBatches:
    """The training stream as ``batch_size`` rows read ``seq_len`` at a time.

    Args:
        ids: encoded training text, shape (N,), any integer dtype (a memmap is fine).
        batch_size: B, the number of parallel streams.
        seq_len: T, the window (and backprop) length.
    """

    def __init__(
        self,
        ids: np.ndarray,
        batch_size: int,
        seq_len: int,
        *,
        random_seed: int | None = None,
        file_starts: np.ndarray | None = None,
    ) -> None:
        need = batch_size * (seq_len + 1)
        if len(ids) < need:
            raise CorpusError(
                f"the training text has {len(ids)} characters; batch size {batch_size} with "
                f"seq-len {seq_len} needs at least {need} (batch-size x (seq-len + 1)): "
                "use a longer text or lower --batch-size / --seq-len"
            )
        self.ids = ids
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.row_len = len(ids) // batch_size  # L
        self.row_starts = np.arange(batch_size, dtype=np.int64) * self.row_len
        self.windows_per_epoch = (self.row_len - 1) // seq_len
        self.random_seed = random_seed
        # Where each file of a joined corpus starts (see charrnn.data.sources).
        self.file_starts = None if file_starts is None else np.sort(file_starts[file_starts > 0])

    @property
    def chars_per_window(self) -> int:
        """Characters predicted per step: B x T."""
        return self.batch_size * self.seq_len

    def cold_starts(self) -> torch.Tensor:
        """(P, B) bools: the rows that restart from a zero state at steps with
        ``step % P == k`` (row k, in proportion, staggered so only B/P rows do at once)."""
        period = max(1, -(-COLD_START_CHARS // self.seq_len))
        phase = torch.arange(self.batch_size) * period // self.batch_size
        return torch.arange(period)[:, None] == phase[None, :]

    def window(self, step: int) -> Window:
        """The batch of global step ``step`` (0-based); epochs repeat the same layout."""
        epoch, index = divmod(step, self.windows_per_epoch)
        if step % _RELEASE_EVERY == 0:
            release_pages(self.ids)
        if self.random_seed is not None:
            # Each row a window from anywhere in the text, drawn from (seed, step) so a
            # resumed run draws the same ones.
            rng = np.random.default_rng([self.random_seed, step])
            starts = rng.integers(0, len(self.ids) - self.seq_len, size=self.batch_size)
            chunk = _gather(self.ids, starts, self.seq_len + 1)
            return Window(chunk[:, :-1], chunk[:, 1:], epoch, index, independent=True)
        starts = self.row_starts + index * self.seq_len
        chunk = _gather(self.ids, starts, self.seq_len + 1)
        return Window(
            x=chunk[:, :-1], y=chunk[:, 1:], epoch=epoch, index=index, fresh=self._fresh(starts)
        )

    def _fresh(self, starts: np.ndarray) -> torch.Tensor | None:
        """Rows that began a new file in their previous window (a file start in
        ``(start - T, start]``): their carried state is dropped here, so a file's
        state runs at most one window (``seq_len`` characters) into the next file."""
        if self.file_starts is None or not len(self.file_starts):
            return None
        crossed = np.searchsorted(self.file_starts, starts, side="right") - np.searchsorted(
            self.file_starts, starts - self.seq_len, side="right"
        )
        return torch.from_numpy(crossed > 0)


class ValidationWindows:
    """The whole validation text as up to ``max_rows`` streams, state carried.

    Every character but the first of each row is predicted once, so the mean loss
    covers the whole text; the last window of a row may be shorter than ``seq_len``.
    """

    carries_state = True  # each window continues where its row's previous one ended

    def __init__(self, ids: np.ndarray, max_rows: int, seq_len: int) -> None:
        if len(ids) < 2:
            raise CorpusError("the validation text needs at least 2 characters")
        self.ids = ids
        self.seq_len = seq_len
        # Rows at least one window long, so short validation texts use fewer rows.
        self.rows = max(1, min(max_rows, len(ids) // (seq_len + 1)))
        self.row_len = len(ids) // self.rows
        self.row_starts = np.arange(self.rows, dtype=np.int64) * self.row_len
        self.whole = True

    def subset(self, max_chars: int, seed: int) -> ValidationWindows:
        """About ``max_chars`` of the text as the same rows, each a stretch of
        ``max_chars / rows`` characters at a seeded place in its own part of the text
        (the same stretches for the same seed: evaluations compare); itself when the
        whole text is no longer."""
        row_len = max(self.seq_len + 1, max_chars // self.rows + 1)
        if row_len >= self.row_len:
            return self
        rng = np.random.default_rng([seed, 0x5EED])
        offsets = rng.integers(0, self.row_len - row_len + 1, size=self.rows)
        part = ValidationWindows.__new__(ValidationWindows)
        part.ids, part.seq_len, part.rows, part.row_len = self.ids, self.seq_len, self.rows, row_len
        part.row_starts = self.row_starts + offsets
        part.whole = False
        return part

    @property
    def num_targets(self) -> int:
        """Characters predicted in one pass."""
        return self.rows * (self.row_len - 1)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for n, start in enumerate(range(0, self.row_len - 1, self.seq_len)):
            if n % _RELEASE_EVERY == 0:
                release_pages(self.ids)
            length = min(self.seq_len, self.row_len - 1 - start)
            chunk = _gather(self.ids, self.row_starts + start, length + 1)
            yield chunk[:, :-1], chunk[:, 1:]
        release_pages(self.ids)
