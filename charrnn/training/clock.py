"""Run time and throughput: what the loop's budget and progress are measured in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


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
