"""The run's budget and its time: one owner.

The budget is whichever of ``steps``, ``epochs`` and ``time_s`` ends first
(:class:`Budget`); a time budget is the command's wall time, start-up, evaluating,
saving and exit included (:class:`Clock`). The budget decides once per step whether
the run stops or evaluates (:meth:`Budget.verdict`), sizes what evaluations read and
keeps back what the final one needs. The learning rate follows the fraction of the
budget used so far (:func:`learning_rate`), so a time budget gets a whole warm-up and
decay too. The clock it reads and the one definition of training speed are in
:mod:`charrnn.training.clock`.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass

from charrnn.config import TrainConfig
from charrnn.training.clock import Clock, chars_per_s


def learning_rate(config: TrainConfig, fraction: float) -> float:
    """The learning rate when ``fraction`` of the budget is used: warm-up, then decay.

    Linear warm-up over the first ``warmup`` of the budget; then ``cosine`` decays to
    ``min_lr_frac * lr``, ``step`` multiplies by 0.3 at half and by 0.1 at three
    quarters of the budget, and ``constant`` keeps ``lr``.
    """
    fraction = min(max(fraction, 0.0), 1.0)
    if config.warmup > 0 and fraction < config.warmup:
        return config.lr * fraction / config.warmup
    progress = (fraction - config.warmup) / max(1.0 - config.warmup, 1e-12)
    if config.schedule == "cosine":
        floor = config.lr * config.min_lr_frac
        return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if config.schedule == "step":
        return config.lr * (1.0 if progress < 0.5 else 0.3 if progress < 0.75 else 0.1)
    return config.lr


def total_steps(config: TrainConfig, windows_per_epoch: int) -> int | None:
    """Steps the budget allows, when it is counted in steps or epochs (not time)."""
    limits = []
    if config.steps is not None:
        limits.append(config.steps)
    if config.epochs is not None:
        limits.append(max(1, math.ceil(config.epochs * windows_per_epoch)))
    return min(limits) if limits else None


EVALUATIONS = 10  # per budget, when --eval-every is not given
MAX_EVALUATION_SHARE = 0.08  # of a time budget: every evaluation, the final one included
FINAL_SHARE = 0.75  # of that share, at most, is kept back for the final evaluation
MIN_EVAL_CHARS = 20_000  # below this a validation figure is mostly noise
LEAST_FINAL_SHARE = 0.25  # of a time budget, at most, for the final's one read of the part
# Characters a second an evaluation reads, against training's, until one is measured: a
# forward pass costs about a third of a training step per character; said 2x.
FORWARD_SPEEDUP = 2.0
SMOOTHING_S = 2.0  # the step time follows the machine over about this much training


@dataclass(frozen=True)
class Verdict:
    """What the run does after a step: stop (``stop`` names the limit), or go on, with
    an evaluation first when ``evaluate``."""

    stop: str | None = None
    evaluate: bool = False


class Budget:
    """A run's budget in steps, epochs and seconds, whichever ends first, and the one
    owner of its time.

    Seconds are the run's wall time as a person reads a clock, counted from the
    command's start (``started``): start-up, evaluating and saving count. The budget
    decides, once after each step, whether the run stops and why, or evaluates
    (:meth:`verdict`); it sizes the part of the validation text evaluations during
    training read (:meth:`part_chars`), keeps back time for the final evaluation and
    save (:meth:`reserve_s`) and sizes the final one to what is left
    (:meth:`final_chars`). Its estimates follow the machine as it is now: the step time
    is smoothed over the last seconds of training, and an evaluation's speed is kept as
    a ratio to training's (measured at each evaluation), so a machine that gets busy
    slows both estimates at once.
    """

    def __init__(
        self,
        config: TrainConfig,
        windows_per_epoch: int,
        *,
        started: float | None = None,
        chars_per_step: int = 1,
    ) -> None:
        self.config = config
        self.windows_per_epoch = windows_per_epoch
        self.total_steps = total_steps(config, windows_per_epoch)
        self.clock = Clock(started)
        self.cadence = Cadence(config)
        self.chars_per_step = chars_per_step
        self.step_s: float | None = None  # one training step now, smoothed
        self._trained_s = 0.0  # clock.training_s() at the last step
        self._steps = 0  # steps this process has timed
        self._recent: deque[float] = deque(maxlen=3)  # the last steps' seconds
        self.eval_ratio = FORWARD_SPEEDUP  # evaluation's characters/s over training's
        self.extra_s = 0.0  # an evaluation's seconds beyond reading (sample, best.pt)
        self.save_s = 0.0  # the last save
        # The validation text: all of it, the part evaluations during training read (None
        # until chosen), and how many times an evaluation reads it (weights, average).
        self.whole_chars = 0
        self.part: tuple[int, bool] | None = None  # (characters, whether it is the whole)
        self.reads = 1

    # -- measurements -----------------------------------------------------------------

    def begin(self, step: int) -> None:
        """Training begins (or resumes) now, at ``step``."""
        self.clock.restart()
        self._trained_s = 0.0
        self._steps = 0  # this process's
        self.cadence = Cadence(self.config, self.fraction(step))

    def stepped(self) -> None:
        """A training step just ended: fold its time into the step time. A step's time
        is first taken as the median of the last three, so one step that the machine
        held up for seconds does not count as a slower machine (it would end the run
        that much early); two in a row do."""
        now = self.clock.training_s()
        seconds, self._trained_s = now - self._trained_s, now
        self._steps += 1
        if self._steps == 2:
            self._recent.clear()  # the first step warms up (allocations, kernels)
        self._recent.append(seconds)
        typical = statistics.median(self._recent)
        if self.step_s is None or self._steps == 2:
            self.step_s = typical
        else:
            weight = min(1.0, typical / SMOOTHING_S)
            self.step_s += weight * (typical - self.step_s)

    def train_speed(self) -> float:
        """Characters a second training gets through now."""
        return chars_per_s(self.chars_per_step, self.step_s or 0.0)

    def eval_speed(self) -> float:
        """Characters a second an evaluation reads now (unknown before a step is timed:
        infinite, so nothing is kept back for evaluations yet)."""
        if self.step_s is None:
            return math.inf
        return max(self.eval_ratio * self.train_speed(), 1.0)

    def evaluated(
        self, fraction: float, cost_s: float, read_chars: int, read_s: float, final: bool
    ) -> None:
        """An evaluation ended at ``fraction`` of the budget: it took ``cost_s`` in all,
        ``read_s`` of it reading ``read_chars`` characters of validation text."""
        self.extra_s = max(cost_s - read_s, 0.0)
        self.read(read_chars, read_s)
        if not final:
            self.cadence.evaluated(fraction, cost_s, self.final_s())

    def read(self, chars: int, seconds: float) -> None:
        """Reading ``chars`` characters of validation text took ``seconds``: the
        evaluation's speed against training's now."""
        if chars > 0 and seconds > 0 and self.train_speed() > 0:
            self.eval_ratio = chars / seconds / self.train_speed()

    def saved(self, seconds: float) -> None:
        self.save_s = seconds

    # -- the share of evaluations ---------------------------------------------------------

    def _planned_s(self) -> float:
        """The run's seconds: the time budget, or the steps at the step time now."""
        if self.config.time_s is not None:
            return self.config.time_s
        return (self.step_s or 0.0) * (self.total_steps or 0)

    def part_chars(self) -> int:
        """Characters each evaluation during training reads: as many as keep the ~10
        evaluations (each reading ``reads`` times) within :data:`MAX_EVALUATION_SHARE`
        of the budget at the speed measured now; never fewer than
        :data:`MIN_EVAL_CHARS` unless, under a time budget, that many would take more
        than a quarter of the share (2 % of the budget): on a slow machine the first
        evaluation then still fits, and measures the evaluation's speed for the rest."""
        tc = self.config
        evaluations = EVALUATIONS
        if tc.eval_every is not None and tc.steps is not None:
            evaluations = max(1, tc.steps // tc.eval_every)
        share = MAX_EVALUATION_SHARE * self._planned_s()
        speed = self.eval_speed() / self.reads
        floor = float(MIN_EVAL_CHARS)
        if tc.time_s is not None:
            floor = min(floor, share / 4 * speed)
        chars = max(share / evaluations * speed, floor)
        return int(min(chars, max(self.whole_chars, MIN_EVAL_CHARS)))

    def _part(self) -> tuple[int, bool]:
        if self.part is not None:
            return self.part
        chars = self.part_chars()
        if self.config.eval_chars is not None:
            chars = self.config.eval_chars or self.whole_chars
        return min(chars, self.whole_chars), chars >= self.whole_chars

    def evaluation_s(self) -> float:
        """Seconds an evaluation during training takes at the speed now."""
        return self.reads * self._part()[0] / self.eval_speed() + self.extra_s

    def final_s(self, *, whole: bool = True) -> float:
        """Seconds the final evaluation and save take at the speed now: the part's
        reads (to choose between the weights, their average and best.pt), one read of
        the whole text (unless the part is all of it; with ``whole`` False, none),
        the sample and the saves."""
        chars, is_whole = self._part()
        reads = self.reads * chars + (0 if is_whole or not whole else self.whole_chars)
        return reads / self.eval_speed() + self.extra_s + self.save_s

    def reserve_s(self) -> float:
        """Seconds kept back from a time budget for the final evaluation and save: what
        they take now, but at most :data:`FINAL_SHARE` of the evaluations' share, or
        when that is less, what one read of the part (up to :data:`LEAST_FINAL_SHARE`
        of the budget), the sample and the saves take: a final figure reads no less
        than evaluations during training did, unless that alone would take a quarter
        of the run. The final one then reads what fits (:meth:`final_chars`)."""
        time_s = self.config.time_s
        if time_s is None:
            return 0.0
        cap = FINAL_SHARE * MAX_EVALUATION_SHARE * time_s
        one_read = min(self._part()[0] / self.eval_speed(), LEAST_FINAL_SHARE * time_s)
        return min(self.final_s(), max(cap, one_read + self.extra_s + self.save_s))

    def final_chars(self) -> int | None:
        """Characters of validation text the final evaluation can read in all, in what
        is left of a time budget after its sample and the saves (None: no limit)."""
        time_s = self.config.time_s
        if time_s is None or self.step_s is None:
            return None
        left = time_s - self.clock.elapsed() - self.extra_s - self.save_s
        return int(min(max(left, 0.0) * self.eval_speed(), 1e15))

    def left_s(self) -> float:
        """Seconds left of a time budget (infinite without one)."""
        time_s = self.config.time_s
        return math.inf if time_s is None else time_s - self.clock.elapsed()

    # -- the decisions -----------------------------------------------------------------

    def fraction(self, step: int) -> float:
        """Share of the budget used after ``step`` steps, now (drives the learning rate
        and the evaluation cadence)."""
        parts = [0.0]
        if self.total_steps is not None:
            parts.append(step / self.total_steps)
        time_s = self.config.time_s
        if time_s is not None:
            # Of the seconds this process has for training: from its start of training
            # to where the final evaluation must begin.
            starting = self.clock.starting_s()
            trained = self.clock.elapsed() - starting
            room = time_s - starting - self.reserve_s()
            parts.append(trained / room if room > 0 else 1.0)
        return min(1.0, max(parts))

    def limit(self, step: int, elapsed: float) -> str | None:
        """Which limit a run at ``step`` steps and ``elapsed`` seconds has reached."""
        tc = self.config
        if tc.steps is not None and step >= tc.steps:
            return "steps"
        if tc.epochs is not None and step >= tc.epochs * self.windows_per_epoch:
            return "epochs"
        if tc.time_s is not None and elapsed >= tc.time_s:
            return "time"
        return None

    def verdict(self, step: int) -> Verdict:
        """After step ``step``: stop (and which limit), evaluate, or train on. Made once
        per step. A time budget stops when one more step would leave too little for the
        final evaluation and save (:meth:`reserve_s`); an evaluation during training
        is skipped when it would eat into that time, or (the default cadence) take more
        than its share of the budget at the speed now."""
        elapsed = self.clock.elapsed()
        if self._steps < 2:
            # The first step warms up (and nothing is measured yet): its time says
            # little of the next one's; ending here on it once stopped a 30-second run
            # at 22 s.
            return Verdict(self.limit(step, elapsed))
        reserve = self.reserve_s()
        stop = self.limit(step, elapsed + (self.step_s or 0.0) + reserve)
        if stop is not None:
            return Verdict(stop)
        if not self.cadence.due(step, self.fraction(step)):
            return Verdict()
        time_s = self.config.time_s
        if time_s is None:
            return Verdict(evaluate=True)
        cost = self.evaluation_s()
        fits = elapsed + cost + (self.step_s or 0.0) + reserve <= time_s
        if self.config.eval_every is None:
            fits = fits and cost <= self.cadence.room(self.final_s())
        return Verdict(evaluate=fits)

    def learning_rate(self, step: int) -> float:
        return learning_rate(self.config, self.fraction(step))


class Cadence:
    """When to evaluate.

    With ``eval_every`` set: every that many steps. Otherwise at each tenth of the
    budget, so a 75-second run and a 10-hour run both get about ten evaluations
    (and early stopping something to work with); with a time budget, spaced out
    further when evaluations are slow, so they take at most 8 % of it.
    """

    def __init__(self, config: TrainConfig, fraction: float = 0.0) -> None:
        self.every = config.eval_every
        self.time_s = config.time_s
        self.next_fraction = fraction + 1 / EVALUATIONS

    def due(self, step: int, fraction: float) -> bool:
        if self.every is not None:
            return step % self.every == 0
        return fraction >= self.next_fraction - 1e-9

    def room(self, final_s: float) -> float:
        """Seconds of the share left for the evaluations during training when the
        final one takes ``final_s``: at least a quarter of it (one slow estimate must
        not leave the run without evaluations to stop early on)."""
        if self.time_s is None:
            return math.inf
        share = MAX_EVALUATION_SHARE * self.time_s
        return max(share - final_s, share / 4)

    def evaluated(self, fraction: float, cost_s: float, final_s: float = 0.0) -> None:
        """An evaluation ended at ``fraction`` of the budget and took ``cost_s``; the
        final one will take ``final_s``, which comes out of the same share: a 60-second
        run on a 200k-character validation text spent 14.5 % evaluating when only the
        evaluations during training were held to 8 %."""
        gap = 1 / EVALUATIONS
        if self.time_s is not None:
            gap = max(gap, cost_s / self.room(final_s))
        self.next_fraction = fraction + gap
