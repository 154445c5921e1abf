"""The command line: one module per command with its rendering, the shared options, the
live display, errors and exit codes.
"""

import atexit
import gc
import os
import sys
import time
from pathlib import Path


def process_start() -> float:
    """When this process started, on the :func:`time.monotonic` clock: the
    interpreter's own start-up and imports count too (Linux's ``/proc``; elsewhere,
    or when it cannot be read, now)."""
    now = time.monotonic()
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22, starttime: clock ticks after boot
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return now
    return now - age if 0.0 <= age < 60.0 else now


# When the process started: a --time budget is the whole command's, start-up included.
# Read here, before torch is imported; commands pass command_started() to the library.
STARTED = process_start()
_CLAIMED: list[bool] = []  # whether a command has counted from STARTED already


def command_started() -> float:
    """When this command started (a :func:`time.monotonic` reading): the process's
    start when the process was started to run it (``charrnn ...`` or ``python -m
    charrnn ...``, its first command), else now, for a command invoked inside a longer
    process (a test's ``CliRunner``, a notebook)."""
    entry = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path()
    ours = entry.name == "charrnn" or entry.parts[-2:] == ("charrnn", "__main__.py")
    if ours and not _CLAIMED:
        _CLAIMED.append(True)
        return STARTED
    return time.monotonic()


def exit_quickly() -> None:
    """Make the process's exit take a tenth of a second rather than seconds: at exit,
    the collector's last passes over everything torch loaded (2.5 s after a training
    run on a busy 2-core machine, 0.35 s with this) are skipped by freezing what is
    left (:func:`gc.freeze`). Finalizers and ``atexit`` handlers still run; a
    ``--time`` budget is the command's wall time, its exit included."""
    atexit.register(gc.freeze)
