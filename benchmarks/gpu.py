"""GPU benchmark: ``python -m benchmarks.gpu`` on a machine with a CUDA GPU.

Training: charrnn's real ``Trainer.train_step`` beside the textbook PyTorch loop
(:class:`benchmarks.speed.PlainLoop`, cuDNN's fused RNN kernels, fp32), alternating
repeat by repeat, the clock stopped only after ``torch.cuda.synchronize``. charrnn is
measured in fp32 (the fair ratio), then in bf16 and fp16 autocast (its own speed).
Sampling: characters per second through :func:`charrnn.sampling.sampler.stream`, drawing and
the copy back to the host included, at batch 1, 64 and 1024.

Writes ``benchmarks/gpu_results.json`` and prints a table per section.
"""

from __future__ import annotations

import argparse
import json
import statistics
import string
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from benchmarks.speed import EMBED, VOCAB, PlainLoop, charrnn_trainer, flops_per_char, paired
from charrnn.config import ModelConfig
from charrnn.data.vocab import Vocab
from charrnn.model.network import CharRNN
from charrnn.sampling.sampler import Request, stream

RESULTS = Path(__file__).with_name("gpu_results.json")
# layers, hidden, T, B: the CPU suite's shape, then shapes that fill a GPU better.
SHAPES = {
    "2x512 b64": (2, 512, 100, 64),
    "2x512 b256": (2, 512, 100, 256),
    "3x1024 b128": (3, 1024, 128, 128),
}


def _sync() -> None:
    torch.cuda.synchronize()


def training(repeats: int, steps: int) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape, (layers, hidden, seq, batch) in SHAPES.items():
            for cell in ("lstm", "gru", "rnn"):
                plain = PlainLoop(cell, layers, hidden, seq, batch, device="cuda")
                ours = {
                    p: charrnn_trainer(
                        cell, layers, hidden, seq, batch, Path(tmp), precision=p, device="cuda"
                    )
                    for p in ("fp32", "bf16", "fp16")
                }
                t_plain, t32, ratio = paired(
                    plain.step, ours["fp32"].train_step, repeats, steps, _sync
                )
                _, t16b, ratio_bf16 = paired(
                    ours["fp32"].train_step, ours["bf16"].train_step, repeats, steps, _sync
                )
                _, t16h, ratio_fp16 = paired(
                    ours["fp32"].train_step, ours["fp16"].train_step, repeats, steps, _sync
                )
                chars = seq * batch
                rows.append(
                    {
                        "shape": shape,
                        "cell": cell,
                        "plain_fp32": round(chars / t_plain),
                        "charrnn_fp32": round(chars / t32),
                        "ratio": round(
                            ratio, 2
                        ),  # t_plain / t_charrnn: charrnn speed / plain speed
                        "charrnn_bf16": round(chars / t16b),
                        "bf16_x": round(ratio_bf16, 2),
                        "charrnn_fp16": round(chars / t16h),
                        "fp16_x": round(ratio_fp16, 2),
                        "fp32_tflops": round(
                            chars / t32 * flops_per_char(cell, layers, hidden) / 1e12, 2
                        ),
                    }
                )
                for trainer in ours.values():
                    trainer.release()
                del plain, ours
                torch.cuda.empty_cache()
    return rows


def sampling(length: int) -> list[dict[str, Any]]:
    vocab = Vocab.from_text(string.ascii_letters + string.digits + " .\n")
    torch.manual_seed(0)
    rows = []
    for cell in ("lstm", "gru"):
        config = ModelConfig(cell=cell, num_layers=2, hidden_size=512, embed_size=EMBED)
        model = CharRNN(VOCAB, config).cuda().eval()
        for batch in (1, 64, 1024):
            times = []
            for seed in range(3):
                _sync()
                start = time.perf_counter()
                for _ in stream(model, vocab, Request(count=batch, length=length, seed=seed)):
                    pass
                _sync()
                times.append(time.perf_counter() - start)
            rows.append(
                {
                    "cell": cell,
                    "batch": batch,
                    "chars_per_s": round(batch * length / statistics.median(times)),
                }
            )
    return rows


def _table(console: Console, title: str, rows: list[dict[str, Any]]) -> None:
    table = Table(title=title)
    for key in rows[0]:
        table.add_column(key, justify="right")
    for row in rows:
        table.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row.values()))
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--length", type=int, default=500, help="characters per sample run")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks.gpu needs a CUDA GPU")
    console = Console(width=160)
    device = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }
    console.print(device)
    results: dict[str, Any] = {"device": device}
    results["training"] = training(args.repeats, args.steps)
    _table(
        console,
        "Training chars/s on the GPU (ratio = charrnn fp32 / plain fp32)",
        results["training"],
    )
    results["sampling"] = sampling(args.length)
    _table(console, "Sampling chars/s on the GPU (stream(), end to end)", results["sampling"])
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
