"""What a comparison leaves behind: its rows, ``compare.json``, ``compare.md`` and
``curves.png`` (validation bpc against characters seen and against time)."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from charrnn.checkpoint import LAST, load_checkpoint, load_model
from charrnn.files import atomic_file, atomic_write_text
from charrnn.inspection.measures import flow_summary, gradient_flow
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


def _pyplot() -> Any:
    """matplotlib's pyplot, drawing to files only, never a window."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plain(label: str) -> str:
    """A label from user data (a file or run name) drawn as itself: matplotlib reads
    text between two ``$`` as mathtext and raises on ``p$\\foo{$.txt``. An escaped
    dollar is a literal one; the log axes' own tick labels stay mathtext."""
    return label.replace("$", r"\$")


def plot_curves(out: Path, results: Sequence[RunResult], title: str = "") -> Path:
    """``curves.png``: validation bpc against characters seen and against wall time."""
    plt = _pyplot()
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
        fig.suptitle(plain(title))
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


FLOW, REPORT = "gradient-flow.png", "report.html"
MAX_LAG = 200


def measure_flows(
    out: Path, results: Sequence[RunResult], ids: np.ndarray
) -> dict[str, np.ndarray]:
    """‖∂L_t/∂x_{t−k}‖ of each run's best model, on the same validation windows."""
    flows = {}
    for result in results:
        model, _, _ = load_model(out / result.name)
        flows[result.name] = gradient_flow(model, ids, MAX_LAG)
    return flows


def plot_flows(out: Path, flows: dict[str, np.ndarray], title: str = "") -> Path:
    """``gradient-flow.png``: one line per model, log scale."""
    plt = _pyplot()
    fig, axis = plt.subplots(figsize=(8, 4.6), constrained_layout=True)
    for name, flow in flows.items():
        # A gradient that underflowed to 0 in float32 ends its line there.
        shown = np.where(flow > 0, flow, np.nan)
        axis.semilogy(np.arange(len(flow)), shown, label=plain(name), linewidth=2)
    axis.set_xlabel("k: steps between the input and the loss")
    axis.set_ylabel("‖∂L_t / ∂x_(t−k)‖, mean over positions")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=9)
    axis.set_title(plain(title) if title else "How far back the gradient reaches")
    return save_png(fig, out / FLOW)


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}">'


def write_report(
    out: Path,
    results: Sequence[RunResult],
    flows: dict[str, np.ndarray],
    samples: dict[str, str],
    *,
    title: str,
    prime: str = "",
) -> Path:
    """``report.html``: the table, the loss curves, the gradient flow and the samples."""
    best = best_index(results)
    rows = markdown_table(results).strip().splitlines()
    head = [c.strip() for c in rows[0].strip("|").split("|")]
    body = [[c.strip().strip("*") for c in row.strip("|").split("|")] for row in rows[2:]]
    table = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"
    for i, row in enumerate(body):
        mark = ' class="best"' if i == best else ""
        table += f"<tr{mark}>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
    reach = "".join(
        f"<li><b>{html.escape(name)}</b>: {html.escape(flow_summary(flow))}</li>"
        for name, flow in flows.items()
    )
    texts = "".join(
        f"<h3>{html.escape(name)}</h3><pre>{html.escape(prime + text)}</pre>"
        for name, text in samples.items()
    )
    pictures = [out / CURVES, out / FLOW]
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title><style>
body{{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px}}
table{{border-collapse:collapse}}td,th{{padding:3px 10px;border-bottom:1px solid #ddd}}
tr.best{{background:#fff3c4}}img{{max-width:100%}}pre{{background:#f6f6f6;padding:8px;
white-space:pre-wrap}}</style></head><body><h1>{html.escape(title)}</h1>
<p>Every model saw the same batches in the same order under the same budget; the best
validation loss is marked.</p><table>{table}</table>
<h2>Learning curves</h2>{_image(pictures[0]) if pictures[0].exists() else ""}
<h2>Gradient flow through time</h2>
<p>How much the loss at a step depends on the input k steps before it, on the same
validation windows for every model, log scale: the vanishing gradient of the lecture,
measured on these models.</p>{_image(pictures[1])}<ul>{reach}</ul>
<h2>Samples</h2>{texts}</body></html>
"""
    path = out / REPORT
    atomic_write_text(path, page)
    return path
