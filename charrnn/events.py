"""What the library tells whoever listens: one channel, the :class:`Reporter`.

The training loop, dataset loading, corpus building and sampling never print. They
call a reporter — the CLI's Rich display, JSON lines, a comparison's display, a
test's recorder, or :data:`SILENT` — with typed events (:class:`RunStart`,
:class:`Progress`, :class:`Evaluation`, :class:`Summary`) and with short
``notice`` and ``warning`` lines. Under torchrun only rank 0 speaks:
:func:`for_rank` is the one place that decides it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from charrnn.units import to_bits


@dataclass(frozen=True)
class RunStart:
    """Facts about a run, reported once before the first step."""

    run_dir: Path
    corpus: str
    vocab_size: int
    parameters: int
    train_chars: int
    val_chars: int
    windows_per_epoch: int
    device: str
    start_step: int
    total_steps: int | None
    items: tuple[int, int] | None = None  # --docs: training and validation items


@dataclass(frozen=True)
class Progress:
    """The loop's state, reported a few times a second."""

    step: int
    epoch: float
    fraction: float
    train_loss: float
    lr: float
    chars_per_s: float
    elapsed_s: float
    val_bpc: float | None
    evaluating: bool = False  # an evaluation starts now (the bar would seem stuck)


@dataclass(frozen=True)
class Evaluation:
    """One validation pass: the line written to ``metrics.jsonl`` plus a sample."""

    step: int
    epoch: float
    chars_seen: int
    elapsed_s: float
    lr: float
    train_loss: float
    val_loss: float
    val_bpc: float
    chars_per_s: float
    is_best: bool
    sample: str
    val_chars: int = 0  # characters the validation figure read
    val_whole: bool = True  # all of the validation text (the final one always)
    val_s: float = 0.0  # seconds the validation took
    averaged: bool = False  # the figure is the weight average's (it beat the weights)

    def record(self) -> dict[str, Any]:
        """The metrics line (everything but the sample text)."""
        fields = asdict(self)
        fields.pop("sample")
        return fields


@dataclass(frozen=True)
class Summary:
    """How a run ended."""

    run_dir: Path
    step: int
    chars_seen: int
    elapsed_s: float
    best_val_loss: float
    last_val_loss: float
    stopped_by: str
    bad_steps: int
    # This process's seconds by activity: starting, training, evaluating, saving.
    time_spent: dict[str, float] = field(default_factory=dict)
    # Characters per second while training (this process), and what auto planned for.
    chars_per_s: float = 0.0
    planned_chars_per_s: float | None = None
    # (characters read, of all) when the final figure read only a part of the
    # validation text because the time budget ran out; None: it read all of it.
    final_part: tuple[int, int] | None = None

    @property
    def best_val_bpc(self) -> float:
        return to_bits(self.best_val_loss)


class Reporter(Protocol):
    """Receives what the library has to say; every method may do nothing."""

    def start(self, info: RunStart) -> None: ...
    def progress(self, progress: Progress) -> None: ...
    def evaluated(self, evaluation: Evaluation) -> None: ...
    def finish(self, summary: Summary) -> None: ...
    def notice(self, text: str) -> None: ...
    def warning(self, text: str) -> None: ...


class Silent:
    """A reporter that ignores everything; subclass it to hear only some events."""

    def start(self, info: RunStart) -> None:
        pass

    def progress(self, progress: Progress) -> None:
        pass

    def evaluated(self, evaluation: Evaluation) -> None:
        pass

    def finish(self, summary: Summary) -> None:
        pass

    def notice(self, text: str) -> None:
        pass

    def warning(self, text: str) -> None:
        pass


SILENT: Reporter = Silent()


class Guarded:
    """Passes every event on, but output that can no longer be written (a closed pipe,
    as in ``charrnn train --json | head -c 5``, or a full disk behind a redirect)
    silences the listener instead of stopping training: the run goes on and saves."""

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner
        self.broken = False

    def _pass(self, name: str, *args: Any) -> None:
        if self.broken:
            return
        try:
            getattr(self.inner, name)(*args)
        except OSError:
            self.broken = True
            _discard_unwritable_output()

    def start(self, info: RunStart) -> None:
        self._pass("start", info)

    def progress(self, progress: Progress) -> None:
        self._pass("progress", progress)

    def evaluated(self, evaluation: Evaluation) -> None:
        self._pass("evaluated", evaluation)

    def finish(self, summary: Summary) -> None:
        self._pass("finish", summary)

    def notice(self, text: str) -> None:
        self._pass("notice", text)

    def warning(self, text: str) -> None:
        self._pass("warning", text)


def _discard_unwritable_output() -> None:
    """Point stdout/stderr at /dev/null where they can no longer be written, so later
    writes (and the interpreter's flush at exit) do not fail again."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
            except (OSError, ValueError, AttributeError):
                pass


def for_rank(reporter: Reporter | None, is_main: bool) -> Reporter:
    """The reporter this process may use: rank 0 speaks for a run, the others not."""
    if reporter is None or not is_main:
        return SILENT
    return reporter if isinstance(reporter, Guarded) else Guarded(reporter)
