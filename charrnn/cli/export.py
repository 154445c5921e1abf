"""``charrnn export``: a trained model as a hub folder, a web page, or an ONNX or
TorchScript file."""

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
    hub = "hub"
    web = "web"


@friendly_errors
def export(
    checkpoint: opt.CheckpointArg,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="hub (a folder for a model hub, read back by every command), web (one "
            "HTML page that runs the model in a browser), onnx (any runtime) or torchscript.",
        ),
    ] = Format.onnx,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="File (or, for hub, folder) to write. [default: model.onnx, "
            "model.torchscript.pt, hub/ or model.html in the run]",
            show_default=False,
        ),
    ] = None,
    overwrite: opt.ReplaceFileOpt = False,
) -> None:
    """Export the model to use elsewhere: a folder for a model hub (weights as
    safetensors, config.json, a model card), one HTML page that writes with it in a
    browser, or one step (ids and state in, logits and state out) as ONNX or
    TorchScript; the vocabulary travels inside."""
    from charrnn.cli.live import working
    from charrnn.sharing.export import export as write

    doing = {
        Format.hub: "writing the folder (and a sample for its card)",
        Format.web: "writing the page (checking float16 weights keep the text)",
    }.get(fmt, "tracing the model, which takes a while")
    with working(f"exporting to {fmt.value}: {doing}"):
        target = write(checkpoint, out, fmt.value, overwrite=overwrite)
    size = sum(p.stat().st_size for p in target.iterdir()) if target.is_dir() else None
    size = size if size is not None else target.stat().st_size
    typer.echo(f"wrote {target} ({human(size)}B)", err=True)
