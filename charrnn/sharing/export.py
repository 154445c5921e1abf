"""``charrnn export``: a trained model in a form made for use elsewhere, by format.

- ``hub``: a folder for a model hub (:mod:`charrnn.sharing.hub`), read back by every
  command that takes a run;
- ``web``: one HTML page that runs the model in a browser (:mod:`charrnn.sharing.web`);
- ``onnx`` / ``torchscript``: one step as a graph (:mod:`charrnn.sharing.graph`).

The target is checked by the writer rule of :mod:`charrnn.files` before the model is
loaded, so a refused target costs no work.
"""

from __future__ import annotations

from pathlib import Path

from charrnn import hub
from charrnn.checkpoint import load_model
from charrnn.errors import ConfigError
from charrnn.files import output_folder, output_target, write_folder, write_output
from charrnn.sharing.graph import provenance, to_onnx, to_torchscript
from charrnn.sharing.hub import hub_files
from charrnn.sharing.web import web_page

FORMATS = ("onnx", "torchscript", "hub", "web")
DEFAULT_NAMES = {
    "onnx": "model.onnx",
    "torchscript": "model.torchscript.pt",
    "hub": "hub",
    "web": "model.html",
}


def export(run: Path, out: Path | None, fmt: str, *, overwrite: bool = False) -> Path:
    """Write ``run``'s best model (a run directory, checkpoint or shared folder) as
    ``fmt`` to ``out`` (default: beside the run, replaced when it exists); return where
    it went."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}: use {', '.join(FORMATS)}")
    run_dir = Path(run) if Path(run).is_dir() else Path(run).parent
    target = out or run_dir / DEFAULT_NAMES[fmt]
    overwrite = overwrite or out is None  # the default output is the run's own, redone
    if fmt == "hub":
        output_folder(target, overwrite=overwrite, ours=hub.FILES)
    else:
        output_target(target, overwrite=overwrite)
    model, vocab, checkpoint = load_model(run)
    if fmt == "hub":
        return write_folder(target, hub_files(model, checkpoint), overwrite=overwrite)
    if fmt == "web":
        return write_output(target, web_page(model, checkpoint), overwrite=overwrite)
    made = provenance(run, checkpoint.step)
    data = to_onnx(model, vocab, made) if fmt == "onnx" else to_torchscript(model, vocab, made)
    return write_output(target, data, overwrite=overwrite)
