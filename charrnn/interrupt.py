"""Ctrl-C as a request to stop cleanly: the loop saves between steps, then exits."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class StopRequest:
    """Set by the first Ctrl-C (or by a caller); the loop checks it between steps."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested


@contextmanager
def graceful_interrupt(stop: StopRequest) -> Iterator[None]:
    """Turn the first SIGINT into a stop request, so the loop can save between steps.

    A second Ctrl-C (more than two seconds later) interrupts at once; the last
    checkpoint on disk stays intact.
    Only the main thread may install signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    first_at: list[float] = []

    def handler(signum: int, frame: object) -> None:
        # torchrun forwards the terminal's Ctrl-C to workers that already got it: a
        # repeat within two seconds is the same Ctrl-C, not a second one.
        if stop.requested and time.monotonic() - first_at[0] > 2.0:
            raise KeyboardInterrupt
        if not stop.requested:
            first_at.append(time.monotonic())
        stop.requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
