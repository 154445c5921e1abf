"""What ``charrnn serve`` gets through: ``python -m benchmarks.serve [--quick]``.

N concurrent streaming clients (N = 1, 8, 32, 64) against a live server on loopback,
each asking for 200 characters of a 2x512 LSTM: aggregate characters/s, time to first
character (p50, p95), and the ratio against the same N clients served one after
another. Beside it, in the same run, the bare stepper's rate at batch 32 (what the
model itself costs, without HTTP, queues or drawing): the server's share of that is
what serving costs. Reports, never asserts; the machine is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import torch
from rich.console import Console
from rich.table import Table

from benchmarks.run import machine
from charrnn.checkpoint import load_model
from charrnn.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from charrnn.events import Silent
from charrnn.model.stepper import Stepper
from charrnn.serving.server import free_port
from charrnn.training.launch import train

RESULTS = Path(__file__).with_name("serve_results.json")
LENGTH = 200


def _model_run(folder: Path) -> Path:
    """A 2x512 LSTM checkpoint (two steps of training: speed does not need quality)."""
    text = folder / "text.txt"
    words = "the quick brown fox jumps over a lazy dog and runs far away into the night\n"
    text.write_text(words * 3000, encoding="utf-8")
    config = RunConfig(
        DataConfig(path=str(text), val_frac=0.05),
        ModelConfig(cell="lstm", num_layers=2, hidden_size=512, embed_size=64),
        TrainConfig(steps=2, batch_size=8, seq_len=32, device="cpu", sample_length=0),
    )
    run = folder / "run"
    train(config, run, reporter=Silent(), cache_dir=folder / "cache")
    return run


def _bare_rate(run: Path, batch: int, steps: int) -> float:
    """Characters per second of the stepper alone at ``batch`` rows."""
    model, _, _ = load_model(run)
    stepper = Stepper(model, model.initial_state(batch))
    ids = torch.zeros(batch, dtype=torch.long)
    with torch.inference_mode():
        for _ in range(20):
            stepper(ids)
        start = time.perf_counter()
        for _ in range(steps):
            stepper(ids)
    return batch * steps / (time.perf_counter() - start)


def _client(url: str, seed: int, out: list[dict[str, float]]) -> None:
    body = {"model": "run", "prompt": "the ", "max_tokens": LENGTH, "seed": seed, "stream": True}
    start = time.perf_counter()
    first = None
    chars = 0
    with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=300) as reply:
        reply.raise_for_status()
        for line in reply.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            text = "".join(c["text"] for c in json.loads(line[6:])["choices"])
            if text and first is None:
                first = time.perf_counter() - start
            chars += len(text)
    out.append({"ttfc": first or 0.0, "seconds": time.perf_counter() - start, "chars": chars})


def _concurrent(url: str, clients: int) -> tuple[float, list[float]]:
    out: list[dict[str, float]] = []
    threads = [threading.Thread(target=_client, args=(url, i, out)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    assert len(out) == clients and all(o["chars"] == LENGTH for o in out), out
    return clients * LENGTH / wall, [o["ttfc"] for o in out]


def _one_after_another(url: str, clients: int) -> float:
    out: list[dict[str, float]] = []
    start = time.perf_counter()
    for i in range(clients):
        _client(url, i, out)
    return clients * LENGTH / (time.perf_counter() - start)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="N = 1 and 32, one repeat")
    args = parser.parse_args()
    counts = (1, 32) if args.quick else (1, 8, 32, 64)
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        run = _model_run(Path(tmp))
        bare32 = statistics.median(_bare_rate(run, 32, 300) for _ in range(3))
        bare1 = statistics.median(_bare_rate(run, 1, 300) for _ in range(3))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "charrnn", "serve", str(run), "--port", str(port)],
            env={**os.environ, "CHARRNN_CACHE": str(Path(tmp) / "cache")},
        )
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            _concurrent(url, 8)  # warm up
            rows: list[dict[str, Any]] = []
            for n in counts:
                rate, ttfc = _concurrent(url, n)
                serial = _one_after_another(url, min(n, 8)) if n > 1 else rate
                rows.append(
                    {
                        "clients": n,
                        "aggregate_chars_per_s": round(rate),
                        "ttfc_p50_ms": round(1000 * _pct(ttfc, 0.5), 1),
                        "ttfc_p95_ms": round(1000 * _pct(ttfc, 0.95), 1),
                        "vs_one_after_another": round(rate / serial, 2),
                        "vs_bare_stepper_b32": round(rate / bare32, 2),
                    }
                )
        finally:
            server.terminate()
            server.wait(30)
    facts = machine()
    table = Table(title=f"charrnn serve, 2x512 LSTM, {LENGTH} characters a client")
    for column in rows[0]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row.values()))
    console.print(facts)
    console.print(
        f"bare stepper: {bare1:,.0f} chars/s at batch 1, {bare32:,.0f} chars/s at batch 32"
    )
    console.print(table)
    RESULTS.write_text(
        json.dumps({"machine": facts, "bare": {"b1": bare1, "b32": bare32}, "rows": rows}, indent=2)
        + "\n"
    )


if __name__ == "__main__":
    main()
