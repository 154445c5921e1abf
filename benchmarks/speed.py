"""Training and sampling speed, each beside a reference measured in the same process.

Timings on a shared machine drift by tens of percent from minute to minute, so every
comparison here alternates the two contenders repeat by repeat and reports the
median of the per-repeat ratios, not a ratio of numbers taken minutes apart.
"""

from __future__ import annotations

import statistics
import string
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from charrnn.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from charrnn.data.dataset import load_dataset
from charrnn.data.vocab import Vocab
from charrnn.hardware import bf16_supported
from charrnn.model.network import CharRNN
from charrnn.model.stepper import Stepper
from charrnn.rundir import RunDir
from charrnn.sampling.sampler import Request, stream
from charrnn.training.loop import Trainer

VOCAB = 65  # Tiny Shakespeare's
EMBED = 128
SHAPES = {"2x512": (2, 512, 100, 64), "2x128": (2, 128, 50, 50)}  # layers, hidden, T, B
_GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def flops_per_char(cell: str, layers: int, hidden: int, embed: int = EMBED) -> float:
    """Matrix-product FLOPs to train on one character: 3x the forward products."""
    gates = _GATES[cell] * hidden
    forward = gates * (embed + hidden) + (layers - 1) * gates * 2 * hidden + hidden * VOCAB
    return 3 * 2 * forward


def onednn_peak(size: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of a size^3 product through oneDNN (the best this CPU does)."""
    a, w = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    if not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return _rate(lambda: a @ w, 2 * size**3, repeats)
    packed = torch.ops.mkldnn._reorder_linear_weight(w, size)
    return _rate(
        lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], ""),
        2 * size**3,
        repeats,
    )


def _rate(fn: Callable[[], object], flops: float, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return flops / statistics.median(times) / 1e9


class PlainLoop:
    """The reference: the textbook PyTorch character RNN training loop.

    Embedding -> nn.RNN/LSTM/GRU -> Linear, cross-entropy, Adam, gradient clipping
    at 5, state carried and detached between windows.
    """

    def __init__(
        self, cell: str, layers: int, hidden: int, seq: int, batch: int, device: str = "cpu"
    ) -> None:
        torch.manual_seed(0)
        recurrent = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.embed = nn.Embedding(VOCAB, EMBED, device=device)
        self.rnn = recurrent(EMBED, hidden, layers, batch_first=True, device=device)
        self.head = nn.Linear(hidden, VOCAB, device=device)
        self.params = [
            *self.embed.parameters(),
            *self.rnn.parameters(),
            *self.head.parameters(),
        ]
        self.optimizer = torch.optim.Adam(self.params, lr=2e-3)
        self.x = torch.randint(0, VOCAB, (batch, seq), device=device)
        self.y = torch.randint(0, VOCAB, (batch, seq), device=device)
        self.state: Any = None

    def step(self) -> None:
        out, state = self.rnn(self.embed(self.x), self.state)
        logits = self.head(out)
        loss = nn.functional.cross_entropy(logits.reshape(-1, VOCAB), self.y.reshape(-1))
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.params, 5.0)
        self.optimizer.step()
        detached = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        self.state = detached


def charrnn_trainer(
    cell: str,
    layers: int,
    hidden: int,
    seq: int,
    batch: int,
    tmp: Path,
    precision: str = "fp32",
    device: str = "cpu",
    regularisation: dict[str, float] | None = None,
) -> Trainer:
    """charrnn's own Trainer on a random 65-symbol text (speed does not depend on it)."""
    text_path = tmp / "random.txt"
    if not text_path.exists():
        symbols = string.ascii_letters + string.digits + " .\n"
        assert len(symbols) == VOCAB
        generator = torch.Generator().manual_seed(0)
        picks = torch.randint(0, VOCAB, (400_000,), generator=generator).tolist()
        text_path.write_text("".join(symbols[i] for i in picks))
    config = RunConfig(
        data=DataConfig(path=str(text_path), val_frac=0.05),
        model=ModelConfig(
            cell=cell,
            num_layers=layers,
            hidden_size=hidden,
            embed_size=EMBED,
            **(regularisation or {}),
        ),
        train=TrainConfig(batch_size=batch, seq_len=seq, lr=2e-3, clip=5.0, device=device),
    )
    config = replace(config, train=replace(config.train, precision=precision))
    dataset = load_dataset(config, cache_dir=tmp / "cache")
    return Trainer(config, dataset, RunDir(tmp / f"run-{cell}"))


def paired(
    first: Callable[[], None],
    second: Callable[[], None],
    repeats: int,
    steps: int,
    sync: Callable[[], None] = lambda: None,
) -> tuple[float, float, float]:
    """Seconds per call of each (medians) and the median per-repeat ratio first/second.

    ``sync`` waits for queued device work (``torch.cuda.synchronize`` on a GPU), so a
    repeat's clock stops when its work is done, not when it was queued.
    """
    for _ in range(2):  # warm-up: allocations, kernel caches, optimizer state
        first()
        second()
    sync()
    a_times: list[float] = []
    b_times: list[float] = []
    for _ in range(repeats):
        for fn, times in ((first, a_times), (second, b_times)):
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            sync()
            times.append((time.perf_counter() - start) / steps)
    ratios = [a / b for a, b in zip(a_times, b_times, strict=True)]
    return statistics.median(a_times), statistics.median(b_times), statistics.median(ratios)


def training_speed(repeats: int, steps: int, peak: float) -> list[dict[str, Any]]:
    """charrnn against the plain loop for every cell and shape."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape, (layers, hidden, seq, batch) in SHAPES.items():
            for cell in ("rnn", "lstm", "gru"):
                plain = PlainLoop(cell, layers, hidden, seq, batch)
                trainer = charrnn_trainer(cell, layers, hidden, seq, batch, Path(tmp))
                t_plain, t_ours, ratio = paired(plain.step, trainer.train_step, repeats, steps)
                chars = seq * batch
                ours = chars / t_ours
                gflops = ours * flops_per_char(cell, layers, hidden) / 1e9
                rows.append(
                    {
                        "shape": shape,
                        "cell": cell,
                        "seq": seq,
                        "batch": batch,
                        "plain_chars_per_s": round(chars / t_plain),
                        "charrnn_chars_per_s": round(ours),
                        "speedup": round(ratio, 2),
                        "gflops": round(gflops, 1),
                        "share_of_peak": round(gflops / peak, 3),
                    }
                )
                trainer.release()
    return rows


# What --preset auto uses for long runs: AWD-LSTM regularisation on the fused kernels.
AWD = {"dropout": 0.3, "weight_drop": 0.3, "input_dropout": 0.1}


def regularised_training_speed(repeats: int, steps: int) -> dict[str, Any]:
    """LSTM 2x512 with dropout, weight drop and input dropout against the plain loop
    (which has none): regularising must not cost the fused kernel."""
    layers, hidden, seq, batch = SHAPES["2x512"]
    with tempfile.TemporaryDirectory() as tmp:
        plain = PlainLoop("lstm", layers, hidden, seq, batch)
        trainer = charrnn_trainer("lstm", layers, hidden, seq, batch, Path(tmp), regularisation=AWD)
        t_plain, t_ours, ratio = paired(plain.step, trainer.train_step, repeats, steps)
    chars = seq * batch
    return {
        "settings": AWD,
        "plain_chars_per_s": round(chars / t_plain),
        "charrnn_chars_per_s": round(chars / t_ours),
        "speedup": round(ratio, 2),
    }


def bf16_training_speed(repeats: int, steps: int) -> dict[str, Any] | None:
    """LSTM 2x512 with --precision bf16 against fp32, both charrnn."""
    if not bf16_supported(torch.device("cpu")):
        return None
    layers, hidden, seq, batch = SHAPES["2x512"]
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = charrnn_trainer("lstm", layers, hidden, seq, batch, Path(tmp))
        bf16 = charrnn_trainer("lstm", layers, hidden, seq, batch, Path(tmp), precision="bf16")
        t32, t16, ratio = paired(fp32.train_step, bf16.train_step, repeats, steps)
    chars = seq * batch
    return {
        "fp32_chars_per_s": round(chars / t32),
        "bf16_chars_per_s": round(chars / t16),
        "speedup": round(ratio, 2),
    }


def sampling_speed(steps: int, repeats: int) -> list[dict[str, Any]]:
    """Characters per second drawing from a 2x512 LSTM: the old per-layer cell calls
    (``torch.lstm_cell``, the reference) beside charrnn's Stepper, fp32 and bf16."""
    torch.manual_seed(0)
    config = ModelConfig(cell="lstm", num_layers=2, hidden_size=512, embed_size=EMBED)
    model = CharRNN(VOCAB, config).eval()
    rows = []
    for batch in (1, 64):
        ids = torch.randint(0, VOCAB, (batch,))
        state = model.initial_state(batch)
        precisions = ["fp32"] + (["bf16"] if bf16_supported(torch.device("cpu")) else [])
        for precision in precisions:
            stepper = Stepper(model, state, precision)
            with torch.inference_mode():
                reference = _cell_step(model, ids, state)
                ours = _stepper_call(stepper, ids)
                t_ref, t_ours, ratio = paired(reference, ours, repeats, steps)
            rows.append(
                {
                    "batch": batch,
                    "precision": precision,
                    "lstm_cell_chars_per_s": round(batch / t_ref),
                    "charrnn_chars_per_s": round(batch / t_ours),
                    "speedup": round(ratio, 2),
                    "end_to_end_chars_per_s": round(_end_to_end(model, batch, precision, steps)),
                }
            )
    return rows


def _end_to_end(model: CharRNN, batch: int, precision: str, steps: int) -> float:
    """Characters per second through :func:`charrnn.sampling.sampler.stream`, drawing included."""
    vocab = Vocab.from_text(string.ascii_letters + string.digits + " .\n")
    length = 10 * steps
    times = []
    for seed in range(3):
        start = time.perf_counter()
        request = Request(count=batch, length=length, seed=seed, precision=precision)
        for _ in stream(model, vocab, request):
            pass
        times.append(time.perf_counter() - start)
    return batch * length / statistics.median(times)


def _stepper_call(stepper: Stepper, ids: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        stepper(ids)

    return step


def _cell_step(
    model: CharRNN, ids: torch.Tensor, state: tuple[torch.Tensor, ...]
) -> Callable[[], None]:
    """One step the usual way: torch.lstm_cell per layer, then the head."""
    rnn = model.rnn
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

    def step() -> None:
        assert model.embedding is not None
        x = model.embedding(ids)
        for k in range(model.config.num_layers):
            weights = [getattr(rnn, f"{name}_l{k}") for name in names]
            x, _ = torch.lstm_cell(x, (state[0][k], state[1][k]), *weights)
        model.head(x)

    return step
