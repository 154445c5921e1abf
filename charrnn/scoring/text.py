"""How well a model predicts a text: loss per character, per line, per position.

The text runs through the model as one stream from a zero state, in chunks with the
state carried, so memory stays constant for any length; every character but the
first is predicted once. On a validation text that training scored as one stream,
the mean is exactly training's validation loss (tested).

A model trained with ``--docs`` scores the text as it was trained: item by item, each
from a zero state after a newline, its end included (:func:`score_items`); the mean
is then training's validation loss over the same items (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.config import Docs
from charrnn.data.items import find_items
from charrnn.data.vocab import Vocab
from charrnn.errors import CorpusError
from charrnn.events import SILENT, Reporter
from charrnn.model.network import CharRNN
from charrnn.model.prefix import PREFIX_CHUNK, run_prefix
from charrnn.units import to_bits

CHUNK = PREFIX_CHUNK  # characters through the model per call


@dataclass(frozen=True)
class Line:
    """One line of the text and how surprising its characters (and its newline) were."""

    number: int  # 1-based
    text: str
    predicted: int  # characters of it the model predicted
    nats: float  # mean loss over them

    @property
    def bpc(self) -> float:
        return to_bits(self.nats)


class Totals:
    """What every score reports from its characters, predictions and mean loss."""

    characters: int
    predicted: int

    @property
    def nats(self) -> float:
        raise NotImplementedError

    @property
    def bpc(self) -> float:
        return to_bits(self.nats)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats)

    def summary(self) -> dict[str, float | int]:
        return {
            "characters": self.characters,
            "predicted": self.predicted,
            "nats_per_char": self.nats,
            "bits_per_char": self.bpc,
            "perplexity": self.perplexity,
        }


@dataclass(frozen=True)
class Score(Totals):
    """The loss of every predicted character, and what the model expected instead.

    ``surprisal[i]`` is the loss in nats of character ``i + 1`` given everything before
    it; ``expected[i]`` the id the model found most likely there.
    """

    vocab: Vocab
    ids: np.ndarray  # (N,)
    surprisal: np.ndarray  # (N - 1,) nats
    expected: np.ndarray  # (N - 1,) ids

    @property
    def characters(self) -> int:  # type: ignore[override]
        return len(self.ids)

    @property
    def predicted(self) -> int:  # type: ignore[override]
        return len(self.surprisal)

    @property
    def nats(self) -> float:
        """Mean loss in nats per character."""
        return float(self.surprisal.astype(np.float64).mean())

    def lines(self) -> list[Line]:
        """Each line's mean loss over its characters and its line break, in order."""
        newline = self.vocab.encode("\n", on_unknown="drop")
        breaks = np.flatnonzero(self.ids == newline[0]) if len(newline) else np.zeros(0, int)
        starts = [0, *(breaks + 1).tolist()]
        ends = [*(breaks + 1).tolist(), len(self.ids)]
        result = []
        for number, (start, end) in enumerate(zip(starts, ends, strict=True), 1):
            # Position p is predicted by surprisal[p - 1]; the very first is not.
            losses = self.surprisal[max(start - 1, 0) : max(end - 1, 0)]
            if len(losses):
                text = self.vocab.decode(self.ids[start:end]).rstrip("\n")
                result.append(Line(number, text, len(losses), float(losses.mean())))
        return result

    def worst(self, count: int) -> list[int]:
        """Positions (in the text) of the ``count`` most surprising characters."""
        order = np.argsort(-self.surprisal, kind="stable")[:count]
        return [int(i) + 1 for i in order]


@torch.inference_mode()
def score_text(
    model: CharRNN,
    vocab: Vocab,
    text: str,
    *,
    skip_unknown: bool = False,
    reporter: Reporter = SILENT,
    docs: str = "none",
) -> Score:
    """Score ``text`` with ``model`` (trained with ``--docs docs``).

    Raises:
        VocabError: characters outside the vocabulary (unless ``skip_unknown``, which
            drops them with a warning and scores the rest).
        CorpusError: fewer than two characters to score.
    """
    ids = vocab.encode(
        text,
        what="the text to score",
        on_unknown="drop" if skip_unknown else "error",
        reporter=reporter,
    )
    if Docs(docs).on:
        return score_items(model, vocab, ids, docs)
    if len(ids) < 2:
        raise CorpusError("the text to score needs at least 2 characters of the vocabulary")
    model.eval()
    device = model.head.weight.device
    losses, expected = [], []
    for start, chunk_logits, _ in run_prefix(model, ids[:-1], chunk=CHUNK):
        logits = chunk_logits[0]  # (T, V)
        y = torch.as_tensor(ids[start + 1 : start + 1 + len(logits)], device=device).long()
        losses.append(F.cross_entropy(logits, y, reduction="none").cpu())
        expected.append(logits.argmax(dim=-1).cpu())
    return Score(
        vocab=vocab,
        ids=np.asarray(ids),
        surprisal=torch.cat(losses).numpy(),
        expected=torch.cat(expected).numpy(),
    )


ITEM_BATCH = 256


@torch.inference_mode()
def score_items(model: CharRNN, vocab: Vocab, ids: np.ndarray, docs: str) -> Score:
    """Score each item of ``ids`` as ``--docs`` training does; the :class:`Score` is of
    the items one after another, each after a newline and followed by its end."""
    items = find_items(np.asarray(ids), vocab.index_of("\n"), docs)
    model.eval()
    device = model.head.weight.device
    end = Docs(docs).end_length
    newline = items.newline
    stream: list[np.ndarray] = [np.array([newline])]
    losses, expected = [], []
    for start in range(0, len(items), ITEM_BATCH):
        chosen = np.arange(start, min(start + ITEM_BATCH, len(items)))
        x, y = items.batch(chosen)
        logits, _ = model(x.to(device))
        loss = F.cross_entropy(logits.float().transpose(1, 2), y.to(device), reduction="none")
        best = logits.argmax(dim=-1)
        for row, i in enumerate(chosen):
            n = int(items.lengths[i]) + end
            losses.append(loss[row, :n].cpu())
            expected.append(best[row, :n].cpu())
            stream.append(y[row, :n].numpy())
    return Score(
        vocab=vocab,
        ids=np.concatenate(stream),
        surprisal=torch.cat(losses).numpy(),
        expected=torch.cat(expected).numpy(),
    )
