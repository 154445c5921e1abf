from __future__ import annotations

import pytest
import torch

from charrnn.config import ModelConfig
from charrnn.model.network import CharRNN, detach_state
from charrnn.model.stepper import Stepper

B, T, V = 2, 3, 7


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("embed", [0, 5])
def test_forward_shapes_and_state(cell: str, embed: int) -> None:
    torch.manual_seed(0)
    model = CharRNN(V, ModelConfig(cell=cell, num_layers=2, hidden_size=11, embed_size=embed))
    x = torch.randint(0, V, (B, T))
    logits, state = model(x)
    assert logits.shape == (B, T, V)
    assert len(state) == (2 if cell == "lstm" else 1)
    assert all(s.shape == (2, B, 11) for s in state)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_single_step_matches_full_sequence_forward(cell: str) -> None:
    torch.manual_seed(1)
    model = CharRNN(V, ModelConfig(cell=cell, num_layers=3, hidden_size=13, embed_size=4)).eval()
    x = torch.randint(0, V, (B, 9))
    full, full_state = model(x)
    stepper = Stepper(model, model.initial_state(B))
    for t in range(x.shape[1]):
        logits = stepper(x[:, t])
        diff = (logits - full[:, t]).abs().max().item()
        assert diff < 1e-5, f"step {t}: max difference {diff}"
    for a, b in zip(stepper.state, full_state, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_state_carries_context_between_windows() -> None:
    torch.manual_seed(2)
    model = CharRNN(V, ModelConfig(cell="gru", num_layers=1, hidden_size=8, embed_size=4)).eval()
    x = torch.randint(0, V, (B, 10))
    whole, _ = model(x)
    first, state = model(x[:, :6])
    second, _ = model(x[:, 6:], state)
    assert torch.allclose(torch.cat([first, second], dim=1), whole, atol=1e-6)


def test_detached_state_stops_gradients() -> None:
    model = CharRNN(V, ModelConfig(cell="lstm", num_layers=1, hidden_size=8, embed_size=4))
    x = torch.randint(0, V, (B, 4))
    _, state = model(x)
    assert all(s.requires_grad for s in state)
    detached = detach_state(state)
    assert not any(s.requires_grad for s in detached)
    first, state = model(x)
    first.sum().backward()  # frees the first window's graph
    logits, _ = model(x, detach_state(state))
    logits.sum().backward()  # fine: the graph stops at the detached state
    with pytest.raises(RuntimeError, match="second time"):
        model(x, state)[0].sum().backward()  # the undetached state reaches into it


def test_one_hot_model_has_no_embedding() -> None:
    model = CharRNN(4, ModelConfig(cell="rnn", num_layers=1, hidden_size=3, embed_size=0))
    assert model.embedding is None
    # rnn: W_ih 3x4 + W_hh 3x3 + 2 biases of 3, head 4x3 + 4
    assert model.num_parameters == 12 + 9 + 6 + 12 + 4
