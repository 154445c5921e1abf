"""Ctrl-C and termination signals as a request to stop cleanly: the loop saves between
steps, says where, and exits with the signal's conventional code (128 + its number).

SIGINT is Ctrl-C; SIGTERM is what ``kill``, ``scancel`` and SLURM preemption send;
SIGHUP comes when the terminal goes away; SIGQUIT is Ctrl-\\. Each would otherwise end
the process at once and lose up to ``--save-every`` - 1 steps.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

# The signals that mean "stop": each becomes a request to save and exit.
STOP_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
    if hasattr(signal, name)
)


class StopRequest:
    """Set by the first stop signal (or by a caller); the loop checks it between steps."""

    def __init__(self) -> None:
        self.requested = False
        self.signal: int = signal.SIGINT  # which signal asked, for the exit code

    def __call__(self) -> bool:
        return self.requested


@contextmanager
def graceful_interrupt(stop: StopRequest) -> Iterator[None]:
    """Turn the first stop signal into a stop request, so the loop can save between steps.

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
            stop.signal = signum
        stop.requested = True

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
