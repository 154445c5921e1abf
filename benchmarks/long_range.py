"""The vanishing-gradient lesson, measured: RNN vs LSTM vs GRU on ``recall``.

``python -m benchmarks.long_range [--distances 5,20,50,80] [--steps 4000]`` generates the
recall corpus (a random letter, ``distance`` dots, the letter again) at each distance,
runs the same comparison as ``charrnn compare`` on it, and then measures what matters:
the loss, in bits, on the recalled letter alone (the character after ``=``), over the
validation text. 0 bits means the key is always recalled; log2(26) = 4.70 bits means
it is forgotten (a uniform guess). Writes ``benchmarks/long_range.json`` and
``benchmarks/long_range.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from charrnn.checkpoint import load_model
from charrnn.compare import run as comparison
from charrnn.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from charrnn.data.generators import generate

HERE = Path(__file__).parent
CELLS = ("rnn", "lstm", "gru")
FORGOTTEN = math.log2(26)


@torch.no_grad()
def recall_bits(run_dir: Path, text: str) -> float:
    """Mean loss in bits on the characters that follow '=' (the recalled keys)."""
    model, vocab, _ = load_model(run_dir)
    ids = torch.as_tensor(vocab.encode(text)).unsqueeze(0)  # (1, N)
    logits, _ = model(ids[:, :-1])
    log_probs = torch.log_softmax(logits[0], dim=-1)  # (N-1, V)
    positions = torch.tensor([i for i, char in enumerate(text[:-1]) if char == "="])
    picked = log_probs[positions, ids[0, positions + 1]]
    return float(-picked.mean()) / math.log(2)


def run(distances: list[int], steps: int, size: int, hidden: int) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for distance in distances:
            made = generate("recall", size=size, seed=0, distance=distance)
            path = Path(tmp) / f"recall-{distance}.txt"
            path.write_text(made.text)
            base = RunConfig(
                DataConfig(path=str(path), val_frac=0.1),
                ModelConfig(num_layers=1, hidden_size=hidden, embed_size=16),
                TrainConfig(
                    batch_size=32,
                    seq_len=100,
                    lr=1e-2,
                    steps=steps,
                    eval_every=max(steps // 5, 1),
                    sample_length=0,
                ),
            )
            runs = comparison.plan(
                base, cells=CELLS, layers=[1], hiddens=[hidden], vocab_size=len(set(made.text))
            )
            out = Path(tmp) / f"cmp-{distance}"
            results = comparison.run_comparison(runs, out)
            validation = made.text[len(made.text) - int(len(made.text) * 0.1) :]
            row: dict[str, Any] = {"distance": distance}
            for result in results:
                row[result.cell] = recall_bits(out / result.name, validation)
                row[f"{result.cell}_val_bpc"] = result.best_val_bpc
            rows.append(row)
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    distances = [r["distance"] for r in rows]
    for cell in CELLS:
        axis.plot(distances, [r[cell] for r in rows], marker="o", label=cell)
    axis.axhline(FORGOTTEN, color="grey", linestyle="--", linewidth=1)
    axis.text(distances[0], FORGOTTEN - 0.3, "forgotten: log2(26) bits", color="grey")
    axis.set_xlabel("distance between the key and its recall (characters)")
    axis.set_ylabel("loss on the recalled key (bits)")
    axis.set_title("recall: how much of the key each cell forgets")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--distances", default="5,20,50,80")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--size", type=int, default=300_000)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()
    distances = [int(d) for d in args.distances.split(",")]
    rows = run(distances, args.steps, args.size, args.hidden)
    table = Table(title=f"recall: loss on the recalled key in bits (forgotten = {FORGOTTEN:.2f})")
    table.add_column("distance", justify="right")
    for cell in CELLS:
        table.add_column(cell, justify="right")
    for r in rows:
        table.add_row(str(r["distance"]), *(f"{r[cell]:.2f}" for cell in CELLS))
    Console().print(table)
    (HERE / "long_range.json").write_text(json.dumps(rows, indent=2) + "\n")
    plot(rows, HERE / "long_range.png")


if __name__ == "__main__":
    main()
