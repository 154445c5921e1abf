"""``charrnn export --format hub``: a model as a folder to put on a model hub.

The folder's data files and their fields belong to :mod:`charrnn.hub` (which every
command reads); this module adds the model card, ``README.md``, and writes the folder
whole by :func:`charrnn.files.write_folder`'s rule. Nothing here reaches the network:
uploading is the hub's own tool's job (``hf upload``; see docs/sharing.md).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from charrnn import hub
from charrnn._version import __version__
from charrnn.checkpoint import Checkpoint
from charrnn.model.network import CharRNN
from charrnn.sampling.sampler import SampleSettings, generate
from charrnn.units import human, to_bits

CARD_SAMPLE = 400  # characters of sample text in the card
CARD_SEED = 0
CARD_TEMPERATURE = 0.8


def hub_files(model: CharRNN, checkpoint: Checkpoint) -> dict[str, bytes]:
    """The folder's three files for a loaded model and its checkpoint."""
    size = corpus_bytes(checkpoint)
    files = hub.folder_files(checkpoint.to_dict(), corpus_bytes=size)
    sample = generate(
        model,
        checkpoint.vocab,
        length=CARD_SAMPLE,
        settings=SampleSettings(temperature=CARD_TEMPERATURE),
        seed=CARD_SEED,
    )[0]
    files[hub.CARD] = model_card(checkpoint, sample, size).encode("utf-8")
    return files


def corpus_bytes(checkpoint: Checkpoint) -> int | None:
    """The training text's size, when the file it was read from is still where it was."""
    corpus = checkpoint.corpus
    if corpus is None or not corpus.path:
        return None
    try:
        return Path(corpus.path).stat().st_size
    except OSError:
        return None


def _budget(checkpoint: Checkpoint) -> str:
    train = checkpoint.config.train
    parts = [
        *([f"{train.steps:,} steps"] if train.steps is not None else []),
        *([f"{train.epochs:g} passes"] if train.epochs is not None else []),
        *([f"{train.time_s:g} s"] if train.time_s is not None else []),
    ]
    return ", ".join(parts) + " (whichever ended first)" if len(parts) > 1 else parts[0]


def _loss(nats: float) -> str:
    return f"{nats:.4f} nats/char ({to_bits(nats):.4f} bits/char)" if math.isfinite(nats) else "-"


def _yaml_text(value: str) -> str:
    """A YAML double-quoted scalar (JSON's escaping is valid YAML)."""
    import json

    return json.dumps(value, ensure_ascii=False)


def model_card(checkpoint: Checkpoint, sample: str, corpus_size: int | None) -> str:
    """``README.md``: YAML front matter the hubs read, then what the model is, how it
    was trained, how well it does, a sample, and how to use it."""
    m, data = checkpoint.config.model, checkpoint.config.data
    corpus = checkpoint.corpus
    name = " ".join((corpus.name if corpus else "unknown").split())  # one line, in any case
    size = f"{human(corpus_size)}B" if corpus_size is not None else "size unknown"
    best = checkpoint.best_val_loss
    front: list[str] = [
        "---",
        "library_name: charrnn",
        "license:  # yours to fill in: the license of the model and of its training text",
        "pipeline_tag: text-generation",
        "tags:",
        *(f"- {tag}" for tag in ("charrnn", "character-level", m.cell, "text-generation")),
        f"charrnn_version: {_yaml_text(checkpoint.charrnn_version)}",
        f"corpus: {_yaml_text(name)}",
        *([f"corpus_bytes: {corpus_size}"] if corpus_size is not None else []),
        f"steps: {checkpoint.step}",
        *(
            [f"val_loss_nats: {best:.4f}", f"val_loss_bits: {to_bits(best):.4f}"]
            if math.isfinite(best)
            else []
        ),
        "---",
    ]
    # A code fence longer than any run of backticks in the sample, so none can close it.
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", sample)), default=0))
    vocabulary = f"{len(checkpoint.vocab)} symbols" + (" (bytes)" if data.byte_level else "")
    items = {"lines": "one item per line", "blank-lines": "one item per paragraph"}
    rows = [
        ("cell", m.cell.upper()),
        ("layers x hidden", f"{m.num_layers} x {m.hidden_size}"),
        ("embedding", str(m.embed_size or "one-hot")),
        ("parameters", f"{checkpoint.num_parameters:,}"),
        ("vocabulary", vocabulary),
        *([("items", items[data.docs])] if data.docs in items else []),
        ("corpus", f"{name} ({size})"),
        ("training budget", _budget(checkpoint)),
        ("steps at these weights", f"{checkpoint.step:,} ({checkpoint.chars_seen:,} characters)"),
        ("validation loss", _loss(best)),
        ("written by", f"charrnn {checkpoint.charrnn_version}, exported by {__version__}"),
    ]
    table = ["| | |", "|---|---|", *(f"| {k} | {v.replace('|', '/')} |" for k, v in rows)]
    body = [
        f"# A character-level {m.cell.upper()} trained on {name}",
        "",
        "A language model that writes one character at a time, trained with "
        "[charrnn](https://pypi.org/project/charrnn/).",
        "",
        *table,
        "",
        f"## A sample (temperature {CARD_TEMPERATURE}, seed {CARD_SEED})",
        "",
        fence,
        sample,
        fence,
        "",
        "## Use it",
        "",
        "```sh",
        "pip install charrnn",
        "hf download OWNER/NAME --local-dir my-model   # this folder, from the hub",
        "charrnn sample my-model --prime 'The ' --length 300",
        "charrnn serve my-model                        # a page and an OpenAI-style API",
        "```",
        "",
        "The weights are `model.safetensors` (float32, the names of charrnn's "
        "`state_dict`); `config.json` holds the settings and the vocabulary (code points "
        "in id order). No file here runs code when read.",
        "",
    ]
    return "\n".join([*front, "", *body])
