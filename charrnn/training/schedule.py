"""How much of the budget is used, and the learning rate at that point.

The budget is whichever of ``steps``, ``epochs`` and ``time_s`` ends first
(:class:`Budget`); the learning rate follows the fraction of it used so far
(:func:`learning_rate`), so a time budget gets a whole warm-up and decay too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from charrnn.config import TrainConfig
from charrnn.units import human


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


class Budget:
    """A run's budget in steps, epochs and seconds, whichever ends first.

    Seconds are the run's whole wall time, as a person reads a clock: start-up,
    evaluating and saving count. Training stops early enough for the final evaluation
    and save to fit: ``reserve_s`` (what the last ones took) is kept back for them.
    """

    def __init__(self, config: TrainConfig, windows_per_epoch: int) -> None:
        self.config = config
        self.windows_per_epoch = windows_per_epoch
        self.total_steps = total_steps(config, windows_per_epoch)
        self.reserve_s = 0.0
        # Seconds the command spent before training began (imports, reading the text,
        # auto's measurement): they come out of a time budget too.
        self.startup_s = 0.0

    def _training_seconds(self) -> float | None:
        time_s = self.config.time_s
        if time_s is None:
            return None
        return max(time_s - self.reserve_s - self.startup_s, 0.5 * time_s)

    def fraction(self, step: int, elapsed: float) -> float:
        """Share of the budget used after ``step`` steps and ``elapsed`` seconds."""
        parts = []
        if self.total_steps is not None:
            parts.append(step / self.total_steps)
        seconds = self._training_seconds()
        if seconds is not None:
            parts.append(elapsed / seconds)
        return min(1.0, max(parts))

    def stopped_by(self, step: int, elapsed: float) -> str | None:
        """Which limit ends the run at this point (None: keep going)."""
        tc = self.config
        if tc.steps is not None and step >= tc.steps:
            return "steps"
        if tc.epochs is not None and step >= tc.epochs * self.windows_per_epoch:
            return "epochs"
        seconds = self._training_seconds()
        if seconds is not None and elapsed >= seconds:
            return "time"
        return None

    def learning_rate(self, step: int, elapsed: float) -> float:
        return learning_rate(self.config, self.fraction(step, elapsed))


EVALUATIONS = 10  # per budget, when --eval-every is not given
MAX_EVALUATION_SHARE = 0.08  # of a time budget


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

    def evaluated(self, fraction: float, cost_s: float, final_s: float = 0.0) -> None:
        """An evaluation ended at ``fraction`` of the budget and took ``cost_s``; the
        final one will take ``final_s`` (it reads the whole validation text), which
        comes out of the same share: a 60-second run on a 200k-character validation
        text spent 14.5 % evaluating when only the evaluations during training were
        held to 8 %. It takes at most three quarters of it: ``final_s`` is scaled from
        a small part's read (50-fold in a test), and one slow first read must not leave
        the run without evaluations to stop early on."""
        gap = 1 / EVALUATIONS
        if self.time_s is not None:
            share = MAX_EVALUATION_SHARE * self.time_s
            room = max(share - final_s, share / 4)
            gap = max(gap, cost_s / room)
        self.next_fraction = fraction + gap


class Clock:
    """The run's wall time: seconds banked by earlier processes plus this one's since
    :meth:`restart`, and how much of it went to evaluating and saving."""

    def __init__(self, banked: float = 0.0) -> None:
        self.banked = banked
        self.started = time.perf_counter()
        self.spent = {"evaluating": 0.0, "saving": 0.0}

    def restart(self) -> None:
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return self.banked + (time.perf_counter() - self.started)

    @contextmanager
    def spending(self, activity: str) -> Iterator[None]:
        """Count the block's time as ``activity`` (it still counts as run time)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.spent[activity] += time.perf_counter() - start

    def breakdown(self) -> dict[str, float]:
        """This process's seconds by activity: training, evaluating, saving."""
        total = time.perf_counter() - self.started
        training = total - sum(self.spent.values())
        return {"training": round(training, 2), **{k: round(v, 2) for k, v in self.spent.items()}}


class Rate:
    """Characters per second since the last :meth:`take`."""

    def __init__(self, chars: int) -> None:
        self.reset(chars)

    def reset(self, chars: int) -> None:
        self.at, self.chars = time.perf_counter(), chars

    def seconds(self) -> float:
        return time.perf_counter() - self.at

    def take(self, chars: int) -> float:
        speed = (chars - self.chars) / max(self.seconds(), 1e-9)
        self.reset(chars)
        return speed


PLAN_DRIFT = 1.5  # achieved / planned speed beyond this, either way, is worth a word
PLAN_HOLD_S = 10.0  # ... when it lasts this long (or a tenth of the budget, if longer)
PLAN_SMOOTHING_S = 5.0  # the achieved speed is averaged over about this much training


class PlanWatch:
    """The training speed a run gets against the one ``--preset auto`` planned for.

    auto chose the model for the characters the run would get through at the speed it
    measured in a few steps at the start. When another program then takes the CPU (or
    leaves it), the run goes on with a plan for a machine it no longer has: said once,
    when the two part by more than :data:`PLAN_DRIFT` for a sustained stretch. The
    learning-rate schedule follows the time left either way (:class:`Budget`).
    """

    def __init__(self, planned: float | None, time_s: float | None) -> None:
        self.planned = planned  # characters per second; None: nothing was planned
        self.time_s = time_s
        self.hold_s = max(PLAN_HOLD_S, 0.1 * time_s) if time_s else math.inf
        self.smoothed: float | None = None
        self.drift_since: float | None = None
        self.drift = [0.0, 0.0]  # characters and seconds trained since the drift began
        self.said = False

    def observe(self, chars_per_s: float, seconds: float, at: float, chars: int) -> str | None:
        """Fold in ``chars_per_s`` trained over the last ``seconds`` (evaluations left
        out), ``at`` seconds into the run with ``chars`` characters seen; the warning
        to give, once."""
        if self.planned is None or self.time_s is None or self.said or seconds <= 0:
            return None
        weight = min(1.0, seconds / PLAN_SMOOTHING_S)  # one 0.2 s report is noise
        last = self.smoothed if self.smoothed is not None else chars_per_s
        self.smoothed = last + weight * (chars_per_s - last)
        ratio = self.smoothed / self.planned
        if 1 / PLAN_DRIFT <= ratio <= PLAN_DRIFT:
            self.drift_since, self.drift = None, [0.0, 0.0]
            return None
        if self.drift_since is None:
            self.drift_since = at
        self.drift[0] += chars_per_s * seconds
        self.drift[1] += seconds
        if at - self.drift_since < self.hold_s:
            return None
        self.said = True
        speed = self.drift[0] / self.drift[1]  # over the drifted stretch
        ratio = speed / self.planned
        left = max(self.time_s - at, 0.0)
        expected = chars + speed * left
        planned_total = chars + self.planned * left
        why = (
            "another program may be using the CPU, or it was busy when auto measured"
            if ratio < 1
            else "the machine was busy when auto measured"
        )
        return (
            f"training has run at {human(speed)} characters/s for {self.drift[1]:.0f} s, "
            f"{ratio:.2g}x the "
            f"{human(self.planned)} auto planned for ({why}); the settings stay, the "
            f"learning rate follows the time left: about {human(expected)} characters "
            f"in this budget instead of {human(planned_total)}"
        )
