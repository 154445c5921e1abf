"""The vanishing-gradient lesson, measured: RNN vs LSTM vs GRU on ``recall``.

``python -m benchmarks.long_range [--distances 5,20,50,80] [--steps 1000]`` generates the
recall corpus (a random letter, ``distance`` dots, the letter again) at each distance,
runs the same comparison as ``charrnn compare`` on it, and reports, per cell, the bits
lost per key: (validation bpc - best achievable bpc) x characters per line. 0 means the
key is always recalled; log2(26) = 4.70 means it is forgotten. Writes
``benchmarks/long_range.json`` and ``benchmarks/long_range.png``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from charrnn import compare as comparison
from charrnn.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from charrnn.generators import generate, unigram_entropy

HERE = Path(__file__).parent


def run(distances: list[int], steps: int, size: int) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for distance in distances:
            made = generate("recall", size=size, seed=0, distance=distance)
            path = Path(tmp) / f"recall-{distance}.txt"
            path.write_text(made.text)
            base = RunConfig(
                DataConfig(path=str(path), val_frac=0.1),
                ModelConfig(num_layers=1, hidden_size=64, embed_size=16),
                TrainConfig(
                    batch_size=32,
                    seq_len=100,
                    lr=3e-3,
                    steps=steps,
                    eval_every=max(steps // 6, 1),
                    sample_length=0,
                ),
            )
            runs = comparison.plan(
                base,
                cells=["rnn", "lstm", "gru"],
                layers=[1],
                hiddens=[64],
                vocab_size=len(set(made.text)),
            )
            results = comparison.run_comparison(runs, Path(tmp) / f"cmp-{distance}")
            rows.append(
                {
                    "distance": distance,
                    "floor_bpc": made.floor_bpc,
                    "unigram_bpc": unigram_entropy(tuple(Counter(made.text).values()))
                    / 0.6931471805599453,
                    **{r.cell: r.best_val_bpc for r in results},
                }
            )
    return rows


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    distances = [r["distance"] for r in rows]
    for cell in ("rnn", "lstm", "gru"):
        axis.plot(distances, [r[f"{cell}_bits_lost"] for r in rows], marker="o", label=cell)
    axis.axhline(4.70, color="grey", linestyle="--", linewidth=1)
    axis.text(distances[0], 4.5, "key forgotten (log2 26)", color="grey", fontsize=9)
    axis.set_xlabel("distance between the key and its recall (characters)")
    axis.set_ylabel("bits lost per key (0 = always recalled)")
    axis.set_title("recall: how much of the key each cell forgets")
    axis.grid(alpha=0.3)
    axis.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--distances", default="5,20,50,80")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--size", type=int, default=300_000)
    args = parser.parse_args()
    rows = run([int(d) for d in args.distances.split(",")], args.steps, args.size)
    table = Table(title="recall: best validation bpc (lower is better)")
    for column in ("distance", "best achievable", "unigram", "rnn", "lstm", "gru"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            str(r["distance"]),
            f"{r['floor_bpc']:.3f}",
            f"{r['unigram_bpc']:.3f}",
            f"{r['rnn']:.3f}",
            f"{r['lstm']:.3f}",
            f"{r['gru']:.3f}",
        )
    Console().print(table)
    (HERE / "long_range.json").write_text(json.dumps(rows, indent=2) + "\n")
    plot(rows, HERE / "long_range.png")


if __name__ == "__main__":
    main()
