"""``charrnn export --format onnx|torchscript``: one step of the model as a graph that
runs without charrnn.

The graph takes the current character ids and the recurrent state and returns the
next character's logits and the new state::

    ids    (B,)          int64
    state  (S, L, B, H)  float32   S = 2 for an LSTM (h, c), else 1 (h)
    ->  logits (B, V), state_out (S, L, B, H)

so a sampling loop in any language is: start from zeros and the newline's id, feed
each drawn id back. The cell equations are written out here (not the fused
``nn.LSTM``/``nn.GRU`` call), so the same module exports to ONNX and TorchScript and
any runtime that has matrix products and sigmoids runs it. The vocabulary and shape
travel inside the file (ONNX metadata, TorchScript extra files) as JSON.
"""

from __future__ import annotations

import io
import json
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from charrnn._version import __version__
from charrnn.data.vocab import Vocab
from charrnn.errors import ConfigError
from charrnn.model.cells import cell_step
from charrnn.model.network import CharRNN

OPSET = 18


class OneStep(nn.Module):
    """One character through a :class:`CharRNN`, the cell equations written out."""

    def __init__(self, model: CharRNN) -> None:
        super().__init__()
        config = model.config
        self.cell = config.cell
        self.lstm = config.cell == "lstm"
        self.layers = config.num_layers
        rnn = model.rnn
        with torch.no_grad():
            first = getattr(rnn, "weight_ih_l0").detach().float()  # noqa: B009  (typed Any)
            if model.embedding is not None:  # the input product of every character, once
                table = model.embedding.weight.detach().float() @ first.t()
            else:
                table = first.t().clone()
            self.table = nn.Parameter(table + getattr(rnn, "bias_ih_l0").detach().float())  # noqa: B009
            self.w_ih = nn.ParameterList(
                [
                    nn.Parameter(getattr(rnn, f"weight_ih_l{k}").detach().float())
                    for k in range(1, self.layers)
                ]
            )
            self.b_ih = nn.ParameterList(
                [
                    nn.Parameter(getattr(rnn, f"bias_ih_l{k}").detach().float())
                    for k in range(1, self.layers)
                ]
            )
            self.w_hh = nn.ParameterList(
                [
                    nn.Parameter(getattr(rnn, f"weight_hh_l{k}").detach().float())
                    for k in range(self.layers)
                ]
            )
            self.b_hh = nn.ParameterList(
                [
                    nn.Parameter(getattr(rnn, f"bias_hh_l{k}").detach().float())
                    for k in range(self.layers)
                ]
            )
            self.head = nn.Linear(config.hidden_size, model.vocab_size)
            self.head.load_state_dict(model.head.state_dict())
        self.requires_grad_(False)

    def forward(self, ids: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.embedding(ids, self.table)  # layer 0's input product, biases in
        hs: list[torch.Tensor] = []
        cs: list[torch.Tensor] = []
        for k in range(self.layers):
            gi = x if k == 0 else F.linear(x, self.w_ih[k - 1], self.b_ih[k - 1])
            gh = F.linear(state[0, k], self.w_hh[k], self.b_hh[k])
            step = cell_step(self.cell, gi, gh, state[0, k], state[1, k] if self.lstm else None)
            hs.append(step.h)
            if step.c is not None:
                cs.append(step.c)
            x = step.h
        parts = [torch.stack(hs)] + ([torch.stack(cs)] if cs else [])
        return self.head(x), torch.stack(parts)


def metadata(
    model: CharRNN, vocab: Vocab, provenance: dict[str, Any] | None = None
) -> dict[str, str]:
    """What a program needs beside the graph (the vocabulary, the state's shape, the
    start) and where it came from (charrnn's version, the run, its step)."""
    config = model.config
    facts: dict[str, Any] = {
        "symbols": list(vocab.symbols),
        "byte_level": vocab.byte_level,
        "cell": config.cell,
        "layers": config.num_layers,
        "hidden": config.hidden_size,
        "state_parts": config.state_parts,
        "start_id": vocab.start_id,
    }
    return {"charrnn": json.dumps({**facts, **(provenance or {})})}


def provenance(run: Path, step: int) -> dict[str, Any]:
    """Which charrnn wrote the file, from which run and step."""
    return {"version": __version__, "run": str(Path(run).resolve()), "step": step}


def _example(model: CharRNN) -> tuple[torch.Tensor, torch.Tensor]:
    parts = model.config.state_parts
    shape = (parts, model.config.num_layers, 2, model.config.hidden_size)
    return torch.zeros(2, dtype=torch.long), torch.zeros(shape)


def to_onnx(model: CharRNN, vocab: Vocab, provenance: dict[str, Any] | None = None) -> bytes:
    """The one-step graph as an ONNX model (needs the ``onnx`` extra)."""
    try:
        import onnx  # noqa: F401  (the exporter needs it; say so before it fails)
        import onnxscript  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs the onnx extra: pip install 'charrnn[onnx]'") from None
    step = OneStep(model.cpu()).eval()
    batch = torch.export.Dim("batch")
    with _quiet_exporter():
        program = torch.onnx.export(
            step,
            _example(model),
            input_names=["ids", "state"],
            output_names=["logits", "state_out"],
            dynamic_shapes={"ids": {0: batch}, "state": {2: batch}},
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    assert program is not None
    graph = program.model_proto
    for key, value in metadata(model, vocab, provenance).items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    return bytes(graph.SerializeToString())


def to_torchscript(model: CharRNN, vocab: Vocab, provenance: dict[str, Any] | None = None) -> bytes:
    """The one-step module as TorchScript (``torch.jit.load`` runs it without charrnn)."""
    step = OneStep(model.cpu()).eval()
    buffer = io.BytesIO()
    extra: dict[str, Any] = {f"{k}.json": v for k, v in metadata(model, vocab, provenance).items()}
    with _quiet_exporter():  # deprecated in favour of torch.export, still what C++ loads
        traced = torch.jit.trace(step, _example(model))
        torch.jit.save(traced, buffer, _extra_files=extra)
    return buffer.getvalue()


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporters' deprecation notes and log lines are not the user's business."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)
