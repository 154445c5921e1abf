"""Quality per CPU-minute: train on Tiny Shakespeare under a wall-clock budget.

Runs the real command line in a fresh process, so start-up, data loading and the
final validation all count: ``charrnn train FILE --preset P --val-frac 0.1 --time T``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

SHAKESPEARE = Path(__file__).resolve().parents[1].parent / "shared/corpora/tinyshakespeare.txt"


class Trained(NamedTuple):
    """What one ``charrnn train`` command did."""

    evaluations: list[dict[str, Any]]  # metrics.jsonl
    wall_s: float  # the whole command
    notices: list[str]  # its lines on stderr
    reported: float  # best.pt's figure: the whole validation text, as the summary says


def train_command(corpus: Path | None, *options: str) -> Trained:
    """Run ``charrnn train CORPUS OPTIONS`` (None: the default corpus) in a fresh
    process, in a scratch run directory. Evaluations during training read a part of
    the validation text; ``reported`` is the figure on all of it."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        command = [sys.executable, "-m", "charrnn", "train", *([str(corpus)] if corpus else [])]
        start = time.perf_counter()
        done = subprocess.run(
            [*command, *options, "--out", str(out), "--json"],
            check=True,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - start
        lines = (out / "metrics.jsonl").read_text().splitlines()
        from charrnn.checkpoint import load_checkpoint

        reported = load_checkpoint(out / "best.pt").best_val_loss
    evaluations = [json.loads(line) for line in lines]
    return Trained(evaluations, wall, done.stderr.splitlines(), reported)


def quality_run(corpus: Path, preset: str, budget: str) -> dict[str, Any]:
    """Train once; return the final validation loss and the whole command's wall time."""
    evaluations, wall, _, reported = train_command(
        corpus, "--preset", preset, "--val-frac", "0.1", "--time", budget
    )
    last = evaluations[-1]
    return {
        "preset": preset,
        "budget": budget,
        "wall_s": round(wall, 1),
        "steps": last["step"],
        "val_loss": round(last["val_loss"], 4),
        "best_val_loss": round(reported, 4),
    }
