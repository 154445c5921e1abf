"""What a comparison leaves behind: its rows, ``compare.json``, ``compare.md`` and
``curves.png`` (validation bpc against characters seen and against time)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from charrnn.checkpoint import LAST, load_checkpoint
from charrnn.files import atomic_file, atomic_write_text
from charrnn.rundir import RunDir
from charrnn.units import to_bits

JSON, MARKDOWN, CURVES = "compare.json", "compare.md", "curves.png"


@dataclass(frozen=True)
class RunResult:
    """One row of the comparison table, and the curve behind it."""

    name: str
    cell: str
    layers: int
    hidden: int
    parameters: int
    steps: int
    final_train_loss: float
    best_val_loss: float
    best_val_bpc: float
    chars_per_s: float
    wall_s: float
    curve: list[dict[str, float]]

    def cells(self) -> list[str]:
        """The table row, formatted, in the order of :data:`COLUMNS`."""
        return [
            self.cell,
            str(self.layers),
            str(self.hidden),
            f"{self.parameters:,}",
            f"{self.final_train_loss:.4f}",
            f"{self.best_val_loss:.4f}",
            f"{self.best_val_bpc:.4f}",
            f"{self.chars_per_s:,.0f}",
            f"{self.wall_s:.0f} s",
        ]

    def row(self) -> dict[str, Any]:
        """The numbers without the curve (for tables)."""
        data = asdict(self)
        data.pop("curve")
        return data


def collect(name: str, run_dir: Path) -> RunResult:
    """Read a finished run's numbers from its checkpoint and metrics."""
    checkpoint = load_checkpoint(run_dir / LAST)
    model = checkpoint.config.model
    metrics = RunDir(run_dir).read_metrics()
    curve = [
        {
            "step": m["step"],
            "chars_seen": m["chars_seen"],
            "elapsed_s": m["elapsed_s"],
            "val_bpc": m["val_bpc"],
            "val_loss": m["val_loss"],
            "train_loss": m["train_loss"],
        }
        for m in metrics
    ]
    best, elapsed = checkpoint.best_val_loss, checkpoint.elapsed_s
    return RunResult(
        name=name,
        cell=model.cell,
        layers=model.num_layers,
        hidden=model.hidden_size,
        parameters=checkpoint.num_parameters,
        steps=checkpoint.step,
        final_train_loss=float(metrics[-1]["train_loss"]) if metrics else math.nan,
        best_val_loss=best,
        best_val_bpc=to_bits(best),
        chars_per_s=checkpoint.chars_seen / elapsed if elapsed > 0 else 0.0,
        wall_s=elapsed,
        curve=curve,
    )


def best_index(results: Sequence[RunResult]) -> int:
    """Index of the run with the lowest validation loss."""
    return min(range(len(results)), key=lambda i: results[i].best_val_loss)


def write_json(out: Path, results: Sequence[RunResult], shared: dict[str, Any]) -> Path:
    """``compare.json``: settings shared by all runs, and every run's numbers and curve."""
    body = {
        "shared": shared,
        "runs": [asdict(r) for r in results],
        "best": results[best_index(results)].name if results else None,
    }
    path = out / JSON
    atomic_write_text(path, json.dumps(body, indent=2) + "\n")
    return path


COLUMNS = (
    "cell",
    "layers",
    "hidden",
    "parameters",
    "final train loss",
    "best val loss (nats)",
    "best val bpc",
    "chars/s",
    "wall time",
)


def markdown_table(results: Sequence[RunResult]) -> str:
    """The comparison as a Markdown table, best row in bold."""
    header = "| " + " | ".join(COLUMNS) + " |\n|---|" + "---:|" * (len(COLUMNS) - 1) + "\n"
    best = best_index(results) if results else -1
    lines = []
    for i, r in enumerate(results):
        cells = r.cells()
        if i == best:
            cells = [f"**{c}**" for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return header + "\n".join(lines) + "\n"


def write_markdown(out: Path, results: Sequence[RunResult]) -> Path:
    path = out / MARKDOWN
    atomic_write_text(path, markdown_table(results))
    return path


def plot_curves(out: Path, results: Sequence[RunResult], title: str = "") -> Path:
    """``curves.png``: validation bpc against characters seen and against wall time."""
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    fig, (by_chars, by_time) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
    for r in results:
        chars = [p["chars_seen"] / 1e6 for p in r.curve]
        times = [p["elapsed_s"] for p in r.curve]
        bpc = [p["val_bpc"] for p in r.curve]
        label = f"{r.cell} {r.layers}x{r.hidden} ({r.parameters / 1e3:,.0f}k params)"
        by_chars.plot(chars, bpc, marker="o", markersize=3, label=label)
        by_time.plot(times, bpc, marker="o", markersize=3, label=label)
    by_chars.set_xlabel("characters seen (millions)")
    by_time.set_xlabel("training time (s)")
    for axis in (by_chars, by_time):
        axis.set_ylabel("validation bits per character")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=9)
    if title:
        fig.suptitle(title)
    return save_png(fig, out / CURVES)


def save_png(fig: Any, path: Path) -> Path:
    """Write a matplotlib figure to ``path`` atomically, and let it go."""
    import matplotlib.pyplot as plt

    try:
        with atomic_file(path) as handle:
            fig.savefig(handle, format="png", dpi=110)
    finally:
        plt.close(fig)
    return path
