"""What shaping a sample costs: ``--novel`` (a span index lookup per character for
every possible next character) and ``--beam`` beside plain drawing, on a 2x512 LSTM.

Each is timed beside plain drawing in the same process, repeats interleaved
(:func:`benchmarks.speed.paired`), and reported as characters per second and a ratio.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from benchmarks.speed import EMBED, VOCAB, paired
from charrnn.config import ModelConfig
from charrnn.model.network import CharRNN
from charrnn.sampling.beam import beam_search
from charrnn.sampling.endings import Ending, draw_until
from charrnn.sampling.novelty import NgramIndex
from charrnn.sampling.sampler import SampleSettings

LENGTH = 200  # characters per sample
INDEX_CHARS = 1_000_000  # the size of Tiny Shakespeare's training text


def shaping_speed(repeats: int) -> list[dict[str, Any]]:
    """Rows: plain drawing vs --novel 20 (batch 1 and 64), and vs --beam 5."""
    torch.manual_seed(0)
    config = ModelConfig(cell="lstm", num_layers=2, hidden_size=512, embed_size=EMBED)
    model = CharRNN(VOCAB, config).eval()
    # A text with the statistics of nothing in particular: the lookups cost the same.
    text = np.random.default_rng(0).integers(0, VOCAB, INDEX_CHARS)
    index = NgramIndex.build(text, 20)
    prime = np.array([0])
    ending = Ending(LENGTH)
    settings = SampleSettings()
    rows = []

    def drawer(batch: int, novel: NgramIndex | None) -> Callable[[], None]:
        generator = torch.Generator().manual_seed(0)

        def draw() -> None:
            draw_until(model, prime, batch, ending, settings, generator, novel=novel)

        return draw

    for batch in (1, 64):
        t_plain, t_novel, ratio = paired(drawer(batch, None), drawer(batch, index), repeats, 1)
        rows.append(_row(f"--novel 20, batch {batch}", batch, t_plain, t_novel, ratio))

    def beam() -> None:
        beam_search(model, prime, 5, ending)

    t_plain, t_beam, ratio = paired(drawer(1, None), beam, repeats, 1)
    rows.append(_row("--beam 5 (one result)", 1, t_plain, t_beam, ratio))
    return rows


def _row(what: str, batch: int, t_plain: float, t_shaped: float, ratio: float) -> dict[str, Any]:
    return {
        "what": what,
        "plain_chars_per_s": round(batch * LENGTH / t_plain),
        "shaped_chars_per_s": round(batch * LENGTH / t_shaped),
        "ratio": round(ratio, 2),
    }
