"""``charrnn score``: how well a trained model predicts a text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from charrnn.cli import args as arg
from charrnn.cli import options as opt
from charrnn.cli.errors import friendly_errors
from charrnn.config import Device


@friendly_errors
def score(
    checkpoint: arg.CheckpointArg,
    file: Annotated[Path, typer.Argument(help="UTF-8 text file to score.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the totals as JSON.")] = False,
    per_line: Annotated[
        bool, typer.Option("--per-line", help="List the most surprising lines, worst first.")
    ] = False,
    show: Annotated[
        bool,
        typer.Option(
            "--show",
            help="Print the text coloured by surprisal (first 20,000 characters) and the "
            "spots where the model was most surprised, with what it expected.",
        ),
    ] = False,
    top: Annotated[
        int, typer.Option("--top", min=1, max=10_000, help="Lines or spots listed.")
    ] = 20,
    encoding: opt.EncodingOpt = None,
    skip_unknown: opt.SkipUnknownOpt = False,
    device: Annotated[Device, typer.Option("--device", help="Where to run the model.")] = (
        Device.cpu
    ),
) -> None:
    """Score FILE with a trained model: bits per character, perplexity, worst lines."""
    from charrnn.checkpoint import load_model
    from charrnn.cli.display_score import coloured_text, lines_table, score_table, worst_table
    from charrnn.cli.live import Quiet, stdout_console
    from charrnn.data.text import read_text
    from charrnn.hardware import select_device
    from charrnn.inspection.score import score_text

    model, vocab, saved = load_model(checkpoint, device=select_device(device.value))
    text = read_text(file, encoding=encoding or "utf-8")
    docs = saved.config.data.docs  # a --docs model scores item by item, as it trained
    result = score_text(model, vocab, text, skip_unknown=skip_unknown, reporter=Quiet(), docs=docs)
    if as_json:
        summary: dict[str, object] = {"file": str(file), **result.summary()}
        if per_line:
            summary["lines"] = [
                {"line": line.number, "bpc": line.bpc, "chars": line.predicted}
                for line in result.lines()
            ]
        typer.echo(json.dumps(summary, indent=2))
        return
    console = stdout_console()
    if show:
        console.print(coloured_text(result), soft_wrap=True)
        console.print(worst_table(result, top))
    if per_line:
        console.print(lines_table(result.lines(), top))
    console.print(score_table(f"{file} scored by {checkpoint}", result))
