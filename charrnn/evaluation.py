"""How well a model does at a point of training: the validation loss and a sample."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from charrnn.data import ValidationWindows
from charrnn.items import ItemValidation
from charrnn.model import CharRNN, State
from charrnn.sample import SampleSettings, generate
from charrnn.vocab import Vocab


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


def progress_sample(model: CharRNN, vocab: Vocab, length: int, *, seed: int) -> str:
    """A short sample (temperature 0.8) to show how the model writes; "" for length 0."""
    if length == 0:
        return ""
    return generate(
        model, vocab, length=length, settings=SampleSettings(temperature=0.8), seed=seed
    )[0]
