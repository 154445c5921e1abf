"""``charrnn compare``: RNN vs LSTM vs GRU under equal conditions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from charrnn.cli import options as opt
from charrnn.cli.errors import friendly_errors
from charrnn.cli.live import (
    BAR_UNITS,
    Noticed,
    Quiet,
    duration,
    printable,
    shown,
    stderr_console,
    stdout_console,
)
from charrnn.events import Progress as TrainProgress
from charrnn.events import Summary
from charrnn.layering import layered, overrides
from charrnn.units import human

if TYPE_CHECKING:
    from charrnn.compare.report import RunResult
    from charrnn.compare.run import PlannedRun

CellsOpt = Annotated[str, typer.Option("--cells", help="Comma-separated cells to compare.")]


LayersGridOpt = Annotated[
    str,
    typer.Option(
        "--layers", help="Comma-separated layer counts; every combination with --hidden runs."
    ),
]


HiddenGridOpt = Annotated[str, typer.Option("--hidden", help="Comma-separated hidden sizes.")]


MatchParamsOpt = Annotated[
    bool,
    typer.Option(
        "--match-params",
        help="Size each cell's hidden layer to about the "
        "parameter count of an LSTM with --hidden (reported in the table).",
    ),
]


CompareOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out", "-o", help="Comparison folder. [default: compare/<corpus>]", show_default=False
    ),
]


CompareResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume", help="Continue an interrupted comparison in --out, keeping finished runs."
    ),
]


ComparePrimeOpt = Annotated[
    str,
    typer.Option(
        "--prime",
        help="Priming text for the final samples. [default: a newline]",
        show_default=False,
    ),
]


CompareSampleLengthOpt = Annotated[
    int, typer.Option("--sample-length", min=0, help="Characters in each final sample.")
]


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"takes comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise typer.BadParameter(f"takes positive integers, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@friendly_errors
def compare(
    files: opt.CorpusFiles = None,
    cells: CellsOpt = "rnn,lstm,gru",
    layers_grid: LayersGridOpt = "2",
    hidden_grid: HiddenGridOpt = "128",
    match_params: MatchParamsOpt = False,
    out: CompareOutOpt = None,
    resume: CompareResumeOpt = False,
    prime: ComparePrimeOpt = "",
    sample_length: CompareSampleLengthOpt = 200,
    config: opt.ConfigOpt = None,
    preset: opt.PresetOpt = None,
    embed: opt.EmbedOpt = None,
    dropout: opt.DropoutOpt = None,
    batch_size: opt.BatchSizeOpt = None,
    seq_len: opt.SeqLenOpt = None,
    lr: opt.LrOpt = None,
    weight_decay: opt.WeightDecayOpt = None,
    clip: opt.ClipOpt = None,
    warmup: opt.WarmupOpt = None,
    schedule: opt.ScheduleOpt = None,
    steps: opt.StepsOpt = None,
    epochs: opt.EpochsOpt = None,
    time_s: opt.TimeBudgetOpt = None,
    eval_every: opt.EvalEveryOpt = None,
    eval_chars: opt.EvalCharsOpt = None,
    seed: opt.SeedOpt = None,
    val_frac: opt.ValFracOpt = None,
    val_file: opt.ValFileOpt = None,
    encoding: opt.EncodingOpt = None,
    byte_level: opt.BytesOpt = None,
    max_mb: opt.MaxMbOpt = None,
    device: opt.DeviceOpt = None,
    threads: opt.ThreadsOpt = None,
    quiet: opt.QuietOpt = False,
    cache_dir: opt.CacheOpt = None,
    strict: opt.StrictOpt = False,
    include_hidden: opt.IncludeHiddenOpt = False,
) -> None:
    """Train RNN, LSTM and GRU under equal conditions; show which learns FILE best."""
    from charrnn.compare.run import compare as run_compare
    from charrnn.data.sources import resolve_inputs
    from charrnn.inspection.measures import flow_summary

    file = resolve_inputs(
        files or [], encoding=encoding or "utf-8", strict=strict, hidden=include_hidden,
        byte_level=bool(byte_level), cache_dir=cache_dir,
        reporter=Quiet() if quiet else Noticed(),  # what a folder gave and left out
    )  # fmt: skip

    given = overrides(
        encoding=encoding,
        byte_level=byte_level,
        val_frac=val_frac,
        val_file=val_file,
        max_mb=max_mb,
        embed=embed,
        dropout=dropout,
        batch_size=batch_size,
        seq_len=seq_len,
        lr=lr,
        weight_decay=weight_decay,
        clip=clip,
        warmup=warmup,
        schedule=schedule,
        steps=steps,
        epochs=epochs,
        time_s=time_s,
        eval_every=eval_every,
        eval_chars=eval_chars,
        seed=seed,
        device=device,
        threads=threads,
    )
    base = layered(file=file, config_file=config, preset=preset, given=given)
    display = None if quiet else CompareDisplay()
    try:
        result = run_compare(
            base,
            cells=_names(cells),
            layers=_int_list(layers_grid),
            hiddens=_int_list(hidden_grid),
            out=out,
            match_params=match_params,
            resume_existing=resume,
            prime=prime,
            sample_length=sample_length,
            reporter=display,
            cache_dir=cache_dir,
        )
    finally:
        if display is not None:
            display.close()
    console = stdout_console()
    console.print(compare_table(result.results))
    for name, text in result.samples.items():
        console.print(f"[bold]── {escape(printable(name))}[/]")
        console.print(Text(shown(prime + text)), soft_wrap=True)
    for name, flow in result.flows.items():
        console.print(Text(f"gradient flow, {name}: {flow_summary(flow)}"))
    names = ", ".join(path.name for path in result.files)
    console.print(Text(f"saved in {result.out}: {names} and one run per model"))


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
        self.console.print(escape(shown(text)), soft_wrap=True)

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
    from charrnn.compare.report import COLUMNS, best_index

    best = best_index(results)
    t = Table(title="comparison (same data, order, seed and budget per run)", title_justify="left")
    for column in (*COLUMNS, ""):
        t.add_column(column, justify="left" if column in ("cell", "") else "right")
    for i, r in enumerate(results):
        t.add_row(
            *r.cells(), "★ best" if i == best else "", style="bold green" if i == best else None
        )
    return t
