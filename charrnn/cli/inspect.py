"""``charrnn inspect``: look inside a trained model, in a browser or the terminal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.rule import Rule

from charrnn.cli import options as opt
from charrnn.cli.errors import UsageError, friendly_errors
from charrnn.cli.live import printable, stdout_console
from charrnn.cli.score import shaded, unit_text
from charrnn.units import to_bits

if TYPE_CHECKING:
    from charrnn.inspection.run import Inspection


def _unit(text: str | None) -> tuple[int, str, int] | None:
    """LAYER:STATE:UNIT (1-based layer, hidden|cell), e.g. 1:cell:84."""
    if text is None:
        return None
    parts = text.split(":")
    if (
        len(parts) != 3
        or parts[1] not in ("hidden", "cell")
        or not all(p.isdigit() for p in (parts[0], parts[2]))
    ):
        raise UsageError(f"--unit takes LAYER:hidden|cell:UNIT such as 1:cell:84, got {text!r}")
    return int(parts[0]) - 1, parts[1], int(parts[2])


@friendly_errors
def inspect(
    checkpoint: opt.CheckpointArg,
    file: Annotated[
        Path | None,
        typer.Argument(
            help="Text to read. [default: the run's validation text]",
            show_default=False,
            metavar="FILE",
        ),
    ] = None,
    text: Annotated[
        str | None,
        typer.Option("--text", help="Read this text instead of a file.", show_default=False),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="The page. [default: RUN/inspect.html]", show_default=False
        ),
    ] = None,
    max_chars: Annotated[
        int,
        typer.Option("--max-chars", min=1, max=20_000, help="Characters read and embedded."),
    ] = 2000,
    terminal: Annotated[
        bool,
        typer.Option(
            "--terminal", help="Also print the surprisal and one unit as coloured text here."
        ),
    ] = False,
    unit: Annotated[
        str | None,
        typer.Option(
            "--unit",
            help="The unit --terminal shows, LAYER:hidden|cell:UNIT. [default: the one most "
            "correlated with a text feature]",
            show_default=False,
        ),
    ] = None,
    overwrite: opt.ReplaceFileOpt = False,
    skip_unknown: opt.SkipUnknownOpt = False,
    cache_dir: opt.CacheOpt = None,
) -> None:
    """Write a page that shows what happens inside the model as it reads a text:
    surprisal with the model's predictions, a neuron browser, gate saturation and how
    far back the gradient reaches."""
    from charrnn.cli.live import Quiet
    from charrnn.inspection.run import inspect_run

    chosen = _unit(unit)
    if file is not None and text is not None:
        raise UsageError("give FILE or --text, not both")
    if chosen is not None and not terminal:
        raise UsageError("--unit chooses the unit --terminal shows: add --terminal")
    found = inspect_run(
        checkpoint,
        file=file,
        text=text,
        out=out,
        overwrite=overwrite,
        unit=chosen,
        max_chars=max_chars,
        skip_unknown=skip_unknown,
        cache_dir=cache_dir,
        reporter=Quiet(),
    )
    if terminal:
        show_inspection(found, chosen)
    typer.echo(printable(found.summary), err=True)
    if found.correlation_note:
        typer.echo(found.correlation_note, err=True)
    best = sorted(found.matches, key=lambda m: -abs(m.r))[:3]
    for m in best:
        typer.echo(
            f"  {m.feature}: layer {m.layer + 1} {m.state} unit {m.unit}, r = {m.r:+.2f}", err=True
        )
    typer.echo(f"wrote {found.page} — open it in a browser", err=True)


SHOWN = 3000  # characters printed: a terminal shows no more usefully


def show_inspection(found: Inspection, unit: tuple[int, str, int] | None) -> None:
    """Print the text by surprisal, then by ``unit`` (layer, state, index; default the
    unit most correlated with a feature)."""
    trace = found.trace
    console = stdout_console()
    text = trace.text[:SHOWN]
    console.print(
        Rule("surprisal: plain < 1 bit, grey < 2, orange < 4, red < 7, bright red beyond")
    )
    console.print(shaded(text, to_bits(trace.surprisal[:SHOWN]).tolist()))
    if unit is None:
        if not found.matches:
            return
        best = max(found.matches, key=lambda m: abs(m.r))
        unit = (best.layer, best.state, best.unit)
    layer, state, index = unit  # checked against the model by inspect_run
    layers = trace.hidden if state == "hidden" else trace.cell
    values = layers[layer][: len(text), index]
    import numpy as np

    scaled = values / max(float(np.abs(values).max()), 1e-9)
    console.print(Rule(f"layer {layer + 1} {state} unit {index}: red positive, blue negative"))
    console.print(unit_text(text, scaled.tolist()))
