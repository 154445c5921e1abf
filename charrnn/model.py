"""CharRNN: character embedding -> recurrent stack (RNN | LSTM | GRU) -> linear.

Shapes use one letter per dimension: B batch, T time, E embedding, H hidden,
V vocabulary, N layers. The recurrent state is always a tuple of (N, B, H) tensors —
``(h,)`` for RNN and GRU, ``(h, c)`` for LSTM — so callers can detach, reset and
save it without caring which cell it is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from charrnn.config import ModelConfig
from charrnn.errors import ConfigError
from charrnn.recurrent import GRU, RNN

State = tuple[torch.Tensor, ...]

# nn.LSTM already runs oneDNN's fused kernels on CPU; the GRU and RNN get ours.
_RECURRENT: dict[str, Callable[..., nn.RNNBase]] = {"rnn": RNN, "lstm": nn.LSTM, "gru": GRU}


_GATES = {"rnn": 1, "gru": 3, "lstm": 4}
MAX_PARAMETERS = 2**31  # 8 GB of fp32 weights, before gradients and optimizer state


def count_parameters(cell: str, layers: int, hidden: int, embed: int, vocab: int) -> int:
    """Parameters of a :class:`CharRNN` without building it (checked against torch in tests)."""
    gates = _GATES[cell]
    inputs = embed or vocab
    # Per layer: W_ih (gates*H x in), W_hh (gates*H x H) and two biases (gates*H each).
    first = gates * hidden * (inputs + hidden + 2)
    rest = (layers - 1) * gates * hidden * (2 * hidden + 2)
    return (vocab * embed if embed else 0) + first + rest + hidden * vocab + vocab


class CharRNN(nn.Module):
    """A character-level language model.

    Args:
        vocab_size: V, the number of symbols.
        config: cell type, layers, hidden and embedding sizes, dropout.
    """

    def __init__(self, vocab_size: int, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size
        # embed_size 0: one-hot inputs, as in the lecture's [h, e, l, o] figure.
        self.embedding = nn.Embedding(vocab_size, config.embed_size) if config.embed_size else None
        input_size = config.embed_size or vocab_size
        self.rnn = _RECURRENT[config.cell](
            input_size,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, vocab_size)

    @property
    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, E) input vectors."""
        if self.embedding is not None:
            return self.embedding(x)
        return F.one_hot(x, self.vocab_size).to(self.head.weight.dtype)

    def initial_state(self, batch_size: int, device: torch.device | None = None) -> State:
        """Zero state for ``batch_size`` streams."""
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        device = device or self.head.weight.device
        zeros = [torch.zeros(shape, device=device) for _ in range(self._state_parts)]
        return tuple(zeros)

    @property
    def _state_parts(self) -> int:
        return 2 if self.config.cell == "lstm" else 1

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Run a window.

        Args:
            x: (B, T) int64 ids.
            state: from the previous window, or None for zeros.
        Returns:
            logits (B, T, V) and the state after the last time step.
        """
        inputs = self._inputs(x)  # (B, T, E)
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        packed = state if self.config.cell == "lstm" else state[0]
        out, new_state = self.rnn(inputs, packed)  # out: (B, T, H)
        logits = self.head(self.dropout(out))  # (B, T, V)
        parts = new_state if isinstance(new_state, tuple) else (new_state,)
        return logits, tuple(parts)


def new_model(vocab_size: int, config: ModelConfig, device: torch.device) -> CharRNN:
    """A new :class:`CharRNN` on ``device``; a ConfigError (not an allocation traceback)
    when it would be too large or does not fit."""
    m = config
    described = f"{m.cell} {m.num_layers}x{m.hidden_size} model"
    parameters = count_parameters(m.cell, m.num_layers, m.hidden_size, m.embed_size, vocab_size)
    if parameters > MAX_PARAMETERS:
        raise ConfigError(
            f"a {described} would have {parameters:,} parameters; charrnn builds at "
            f"most {MAX_PARAMETERS:,}"
        )
    try:
        return CharRNN(vocab_size, config).to(device)
    except (RuntimeError, MemoryError, OverflowError) as exc:
        detail = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"cannot build a {described} (embedding {m.embed_size}) on {device}: {detail}"
        ) from None


def detach_state(state: State) -> State:
    """Cut the graph at a window boundary: the values carry on, the gradients stop."""
    return tuple(s.detach() for s in state)
