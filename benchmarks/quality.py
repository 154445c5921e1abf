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
from typing import Any

SHAKESPEARE = Path(__file__).resolve().parents[1].parent / "shared/corpora/tinyshakespeare.txt"


def train_command(
    corpus: Path | None, *options: str
) -> tuple[list[dict[str, Any]], float, list[str]]:
    """Run ``charrnn train CORPUS OPTIONS`` (None: the default corpus) in a fresh
    process, in a scratch run directory; return its evaluations (metrics.jsonl), the
    whole command's wall time and the lines it wrote on stderr."""
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
    return [json.loads(line) for line in lines], wall, done.stderr.splitlines()


def quality_run(corpus: Path, preset: str, budget: str) -> dict[str, Any]:
    """Train once; return the final validation loss and the whole command's wall time."""
    evaluations, wall, _ = train_command(
        corpus, "--preset", preset, "--val-frac", "0.1", "--time", budget
    )
    last = evaluations[-1]
    return {
        "preset": preset,
        "budget": budget,
        "wall_s": round(wall, 1),
        "steps": last["step"],
        "val_loss": round(last["val_loss"], 4),
        "best_val_loss": round(min(e["val_loss"] for e in evaluations), 4),
    }
