"""Rich rendering for the CLI: the live training display, tables, and JSON lines.

Nothing here computes anything the library does not already report; it only shows
it. Diagnostics go to stderr, data (JSON lines, samples) to stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from charrnn.events import Evaluation, RunStart, Silent, Summary
from charrnn.events import Progress as TrainProgress
from charrnn.units import human

BAR_UNITS = 1000  # the bar follows the budget fraction, which time budgets need


def stderr_console() -> Console:
    """A console on stderr that follows redirections made after import (tests)."""
    return Console(stderr=True, highlight=False)


def stdout_console() -> Console:
    return Console(highlight=False)


def duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# Work on a file shorter than this is over before a bar would be worth drawing.
PROGRESS_FROM_BYTES = 4 * 2**20
# Drawing fewer characters than this takes seconds at most (thousands a second).
PROGRESS_FROM_CHARS = 50_000


@contextmanager
def byte_progress(
    path: Path, what: str, *, quiet: bool = False
) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for work that reads ``path``: yields the callback that
    advances it by the bytes read (None when the file is small, or ``quiet``)."""
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    columns = (DownloadColumn(), TransferSpeedColumn())
    with counted_progress(size, what, columns, quiet=quiet or size < PROGRESS_FROM_BYTES) as bar:
        yield bar


@contextmanager
def char_progress(
    total: int, what: str, *, quiet: bool = False
) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr for drawing ``total`` characters (None when few)."""
    columns = (MofNCompleteColumn(), TextColumn("chars"))
    with counted_progress(total, what, columns, quiet=quiet or total < PROGRESS_FROM_CHARS) as bar:
        yield bar


@contextmanager
def counted_progress(
    total: int, what: str, counts: tuple[ProgressColumn, ...], *, quiet: bool
) -> Iterator[Callable[[int], None] | None]:
    """A transient bar towards ``total`` (``counts`` say how far in its unit), on
    stderr when it is a terminal; yields the callback that advances it (None: no bar)."""
    if quiet:
        yield None
        return
    columns = (TextColumn(what), BarColumn(), *counts, TimeRemainingColumn())
    console = stderr_console()
    drawn = console.is_terminal  # elsewhere Rich's transient bar leaves a blank line
    with Progress(*columns, console=console, transient=True, disable=not drawn) as bar:
        task = bar.add_task(what, total=total)
        bar.refresh()  # drawn at once, not at the next tick of Rich's clock
        # Called every few hundred milliseconds at most: each call may redraw.
        yield lambda done: bar.update(task, advance=done, refresh=True)


@contextmanager
def working(what: str) -> Iterator[None]:
    """A spinner with the seconds so far on stderr (a terminal) for work of unknown
    length, such as tracing a model for export."""
    console = stderr_console()
    if not console.is_terminal:
        yield
        return
    columns = (SpinnerColumn(), TextColumn(what), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        bar.add_task(what, total=None)
        bar.refresh()
        yield


class Quiet(Silent):
    """``--quiet``: nothing but warnings (on stderr)."""

    def warning(self, text: str) -> None:
        stderr_console().print(f"warning: {escape(shown(text))}", soft_wrap=True)


class LiveReporter(Quiet):
    """The training display: a progress bar with the numbers a person watches.

    At every evaluation a line with the validation loss and a short sample is
    printed above the bar, so the model can be seen learning.
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or stderr_console()
        self.bar = Progress(
            BarColumn(bar_width=20),
            TextColumn("step {task.fields[step]}"),
            TextColumn("epoch {task.fields[epoch]}"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("val bpc {task.fields[bpc]}"),
            TextColumn("{task.fields[speed]} char/s"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[doing]}"),
            TimeRemainingColumn(compact=True),
            console=self.console,
            transient=False,
        )
        self.task: TaskID | None = None
        self.total_steps: int | None = None

    def start(self, info: RunStart) -> None:
        resumed = f", resuming at step {info.start_step}" if info.start_step else ""
        items = ""
        if info.items is not None:
            items = f"{info.items[0]:,} training and {info.items[1]:,} validation items, "
        self.console.print(
            f"[bold]{escape(printable(info.corpus))}[/]: {items}{human(info.train_chars)} "
            f"training and {human(info.val_chars)} validation characters, vocabulary "
            f"{info.vocab_size}; "
            f"model {human(info.parameters)} parameters on {info.device}{resumed}\n"
            f"run directory: {escape(str(info.run_dir))}"
        )
        self.total_steps = info.total_steps
        self.bar.start()
        self.task = self.bar.add_task(
            "train",
            total=BAR_UNITS,
            step=self._steps(info.start_step),
            epoch="0.00",
            loss="-",
            bpc="-",
            speed="-",
            doing="ETA",
        )

    def _steps(self, step: int) -> str:
        return f"{step}/{self.total_steps}" if self.total_steps else str(step)

    def progress(self, p: TrainProgress) -> None:
        if self.task is None:
            return
        self.bar.update(
            self.task,
            completed=p.fraction * BAR_UNITS,
            step=self._steps(p.step),
            epoch=f"{p.epoch:.2f}",
            loss=f"{p.train_loss:.3f}",
            bpc=f"{p.val_bpc:.3f}" if p.val_bpc is not None else "-",
            speed=human(p.chars_per_s),
            # The bar stands still while the model is evaluated: say so.
            doing="[yellow]evaluating[/] ETA" if p.evaluating else "ETA",
        )

    def evaluated(self, e: Evaluation) -> None:
        if self.task is not None:
            self.bar.update(self.task, bpc=f"{e.val_bpc:.3f}", doing="ETA")
        star = " [green]★ best[/]" if e.is_best else ""
        part = "" if e.val_whole else f" [dim](on {human(e.val_chars)} of its characters)[/]"
        self.console.print(
            f"[bold]step {e.step}[/] epoch {e.epoch:.2f}: train {e.train_loss:.4f}  "
            f"val {e.val_loss:.4f} nats = [bold]{e.val_bpc:.4f} bpc[/]{star}{part}"
        )
        if e.sample:
            sample = e.sample.replace("\r", "").strip("\n")
            self.console.print(Text(shown(sample), style="dim"), soft_wrap=True)

    def finish(self, s: Summary) -> None:
        if self.task is not None:  # the bar ends on the summary's speed: one figure
            self.bar.update(self.task, speed=human(s.chars_per_s), doing="ETA")
        self.bar.stop()
        self.console.print(
            f"done after {s.step} steps ({human(s.chars_seen)} characters, "
            f"{duration(s.elapsed_s)}; {stop_reason(s.stopped_by)}): best validation "
            f"{s.best_val_loss:.4f} nats = {s.best_val_bpc:.4f} bpc ({measured_on(s)})\n"
            f"{too_short(s)}"
            f"time spent: {time_spent(s.time_spent)}\n{speeds(s)}"
            f"checkpoints in {escape(str(s.run_dir))} — sample with: "
            f"charrnn sample {escape(str(s.run_dir))}"
        )

    def notice(self, text: str) -> None:
        self.console.print(escape(shown(text)), soft_wrap=True)

    def close(self) -> None:
        """Stop the bar (if it was started), e.g. when training ended in an error."""
        if self.task is not None:
            with suppress(OSError):  # the terminal or pipe has gone: nothing left to tidy
                self.bar.stop()


class Noticed(Quiet):
    """Notices and warnings on stderr, nothing else: what a command such as ``vocab``
    read and left out."""

    def notice(self, text: str) -> None:
        stderr_console().print(escape(shown(text)), soft_wrap=True)


class JsonReporter(Noticed):
    """One JSON object per evaluation on stdout (``--json``), for scripts; notices (the
    settings chosen, for one) on stderr."""

    def evaluated(self, evaluation: Evaluation) -> None:
        sys.stdout.write(json.dumps(evaluation.record()) + "\n")
        sys.stdout.flush()


# -- tables ---------------------------------------------------------------------------------


def printable(text: str, keep: str = "") -> str:
    """``text`` with control characters (terminal escape sequences among them) shown as
    ``\\xNN`` escapes, but for those in ``keep``: strings from a file or a model never
    drive the terminal. Everything charrnn shows a person goes through this; what
    ``sample`` writes to stdout is the data itself and does not."""
    return "".join(
        c
        if c.isprintable() or c == " " or c in keep
        else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def shown(text: str) -> str:
    """Model or corpus text shown to a person: lines and tabs kept, control
    characters escaped (see :func:`printable`)."""
    return printable(text, keep="\n\t")


SHORT_RUN_STEPS = 200  # fewer updates than this teach a model little but the alphabet


def too_short(s: Summary) -> str:
    """A plain line when the budget allowed too few steps to learn, else ""."""
    if s.step >= SHORT_RUN_STEPS:
        return ""
    return (
        f"[yellow]{s.step} steps is too few to learn much: the samples will be mostly "
        "noise. Give it longer (--time 5m, or more --steps).[/]\n"
    )


def measured_on(s: Summary) -> str:
    """What the final figure read: ``"the whole validation text"``, or the part the
    time budget left room for."""
    if s.final_part is None:
        return "the whole validation text"
    read, of = s.final_part
    return f"final figure on {read:,} of {of:,} characters because the budget ran out"


def speeds(s: Summary) -> str:
    """``"speed: 8.1k characters/s training (auto planned for 9.0k)\n"``, or ""."""
    if s.chars_per_s <= 0:
        return ""
    planned = f" (auto planned for {human(s.planned_chars_per_s)})" if s.planned_chars_per_s else ""
    return f"speed: {human(s.chars_per_s)} characters/s training{planned}\n"


def time_spent(spent: dict[str, float]) -> str:
    """``"2.1 s starting, 71.2 s training, 3.1 s evaluating, 0.4 s saving"``: this
    process's wall time (the run's clock, for a run that was not resumed)."""
    return ", ".join(f"{seconds:.1f} s {activity}" for activity, seconds in spent.items())


_STOP_REASONS = {
    "steps": "budget: steps",
    "epochs": "budget: epochs",
    "time": "budget: time",
    "patience": "early stop: no new best for --patience evaluations",
}


def stop_reason(stopped_by: str | None) -> str:
    """What ended a run, in words."""
    return _STOP_REASONS.get(stopped_by or "", stopped_by or "unknown")
