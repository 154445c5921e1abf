"""CharRNN: character embedding -> recurrent stack (RNN | LSTM | GRU) -> linear.

Shapes use one letter per dimension: B batch, T time, E embedding, H hidden,
V vocabulary, N layers. The recurrent state is always a tuple of (N, B, H) tensors —
``(h,)`` for RNN and GRU, ``(h, c)`` for LSTM — so callers can detach, reset and
save it without caring which cell it is.

Regularisation is AWD-LSTM's (Merity et al. 2017), chosen because none of it needs a
per-step Python cell — each layer still runs one fused oneDNN/cuDNN kernel:

- weight drop: DropConnect on each layer's recurrent matrix, one mask per batch;
- locked (variational) dropout: one mask per sequence, the same at every time step,
  on the inputs (``input_dropout``), between layers and before the head (``dropout``);
- embedding dropout: whole characters dropped from a batch (``embed_dropout``).

In evaluation, and in training with all of them at 0, the model is one call of the
stock module.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from charrnn.config import ModelConfig
from charrnn.errors import ConfigError
from charrnn.model.recurrent import GRU, RNN, run_layer

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


def parameter_shapes(
    cell: str, layers: int, hidden: int, embed: int, vocab: int
) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor in a :class:`CharRNN`'s ``state_dict``,
    without building it (a stored model's weights are checked against it)."""
    rows = _GATES[cell] * hidden
    shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (vocab, embed)} if embed else {}
    for k in range(layers):
        inputs = (embed or vocab) if k == 0 else hidden
        shapes |= {
            f"rnn.weight_ih_l{k}": (rows, inputs),
            f"rnn.weight_hh_l{k}": (rows, hidden),
            f"rnn.bias_ih_l{k}": (rows,),
            f"rnn.bias_hh_l{k}": (rows,),
        }
    return shapes | {"head.weight": (vocab, hidden), "head.bias": (vocab,)}


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
            batch_first=True,
        )
        self.head = nn.Linear(config.hidden_size, vocab_size)
        if config.cell == "lstm" and config.forget_bias:
            self._set_forget_bias(config.forget_bias)

    def _set_forget_bias(self, value: float) -> None:
        """Start every LSTM forget gate at ``value`` (gate order i, f, g, o): the cell
        remembers by default until it learns to forget (Jozefowicz et al. 2015). The
        gate sees the sum of the two bias vectors, so one holds it and the other 0.
        Off by default: on Tiny Shakespeare a bias of 1 cost 0.02-0.04 nats at 75 s
        (1.505 vs 1.482, 1.523 vs 1.485 in two pairs of runs)."""
        size = self.config.hidden_size
        with torch.no_grad():
            for layer in range(self.config.num_layers):
                getattr(self.rnn, f"bias_ih_l{layer}")[size : 2 * size].fill_(value)
                getattr(self.rnn, f"bias_hh_l{layer}")[size : 2 * size].zero_()

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
        dtype = self.head.weight.dtype
        parts = self.config.state_parts
        zeros = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(parts)]
        return tuple(zeros)

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
        if self.training and self.regularised:
            return self._regularised_forward(x, inputs, state)
        packed = state if self.config.cell == "lstm" else state[0]
        out, new_state = self.rnn(inputs, packed)  # out: (B, T, H)
        logits = self.head(out)  # (B, T, V)
        parts = new_state if isinstance(new_state, tuple) else (new_state,)
        return logits, tuple(parts)

    @property
    def regularised(self) -> bool:
        """Whether training draws any dropout or weight-drop masks."""
        m = self.config
        return bool(m.dropout or m.input_dropout or m.embed_dropout or m.weight_drop)

    def _regularised_forward(
        self, x: torch.Tensor, inputs: torch.Tensor, state: State
    ) -> tuple[torch.Tensor, State]:
        """The training forward with masks: layer by layer, each one fused kernel."""
        m = self.config
        if m.embed_dropout:
            # Drop whole characters: one keep/scale per symbol, shared by the batch.
            keep = inputs.new_empty(self.vocab_size).bernoulli_(1 - m.embed_dropout)
            inputs = inputs * (keep / (1 - m.embed_dropout))[x].unsqueeze(-1)
        layer_in = locked_dropout(inputs, m.input_dropout)
        finals: list[State] = []
        for layer in range(m.num_layers):
            w_hh = getattr(self.rnn, f"weight_hh_l{layer}")
            if m.weight_drop:
                w_hh = F.dropout(w_hh, m.weight_drop, training=True)
            layer_state = tuple(s[layer : layer + 1] for s in state)
            out, final = run_layer(self.rnn, layer, layer_in, layer_state, w_hh)
            finals.append(final)
            layer_in = locked_dropout(out, m.dropout)
        new_state = tuple(torch.cat(parts) for parts in zip(*finals, strict=True))
        return self.head(layer_in), new_state


def locked_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Dropout with one mask per sequence, the same at every time step: (B, T, D) in and
    out. A unit dropped from a sequence stays dropped, so the recurrence cannot route
    around the noise as it can with a fresh mask per step (Gal & Ghahramani 2016)."""
    if not p:
        return x
    mask = x.new_empty(x.shape[0], 1, x.shape[2]).bernoulli_(1 - p)
    return x * (mask / (1 - p))


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
