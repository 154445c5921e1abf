"""The one way a known text runs through the model: in chunks, the state carried.

Priming a sample, scoring a text and the server's prefill all run a prefix whose
characters are given (not drawn) through :meth:`CharRNN.forward`, a chunk at a
time. Memory stays constant for any length (in one call, a 4 MB prefix took 2.9 GB
of activations and logits), and a chunk is also the unit the server interleaves
with its decoding steps. Every such caller goes through :func:`run_chunk`, most of
them through :func:`run_prefix`; call both under ``torch.inference_mode()``.

::

    ids  a b c d e f g h i j        chunk = 4
         └─────┘ └─────┘ └─┘
         chunk 1 chunk 2 chunk 3     state carried from each chunk to the next
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from charrnn.model.network import CharRNN, State

PREFIX_CHUNK = 4096  # characters a row through the model per call


def run_chunk(
    model: CharRNN, ids: np.ndarray | torch.Tensor, state: State | None
) -> tuple[torch.Tensor, State]:
    """Run ``ids`` (R, T) after ``state`` (None: zeros): the logits after every
    position (R, T, V), float32, and the state after the last one."""
    device = model.head.weight.device
    x = ids.to(device) if isinstance(ids, torch.Tensor) else torch.as_tensor(ids, device=device)
    logits, state = model(x.long(), state)
    return logits.float(), state


def run_prefix(
    model: CharRNN,
    ids: np.ndarray,
    *,
    rows: int = 1,
    state: State | None = None,
    chunk: int = PREFIX_CHUNK,
) -> Iterator[tuple[int, torch.Tensor, State]]:
    """Run ``ids`` (L,) through the model for ``rows`` identical rows, ``chunk``
    characters at a time after ``state``; yields ``(start, logits, state)`` per chunk:
    where it starts in ``ids``, the logits (rows, T, V) after each of its characters
    and the state after its last."""
    whole = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    for start in range(0, len(whole), chunk):
        piece = whole[start : start + chunk].unsqueeze(0).expand(rows, -1)  # (rows, <=chunk)
        logits, state = run_chunk(model, piece, state)
        yield start, logits, state


def prefix_state(
    model: CharRNN, ids: np.ndarray, rows: int = 1, state: State | None = None
) -> tuple[torch.Tensor, State]:
    """The logits for the character after ``ids`` (rows, V) and the state there."""
    last: tuple[torch.Tensor, State] | None = None
    for _, logits, after in run_prefix(model, ids, rows=rows, state=state):
        last = logits[:, -1], after
    assert last is not None, "a prefix has at least one character"
    return last
