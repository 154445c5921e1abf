"""Scoring a file of any size in constant memory: read in blocks, folded into totals,
the first characters kept in full, the worst spots and lines kept in small heaps.

The result equals :func:`charrnn.scoring.text.score_text` on the whole text
(tested), items included: a file is cut only between two items.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.config import Docs
from charrnn.data.text import check_readable, iter_symbol_chunks
from charrnn.data.vocab import Vocab
from charrnn.errors import ConfigError, CorpusError, VocabError
from charrnn.events import SILENT, Reporter
from charrnn.model.network import CharRNN, State
from charrnn.model.prefix import run_chunk
from charrnn.scoring import text as whole_text
from charrnn.scoring.text import Line, Score, Totals, score_items
from charrnn.units import to_bits

BLOCK = 1 << 20  # bytes read (so at most characters scored) at a time from a file
CONTEXT = 30  # characters kept before each of the most surprising spots
LINE_TEXT = 80  # characters kept of each listed line


@dataclass(frozen=True)
class Spot:
    """One of the most surprising characters: where, how surprising, what was expected."""

    position: int  # in the text; the first character (position 0) is never predicted
    nats: float
    was: int  # id
    expected: int  # id the model found most likely
    before: np.ndarray  # ids of up to CONTEXT characters before it

    @property
    def bits(self) -> float:
        return to_bits(self.nats)


@dataclass
class FileScore(Totals):
    """What scoring a whole file keeps: the totals, the first characters in full (for
    ``--show``), the most surprising spots and lines, and optionally every line's
    numbers. Its size depends on those choices, never on the file's length."""

    vocab: Vocab
    characters: int = 0
    predicted: int = 0
    nats_sum: float = 0.0
    head: Score | None = None
    spots: list[Spot] = field(default_factory=list)  # worst first
    worst_lines: list[Line] = field(default_factory=list)  # worst first
    lines_seen: int = 0  # lines with at least one predicted character
    all_lines: list[tuple[int, int, float]] | None = None  # (number, predicted, nats)
    dropped: int = 0  # characters outside the vocabulary, skipped
    window: int | None = None  # scored in windows of this many, each from a fresh state

    @property
    def nats(self) -> float:
        return self.nats_sum / self.predicted


class _Tally:
    """Folds the scored stream in, piece by piece: ``pieces[i]`` is the character at
    ``position + i`` and ``losses[i]`` its loss, as :meth:`Score.lines` and
    :meth:`Score.worst` would count them over the whole text."""

    def __init__(self, vocab: Vocab, show: int, spots: int, lines: int, every_line: bool) -> None:
        self.result = FileScore(vocab, all_lines=[] if every_line else None)
        self.show, self.top_spots, self.top_lines = show, spots, lines
        self.newline = vocab.index_of("\n")
        self.head: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.head_size = 0
        self.spots: list[tuple[float, int, Spot]] = []  # a min-heap of the worst
        self.lines: list[tuple[float, int, Line]] = []
        self.tail = np.zeros(0, dtype=np.int64)  # the last CONTEXT ids seen
        self.position = 0
        self.line_number, self.line_sum, self.line_count = 1, 0.0, 0
        self.line_ids = np.zeros(0, dtype=np.int64)

    def start(self, first: int) -> None:
        """The first character: never predicted, but it begins the first line."""
        self.result.characters = 1
        self.tail = np.array([first], dtype=np.int64)
        self.line_ids = self.tail.copy()
        self.position = 1
        self.head.append((self.tail.copy(), np.zeros(0, np.float32), np.zeros(0, np.int64)))
        self.head_size = 1
        if first == self.newline:
            self._close_line()

    def add(self, ids: np.ndarray, losses: np.ndarray, expected: np.ndarray) -> None:
        ids = ids.astype(np.int64, copy=False)
        result = self.result
        result.characters += len(ids)
        result.predicted += len(ids)
        result.nats_sum += float(losses.astype(np.float64).sum())
        if self.head_size < self.show:
            take = min(len(ids), self.show - self.head_size)
            self.head.append((ids[:take], losses[:take], expected[:take]))
            self.head_size += take
        self._spots(ids, losses, expected)
        self._lines(ids, losses)
        self.position += len(ids)
        self.tail = np.concatenate([self.tail, ids[-CONTEXT:]])[-CONTEXT:]

    def _spots(self, ids: np.ndarray, losses: np.ndarray, expected: np.ndarray) -> None:
        if self.top_spots == 0 or len(ids) == 0:
            return
        order = np.lexsort((np.arange(len(ids)), -losses))  # worst first, ties: earlier
        for i in order[: self.top_spots].tolist():
            nats = float(losses[i])
            key = (nats, -(self.position + i))  # ties: the earlier position ranks higher
            if len(self.spots) == self.top_spots and key <= self.spots[0][:2]:
                continue
            before = np.concatenate([self.tail, ids[max(i - CONTEXT, 0) : i]])[-CONTEXT:]
            spot = Spot(self.position + i, nats, int(ids[i]), int(expected[i]), before)
            entry = (nats, -(self.position + i), spot)
            if len(self.spots) < self.top_spots:
                heapq.heappush(self.spots, entry)
            else:
                heapq.heapreplace(self.spots, entry)

    def _lines(self, ids: np.ndarray, losses: np.ndarray) -> None:
        """Fold a piece into the lines: it ends the open line at its first newline,
        holds whole lines (done at once, as arrays), and opens the next."""
        if self.newline is None:
            self._extend_line(ids, losses)
            return
        ends = np.flatnonzero(ids == self.newline) + 1
        if not len(ends):
            self._extend_line(ids, losses)
            return
        self._extend_line(ids[: ends[0]], losses[: ends[0]])
        self._close_line()
        starts, stops = ends[:-1], ends[1:]
        if len(starts):
            total = np.concatenate([[0.0], np.cumsum(losses, dtype=np.float64)])
            counts = stops - starts  # each holds its newline: never empty
            means = (total[stops] - total[starts]) / counts
            numbers = self.line_number + np.arange(len(starts))
            result = self.result
            result.lines_seen += len(starts)
            if result.all_lines is not None:
                result.all_lines.extend(
                    zip(numbers.tolist(), counts.tolist(), means.tolist(), strict=True)
                )
            for i in np.lexsort((numbers, -means))[: self.top_lines].tolist():
                text = ids[starts[i] : min(stops[i], starts[i] + LINE_TEXT + 1)]
                self._offer_line(Line(int(numbers[i]), self._text(text), int(counts[i]), means[i]))
            self.line_number += len(starts)
        self._extend_line(ids[ends[-1] :], losses[ends[-1] :])

    def _extend_line(self, ids: np.ndarray, losses: np.ndarray) -> None:
        self.line_sum += float(losses.astype(np.float64).sum())
        self.line_count += len(ids)
        if len(self.line_ids) <= LINE_TEXT:
            self.line_ids = np.concatenate([self.line_ids, ids[: LINE_TEXT + 1]])

    def _text(self, ids: np.ndarray) -> str:
        return self.result.vocab.decode(ids).rstrip("\n")

    def _offer_line(self, line: Line) -> None:
        """Keep ``line`` if it is among the worst so far (ties: the earlier)."""
        entry = (line.nats, -line.number, line)
        if self.top_lines == 0:
            return
        if len(self.lines) < self.top_lines:
            heapq.heappush(self.lines, entry)
        elif entry[:2] > self.lines[0][:2]:
            heapq.heapreplace(self.lines, entry)

    def _close_line(self) -> None:
        if self.line_count:
            nats = self.line_sum / self.line_count
            result = self.result
            result.lines_seen += 1
            if result.all_lines is not None:
                result.all_lines.append((self.line_number, self.line_count, nats))
            line = Line(self.line_number, self._text(self.line_ids), self.line_count, nats)
            self._offer_line(line)
        self.line_number += 1
        self.line_sum, self.line_count = 0.0, 0
        self.line_ids = np.zeros(0, dtype=np.int64)

    def finish(self) -> FileScore:
        self._close_line()
        result = self.result
        if result.predicted == 0:
            raise CorpusError("the text to score needs at least 2 characters of the vocabulary")
        ids, losses, expected = (np.concatenate(parts) for parts in zip(*self.head, strict=True))
        result.head = Score(result.vocab, ids, losses[: len(ids) - 1], expected[: len(ids) - 1])
        result.spots = [spot for *_, spot in sorted(self.spots, reverse=True)]
        result.worst_lines = [line for *_, line in sorted(self.lines, reverse=True)]
        return result


def _blocks(
    path: Path,
    vocab: Vocab,
    encoding: str,
    skip_unknown: bool,
    result: FileScore,
    on_progress: Callable[[int], None] | None,
) -> Iterator[np.ndarray]:
    """The file's ids, a chunk at a time; unknown characters dropped (and counted) or
    refused naming them."""
    chunks = iter_symbol_chunks(
        path, encoding=encoding, byte_level=vocab.byte_level, chunk_bytes=BLOCK
    )
    for raw, symbols in chunks:
        try:
            ids = vocab.encode_symbols(symbols, what="the text to score")
        except VocabError as exc:
            if not skip_unknown:
                raise VocabError(f"{exc}; drop them with --skip-unknown") from None
            ids = vocab.encode_symbols(symbols, on_unknown="drop")
            result.dropped += len(symbols) - len(ids)
        if on_progress is not None:
            on_progress(len(raw))
        yield ids


@torch.inference_mode()
def score_file(
    model: CharRNN,
    vocab: Vocab,
    path: Path,
    *,
    encoding: str = "utf-8",
    skip_unknown: bool = False,
    docs: str = "none",
    show: int = 0,
    worst_spots: int = 0,
    worst_lines: int = 0,
    every_line: bool = False,
    window: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    reporter: Reporter = SILENT,
) -> FileScore:
    """Score the file at ``path`` as :func:`score_text` scores its text, in memory that
    does not grow with the file: the first ``show`` characters are kept in full, the
    ``worst_spots`` most surprising characters and ``worst_lines`` lines, and
    (``every_line``) each line's numbers. ``on_progress`` hears the bytes read.

    ``window`` scores the text in consecutive windows of that many predictions, each
    from a fresh (zero) state, every character after the first still scored: the
    protocol of Transformer baselines such as nanoGPT (windows of their block size,
    256 for shakespeare_char), where a prediction sees at most ``window`` characters.
    Without it the state runs through the whole text, as training carried it.

    Raises:
        ConfigError: ``window`` with a model trained on items (each item is already
            scored from a fresh state).
    """
    check_readable(path)
    if window is not None and Docs(docs).on:
        raise ConfigError(
            "--window scores a stream in windows; this model was trained on items, which "
            "are each scored from a fresh state already"
        )
    if window is not None and window < 1:
        raise ConfigError(f"--window must be at least 1 (got {window})")
    tally = _Tally(vocab, show, worst_spots, worst_lines, every_line)
    tally.result.window = window
    blocks = _blocks(path, vocab, encoding, skip_unknown, tally.result, on_progress)
    if Docs(docs).on:
        _score_item_blocks(model, vocab, blocks, docs, tally)
    else:
        _score_stream_blocks(model, blocks, tally, window)
    if tally.result.dropped:
        reporter.warning(f"skipped {tally.result.dropped:,} characters outside the vocabulary")
    return tally.finish()


def _pieces(offset: int, length: int, window: int | None) -> Iterator[tuple[int, int, bool]]:
    """Cut ``length`` inputs whose first is prediction ``offset`` of the text into
    pieces of at most one chunk that never cross a window's edge: ``(start, end,
    fresh)``, ``fresh`` when the piece begins a window (its state starts at zero)."""
    start = 0
    while start < length:
        at = offset + start
        end = min(length, start + whole_text.CHUNK)
        if window is not None:
            end = min(end, start + window - at % window)
        yield start, end, window is not None and at % window == 0
        start = end


def _score_stream_blocks(
    model: CharRNN, blocks: Iterator[np.ndarray], tally: _Tally, window: int | None = None
) -> None:
    """The text as one stream, block by block, the state carried from each block to the
    next (or, with ``window``, dropped at every window's start)."""
    model.eval()
    device = model.head.weight.device
    state: State | None = None
    previous: int | None = None
    offset = 0  # predictions made before this block
    for ids in blocks:
        if len(ids) == 0:
            continue
        if previous is None:
            tally.start(int(ids[0]))
            previous, ids = int(ids[0]), ids[1:]
        inputs = np.concatenate([[previous], ids[:-1]]).astype(np.int64)
        for start, end, fresh in _pieces(offset, len(inputs), window):
            logits, state = run_chunk(model, inputs[None, start:end], None if fresh else state)
            logits = logits[0]  # (T, V)
            y = torch.as_tensor(ids[start:end], device=device).long()
            losses = F.cross_entropy(logits, y, reduction="none").cpu().numpy()
            tally.add(y.cpu().numpy(), losses, logits.argmax(dim=-1).cpu().numpy())
        offset += len(inputs)
        if len(ids):
            previous = int(ids[-1])


def _score_item_blocks(
    model: CharRNN, vocab: Vocab, blocks: Iterator[np.ndarray], docs: str, tally: _Tally
) -> None:
    """Items are scored from a zero state each, so a file can be cut between two items
    and scored piece by piece: after a newline (``lines``) or a blank line
    (``blank-lines``) that a character other than a newline follows."""
    newline = vocab.index_of("\n")
    end = Docs(docs).end_length
    pending = np.zeros(0, dtype=np.int64)
    started = False

    def score(ids: np.ndarray) -> None:
        nonlocal started
        found = score_items(model, vocab, ids, docs)
        if not started:
            tally.start(int(found.ids[0]))
            started = True
        tally.add(found.ids[1:], found.surprisal, found.expected)

    for ids in blocks:
        pending = np.concatenate([pending, ids.astype(np.int64, copy=False)])
        is_newline = pending == newline
        # j is a cut when pending[j - end : j] are newlines and pending[j] is not.
        cut = ~is_newline[end:]
        for back in range(1, end + 1):
            cut &= is_newline[end - back : len(pending) - back]
        cuts = np.flatnonzero(cut)
        if len(cuts):
            at = int(cuts[-1]) + end
            score(pending[:at])
            pending = pending[at:]
    if len(pending) or not started:
        if started and newline is not None and not (pending == newline).any():
            pending = np.concatenate([pending, [newline]])  # the last item, unterminated
        score(pending)
