"""The one draw: :func:`choose`, batched with per-row settings and per-row noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from charrnn.sampling.sampler import (
    NOISE_BLOCK,
    NoiseStream,
    RowSettings,
    SampleSettings,
    choose,
)

B, V = 6, 11  # distinct sizes: a transposed dimension fails

ROWS = [
    SampleSettings(temperature=0.0),
    SampleSettings(temperature=0.7),
    SampleSettings(temperature=1.0, top_k=3),
    SampleSettings(temperature=1.0, top_p=0.6),
    SampleSettings(temperature=1.3, top_k=5, top_p=0.8),
    SampleSettings(temperature=1e-39),
]


def test_a_batch_of_rows_draws_what_each_row_draws_alone() -> None:
    """Rows with their own settings and generators, drawn together, give each row what
    it gives drawn alone: one row's draw never depends on its neighbours."""
    torch.manual_seed(0)
    together = [NoiseStream(torch.Generator().manual_seed(100 + r), 1, V) for r in range(B)]
    alone = [NoiseStream(torch.Generator().manual_seed(100 + r), 1, V) for r in range(B)]
    settings = RowSettings.of([(s, 1) for s in ROWS], torch.device("cpu"))
    for _ in range(NOISE_BLOCK + 5):  # past a noise block's end
        logits = torch.randn(B, V) * 3
        noise = torch.cat([s.next() for s in together])
        batched = choose(logits, settings, noise)
        single = [int(choose(logits[r : r + 1], ROWS[r], alone[r])) for r in range(B)]
        assert batched.tolist() == single
    assert len(set(batched.tolist())) > 1  # not every row the same (a broadcast bug)


def test_a_generator_draws_what_torch_multinomial_draws() -> None:
    """``choose`` is ``torch.multinomial``'s draw of one sample, written out: the same
    generator state gives the same ids (so a seed means what it meant before)."""
    logits = torch.randn(4, V) * 2
    ours = torch.Generator().manual_seed(7)
    theirs = torch.Generator().manual_seed(7)
    for _ in range(50):
        got = choose(logits, SampleSettings(temperature=1.0), ours)
        want = torch.multinomial(logits.softmax(dim=-1), 1, generator=theirs).squeeze(-1)
        assert torch.equal(got, want)


def test_a_noise_block_is_the_same_sequence_as_one_draw_a_step() -> None:
    stream = NoiseStream(torch.Generator().manual_seed(3), 2, V)
    plain = torch.Generator().manual_seed(3)
    for _ in range(2 * NOISE_BLOCK + 1):
        want = torch.empty(2, V).exponential_(generator=plain)
        assert torch.equal(stream.next(), want)


def test_greedy_rows_draw_no_noise() -> None:
    generator = torch.Generator().manual_seed(5)
    before = generator.get_state()
    logits = torch.randn(3, V)
    ids = choose(logits, SampleSettings(temperature=0.0), generator)
    assert torch.equal(ids, logits.argmax(dim=-1))
    assert torch.equal(generator.get_state(), before)
    assert torch.equal(choose(logits, SampleSettings(temperature=0.0), None), ids)
    with pytest.raises(ValueError, match="needs noise"):
        choose(logits, SampleSettings(temperature=1.0), None)


def test_top_k_and_top_p_keep_only_their_characters_per_row() -> None:
    logits = torch.tensor([[5.0, 4.0, 3.0, -1.0, -2.0]] * 2)
    settings = RowSettings.of(
        [(SampleSettings(top_k=2), 1), (SampleSettings(top_p=0.5), 1)], torch.device("cpu")
    )
    generator = torch.Generator().manual_seed(0)
    drawn = [set(), set()]
    for _ in range(300):
        ids = choose(logits, settings, generator)
        drawn[0].add(int(ids[0]))
        drawn[1].add(int(ids[1]))
    assert drawn[0] == {0, 1}  # the two most likely
    assert drawn[1] == {0}  # the first already holds over half the probability


def test_drawing_until_an_end_leaves_no_noise_unused() -> None:
    """``draw_items`` calls ``draw_until`` batch after batch with one generator: each
    call must take exactly one (rows, V) draw a step, so the next goes on from there
    (and a seed's items are what they were when each step drew from the generator)."""
    from charrnn.config import ModelConfig
    from charrnn.model.network import CharRNN
    from charrnn.sampling.endings import Ending, draw_until

    torch.manual_seed(0)
    model = CharRNN(V, ModelConfig(cell="gru", num_layers=1, hidden_size=8, embed_size=4))
    generator = torch.Generator().manual_seed(11)
    steps, rows = 7, 3
    draw_until(model, np.array([1, 2]), rows, Ending(max_chars=steps), SampleSettings(), generator)
    reference = torch.Generator().manual_seed(11)
    for _ in range(steps):
        torch.empty(rows, V).exponential_(generator=reference)
    assert torch.equal(generator.get_state(), reference.get_state())
