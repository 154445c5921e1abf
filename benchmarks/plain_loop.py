"""The reference charrnn must beat: a plain PyTorch char-LSTM loop, no charrnn code.

What a person writes in an afternoon (issue 13's baseline): embedding 64 -> 2-layer
``nn.LSTM`` -> linear, random windows of the text, AdamW with a cosine schedule over
a wall-clock budget, no dropout, and the last ``val_frac`` of the text held out and
scored once at the end, in full, state carried.

    python -m benchmarks.plain_loop FILE --time 300 --hidden 512 --batch 16
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class Model(nn.Module):
    def __init__(self, vocab: int, hidden: int, layers: int = 2, embed: int = 64) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor, state: object = None) -> tuple[torch.Tensor, object]:
        out, state = self.lstm(self.embed(x), state)
        return self.head(out), state


@torch.no_grad()
def validation_loss(model: Model, ids: torch.Tensor, batch: int, seq: int) -> float:
    """Mean loss over the whole held-out text: ``batch`` streams, state carried."""
    model.eval()
    per_stream = (len(ids) - 1) // batch
    x_all = ids[: per_stream * batch].view(batch, per_stream)
    y_all = ids[1 : per_stream * batch + 1].view(batch, per_stream)
    total, state = 0.0, None
    for start in range(0, per_stream, seq):
        logits, state = model(x_all[:, start : start + seq], state)
        y = y_all[:, start : start + seq]
        total += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"
        ).item()
    model.train()
    return total / (per_stream * batch)


def train(
    text: str,
    seconds: float,
    hidden: int,
    batch: int,
    seq: int = 100,
    lr: float = 3e-3,
    val_frac: float = 0.1,
    seed: int = 1337,
) -> dict[str, float]:
    """Train for ``seconds`` of wall time (from the first step); the final validation loss."""
    torch.manual_seed(seed)
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    split = int(len(ids) * (1 - val_frac))
    train_ids, val_ids = ids[:split], ids[split:]
    model = Model(len(chars), hidden)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    start, steps = time.perf_counter(), 0
    while (fraction := (time.perf_counter() - start) / seconds) < 1:
        for group in optimizer.param_groups:  # cosine from lr to lr / 10
            group["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * fraction)))
        starts = torch.randint(len(train_ids) - seq - 1, (batch,))
        x = torch.stack([train_ids[s : s + seq] for s in starts])
        y = torch.stack([train_ids[s + 1 : s + seq + 1] for s in starts])
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        steps += 1
    val = validation_loss(model, val_ids, 32, seq)
    return {
        "val_loss": round(val, 4),
        "steps": steps,
        "wall_s": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--time", type=float, required=True, help="seconds")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    text = args.file.read_text(encoding="utf-8")
    print(json.dumps(train(text, args.time, args.hidden, args.batch)))


if __name__ == "__main__":
    main()
