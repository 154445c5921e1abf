"""``charrnn export``: a trained model as an ONNX or TorchScript file."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from charrnn.cli import options as opt
from charrnn.cli.errors import friendly_errors
from charrnn.units import human


class Format(StrEnum):
    onnx = "onnx"
    torchscript = "torchscript"


@friendly_errors
def export(
    checkpoint: opt.CheckpointArg,
    fmt: Annotated[
        Format, typer.Option("--format", "-f", help="onnx (any runtime) or torchscript.")
    ] = Format.onnx,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="File to write. [default: model.onnx or model.torchscript.pt in the run]",
            show_default=False,
        ),
    ] = None,
    overwrite: opt.ReplaceFileOpt = False,
) -> None:
    """Export one step of the model (ids and state in, logits and state out) to run
    without charrnn; the vocabulary travels inside the file."""
    from charrnn.cli.live import working
    from charrnn.serving.export import export as write

    with working(f"exporting to {fmt.value} (tracing the model takes a while)"):
        target = write(checkpoint, out, fmt.value, overwrite=overwrite)
    typer.echo(f"wrote {target} ({human(target.stat().st_size)}B)", err=True)
