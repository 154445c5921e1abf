"""Training time and throughput: what the loop's budget and progress are measured in."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Clock:
    """Training time: seconds banked (earlier runs, finished segments) plus the running
    segment. Evaluation, sampling and saving run :meth:`paused`: they are not training."""

    def __init__(self, banked: float = 0.0) -> None:
        self.banked = banked
        self.started = time.perf_counter()

    def restart(self) -> None:
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return self.banked + (time.perf_counter() - self.started)

    @contextmanager
    def paused(self, banked: float | None = None) -> Iterator[None]:
        """Bank the time so far (or ``banked``, the ranks' agreed value), run the block,
        then start a new segment."""
        self.banked = self.elapsed() if banked is None else banked
        yield
        self.restart()


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
