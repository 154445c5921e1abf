"""Samples with an end: whole items, ``--stop`` strings, ``--min-chars``, ``--novel``.

:func:`charrnn.sampling.sampler.stream` draws a fixed number of characters and streams them.
Here every row of a batch runs until its own end — the stop string (left out of the
sample), or ``max_chars`` — and is returned whole. Two things can forbid a
character before it is drawn: an end that would come before ``min_chars``, and
(``--novel N``) a character that would complete an ``N``-character span of the
training text; a row whose every character is forbidden draws freely and is counted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from charrnn.model.network import CharRNN
from charrnn.sampling.novelty import ItemSets, NgramIndex
from charrnn.sampling.sampler import NoiseStream, RowSettings, SampleSettings, choose, primed

MAX_ITEM_BATCH = 1000  # items drawn together
PROGRESS_EVERY = 1024  # steps between calls of draw_until's on_progress
ITEM_DRAW_FACTOR = 20  # --novel gives up after drawing this many times the items asked for


@dataclass(frozen=True)
class Ending:
    """Where each sample ends: at ``stop`` (ids, left out), or after ``max_chars``;
    never at ``stop`` before ``min_chars`` characters."""

    max_chars: int
    stop: tuple[int, ...] = ()
    min_chars: int = 0


@dataclass
class Drawn:
    """The samples of one batch, and what shaped them."""

    samples: list[np.ndarray]  # each row's ids, the stop left out
    ended: list[bool]  # reached the stop (else ran to max_chars)
    redrawn: int = 0  # characters --novel turned away
    forced: int = 0  # steps where every character was forbidden


def _ends_next(drawn: torch.Tensor, t: int, stop: tuple[int, ...]) -> torch.Tensor:
    """(rows,) bools: drawing ``stop[-1]`` now would complete the stop string."""
    k = len(stop) - 1
    if t < k:
        return torch.zeros(drawn.shape[0], dtype=torch.bool)
    if k == 0:
        return torch.ones(drawn.shape[0], dtype=torch.bool)
    return (drawn[:, t - k : t] == torch.tensor(stop[:-1])).all(dim=1)


def draw_until(
    model: CharRNN,
    prime_ids: np.ndarray,
    rows: int,
    ending: Ending,
    settings: SampleSettings,
    generator: torch.Generator,
    *,
    precision: str = "fp32",
    novel: NgramIndex | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Drawn:
    """Draw ``rows`` samples after ``prime_ids``, each until its end; ``on_progress``
    is told every :data:`PROGRESS_EVERY` steps how many characters a row has gained
    (at most ``ending.max_chars`` in all)."""
    device = model.head.weight.device
    stop, k = ending.stop, len(ending.stop)
    drawn = torch.zeros(rows, ending.max_chars + k, dtype=torch.long)
    done = torch.zeros(rows, dtype=torch.bool)
    length = torch.full((rows,), ending.max_chars, dtype=torch.long)
    redrawn = forced = 0
    stop_ids = torch.tensor(stop, dtype=torch.long)
    context = np.broadcast_to(np.asarray(prime_ids, dtype=np.int64), (rows, len(prime_ids)))
    model.eval()
    with torch.inference_mode():
        logits, stepper = primed(model, np.asarray(prime_ids, dtype=np.int64), rows, precision)
        row_settings = RowSettings.of([(settings, rows)], logits.device)
        # Redraws take from it too; block=1: draw_items calls this again with the same
        # generator, which must go on where this call stopped.
        noise = NoiseStream(generator, rows, logits.shape[-1], block=1)
        for t in range(ending.max_chars + k):
            banned = torch.zeros(logits.shape, dtype=torch.bool)
            if stop and t < ending.min_chars + k - 1:
                banned[:, stop[-1]] |= _ends_next(drawn, t, stop)
            if novel is not None:
                # The last n - 1 characters (priming text, then drawn): O(n) a step.
                back = novel.n - 1
                recent = drawn[:, max(0, t - back) : t].numpy()
                history = np.concatenate([context[:, -back:], recent], axis=1)[:, -back:]
                if history.shape[1] == back:
                    banned |= torch.from_numpy(novel.completing(history, logits.shape[1]))
            ids = choose(logits, row_settings, noise).cpu()
            if bool(banned.any()):
                # Rejection: a forbidden draw is drawn again from what is allowed (the
                # same distribution as masking first, and it counts the rejections).
                free = torch.isfinite(logits).cpu() & ~banned
                stuck = ~free.any(dim=1)
                forced += int((stuck & ~done).sum())
                rejected = banned.gather(1, ids[:, None]).squeeze(1) & ~stuck
                if bool(rejected.any()):
                    redrawn += int((rejected & ~done).sum())
                    mask = (banned & ~stuck[:, None]).to(logits.device)
                    again = choose(logits.masked_fill(mask, -math.inf), row_settings, noise)
                    ids = torch.where(rejected, again.cpu(), ids)
            drawn[:, t] = ids
            if stop and t >= k - 1:
                hit = ~done & (drawn[:, t - k + 1 : t + 1] == stop_ids).all(dim=1)
                length = torch.where(hit, t - k + 1, length)
                done |= hit
            if on_progress is not None and (t + 1) % PROGRESS_EVERY == 0:
                on_progress(PROGRESS_EVERY)
            if t >= ending.max_chars - 1 and not stop:
                break
            if bool(done.all()):
                break
            logits = stepper(ids.to(device)).float()
    samples = [drawn[r, : int(length[r])].numpy().copy() for r in range(rows)]
    return Drawn(samples, done.tolist(), redrawn, forced)


@dataclass
class ItemTally:
    """Where the drawn items came from (makemore's report)."""

    new: int = 0
    train: int = 0
    val: int = 0
    unfinished: int = 0

    @property
    def drawn(self) -> int:
        return self.new + self.train + self.val + self.unfinished

    def line(self, kept: int, novel: bool) -> str:
        where = (
            f"{self.new} new, {self.train} in the training set, {self.val} in the validation set"
        )
        if self.unfinished:
            where += f", {self.unfinished} unfinished (no end within the window, redrawn)"
        if novel:
            return f"{kept} new items (drew {self.drawn}: {where})"
        return f"{kept} items: {where}"


def draw_items(
    model: CharRNN,
    newline: int,
    prime_ids: np.ndarray,
    count: int,
    end: int,
    max_chars: int,
    settings: SampleSettings,
    generator: torch.Generator,
    *,
    min_chars: int = 0,
    known: ItemSets | None = None,
    novel: bool = False,
    precision: str = "fp32",
) -> tuple[list[np.ndarray], ItemTally]:
    """``count`` whole items (each its ids, the priming text's included), drawn from a
    zero state after a newline, each ending at ``end`` newlines.

    With ``known``, each is tallied as new or found in the training or validation
    items; with ``novel`` only new ones are kept, drawing more until there are
    ``count`` (at most :data:`ITEM_DRAW_FACTOR` times as many in all).
    """
    tally = ItemTally()
    kept: list[np.ndarray] = []
    starts = np.concatenate([[newline], np.asarray(prime_ids, dtype=np.int64)])
    ending = Ending(max_chars, stop=(newline,) * end, min_chars=min_chars)
    while len(kept) < count and tally.drawn < ITEM_DRAW_FACTOR * count:
        missing = count - len(kept)
        # --novel: a few more than missing, as some will be training items
        rows = min(MAX_ITEM_BATCH, missing + (missing // 4 + 4 if novel else 0))
        batch = draw_until(model, starts, rows, ending, settings, generator, precision=precision)
        for ids, ended in zip(batch.samples, batch.ended, strict=True):
            item = np.concatenate([starts[1:], ids]).astype(np.int64)
            if not ended:
                tally.unfinished += 1
                continue
            origin = known.origin(item) if known is not None else "new"
            setattr(tally, origin, getattr(tally, origin) + 1)
            if (origin == "new" or not novel) and len(kept) < count:
                kept.append(item)
    return kept, tally
