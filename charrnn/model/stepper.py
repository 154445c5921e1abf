"""One character at a time, fast: the sampling loop's view of a :class:`CharRNN`.

Sampling runs the model one step per character, so what counts is the cost of a
single step at a small batch. ``nn.LSTM`` pays about a millisecond of set-up per
call; ``torch.lstm_cell`` avoids that but does two products per layer through MKL,
which is slow on AMD CPUs. A :class:`Stepper` prepares the weights once:

- the first layer's input product is a table lookup: every character's input
  projection, ``embedding @ W_ih^T + biases``, is computed in advance (V rows);
- on higher layers an LSTM or RNN concatenates ``[x, h]`` and does one product
  with ``[W_ih | W_hh]``, with both biases summed;
- the weights are packed once into oneDNN's blocked layout for this batch size
  (``StepProduct``), optionally as bfloat16 (``precision="bf16"``: half the bytes
  to read per character, on CPUs with bf16 instructions);
- the cell's element-wise work is a handful of whole-tensor kernels.

It computes what :meth:`CharRNN.forward` computes (tests compare them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from charrnn.hardware import sampling_dtype
from charrnn.model.network import CharRNN, State
from charrnn.model.recurrent import StepProduct


def _as(tensor: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if tensor is None else tensor.to(dtype)


class Stepper:
    """Advance ``model`` one character at a time from ``state`` (tuple of (N, B, H)).

    Call it with the current ids (B,) to get the next logits (B, V); :attr:`state`
    is the state after the last call.
    """

    def __init__(self, model: CharRNN, state: State, precision: str = "fp32") -> None:
        dtype = sampling_dtype(precision, model.head.weight.device)
        config = model.config
        self.cell: str = config.cell
        self.hidden: int = config.hidden_size
        self.layers: int = config.num_layers
        rnn = model.rnn
        head = model.head
        batch = state[0].shape[1]
        # Copies, contiguous even where ``state`` is one row expanded to many.
        self.h = [state[0][k].float().contiguous().clone() for k in range(self.layers)]
        self.c = [
            state[1][k].float().contiguous().clone() for k in range(self.layers)
        ] if len(state) > 1 else []  # fmt: skip

        def weight(name: str) -> torch.Tensor:
            return getattr(rnn, name).detach().float()

        with torch.no_grad():
            embedding = model.embedding
            if embedding is not None:
                inputs = embedding.weight.detach().float()  # (V, E)
                table = inputs @ weight("weight_ih_l0").t()
            else:  # one-hot inputs: the projection of symbol v is column v of W_ih
                table = weight("weight_ih_l0").t().clone()
            table += weight("bias_ih_l0")
            gru = self.cell == "gru"
            if not gru:  # the recurrent bias is not gated: fold it in too
                table += weight("bias_hh_l0")
            self.table = table  # (V, G*H)
            # Per layer: the recurrent product (layer 0) or the fused [x, h] product.
            self.products: list[StepProduct] = []
            self.biases: list[torch.Tensor | None] = []
            self.input_products: list[StepProduct | None] = []  # GRU layers > 0 only
            self.input_biases: list[torch.Tensor | None] = []
            for k in range(self.layers):
                w_hh, b_hh = weight(f"weight_hh_l{k}"), weight(f"bias_hh_l{k}")
                if k == 0:
                    self.products.append(StepProduct(w_hh, batch, dtype))
                    self.biases.append(b_hh if gru else None)
                    self.input_products.append(None)
                    self.input_biases.append(None)
                    continue
                w_ih, b_ih = weight(f"weight_ih_l{k}"), weight(f"bias_ih_l{k}")
                if gru:  # r gates the recurrent part of n: keep the two products apart
                    self.products.append(StepProduct(w_hh, batch, dtype))
                    self.biases.append(b_hh)
                    self.input_products.append(StepProduct(w_ih, batch, dtype))
                    self.input_biases.append(b_ih)
                else:
                    fused = torch.cat([w_ih, w_hh], dim=1)
                    self.products.append(StepProduct(fused, batch, dtype))
                    self.biases.append(b_ih + b_hh)
                    self.input_products.append(None)
                    self.input_biases.append(None)
            self.head = StepProduct(head.weight.detach().float(), batch, dtype)
            self.head_bias = head.bias.detach().float()
            # Biases in each product's own dtype, converted once rather than per call.
            product_dtype = dtype or torch.float32
            self.biases = [_as(b, product_dtype) for b in self.biases]
            self.input_biases = [_as(b, product_dtype) for b in self.input_biases]
            self.head_bias = self.head_bias.to(product_dtype)

    @property
    def state(self) -> State:
        hs = torch.stack(self.h)
        return (hs, torch.stack(self.c)) if self.c else (hs,)

    @property
    def rows(self) -> int:
        """Rows stepped together now (B)."""
        return self.h[0].shape[0]

    def keep(self, rows: torch.Tensor | list[int]) -> None:
        """Continue row ``rows[i]``'s state in row i; rows not named are dropped (beam
        search keeps its best rows, the server drops finished jobs)."""
        index = torch.as_tensor(rows, dtype=torch.long, device=self.h[0].device)
        self.h = [h[index] for h in self.h]
        self.c = [c[index] for c in self.c]

    def add(self, state: State) -> None:
        """Append rows after the current ones, each starting from ``state`` (N, R, H)."""
        self.h = [torch.cat([h, state[0][k].float()]) for k, h in enumerate(self.h)]
        self.c = [torch.cat([c, state[1][k].float()]) for k, c in enumerate(self.c)]

    @torch.no_grad()
    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        """(B,) ids of the current characters -> (B, V) logits for the next."""
        x: torch.Tensor | None = None
        for k in range(self.layers):
            h = self.h[k]
            if k == 0:
                gi = F.embedding(ids, self.table)  # a row per id; cheaper than indexing
                gh = self.products[0](h, self.biases[0])
                gates = gh if self.cell == "gru" else gh.add_(gi)
            elif self.cell == "gru":
                assert x is not None
                gi = self.input_products[k](x, self.input_biases[k])  # type: ignore[misc]
                gh = self.products[k](h, self.biases[k])
                gates = gh
            else:
                assert x is not None
                gates = self.products[k](torch.cat([x, h], dim=1), self.biases[k])
            if self.cell == "lstm":
                x = self._lstm(gates, k)
            elif self.cell == "gru":
                x = self._gru(gi, gh, h)
            else:
                x = gates.tanh_()
            self.h[k] = x
        assert x is not None
        return self.head(x, self.head_bias)

    def _lstm(self, gates: torch.Tensor, k: int) -> torch.Tensor:
        size = self.hidden
        sig = torch.sigmoid(gates)  # i, f, (g), o: g's sigmoid is unused but costs less
        g = torch.tanh(gates[:, 2 * size : 3 * size])  # than a second slice and kernel
        c = torch.addcmul(sig[:, size : 2 * size] * self.c[k], sig[:, :size], g)
        self.c[k] = c
        return sig[:, 3 * size :] * torch.tanh(c)

    def _gru(self, gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        size = self.hidden
        rz = torch.sigmoid(gi[:, : 2 * size] + gh[:, : 2 * size])
        n = torch.tanh(torch.addcmul(gi[:, 2 * size :], rz[:, :size], gh[:, 2 * size :]))
        return torch.addcmul(n, rz[:, size:], h - n)
