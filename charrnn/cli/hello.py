"""``charrnn hello``: the lecture's example, trained and shown."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from charrnn.cli import options as opt
from charrnn.cli.errors import friendly_errors
from charrnn.cli.live import stdout_console
from charrnn.files import output_target, write_output

if TYPE_CHECKING:
    from charrnn.lecture.hello import HelloResult


@friendly_errors
def hello(
    steps: Annotated[int, typer.Option("--steps", min=1, help="Training steps.")] = 300,
    seed: Annotated[
        int, typer.Option("--seed", min=0, max=2**63 - 1, help="Seed for the initial weights.")
    ] = 0,
    page: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write the four steps, hidden states and predictions before and after "
            "training as a page to this file.",
            show_default=False,
        ),
    ] = None,
    overwrite: opt.ReplaceFileOpt = False,
) -> None:
    """The lecture's example: a 3-unit RNN learns "hello" (takes a second)."""
    from charrnn.lecture.hello import run_hello

    if page is not None:
        output_target(page, overwrite=overwrite)  # refused before the work, not after
    result = run_hello(steps=steps, seed=seed)
    if page is not None:
        from charrnn.lecture.hello import hello_page

        write_output(page, hello_page(result), overwrite=overwrite)
        typer.echo(f"wrote {page} — open it in a browser", err=True)
    console = stdout_console()
    for part in hello_tables(result):
        console.print(part)
    console.print(
        f"sampled from 'h', always taking the most likely next character: [bold]{result.sample}[/]"
    )


def hello_tables(result: HelloResult) -> list[Any]:
    """The lecture's figure as tables: output scores per input, before and after."""
    chars = [chr(s) for s in result.vocab.symbols]

    def table(title: str, rows: list[Any]) -> Table:
        t = Table(title=title, title_justify="left")
        t.add_column("input")
        t.add_column("target")
        for c in chars:
            t.add_column(f"score '{c}'", justify="right")
        t.add_column("predicted")
        for r in rows:
            best = max(r.scores)
            scores = [f"[bold green]{s:+.2f}[/]" if s == best else f"{s:+.2f}" for s in r.scores]
            mark = "[green]✓[/]" if r.predicted == r.target_char else "[red]✗[/]"
            t.add_row(r.input_char, r.target_char, *scores, f"{r.predicted} {mark}")
        return t

    return [
        Text(
            f"vocabulary {chars} (sorted), one-hot inputs, vanilla RNN with 3 hidden units",
        ),
        table(f"before training (loss {result.first_loss:.3f})", result.before),
        table(f"after {result.steps} steps (loss {result.final_loss:.4f})", result.after),
    ]
