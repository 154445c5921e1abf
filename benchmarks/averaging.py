"""Does a weight average beat the weights a run ends with? Measured inside one run.

``python -m benchmarks.averaging --budgets 5m,30m [--text shakespeare]`` runs
``charrnn train TEXT --val-frac 0.1 --time T --no-average`` (auto settings, the real
command, its own average off) with
power-law weight averages of three widths riding along
(:class:`charrnn.training.averaging.WeightAverage`, updated every
``AVERAGE_EVERY`` steps). At each of the run's evaluations every average is scored on
the same part of the validation text the run itself read; at the end, on the whole
text beside the run's own final figure. The averages are measured with the run's
clock stopped, so the run trains as long as it would alone; comparing inside one run
removes the run-to-run noise a back-to-back comparison would carry.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.quality import SHAKESPEARE

WIDTHS = (0.05, 0.1, 0.2)
RESULTS = Path(__file__).with_name("averaging.jsonl")


def _ride_along(log: Path) -> None:
    """In the child: patch the Trainer so averages follow the run, then run the CLI."""
    from charrnn.training import loop
    from charrnn.training.averaging import AVERAGE_EVERY, WeightAverage

    trainer_class = loop.Trainer
    step, evaluate = trainer_class.train_step, trainer_class._evaluate_and_record
    averages: dict[float, WeightAverage] = {}

    def train_step(self: Any) -> None:
        step(self)
        if not averages:
            averages.update({w: WeightAverage(self.model, w) for w in WIDTHS})
        if (self.step + 1) % AVERAGE_EVERY == 0:
            for average in averages.values():
                average.update(self.model)

    def evaluate_and_record(self: Any, *args: Any) -> None:
        evaluate(self, *args)
        final = args[3]
        began = time.perf_counter()
        validator = self.validator
        row: dict[str, Any] = {"step": self.step, "final": final, "raw_part": validator.last[1]}
        windows = [("part", validator.part)] + ([("whole", self.validation)] if final else [])
        if final:
            row["raw_whole"] = validator.evaluate(self.validation)
            row["best_whole"] = self.best_val_loss
        for name, part in windows:
            for width, average in averages.items():
                with average.swapped_in(self.model):
                    row[f"avg{width}_{name}"] = validator.evaluate(part)
        self.clock.started += time.perf_counter() - began  # not the run's time
        with log.open("a") as handle:
            handle.write(json.dumps(row) + "\n")

    trainer_class.train_step = train_step  # type: ignore[method-assign]
    trainer_class._evaluate_and_record = evaluate_and_record  # type: ignore[method-assign,assignment]


def child(argv: list[str]) -> None:
    _ride_along(Path(os.environ["CHARRNN_AVERAGING_LOG"]))
    from charrnn.cli.app import main

    sys.argv = ["charrnn", *argv]
    main()


def run(text: Path, budget: str, extra: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "averages.jsonl"
        # The run's own average is off: "raw" is the weights alone, the widths ride along.
        argv = ["train", str(text), "--val-frac", "0.1", "--time", budget, "--no-average"]
        argv += extra
        argv += ["--out", f"{tmp}/run", "--json"]
        env = os.environ | {"CHARRNN_AVERAGING_LOG": str(log)}
        command = [sys.executable, "-m", "benchmarks.averaging", "--child", *argv]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        rows = [json.loads(line) for line in log.read_text().splitlines()]
    final = rows[-1]
    settings = next((n for n in done.stderr.splitlines() if n.startswith("auto settings")), "")
    return {
        "budget": budget,
        "steps": final["step"],
        "raw_whole": round(final["raw_whole"], 4),
        "best_whole": round(final["best_whole"], 4),
        **{f"avg{w}_whole": round(final[f"avg{w}_whole"], 4) for w in WIDTHS},
        "curve": [
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}
            for row in rows
        ],
        "settings": settings,
    }


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="75s,5m")
    parser.add_argument("--text", type=Path, default=SHAKESPEARE)
    args, extra = parser.parse_known_args()
    for budget in args.budgets.split(","):
        result = run(args.text, budget, extra)
        result["text"] = args.text.name
        result["machine"] = platform.processor() or platform.machine()
        result["date"] = time.strftime("%Y-%m-%d %H:%M")
        print(json.dumps({k: v for k, v in result.items() if k != "curve"}), flush=True)
        with RESULTS.open("a") as handle:
            handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
