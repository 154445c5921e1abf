"""``train --init-from RUN``: start from a trained model's weights on a new text.

The new run's vocabulary is the union of the old one and the new text's, so nothing
the model knows is lost and every character of the new text has a row. Vocabularies
are sorted, so a known character may move to another id: its rows move with it. A
character the old model never saw gets the mean of the old input embeddings (an
ordinary, not an extreme, input) and an output row whose bias is the lowest of the
old ones — it starts as unlikely as the rarest character the model knew, and
training raises it as fast as the text asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from charrnn.checkpoint import Checkpoint, load_model
from charrnn.config import RunConfig
from charrnn.data.vocab import Vocab
from charrnn.layering import Layers, Tables
from charrnn.model.network import CharRNN

# What the new run takes from the old one: the network's shape.
ARCHITECTURE = ("cell", "num_layers", "hidden_size", "embed_size")


@dataclass(frozen=True)
class Start:
    """A trained run to start from: where it is, its model and its checkpoint."""

    run: Path
    model: CharRNN
    checkpoint: Checkpoint

    @classmethod
    def load(cls, run: Path) -> Start:
        """The run's best model, or a CheckpointError saying why not."""
        model, _, checkpoint = load_model(run)
        return cls(Path(run).resolve(), model, checkpoint)


def source_tables(checkpoint: Checkpoint) -> Tables:
    """Settings the new run must share with the old: shape and how text is read."""
    model = checkpoint.config.model
    return {
        "model": {name: getattr(model, name) for name in ARCHITECTURE},
        "data": {"byte_level": checkpoint.vocab.byte_level},
    }


def fine_tuning(settings: RunConfig | Layers, start: Start) -> RunConfig | Layers:
    """``settings`` for a run that starts from ``start``: its shape and how it reads
    text replace whatever was given, and the new run records where it started."""
    tables = source_tables(start.checkpoint)
    tables["train"] = {"init_from": str(start.run)}
    if isinstance(settings, Layers):
        return settings.under(tables)
    merged = settings.to_dict()
    for section, values in tables.items():
        merged[section] = {**merged.get(section, {}), **values}
    return RunConfig.from_dict(merged)


def transplant(source: CharRNN, old: Vocab, target: CharRNN, new: Vocab) -> int:
    """Copy ``source``'s weights into ``target`` (same shape, vocabulary ``new`` ⊇
    ``old``), moving per-character rows to their new ids; returns how many characters
    are new."""
    old_ids = torch.from_numpy(old.remap(np.arange(len(old)), new).astype(np.int64))
    fresh = torch.tensor(sorted(set(range(len(new))) - set(old_ids.tolist())), dtype=torch.long)
    state = source.state_dict()
    rows_of = {"head.weight": 0, "head.bias": 0, "embedding.weight": 0, "rnn.weight_ih_l0": 1}
    result = target.state_dict()
    with torch.no_grad():
        for name, tensor in state.items():
            axis = rows_of.get(name)
            if axis is None or (name == "rnn.weight_ih_l0" and source.embedding is not None):
                result[name].copy_(tensor)
                continue
            moved = result[name]
            moved.index_copy_(axis, old_ids.to(moved.device), tensor.to(moved.dtype))
            if len(fresh):
                fill = tensor.min() if name == "head.bias" else tensor.mean(dim=axis, keepdim=True)
                index = fresh.to(moved.device)
                if name == "head.bias":
                    moved[index] = fill
                else:
                    moved.index_copy_(axis, index, fill.expand_as(moved.index_select(axis, index)))
    target.load_state_dict(result)
    return len(fresh)


def describe(config: RunConfig, start: Start, vocab: Vocab) -> str:
    """One line on what the run starts from and which characters it adds."""
    m = config.model
    run, old = start.run, start.checkpoint.vocab
    added = f"added {new_characters(old, vocab)}" if len(vocab) > len(old) else "no new characters"
    return (
        f"fine-tuning from {run}: {m.num_layers}x{m.hidden_size} {m.cell.upper()}, its weights "
        f"as the start; {added}"
    )


def new_characters(old: Vocab, new: Vocab) -> str:
    """The new text's characters the old model lacks, listed briefly."""
    missing = sorted(set(new.symbols) - set(old.symbols))
    shown = Vocab(tuple(missing), new.byte_level).chars if missing else []
    return " ".join(shown[:20]) + (" ..." if len(shown) > 20 else "")
