"""Does ``--precision bf16`` learn as well as fp32? ``python -m benchmarks.bf16_quality``.

Trains the same 2x512 LSTM for the same 1,000 steps on Tiny Shakespeare (last 10 %
held out) in fp32 and in bf16, and prints both validation losses and their relative
difference (the target is within 2 %). Needs ../shared/corpora/tinyshakespeare.txt
or a FILE argument.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.quality import SHAKESPEARE, train_command


def final_loss(corpus: Path, precision: str, steps: int, batch: int) -> tuple[float, float]:
    """Validation loss after ``steps`` steps, and the wall time of the run."""
    evaluations, wall, _, _ = train_command(
        corpus,
        "--cell", "lstm", "--layers", "2", "--hidden", "512", "--embed", "128",
        "--batch-size", str(batch), "--seq-len", "100", "--lr", "2e-3",
        "--steps", str(steps), "--eval-every", str(steps), "--val-frac", "0.1",
        "--precision", precision, "--seed", "1",
    )  # fmt: skip
    return float(evaluations[-1]["val_loss"]), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", nargs="?", type=Path, default=SHAKESPEARE)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    for precision in ("fp32", "bf16"):
        loss, wall = final_loss(args.file, precision, args.steps, args.batch_size)
        results[precision] = {"val_loss": round(loss, 4), "wall_s": round(wall, 1)}
        print(precision, results[precision], flush=True)
    fp32, bf16 = results["fp32"]["val_loss"], results["bf16"]["val_loss"]
    difference: float = round((bf16 - fp32) / fp32, 4)
    print(json.dumps({**results, "relative_difference": difference}))


if __name__ == "__main__":
    main()
