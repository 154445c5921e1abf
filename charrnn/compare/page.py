"""Compare's lesson in one picture: the gradient through time of each cell
(``gradient-flow.png``), and ``report.html`` with the table, both pictures and the
samples — one self-contained file to open or send."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from charrnn.checkpoint import load_model
from charrnn.compare.report import CURVES, RunResult, best_index, markdown_table, save_png
from charrnn.files import atomic_write_text
from charrnn.inspection.measures import flow_summary, gradient_flow

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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(8, 4.6), constrained_layout=True)
    for name, flow in flows.items():
        # A gradient that underflowed to 0 in float32 ends its line there.
        shown = np.where(flow > 0, flow, np.nan)
        axis.semilogy(np.arange(len(flow)), shown, label=name, linewidth=2)
    axis.set_xlabel("k: steps between the input and the loss")
    axis.set_ylabel("‖∂L_t / ∂x_(t−k)‖, mean over positions")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=9)
    axis.set_title(title or "How far back the gradient reaches")
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
