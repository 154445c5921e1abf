"""The sweeps behind ``--preset auto``: settings x budgets x texts, and the plain loop.

Each run is the real command in a fresh process, one at a time (the machine is
shared: run nothing else meanwhile), and is appended to ``benchmarks/sweep.jsonl``
as soon as it ends, so a long sweep can be stopped and continued::

    python -m benchmarks.sweep --texts small,shakespeare --budgets 75s,5m --configs auto,plain
    python -m benchmarks.sweep --table          # docs/benchmarks.md's table from sweep.jsonl

Texts (none of them is committed): ``small`` is the first 100,000 characters of
Python's own help topics (``pydoc_data``, English prose about Python), ``shakespeare``
Tiny Shakespeare from ``../shared`` (1.1 MB), ``stdlib`` charrnn's default corpus
(4 MB of the standard library's source). The last 10 % of each is held out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.quality import SHAKESPEARE, train_command

RESULTS = Path(__file__).with_name("sweep.jsonl")


def _fixed(layers: int, hidden: int, batch: int, seq: int, lr: float, dropout: float) -> list[str]:
    """Every setting auto would choose, given: nothing is left to choose."""
    weight_drop, input_dropout = dropout, dropout / 4
    return [
        "--cell", "lstm", "--layers", str(layers), "--hidden", str(hidden), "--embed", "64",
        "-b", str(batch), "--seq-len", str(seq), "--lr", str(lr), "--precision", "auto",
        "--dropout", str(dropout), "--weight-drop", str(weight_drop),
        "--input-dropout", str(input_dropout),
    ]  # fmt: skip


# What auto chooses, and the alternatives its rule was derived from.
CONFIGS: dict[str, list[str]] = {
    "auto": [],
    "1x512": _fixed(1, 512, 32, 32, 1e-2, 0.0),
    "1x512-d0.1": _fixed(1, 512, 32, 32, 1e-2, 0.1),
    "2x512": _fixed(2, 512, 32, 64, 4e-3, 0.0),
    "2x512-d0.2": _fixed(2, 512, 32, 64, 4e-3, 0.2),
    "2x768-d0.2": _fixed(2, 768, 32, 64, 3e-3, 0.2),
    # What learns most per second (issue 22): the plain loop's batch and window.
    "2x512-b16x100": _fixed(2, 512, 16, 100, 3e-3, 0.0),
    "2x512-b16x100-d0.2": _fixed(2, 512, 16, 100, 3e-3, 0.2),
    "3x512-b16x100-d0.2": _fixed(3, 512, 16, 100, 3e-3, 0.2),
    # The 30-minute rung with less dropout: is 0.2 too much at 6 passes?
    "2x768-d0.1": _fixed(2, 768, 32, 64, 3e-3, 0.1),
    # Many passes over a small text: is the top row's 0.3 enough?
    "1x512-d0.2": _fixed(1, 512, 32, 32, 1e-2, 0.2),
    "1x512-d0.5": _fixed(1, 512, 32, 32, 1e-2, 0.5),
    "2x512-d0.5": _fixed(2, 512, 32, 64, 4e-3, 0.5),
}


def text_path(name: str, scratch: Path) -> Path | None:
    """The file for a sweep text (None: charrnn's default corpus)."""
    if name == "shakespeare":
        return SHAKESPEARE
    if name == "small":
        from pydoc_data.topics import topics

        path = scratch / "pydoc-topics-100k.txt"
        path.write_text("\n\n".join(topics[k] for k in sorted(topics))[:100_000])
        return path
    if name == "stdlib":
        return None
    raise SystemExit(f"unknown text {name!r}: small, shakespeare or stdlib")


def seconds(budget: str) -> float:
    from charrnn.config import parse_duration

    return parse_duration(budget)


def plain_run(path: Path | None, budget: str) -> dict[str, Any]:
    """The plain loop (issue 13's baseline): 2x256 batch 8 for a short budget, else 2x512
    batch 16; the whole command timed."""
    if path is None:
        from charrnn.data.catalog import stdlib_corpus

        path = stdlib_corpus()
    hidden, batch = ("256", "8") if seconds(budget) < 120 else ("512", "16")
    start = time.perf_counter()
    command = [sys.executable, "-m", "benchmarks.plain_loop", str(path), "--time"]
    command += [str(seconds(budget)), "--hidden", hidden, "--batch", batch]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout)
    return {
        "best_val_loss": result["val_loss"],
        "wall_s": round(time.perf_counter() - start, 1),
        "settings": f"plain loop 2x{hidden} b{batch} s100 lr 3e-3",
    }


def charrnn_run(path: Path | None, budget: str, options: list[str]) -> dict[str, Any]:
    evaluations, wall, notices, reported = train_command(
        path, *options, "--val-frac", "0.1", "--time", budget
    )
    chosen = next((n for n in notices if n.startswith("auto settings")), "")
    return {
        "best_val_loss": round(reported, 4),  # best.pt's, on the whole validation text
        "last_val_loss": round(evaluations[-1]["val_loss"], 4),
        "steps": evaluations[-1]["step"],
        "evaluations": len(evaluations),
        "wall_s": round(wall, 1),
        # Seconds spent validating (the final whole-text evaluation included).
        "eval_s": round(sum(e.get("val_s", 0.0) for e in evaluations), 1),
        "averaged": bool(evaluations[-1].get("averaged")),
        "settings": chosen or " ".join(options),
    }


def sweep(texts: list[str], budgets: list[str], configs: list[str], repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for text in texts:
            path = text_path(text, Path(tmp))
            for budget in budgets:
                for config in configs:
                    for _ in range(repeat):
                        if config == "plain":
                            result = plain_run(path, budget)
                        else:
                            result = charrnn_run(path, budget, CONFIGS[config])
                        row = {"text": text, "budget": budget, "config": config, **result}
                        row["machine"] = machine()
                        row["date"] = time.strftime("%Y-%m-%d %H:%M")
                        print(json.dumps(row), flush=True)
                        with RESULTS.open("a") as handle:
                            handle.write(json.dumps(row) + "\n")


def _short(settings: str) -> str:
    """The chosen settings without the explanation: "2x512 LSTM (...), batch 32x64, ..."."""
    return settings.removeprefix("auto settings: ").split(": about")[0]


def table(since: str = "") -> None:
    """Markdown: best validation loss per text, budget and config (runs dated ``since``
    or later; several runs of the same settings are listed together: auto's choice
    changes with its rule, so its runs are grouped by what it chose), with the machine
    they ran on."""
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("date", "") >= since:
            key = (row["text"], row["budget"], row["config"], _short(row["settings"]))
            groups.setdefault(key, []).append(row)
    print("| text | `--time` | what ran | best val loss (nats) | whole command | evaluating |")
    print("|---|---|---|---|---|---|")
    order = {"75s": 0, "5m": 1, "30m": 2}
    for (text, budget, config, chosen), runs in sorted(
        groups.items(), key=lambda g: (g[0][0], order.get(g[0][1], 9), g[0][2], g[0][3])
    ):
        loss = " / ".join(f"{r['best_val_loss']:.4f}" for r in runs)
        what = f"{config}: {chosen}"
        wall = max(r["wall_s"] for r in runs)
        share = max((r.get("eval_s", 0.0) / r["wall_s"] for r in runs), default=0.0)
        shown = f"{100 * share:.1f} %" if any("eval_s" in r for r in runs) else "-"
        print(f"| {text} | {budget} | {what} | {loss} | {wall:.0f} s | {shown} |")
    machines = sorted({r.get("machine", "?") for runs in groups.values() for r in runs})
    print(f"\nmachine: {'; '.join(machines)}")


def machine() -> str:
    """The CPU, its cores and whether it has bf16: what a figure was measured on."""
    from benchmarks.run import machine as facts

    found = facts()
    return f"{found['cpu']}, {found['cores']} cores, bf16 {'yes' if found['cpu_bf16'] else 'no'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", default="small,shakespeare,stdlib")
    parser.add_argument("--budgets", default="75s,5m")
    parser.add_argument("--configs", default="auto,plain")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--table", action="store_true", help="print the table and stop")
    parser.add_argument("--since", default="", help="the table: runs from this date on")
    args = parser.parse_args()
    if args.table:
        table(args.since)
        return
    sweep(args.texts.split(","), args.budgets.split(","), args.configs.split(","), args.repeat)


if __name__ == "__main__":
    main()
