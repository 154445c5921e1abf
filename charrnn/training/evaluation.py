"""How well a model does at a point of training: the validation loss and a sample."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.config import Docs
from charrnn.data.items import ItemValidation
from charrnn.data.streams import ValidationWindows
from charrnn.data.vocab import Vocab
from charrnn.model.network import CharRNN, State
from charrnn.sampling.endings import draw_items
from charrnn.sampling.sampler import SampleSettings, generate


@torch.no_grad()
def validation_loss(
    model: CharRNN, windows: ValidationWindows | ItemValidation, device: torch.device
) -> float:
    """Mean loss in nats per character over the whole validation text, state carried
    from window to window unless they are separate items (the model is left in eval
    mode); padded targets are skipped."""
    model.eval()
    state: State | None = None
    total = torch.zeros((), dtype=torch.float64, device=device)
    for x, y in windows:
        x, y = x.to(device), y.to(device)
        if not windows.carries_state:
            state = None
        logits, state = model(x, state)  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum")
        total += loss.double()
    return float(total.item()) / windows.num_targets


def progress_sample(
    model: CharRNN, vocab: Vocab, length: int, *, seed: int, docs: str = "none"
) -> str:
    """A short sample (temperature 0.8) to show how the model writes; "" for length 0.

    A ``--docs`` run shows a few whole items (each from a zero state, as ``sample``
    draws them), up to ``length`` characters each.
    """
    if length == 0:
        return ""
    settings = SampleSettings(temperature=0.8)
    newline = vocab.index_of("\n")
    if not Docs(docs).on or newline is None:
        return generate(model, vocab, length=length, settings=settings, seed=seed)[0]
    generator = torch.Generator(device=model.head.weight.device).manual_seed(seed)
    count = 2 if Docs(docs) is Docs.blank_lines else 5  # paragraphs are long
    no_prime = np.zeros(0, dtype=np.int64)
    items, _ = draw_items(
        model, newline, no_prime, count, Docs(docs).end_length, length, settings, generator,
        min_chars=1,
    )  # fmt: skip
    return Docs(docs).separator.join(vocab.decode(i) for i in items)
