"""Round four of hostile use (issue #34): nothing skipped in silence, `sample`'s
terminal output, and messages that say the true reason."""

from __future__ import annotations

import pytest
import torch

from charrnn.checkpoint import check_optimizer_state


def _stepped_adamw() -> tuple[torch.optim.Optimizer, dict]:
    layer = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(layer.parameters())
    layer(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    return optimizer, optimizer.state_dict()


def test_a_nan_optimizer_moment_is_called_not_finite_not_a_shape() -> None:
    optimizer, saved = _stepped_adamw()
    saved["state"][0]["exp_avg_sq"] = torch.full((3, 4), float("nan"))
    with pytest.raises(ValueError) as caught:
        check_optimizer_state(optimizer, saved)
    assert str(caught.value) == "its optimizer state 'exp_avg_sq' is not finite"


def test_a_misshapen_optimizer_moment_is_called_by_its_shape_alone() -> None:
    optimizer, saved = _stepped_adamw()
    saved["state"][0]["exp_avg"] = torch.zeros(4096, 1)
    with pytest.raises(ValueError) as caught:
        check_optimizer_state(optimizer, saved)
    assert str(caught.value) == "its optimizer state 'exp_avg' is (4096, 1), not (3, 4)"
