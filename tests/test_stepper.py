"""The sampling stepper computes what the full forward pass computes."""

from __future__ import annotations

import pytest
import torch

from charrnn import hardware
from charrnn.config import ModelConfig
from charrnn.data.vocab import Vocab
from charrnn.errors import ConfigError
from charrnn.hardware import bf16_supported
from charrnn.model.network import CharRNN
from charrnn.model.stepper import Stepper
from charrnn.sampling.sampler import generate


def _model(cell: str, hidden: int, embed: int) -> CharRNN:
    torch.manual_seed(0)
    config = ModelConfig(cell=cell, num_layers=2, hidden_size=hidden, embed_size=embed)
    return CharRNN(11, config).eval()


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("hidden", "embed"), [(8, 0), (384, 16)])  # addmm and oneDNN paths
def test_stepper_matches_forward(cell: str, hidden: int, embed: int) -> None:
    model = _model(cell, hidden, embed)
    x = torch.randint(0, 11, (3, 7))
    with torch.no_grad():
        expected, expected_state = model(x)
        stepper = Stepper(model, model.initial_state(3))
        for t in range(7):
            logits = stepper(x[:, t])
            torch.testing.assert_close(logits, expected[:, t], atol=2e-4, rtol=2e-4)
    for got, want in zip(stepper.state, expected_state, strict=True):
        torch.testing.assert_close(got, want, atol=2e-4, rtol=2e-4)


@pytest.mark.skipif(not bf16_supported(torch.device("cpu")), reason="no CPU bf16 support")
def test_bf16_stepper_stays_close_to_fp32() -> None:
    model = _model("lstm", 384, 16)
    x = torch.randint(0, 11, (2, 20))
    with torch.no_grad():
        expected, _ = model(x)
        stepper = Stepper(model, model.initial_state(2), precision="bf16")
        got = torch.stack([stepper(x[:, t]) for t in range(20)], dim=1)
    assert (got - expected).abs().max() < 0.05 * expected.abs().max()


def test_bf16_sampling_without_support_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware, "bf16_supported", lambda device: False)  # the one check
    model = _model("gru", 8, 4)
    vocab = Vocab.from_text("abcdefghij\n")
    with pytest.raises(ConfigError, match="no bf16 support"):
        generate(model, vocab, length=5, precision="bf16")
    with pytest.raises(ConfigError, match="unknown precision"):
        generate(model, vocab, length=5, precision="fp8")
