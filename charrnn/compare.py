"""RNN vs LSTM vs GRU under equal conditions.

Fair by construction: every run of a comparison shares one :class:`DataConfig` and one
:class:`TrainConfig` — the same corpus, split, batches in the same order, seed,
optimiser, schedule and budget — and differs only in its :class:`ModelConfig`. Grids
(``layers`` x ``hidden``) run every combination, as in Karpathy, Johnson & Fei-Fei
(2015), "Visualizing and Understanding Recurrent Networks", table 1.

The comparison folder holds one ordinary run directory per model (``sample`` and
``info`` work on each) plus ``compare.json``, ``compare.md`` and ``curves.png``.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from charrnn.checkpoint import load_checkpoint, load_model
from charrnn.config import CELLS, RunConfig
from charrnn.errors import CheckpointError, ConfigError
from charrnn.files import atomic_write_text
from charrnn.model import count_parameters
from charrnn.rundir import RunDir
from charrnn.sample import SampleSettings, generate
from charrnn.training import LN2, Reporter, resume, train


def matched_hidden(cell: str, layers: int, embed: int, vocab: int, target: int) -> int:
    """The hidden size whose parameter count is closest to ``target``."""
    low, high = 1, 1
    while count_parameters(cell, layers, high, embed, vocab) < target:
        high *= 2
    while low < high:
        mid = (low + high) // 2
        if count_parameters(cell, layers, mid, embed, vocab) < target:
            low = mid + 1
        else:
            high = mid
    candidates = [h for h in (low - 1, low) if h >= 1]
    return min(
        candidates, key=lambda h: abs(count_parameters(cell, layers, h, embed, vocab) - target)
    )


@dataclass(frozen=True)
class PlannedRun:
    """One model of a comparison: its folder name and full settings."""

    name: str
    config: RunConfig


def plan(
    base: RunConfig,
    *,
    cells: Sequence[str],
    layers: Sequence[int],
    hiddens: Sequence[int],
    vocab_size: int,
    match_params: bool = False,
) -> list[PlannedRun]:
    """Every (layers, hidden, cell) combination, sharing ``base``'s data and training.

    With ``match_params`` the hidden size of each cell is chosen so its parameter
    count is closest to an LSTM's with the requested hidden size, and the folder
    name records the requested size.
    """
    if not cells:
        raise ConfigError("--cells needs at least one of rnn, lstm, gru")
    for cell in cells:
        if cell not in CELLS:
            raise ConfigError(f"unknown cell {cell!r} in --cells: use rnn, lstm, gru")
    if len(set(cells)) != len(cells):
        raise ConfigError("--cells lists a cell twice")
    if not layers or not hiddens or min(layers) < 1 or min(hiddens) < 1:
        raise ConfigError("--layers and --hidden need positive integers")
    embed = base.model.embed_size
    runs = []
    for n_layers in layers:
        for hidden in hiddens:
            target = count_parameters("lstm", n_layers, hidden, embed, vocab_size)
            for cell in cells:
                size = (
                    matched_hidden(cell, n_layers, embed, vocab_size, target)
                    if match_params
                    else hidden
                )
                model = replace(base.model, cell=cell, num_layers=n_layers, hidden_size=size)
                suffix = "-matched" if match_params else ""
                name = f"{cell}-{n_layers}x{hidden}{suffix}"
                runs.append(PlannedRun(name, replace(base, model=model)))
    return runs


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
    record = load_checkpoint(run_dir / "last.pt")
    model = record["config"]["model"]
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
    best = float(record.get("best_val_loss", math.inf))
    elapsed = float(record.get("elapsed_s", 0.0))
    chars = int(record.get("chars_seen", 0))
    return RunResult(
        name=name,
        cell=model["cell"],
        layers=int(model["num_layers"]),
        hidden=int(model["hidden_size"]),
        parameters=int(record.get("num_parameters", 0)),
        steps=int(record["step"]),
        final_train_loss=float(metrics[-1]["train_loss"]) if metrics else math.nan,
        best_val_loss=best,
        best_val_bpc=best / LN2,
        chars_per_s=chars / elapsed if elapsed > 0 else 0.0,
        wall_s=elapsed,
        curve=curve,
    )


class CompareReporter(Reporter, Protocol):
    """What a comparison reports: which run starts, and the runs' own progress."""

    def begin_run(self, index: int, total: int, run: PlannedRun, reused: bool) -> None: ...


def _is_finished(run_dir: Path) -> bool:
    """True when the run's last.pt has used its whole budget (so --resume skips it)."""
    try:
        record = load_checkpoint(run_dir / "last.pt")
    except CheckpointError:
        return False
    return bool(record.get("finished", False))


def run_comparison(
    runs: Sequence[PlannedRun],
    out: Path,
    *,
    resume_existing: bool = False,
    reporter: CompareReporter | None = None,
    cache_dir: Path | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[RunResult]:
    """Train every planned run into ``out/<name>`` and return their results.

    With ``resume_existing``, finished runs are kept, interrupted ones continue from
    their ``last.pt`` and missing ones start; without it, an ``out`` that already
    holds runs is refused.
    """
    out.mkdir(parents=True, exist_ok=True)
    existing = [r.name for r in runs if (out / r.name / "last.pt").exists()]
    if existing and not resume_existing:
        raise ConfigError(
            f"{out} already holds runs ({', '.join(existing)}): continue with --resume, or "
            "choose another --out"
        )
    results: list[RunResult] = []
    for index, run in enumerate(runs):
        run_dir = out / run.name
        finished = resume_existing and _is_finished(run_dir)
        if reporter is not None:
            reporter.begin_run(index, len(runs), run, finished)
        if not finished:
            if resume_existing and (run_dir / "last.pt").exists():
                resume(run_dir, reporter=reporter, cache_dir=cache_dir, stop=stop)
            else:
                train(
                    run.config,
                    run_dir,
                    overwrite=True,
                    reporter=reporter,
                    cache_dir=cache_dir,
                    stop=stop,
                )
        results.append(collect(run.name, run_dir))
        write_json(out, results, runs)
    return results


def best_index(results: Sequence[RunResult]) -> int:
    """Index of the run with the lowest validation loss."""
    return min(range(len(results)), key=lambda i: results[i].best_val_loss)


def samples(
    out: Path, results: Sequence[RunResult], *, prime: str, length: int, seed: int
) -> dict[str, str]:
    """A sample from each run's best model: same priming text, same seed."""
    texts = {}
    for result in results:
        model, vocab, _ = load_model(out / result.name)
        texts[result.name] = generate(
            model,
            vocab,
            length=length,
            prime=prime,
            seed=seed,
            settings=SampleSettings(temperature=0.8),
            skip_unknown=True,
        )[0]
    return texts


def write_json(out: Path, results: Sequence[RunResult], runs: Sequence[PlannedRun]) -> Path:
    """``compare.json``: settings shared by all runs, and every run's numbers and curve."""
    shared = runs[0].config.to_dict() if runs else {}
    shared.pop("model", None)
    body = {
        "shared": shared,
        "runs": [asdict(r) for r in results],
        "best": results[best_index(results)].name if results else None,
    }
    path = out / "compare.json"
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
    path = out / "compare.md"
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
    path = out / "curves.png"
    temp = out / f".curves.{uuid.uuid4().hex}.png"
    try:
        fig.savefig(temp, dpi=110)
        os.replace(temp, path)
    finally:
        plt.close(fig)
        temp.unlink(missing_ok=True)
    return path
