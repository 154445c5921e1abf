"""The run's time as a clock on the wall reads it, and its speed.

:class:`Clock` counts the command's seconds from its start (start-up included) and
divides this process's into starting, training, evaluating and saving; the budget
(:mod:`charrnn.training.schedule`) reads it. Training speed has one definition,
:func:`chars_per_s`, which the live bar, the summary, the metrics and the plan watch
all report; :class:`PlanWatch` says once when that speed parts from what
``--preset auto`` planned for.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

from charrnn.units import human


def chars_per_s(chars: float, training_s: float) -> float:
    """Training speed, defined once: characters trained per second spent training, with
    start-up, evaluating and saving left out. The live bar, the summary, the metrics
    and auto's plan check all report this (over the run so far, or over a stretch)."""
    return chars / training_s if training_s > 0 else 0.0


class Clock:
    """The run's wall time as a clock on the wall reads it: seconds banked by earlier
    processes plus this one's since the command started (``started``, a
    :func:`time.monotonic` reading; default: now), start-up included, and how this
    process's seconds divide into starting, training, evaluating and saving."""

    def __init__(self, started: float | None = None, banked: float = 0.0) -> None:
        now = time.monotonic()
        self.started = now if started is None else min(started, now)
        self.began = now  # when training began (see restart)
        self.banked = banked
        self.spent = {"evaluating": 0.0, "saving": 0.0}

    def restart(self) -> None:
        """Training begins now: what came before is start-up."""
        self.began = time.monotonic()

    def elapsed(self) -> float:
        """The run's seconds so far: earlier processes' and this one's, start-up included."""
        return self.banked + (time.monotonic() - self.started)

    def starting_s(self) -> float:
        """This process's seconds before training began (imports, the text, auto)."""
        return max(self.began - self.started, 0.0)

    def training_s(self) -> float:
        """This process's seconds spent training (not starting, evaluating or saving)."""
        return time.monotonic() - self.began - sum(self.spent.values())

    @contextmanager
    def spending(self, activity: str) -> Iterator[None]:
        """Count the block's time as ``activity`` (it still counts as run time)."""
        start = time.monotonic()
        try:
            yield
        finally:
            self.spent[activity] += time.monotonic() - start

    def breakdown(self) -> dict[str, float]:
        """This process's seconds by activity: starting, training, evaluating, saving;
        they add up to its wall time."""
        return {
            "starting": round(self.starting_s(), 2),
            "training": round(self.training_s(), 2),
            **{k: round(v, 2) for k, v in self.spent.items()},
        }


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
