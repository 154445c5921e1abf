"""Rich rendering of ``charrnn compare``: one live display for the whole comparison,
and the table with the best row marked."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from charrnn.cli.live import BAR_UNITS, Quiet, duration, human, stderr_console
from charrnn.compare.report import COLUMNS, RunResult, best_index
from charrnn.compare.run import PlannedRun
from charrnn.events import Progress as TrainProgress
from charrnn.events import Summary


class CompareDisplay(Quiet):
    """One progress display for a whole comparison: which run, its step, its loss."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or stderr_console()
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=20),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.overall: TaskID | None = None
        self.current: TaskID | None = None
        self.name = ""

    def begin_run(self, index: int, total: int, run: PlannedRun, reused: bool) -> None:
        if self.overall is None:
            self.bar.start()
            self.overall = self.bar.add_task("comparison", total=total, detail="")
            self.current = self.bar.add_task("", total=BAR_UNITS, detail="")
        self.name = run.name
        self.bar.update(self.overall, completed=index, detail=f"run {index + 1}/{total}")
        assert self.current is not None
        self.bar.update(self.current, description=run.name, completed=0, detail="starting")
        if reused:
            self.console.print(f"{run.name}: finished earlier, kept")

    def notice(self, text: str) -> None:
        self.console.print(escape(text), soft_wrap=True)

    def progress(self, p: TrainProgress) -> None:
        if self.current is None:
            return
        bpc = f"  val bpc {p.val_bpc:.3f}" if p.val_bpc is not None else ""
        self.bar.update(
            self.current,
            completed=p.fraction * BAR_UNITS,
            detail=f"step {p.step}  loss {p.train_loss:.3f}{bpc}  {human(p.chars_per_s)} char/s",
        )

    def finish(self, s: Summary) -> None:
        if self.overall is not None:
            self.bar.advance(self.overall)
        self.console.print(
            f"{self.name}: {s.step} steps, best validation {s.best_val_bpc:.4f} bpc "
            f"({duration(s.elapsed_s)})"
        )

    def close(self) -> None:
        if self.overall is not None:
            self.bar.stop()


def compare_table(results: list[RunResult]) -> Table:
    """The comparison, best row marked."""
    best = best_index(results)
    t = Table(title="comparison (same data, order, seed and budget per run)", title_justify="left")
    for column in (*COLUMNS, ""):
        t.add_column(column, justify="left" if column in ("cell", "") else "right")
    for i, r in enumerate(results):
        t.add_row(
            *r.cells(), "★ best" if i == best else "", style="bold green" if i == best else None
        )
    return t
