"""The numbers behind ``charrnn inspect``: the written-out cells agree with the fused
modules, surprisal is the per-character loss, gate fractions are fractions, feature
units are found, and gradients vanish faster through a vanilla RNN than an LSTM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from charrnn.config import ModelConfig
from charrnn.data.generators import generate
from charrnn.data.vocab import Vocab
from charrnn.inspection.measures import (
    MIN_CORRELATION_CHARS,
    correlations,
    feature_table,
    gradient_flow,
    saturation,
    trace,
)
from charrnn.model.network import CharRNN

TEXT = 'def f(x):\n    return "a(b)" + x\n\nclass A:\n    pass\n' * 4  # > 200: correlated


@pytest.mark.parametrize(("cell", "embed"), [("lstm", 6), ("gru", 6), ("rnn", 0)])
def test_trace_matches_the_fused_model_and_surprisal_is_the_loss(cell: str, embed: int) -> None:
    vocab = Vocab.from_text(TEXT)
    torch.manual_seed(0)
    model = CharRNN(
        len(vocab), ModelConfig(cell=cell, num_layers=2, hidden_size=10, embed_size=embed)
    )
    found = trace(model, vocab, TEXT)
    ids = np.concatenate([[vocab.start_id], vocab.encode(TEXT)])
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(ids[:-1]).long()[None])
        out, _ = model.rnn(model._inputs(torch.from_numpy(ids).long()[None]), None)
    loss = F.cross_entropy(logits[0], torch.from_numpy(ids[1:]).long(), reduction="none")
    assert np.allclose(found.surprisal, loss.numpy(), atol=1e-5)
    assert np.allclose(found.hidden[-1], out[0, 1:].numpy(), atol=1e-5)
    assert found.top_probs.shape == (len(TEXT), 5)
    assert (np.diff(found.top_probs, axis=1) <= 0).all()  # most likely first
    for layer in saturation(found):
        for left, right in layer.values():
            assert ((left >= 0) & (left <= 1) & (right >= 0) & (right <= 1)).all()
            assert (left + right <= 1).all()
    assert len(found.cell) == (2 if cell == "lstm" else 0)


def test_features_and_the_units_that_follow_them() -> None:
    values = feature_table('a "b c" (d [e])\n  f')
    assert values["inside quotes"][:8].tolist() == [0, 0, 1, 1, 1, 1, 0, 0]
    assert values["inside brackets"][8:15].tolist() == [1, 1, 1, 1, 1, 1, 0]
    assert values["indentation"][-1] == 2 and values["position in line"][-1] == 3
    vocab = Vocab.from_text(TEXT)
    torch.manual_seed(0)
    model = CharRNN(len(vocab), ModelConfig(cell="lstm", num_layers=1, hidden_size=8))
    found = trace(model, vocab, TEXT)
    # plant a unit that is exactly "position in line": it must be found with r = 1
    found.hidden[0][:, 3] = feature_table(TEXT)["position in line"]
    best = max(
        (m for m in correlations(found) if m.feature == "position in line"), key=lambda m: abs(m.r)
    )
    assert (best.layer, best.state, best.unit) == (0, "hidden", 3)
    assert best.r == pytest.approx(1.0)


def test_a_text_too_short_to_correlate_gets_no_findings_and_says_so() -> None:
    # An untrained model finds |r| near 0.9 on 30 characters: chance, not a finding.
    short = TEXT[:30]
    vocab = Vocab.from_text(TEXT)
    torch.manual_seed(0)
    model = CharRNN(len(vocab), ModelConfig(cell="lstm", num_layers=1, hidden_size=64))
    assert correlations(trace(model, vocab, short)) == []
    assert correlations(trace(model, vocab, TEXT[:MIN_CORRELATION_CHARS]))  # long enough


def _trained(cell: str, text: str, vocab: Vocab, steps: int = 150) -> CharRNN:
    torch.manual_seed(0)
    model = CharRNN(len(vocab), ModelConfig(cell=cell, num_layers=1, hidden_size=32, embed_size=8))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    ids = torch.from_numpy(vocab.encode(text).astype(np.int64))
    rng = np.random.default_rng(0)
    for _ in range(steps):
        starts = rng.integers(0, len(ids) - 65, 16)
        batch = torch.stack([ids[s : s + 65] for s in starts])
        logits, _ = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, len(vocab)), batch[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def test_gradients_vanish_faster_through_a_vanilla_rnn_than_an_lstm() -> None:
    text = generate("recall", size=20_000, seed=0).text
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    reach = {}
    for cell in ("rnn", "lstm"):
        flow = gradient_flow(_trained(cell, text, vocab), ids, max_lag=60, positions=32)
        assert flow.shape == (61,) and (flow >= 0).all()
        reach[cell] = flow[40] / flow[0]
    assert reach["rnn"] < reach["lstm"] / 10, reach
