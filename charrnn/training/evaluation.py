"""How well a model does at a point of training: the validation loss and a sample.

Evaluations during training read a fixed, seeded part of the validation text sized
to the budget (every evaluation the same part, so they compare); the final one reads
all of it, or as much as the time left allows (and says so), and is the figure a run
reports. How much each reads is the budget's decision
(:class:`charrnn.training.schedule.Budget`). nanoGPT estimates its loss on a fixed
number of batches for the same reason: reading a 5 MB validation text ten times ate
a third of a 75-second budget on a slow CPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from charrnn.config import Docs, TrainConfig
from charrnn.data.items import ItemValidation
from charrnn.data.streams import ValidationWindows
from charrnn.data.vocab import Vocab
from charrnn.model.network import CharRNN, State
from charrnn.sampling.endings import draw_items
from charrnn.sampling.sampler import SampleSettings, generate
from charrnn.training.averaging import WeightAverage


@torch.no_grad()
def validation_loss(
    model: CharRNN, windows: ValidationWindows | ItemValidation, device: torch.device
) -> float:
    """Mean loss in nats per character over the whole validation text, state carried
    from window to window unless they are separate items (the model is left in eval
    mode); padded targets are skipped."""
    model.eval()
    state: State | None = None
    total = torch.zeros((), dtype=torch.float64, device=device)
    for x, y in windows:
        x, y = x.to(device), y.to(device)
        if not windows.carries_state:
            state = None
        logits, state = model(x, state)  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
        total += loss.double()
    return float(total.item()) / windows.num_targets


def progress_sample(
    model: CharRNN, vocab: Vocab, length: int, *, seed: int, docs: str = "none"
) -> str:
    """A short sample (temperature 0.8) to show how the model writes; "" for length 0.

    A ``--docs`` run shows a few whole items (each from a zero state, as ``sample``
    draws them), up to ``length`` characters each.
    """
    if length == 0:
        return ""
    settings = SampleSettings(temperature=0.8)
    newline = vocab.index_of("\n")
    if not Docs(docs).on or newline is None:
        return generate(model, vocab, length=length, settings=settings, seed=seed)[0]
    generator = torch.Generator(device=model.head.weight.device).manual_seed(seed)
    count = 2 if Docs(docs) is Docs.blank_lines else 5  # paragraphs are long
    no_prime = np.zeros(0, dtype=np.int64)
    items, _ = draw_items(
        model, newline, no_prime, count, Docs(docs).end_length, length, settings, generator,
        min_chars=1,
    )  # fmt: skip
    return Docs(docs).separator.join(vocab.decode(i) for i in items)


# -- how much of the validation text an evaluation reads ---------------------------------


def evaluation_part(
    whole: ValidationWindows | ItemValidation, config: TrainConfig, chars: int
) -> ValidationWindows | ItemValidation:
    """The fixed, seeded part of the validation text each evaluation during training
    reads: ``--eval-chars`` when given (0: all of it), else about ``chars`` characters
    (what the budget affords: :meth:`charrnn.training.schedule.Budget.part_chars`);
    never more than the whole text."""
    if config.eval_chars is not None:
        return whole if config.eval_chars == 0 else whole.subset(config.eval_chars, config.seed)
    return whole.subset(chars, config.seed)


@torch.no_grad()
def loss_of_saved(
    path: Path, model: CharRNN, whole: ValidationWindows | ItemValidation, device: torch.device
) -> tuple[Checkpoint, float]:
    """The checkpoint at ``path`` and its weights' loss on ``whole`` (the validation
    text, or the part of it the final evaluation reads), measured in ``model`` (whose
    own weights are put back after)."""
    checkpoint = load_checkpoint(path)
    own = {k: v.detach().clone() for k, v in model.state_dict().items()}
    try:
        model.load_state_dict(checkpoint.model)
        loss = validation_loss(model, whole, device)
    finally:
        model.load_state_dict(own)
        model.train()
    return checkpoint, loss


Windows = ValidationWindows | ItemValidation


@dataclass(frozen=True)
class Reading:
    """What one evaluation found: the windows it read, the loss, whether that is a new
    best, and whether the weight average (not the weights) gave it; ``kept_best`` is
    best.pt's final figure when the final evaluation kept it; ``final`` is what the
    final figure read: the whole text, or as much as the budget left."""

    windows: Windows
    loss: float
    is_best: bool
    averaged: bool
    kept_best: float | None = None
    final: Windows | None = None  # what the final figure read (the whole text, or less)


class Validator:
    """What each evaluation reads and which weights it keeps.

    During training: a fixed part of the validation text (chosen at the first
    evaluation from the speed measured so far, then the same every time), read with
    the weights and with their running average; the better counts. The final
    evaluation chooses on that part between those and ``best.pt`` from an earlier
    step, then reads the whole text for the chosen one: the figure a run reports.
    """

    def __init__(
        self,
        model: CharRNN,
        validation: Windows,
        device: torch.device,
        config: TrainConfig,
        average: WeightAverage | None,
    ) -> None:
        self.model, self.validation, self.device = model, validation, device
        self.config, self.average = config, average
        self.part: Windows | None = None
        # (step, loss, averaged) of the last read of the part: a final evaluation right
        # after one at the same step reads it once.
        self.last: tuple[int, float, bool] = (-1, math.inf, False)
        self.read_chars = 0  # characters of validation text read so far (for its speed)

    @property
    def reads(self) -> int:
        """Weights each evaluation reads the part with: 2 with an average."""
        return 1 if self.average is None else 2

    def evaluate(self, windows: Windows | None = None) -> float:
        """Mean validation loss in nats per character over ``windows`` (default: the
        whole validation text); the model is back in training mode after."""
        windows = windows or self.validation
        loss = validation_loss(self.model, windows, self.device)
        self.read_chars += windows.num_targets
        self.model.train()
        return loss

    def choose_part(self, chars: int) -> Windows:
        """The part evaluations during training read: about ``chars`` characters
        (chosen once, then the same every time)."""
        if self.part is None:
            self.part = evaluation_part(self.validation, self.config, chars)
        return self.part

    def part_read(self, step: int) -> bool:
        """Whether the part was read at ``step`` already."""
        return self.last[0] == step

    def better_on(self, windows: Windows) -> tuple[float, bool]:
        """(loss, averaged) on ``windows`` of the better of the weights and their
        average."""
        loss, averaged = self.evaluate(windows), False
        if self.average is not None and self.average.updates:
            with self.average.swapped_in(self.model):
                of_average = self.evaluate(windows)
            if of_average < loss:
                loss, averaged = of_average, True
        return loss, averaged

    def better_on_part(self, step: int) -> tuple[float, bool]:
        """(loss, averaged) on the part of the better of the weights and their
        average at ``step``, read once per step."""
        assert self.part is not None, "choose_part first"
        at, loss, averaged = self.last
        if at == step:
            return loss, averaged
        loss, averaged = self.better_on(self.part)
        self.last = (step, loss, averaged)
        return loss, averaged

    def whole_loss(self, averaged: bool, windows: Windows | None = None) -> float:
        """The loss on ``windows`` (default: the whole validation text) of the weights,
        or their average."""
        if not averaged or self.average is None:
            return self.evaluate(windows)
        with self.average.swapped_in(self.model):
            return self.evaluate(windows)

    def final_windows(self, chars: int) -> Windows:
        """What the final evaluation reads when ``chars`` characters fit in the time
        left: the whole text, else a seeded part of it (the part evaluations read
        during training when no more fits: it is read already)."""
        assert self.part is not None, "choose_part first"
        if chars >= self.validation.num_targets:
            return self.validation
        if chars <= self.part.num_targets:
            return self.part
        return self.validation.subset(chars, self.config.seed)

    def read(
        self,
        step: int,
        *,
        final: bool,
        best_loss: float,
        best_path: Path,
        final_chars: int | None = None,
    ) -> Reading:
        """This evaluation, against the best loss so far (``best_loss``, best.pt's).

        The final one may read ``final_chars`` characters in all (default: no limit):
        the part (unless read at this step already) to choose between the weights,
        their average and best.pt, then as much of the whole text as is left for the
        chosen; when it keeps best.pt from an earlier step, best.pt is rewritten with
        its figure on that text (:attr:`Reading.kept_best`). When not even the part
        fits, one smaller seeded part is read once (:meth:`_short_final`).
        """
        assert self.part is not None, "choose_part first"
        chars = final_chars
        if final and chars is not None:
            part_cost = 0 if self.part_read(step) else self.reads * self.part.num_targets
            if chars < part_cost:
                return self._short_final(chars, best_loss, best_path)
            chars -= part_cost
        loss, averaged = self.better_on_part(step)
        if not final or self.part.whole:
            return Reading(self.part, loss, loss < best_loss, averaged)
        windows = self.final_windows(self.validation.num_targets if chars is None else chars)
        if loss < best_loss or not best_path.exists():
            figure = loss if windows is self.part else self.whole_loss(averaged, windows)
            return Reading(windows, figure, True, averaged, final=windows)
        # best.pt, from an earlier step, stays the best: its figure on the same text.
        figure = self._keep_best(best_path, windows)
        return Reading(self.part, loss, False, averaged, kept_best=figure, final=windows)

    def _keep_best(self, best_path: Path, windows: Windows) -> float:
        """best.pt's figure on ``windows``, written into it."""
        saved, figure = loss_of_saved(best_path, self.model, windows, self.device)
        self.read_chars += windows.num_targets
        save_checkpoint(
            best_path, replace(saved, best_val_loss=figure, best_whole=bool(windows.whole))
        )
        return figure

    def _short_final(self, chars: int, best_loss: float, best_path: Path) -> Reading:
        """The final evaluation when ``chars`` is less than the part's reads: one read
        of a seeded part of the text that long, with the weights or their average
        (whichever the last evaluation found better). They become best.pt when they
        beat its figure (on the part evaluations read during training); else best.pt
        stays, with that figure."""
        averaged = self.last[2]
        windows = self.validation.subset(max(chars, 1), self.config.seed)
        loss = self.whole_loss(averaged, windows)
        if loss < best_loss or not best_path.exists():
            return Reading(windows, loss, True, averaged, final=windows)
        return Reading(windows, loss, False, averaged, final=self.part)
