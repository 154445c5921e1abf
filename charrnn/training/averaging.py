"""A running average of the weights, as a second candidate for the model a run keeps.

Averaging the weights along the last part of training smooths out the noise of the
last steps (AWD-LSTM's averaged SGD; Polyak averaging). The average here is an
exponential one whose span grows with the run: after ``t`` updates the weight of
update ``t`` is ``1 - beta_t`` with ``beta_t = (1 - 1/t) ** (gamma + 1)`` (the
"power" average of Karras et al., 2024, EDM2), so it always covers about the same
*share* of the steps so far (``relative_width`` ~ 0.1 for ``gamma`` 6.94) instead of a
fixed number of steps: a 75-second run and a 30-minute run average alike, on any
machine, with no step count to tune.

The average is kept in fp32 on the model's device and updated with one fused
``lerp`` over all tensors per step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from charrnn.model.network import CharRNN

AVERAGE_EVERY = 4  # steps between updates: the span is a share of updates, so any k


def gamma_for_width(relative_width: float) -> float:
    """The power ``gamma`` whose average spans ``relative_width`` of the steps so far
    (the profile's standard deviation over its length; EDM2, eq. 3)."""
    # sigma_rel = sqrt((g + 1) / ((g + 2)^2 (g + 3))); solved for g by bisection.
    low, high = 0.0, 1e4
    for _ in range(200):
        mid = (low + high) / 2
        width = ((mid + 1) / ((mid + 2) ** 2 * (mid + 3))) ** 0.5
        low, high = (mid, high) if width > relative_width else (low, mid)
    return (low + high) / 2


class WeightAverage:
    """A power-law exponential moving average of a model's floating-point weights."""

    def __init__(self, model: CharRNN, relative_width: float = 0.1) -> None:
        self.gamma = gamma_for_width(relative_width)
        self.names = [n for n, v in model.state_dict().items() if v.is_floating_point()]
        params = model.state_dict()
        self.tensors = [params[n].detach().float().clone() for n in self.names]
        self.updates = 0

    def update(self, model: CharRNN) -> None:
        """Fold the model's weights in (after an optimizer step)."""
        self.updates += 1
        t = self.updates
        keep = (1.0 - 1.0 / t) ** (self.gamma + 1)  # 0 at the first: the weights then
        params = model.state_dict()
        current = [params[n].detach().float() for n in self.names]
        torch._foreach_lerp_(self.tensors, current, 1.0 - keep)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged weights, as the model's ``state_dict`` keys (on the CPU)."""
        return {n: t.detach().cpu().clone() for n, t in zip(self.names, self.tensors, strict=True)}

    def load(self, averaged: dict[str, torch.Tensor], updates: int) -> None:
        """Put back an average saved with :meth:`state_dict` (a resumed run)."""
        if set(averaged) != set(self.names):
            raise ValueError("the averaged weights do not match the model's")
        for name, tensor in zip(self.names, self.tensors, strict=True):
            saved = averaged[name]
            if saved.shape != tensor.shape or not saved.is_floating_point():
                raise ValueError(f"averaged weight {name!r} has the wrong shape or type")
            tensor.copy_(saved)
        self.updates = updates

    @contextmanager
    def swapped_in(self, model: CharRNN) -> Iterator[None]:
        """The model holds the averaged weights inside the block, its own after."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        try:
            model.load_state_dict(self.state_dict() | _rest(own, self.names), strict=True)
            yield
        finally:
            model.load_state_dict(own)


def _rest(state: dict[str, torch.Tensor], names: list[str]) -> dict[str, torch.Tensor]:
    """The entries of ``state`` the average does not hold (integer buffers)."""
    held = set(names)
    return {k: v for k, v in state.items() if k not in held}
