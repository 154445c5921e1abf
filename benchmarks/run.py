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

RESULTS = Path(__file__).with_name("results.json")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "charrnn": charrnn.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (under 2 minutes)")
    args = parser.parse_args()
    console = Console()
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    console.print(results["machine"])

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

    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
