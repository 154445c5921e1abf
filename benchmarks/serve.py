"""What ``charrnn serve`` gets through: ``python -m benchmarks.serve [--quick]``.

N concurrent streaming clients (N = 1, 8, 32, 64) against a live server on loopback,
each asking for 200 characters of a 2x512 LSTM: aggregate characters/s, time to first
character (p50, p95), and the ratio against the same N clients served one after
another. A last row has 32 such clients arrive while 4 others send 50,000-character
prompts (their time to first character is the short ones'). Beside it, in the same run,
what the model itself costs: the bare stepper's rate at batch 1 and 32 (no HTTP,
queues or drawing) and ``charrnn sample``'s end-to-end rate at batch 1 (priming,
drawing, stepping): the server's share of those is what serving costs. The machine
may be shared, so the ratios use the model's rates taken again just before and after
each row (their mean), not only once at the start.

The server is its own process (``charrnn serve``); the load generator (this process)
never shares its interpreter lock. ``--code DIR`` runs the server from another
checkout; given twice or more, all those servers run at once and take turns row by row
(a before/after pair under the same conditions), ``--repeat`` times. ``--profile
FILE`` records each server with ``py-spy`` during its first 32-client row (with
``--gil``, only the samples where a thread holds the interpreter lock: against a
plain record, how much of the time the lock is taken). Reports, never asserts; the
machine is printed with the figures.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import torch
from rich.console import Console
from rich.table import Table

from benchmarks.run import machine
from charrnn.checkpoint import load_model
from charrnn.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from charrnn.data.vocab import Vocab
from charrnn.events import Silent
from charrnn.model.network import CharRNN
from charrnn.model.stepper import Stepper
from charrnn.sampling.sampler import Request, stream
from charrnn.serving.server import free_port
from charrnn.training.launch import train

RESULTS = Path(__file__).with_name("serve_results.json")
# One pooled client for every request (thread-safe): a client made per request costs
# the load generator more than the request and would count in the time to first char.
_HTTP = httpx.Client(
    timeout=300, limits=httpx.Limits(max_connections=256, max_keepalive_connections=256)
)
LENGTH = 200
LONG_PROMPT = 50_000  # characters of each of the 4 long prompts in the last row


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


def _bare_rate(model: CharRNN, batch: int, steps: int) -> float:
    """Characters per second of the stepper alone at ``batch`` rows."""
    stepper = Stepper(model, model.initial_state(batch))
    ids = torch.zeros(batch, dtype=torch.long)
    with torch.inference_mode():
        for _ in range(20):
            stepper(ids)
        start = time.perf_counter()
        for _ in range(steps):
            stepper(ids)
    return batch * steps / (time.perf_counter() - start)


def _sample_rate(model: CharRNN, vocab: Vocab, length: int) -> float:
    """Characters per second of ``charrnn sample``'s library path at one sample: the
    priming text, the stepper's set-up, drawing and stepping."""
    start = time.perf_counter()
    steps = list(stream(model, vocab, Request(length=length, prime="the ", seed=0)))
    return len(steps) / (time.perf_counter() - start)


def _client(
    url: str, seed: int, out: list[dict[str, float]], prompt: str = "the ", length: int = LENGTH
) -> None:
    body = {"model": "run", "prompt": prompt, "max_tokens": length, "seed": seed, "stream": True}
    start = time.perf_counter()
    first = None
    chars = 0
    with _HTTP.stream("POST", f"{url}/v1/completions", json=body) as reply:
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


def _beside_long_prompts(url: str, clients: int) -> tuple[float, list[float]]:
    """``clients`` short requests sent while 4 clients' 50,000-character prompts run."""
    words = "the quick brown fox jumps over a lazy dog and runs far away into the night\n"
    prompt = (words * (LONG_PROMPT // len(words) + 1))[:LONG_PROMPT]
    long_out: list[dict[str, float]] = []
    longs = [
        threading.Thread(target=_client, args=(url, 500 + i, long_out, prompt, 16))
        for i in range(4)
    ]
    for t in longs:
        t.start()
    time.sleep(0.5)  # the long prompts are in and running
    result = _concurrent(url, clients)
    for t in longs:
        t.join()
    return result


def _one_after_another(url: str, clients: int) -> float:
    out: list[dict[str, float]] = []
    start = time.perf_counter()
    for i in range(clients):
        _client(url, i, out)
    return clients * LENGTH / (time.perf_counter() - start)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _around(measure: Callable[[], float], first: float) -> float:
    """The mean of a rate measured before a row (``first``) and again after it: the
    machine is shared, so the model's own rate is taken beside each row."""
    return (first + measure()) / 2


def _row(
    n: int | str, rate: float, ttfc: list[float], serial: float, bare32: float
) -> dict[str, Any]:
    return {
        "clients": n,
        "aggregate_chars_per_s": round(rate),
        "ttfc_p50_ms": round(1000 * _pct(ttfc, 0.5), 1),
        "ttfc_p95_ms": round(1000 * _pct(ttfc, 0.95), 1),
        "vs_one_after_another": round(rate / serial, 2),
        "vs_bare_stepper_b32": round(rate / bare32, 2),
    }


def _wait_ready(url: str) -> None:
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


def _start(run: Path, code: Path, cache: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``charrnn serve`` from the checkout ``code``, in its own process."""
    port = free_port()
    env = {**os.environ, "CHARRNN_CACHE": str(cache), "PYTHONPATH": str(code)}
    server = subprocess.Popen(
        [sys.executable, "-m", "charrnn", "serve", str(run), "--port", str(port)],
        env=env,
        cwd=code,  # `python -m` puts the working folder first on the path
    )
    return server, f"http://127.0.0.1:{port}"


def _measure(
    url: str,
    n: int | str,
    model: CharRNN,
    vocab: Vocab,
    plain32: float,
    spy_pid: int | None,
    profile: Path | None,
    gil: bool = False,
) -> dict[str, Any]:
    """One row for the server at ``url``, the model's own rates taken just before and
    after it."""
    before32 = _bare_rate(model, 32, 150)
    before_sample = _sample_rate(model, vocab, 300) if n == 1 else 0.0
    spy = None
    if profile is not None and spy_pid is not None:
        spy = subprocess.Popen(
            ["py-spy", "record", "--pid", str(spy_pid), "--threads", "--idle",
             "--format", "raw", "--rate", "200", "--output", str(profile),
             *(["--gil"] if gil else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(1.0)  # attached
    if n == "32 + 4 long":
        rate, ttfc = _beside_long_prompts(url, 32)
    else:
        rate, ttfc = _concurrent(url, int(n))
    if spy is not None:
        spy.send_signal(2)  # SIGINT: py-spy writes its record and exits
        spy.wait(60)
    row32 = _around(lambda: _bare_rate(model, 32, 150), before32)
    vs_sample = None
    if n == 1:
        vs_sample = round(rate / _around(lambda: _sample_rate(model, vocab, 300), before_sample), 2)
    if n == "32 + 4 long":
        serial = plain32  # its vs_one_after_another: the share of the 32-client rate kept
    else:
        serial = _one_after_another(url, min(int(n), 8)) if n != 1 else rate
    return {**_row(n, rate, ttfc, serial, row32), "vs_sample_b1": vs_sample}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="N = 1 and 32")
    parser.add_argument(
        "--code", type=Path, action="append",
        help="run a server from this checkout (repeat it: the servers take turns, row by row)",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every row")
    parser.add_argument("--profile", type=Path, help="py-spy's record of the 32-client row")
    parser.add_argument(
        "--gil", action="store_true", help="record only samples where a thread holds the GIL"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON results")
    args = parser.parse_args()
    counts: list[int | str] = [1, 32] if args.quick else [1, 8, 32, 64]
    counts.append("32 + 4 long")
    codes = [c.resolve() for c in (args.code or [Path(__file__).parents[1]])]
    labels = [f"{i}:{c.name}" for i, c in enumerate(codes)]
    console = Console()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        run = _model_run(Path(tmp))
        model, vocab, _ = load_model(run)
        bare32 = statistics.median(_bare_rate(model, 32, 300) for _ in range(3))
        bare1 = statistics.median(_bare_rate(model, 1, 300) for _ in range(3))
        sample1 = statistics.median(_sample_rate(model, vocab, 1000) for _ in range(3))
        servers = [_start(run, code, Path(tmp) / "cache") for code in codes]
        try:
            for _, url in servers:
                _wait_ready(url)
                _concurrent(url, 8)  # warm up
            for repeat in range(args.repeat):
                for n in counts:
                    # The servers take turns, in a rotating order: the same conditions.
                    order = list(range(len(servers)))
                    order = order[repeat % len(order) :] + order[: repeat % len(order)]
                    for i in order:
                        server, url = servers[i]
                        plain = [
                            r["aggregate_chars_per_s"] for r in rows
                            if r["code"] == labels[i] and r["clients"] == 32
                        ]  # fmt: skip
                        profile = None
                        if args.profile is not None and n == 32 and repeat == 0:
                            profile = args.profile.with_suffix(f".{i}.txt")
                        row = _measure(
                            url, n, model, vocab, plain[-1] if plain else 1.0, server.pid,
                            profile, args.gil,
                        )  # fmt: skip
                        rows.append({"code": labels[i], "repeat": repeat, **row})
        finally:
            for server, _ in servers:
                server.terminate()
                server.wait(30)
    facts = machine()
    console.print(facts)
    console.print(
        f"bare stepper: {bare1:,.0f} chars/s at batch 1, {bare32:,.0f} chars/s at batch 32; "
        f"charrnn sample end to end: {sample1:,.0f} chars/s at batch 1 (at the start)"
    )
    table = Table(title=f"charrnn serve, 2x512 LSTM, {LENGTH} characters a client")
    for column in rows[0]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row.values()))
    console.print(table)
    bare = {"b1": bare1, "b32": bare32, "sample_b1": sample1}
    args.out.write_text(json.dumps({"machine": facts, "bare": bare, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
