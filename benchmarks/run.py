"""Run the benchmark suite: ``python -m benchmarks.run [--quick]``.

Prints a Rich table per section, with the machine and versions, and writes
``benchmarks/results.json``. Speed is reported, never asserted: timings on a shared
machine are noisy, so compare ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

import charrnn
from benchmarks.data import encode_speed, peak_rss
from benchmarks.quality import SHAKESPEARE, quality_run
from benchmarks.shaping import shaping_speed
from benchmarks.speed import (
    bf16_training_speed,
    onednn_peak,
    regularised_training_speed,
    sampling_speed,
    training_speed,
)
from charrnn.hardware import cpu_name

RESULTS = Path(__file__).with_name("results.json")


def machine() -> dict[str, Any]:
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "charrnn": charrnn.__version__,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "cpu_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
    }


def _cell(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _table(
    console: Console, title: str, rows: list[dict[str, Any]], columns: dict[str, str]
) -> None:
    table = Table(title=title)
    for heading in columns.values():
        table.add_column(heading, justify="right")
    for row in rows:
        table.add_row(*(_cell(row[key]) for key in columns))
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (under 2 minutes)")
    parser.add_argument(
        "--quality",
        default="auto:75s",
        help="PRESET:BUDGET[,...] quality runs on Tiny Shakespeare, if ../shared has it "
        "('' for none; skipped by --quick)",
    )
    args = parser.parse_args()
    console = Console()
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    console.print(results["machine"])
    repeats, steps = (3, 1) if args.quick else (7, 2)

    peak_repeats = 3 if args.quick else 7
    results["onednn_peak_gflops"] = peak = round(onednn_peak(repeats=peak_repeats), 1)
    console.print(f"fp32 oneDNN peak (2048^3 product): {peak} GFLOP/s")
    if results["machine"]["cpu_bf16"]:
        bf16_peak = onednn_peak(repeats=peak_repeats, dtype=torch.bfloat16)
        results["onednn_bf16_peak_gflops"] = round(bf16_peak, 1)
        console.print(f"bf16 oneDNN peak (2048^3 product): {bf16_peak:.1f} GFLOP/s")
    results["training"] = rows = training_speed(repeats, steps, peak)
    _table(
        console,
        "training chars/s: charrnn vs the plain PyTorch loop (same process, alternating)",
        rows,
        {
            "shape": "model", "cell": "cell", "seq": "seq", "batch": "batch",
            "plain_chars_per_s": "plain", "charrnn_chars_per_s": "charrnn",
            "speedup": "ratio", "gflops": "GFLOP/s", "share_of_peak": "of peak",
        },
    )  # fmt: skip
    results["regularised_training"] = awd = regularised_training_speed(repeats, steps)
    _table(
        console,
        "LSTM 2x512 training with dropout 0.3, weight drop 0.3, input dropout 0.1 "
        "vs the plain loop without",
        [awd],
        {"plain_chars_per_s": "plain", "charrnn_chars_per_s": "charrnn", "speedup": "ratio"},
    )
    bf16 = bf16_training_speed(repeats, steps)
    results["bf16_training"] = bf16
    if bf16 is not None:
        _table(
            console,
            "LSTM 2x512 training: --precision bf16 vs fp32",
            [bf16],
            {"fp32_chars_per_s": "fp32", "bf16_chars_per_s": "bf16", "speedup": "ratio"},
        )
    results["sampling"] = rows = sampling_speed(20 if args.quick else 50, repeats)
    _table(
        console,
        "sampling chars/s, 2x512 LSTM: charrnn's Stepper vs torch.lstm_cell per layer",
        rows,
        {
            "batch": "batch", "precision": "precision",
            "lstm_cell_chars_per_s": "lstm_cell step", "charrnn_chars_per_s": "charrnn step",
            "speedup": "ratio", "end_to_end_chars_per_s": "charrnn sample() incl. drawing",
        },
    )  # fmt: skip

    results["shaping"] = shaping = shaping_speed(repeats)
    _table(
        console,
        "sampling with --novel and --beam, 2x512 LSTM, 200 characters: plain vs shaped",
        shaping,
        {"what": "what", "plain_chars_per_s": "plain chars/s",
         "shaped_chars_per_s": "shaped chars/s", "ratio": "ratio (plain time / shaped)"},
    )  # fmt: skip

    encode_mb = 20.0 if args.quick else 100.0
    results["encode"] = encode = encode_speed(encode_mb, repeats=1 if args.quick else 3)
    table = Table(title="vocabulary + encoding (cold cache, both passes)")
    for column in ("corpus MB", "seconds", "MB/s", "cached load s"):
        table.add_column(column, justify="right")
    table.add_row(
        str(encode["corpus_mb"]),
        str(encode["encode_s"]),
        str(encode["encode_mb_per_s"]),
        str(encode["cached_load_s"]),
    )
    console.print(table)

    sizes = [10.0, 50.0] if args.quick else [10.0, 500.0, 1000.0]
    results["peak_rss"] = rows = peak_rss(sizes)
    table = Table(title="peak RSS: encode + 300 training steps, fresh process")
    table.add_column("corpus MB", justify="right")
    table.add_column("peak RSS MB", justify="right")
    table.add_column("vs smallest", justify="right")
    for row in rows:
        ratio = row["peak_rss_mb"] / rows[0]["peak_rss_mb"]
        table.add_row(f"{row['corpus_mb']:g}", f"{row['peak_rss_mb']:.0f}", f"{ratio:.2f}x")
    console.print(table)

    runs = [] if args.quick or not args.quality else args.quality.split(",")
    if runs and SHAKESPEARE.exists():
        results["quality"] = rows = []
        for run in runs:
            preset, budget = run.split(":")
            rows.append(quality_run(SHAKESPEARE, preset, budget))
        _table(
            console,
            "Tiny Shakespeare, last 10% validation: loss in nats after a --time budget",
            rows,
            {
                "preset": "preset", "budget": "--time", "wall_s": "wall s",
                "steps": "steps", "val_loss": "val loss", "best_val_loss": "best",
            },
        )  # fmt: skip

    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
