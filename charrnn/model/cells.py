"""The three cells' equations written out, one time step, in PyTorch's gate order.

``nn.LSTM``/``nn.GRU``/``nn.RNN`` run these inside fused kernels that expose only
the hidden state. Written out, the same step can be exported (:mod:`charrnn.sharing.graph`)
and looked inside (:mod:`charrnn.inspection.measures`: the cell state and every gate). Tests
compare both against the fused modules.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

GATES = {"lstm": ("input", "forget", "output"), "gru": ("reset", "update"), "rnn": ()}


class Step(NamedTuple):
    h: torch.Tensor  # (B, H)
    c: torch.Tensor | None  # LSTM only
    gates: tuple[torch.Tensor, ...]  # the sigmoid gates named by GATES[cell], each (B, H)


def cell_step(
    cell: str, gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None
) -> Step:
    """One step from the input product ``gi = W_ih x + b_ih`` and the recurrent product
    ``gh = W_hh h + b_hh``."""
    if cell == "lstm":
        assert c is not None
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
        c = f * c + i * torch.tanh(g)
        return Step(o * torch.tanh(c), c, (i, f, o))
    if cell == "gru":
        ir, iz, in_ = gi.chunk(3, dim=-1)
        hr, hz, hn = gh.chunk(3, dim=-1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        return Step((1 - z) * torch.tanh(in_ + r * hn) + z * h, None, (r, z))
    return Step(torch.tanh(gi + gh), None, ())
