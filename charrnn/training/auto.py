"""``--preset auto`` (the default): settings chosen from the budget, the corpus and
this machine's speed.

On a small text the wall is overfitting, on a short budget it is speed, so the
choice follows two numbers: how many characters the run will get through (the
budget in steps or epochs, or seconds times the speed measured here in a few
training steps), and how many passes over the corpus that makes.

- **Size**: the largest model on :data:`LADDER` whose threshold the run's
  characters reach: a bigger model learns more per character but processes fewer
  of them per second, and only pays off once it has seen enough.
- **Regularisation**: by passes over the corpus (:data:`REGULARISATION`): none in
  the first epoch, then more dropout and weight drop the more often each
  character is seen again.

The thresholds and values come from sweeps on three texts (``python -m
benchmarks.sweep``; the table is in docs/benchmarks.md). Settings given on the command
line or in a ``--config`` file win over the chosen ones.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from charrnn.config import RunConfig
from charrnn.hardware import autocast_dtype
from charrnn.layering import Layers, Tables
from charrnn.model.network import count_parameters, new_model
from charrnn.units import human


@dataclass(frozen=True)
class Rung:
    """One model size and the training settings measured to suit it."""

    layers: int
    hidden: int
    batch_size: int
    seq_len: int
    lr: float
    min_chars: float  # the run must get through this many characters to prefer it


# Measured on Tiny Shakespeare (2-core CPU, bf16): 1x512 reached 1.48 nats in 75 s,
# where 2x512 had not reached 1.57 after 1M characters; at 5 min (2.9M characters)
# 2x512 reached 1.43 and 1x512 1.49 (docs/benchmarks.md).
LADDER = (
    Rung(1, 512, 32, 32, 1e-2, 0),
    Rung(2, 512, 32, 64, 4e-3, 1.5e6),
    Rung(2, 768, 32, 64, 3e-3, 6e6),
)

# (passes over the corpus at least, dropout between layers and before the head,
# weight drop, input dropout). At 2.5 passes a 2x512 LSTM did better without dropout
# (1.431) than with 0.2 (1.478); by 5 passes it overfits without (train 1.05, val 1.43).
# At 7 passes a 2x768 did better with 0.1 (1.4006) than with 0.2 (1.4090). On 90k
# characters 0.3 stays best at 20-30 passes: a 1x512 reached 1.269 with it, 1.286 with
# 0.2 and 1.320 with 0.5; a 2x512 1.245 with it and 1.274 with 0.5 (docs/benchmarks.md, the
# sweep; one run each).
REGULARISATION = (
    (0.0, 0.0, 0.0, 0.0),
    (4.0, 0.1, 0.1, 0.0),
    (8.0, 0.2, 0.2, 0.05),
    (12.0, 0.3, 0.3, 0.1),
)
EMBED = 64
MIN_WINDOW = 16
# Time kept back from a --time budget for start-up, evaluations and saving when
# estimating how many characters a run gets through.
TRAINING_SHARE = 0.9


@dataclass(frozen=True)
class Choice:
    """The chosen settings, settled under what the person gave (``config``), the
    tables chosen (for :func:`charrnn.layering.layered`), and why."""

    config: RunConfig
    tables: Tables
    reason: str
    # Characters per second measured here for the chosen model (a time budget), so
    # the run can say when it gets another speed (charrnn.training.clock.PlanWatch).
    planned_chars_per_s: float | None = None


def _tables(rung: Rung, regularisation: tuple[float, float, float], train_chars: int) -> Tables:
    dropout, weight_drop, input_dropout = regularisation
    # A short text gets shorter windows (down to 16) and fewer streams (down to one):
    # at least one window each. Shorter than that, the corpus check names the limit.
    seq_len = max(MIN_WINDOW, min(rung.seq_len, train_chars // 2 - 1))
    batch_size = max(1, min(rung.batch_size, train_chars // (seq_len + 1)))
    return {
        "model": {
            "cell": "lstm",
            "num_layers": rung.layers,
            "hidden_size": rung.hidden,
            "embed_size": EMBED,
            "dropout": dropout,
            "weight_drop": weight_drop,
            "input_dropout": input_dropout,
        },
        "train": {
            "batch_size": batch_size,
            "seq_len": seq_len,
            "lr": rung.lr,
            "precision": "auto",
        },
    }


def measure_speed(config: RunConfig, vocab: int, device: torch.device) -> float:
    """Characters per second of a few forward/backward passes of ``config``'s model here.

    The optimizer step is left out (a few percent); the first pass is a warm-up.
    """
    tc = config.train
    with torch.random.fork_rng(devices=[]):  # leave the run's random stream alone
        torch.manual_seed(0)
        model = new_model(vocab, config.model, device)  # too large: a ConfigError
        x = torch.randint(vocab, (tc.batch_size, tc.seq_len)).to(device)
    dtype = autocast_dtype(tc.precision, device)
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype) if dtype else nullcontext():
            logits, _ = model(x)
            loss = F.cross_entropy(logits.reshape(-1, vocab).float(), x.reshape(-1))
        loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - start)
    return tc.batch_size * tc.seq_len / min(timings[1:])


def fit_items(tables: Tables, items: tuple[int, int] | None) -> Tables:
    """``tables`` for a text of items (``--docs``; ``items`` is the longest item's
    window and their count): the window is the longest item's, and a batch at most
    all of them."""
    if items is None:
        return tables
    span, count = items
    train = {**tables.get("train", {}), "seq_len": span}
    train["batch_size"] = min(train.get("batch_size", 32), count)
    return {**tables, "train": train}


def choose(
    layers: Layers,
    train_chars: int,
    vocab: int,
    speed: Callable[[RunConfig], float],
    *,
    items: tuple[int, int] | None = None,
) -> Choice:
    """Settings for a run on ``train_chars`` characters, settled once under what the
    person gave (``layers``, their budget included).

    For a time budget, ``speed(config)`` measures a candidate's characters per second;
    candidates are tried smallest first and measuring stops at the first that does not
    pay off (or cannot, at the smaller one's speed), so a short run measures one.
    ``items`` (the longest item's window, the count) fits the settings to a text of
    items (:func:`fit_items`).
    """
    no_dropout = REGULARISATION[0][1:]
    speeds: dict[Rung, float] = {}

    def settle(tables: Tables) -> RunConfig:
        return layers.settle(fit_items(tables, items))

    def chars_of(rung: Rung) -> float:
        config = settle(_tables(rung, no_dropout, train_chars))
        tc = config.train
        limits = [math.inf]
        if tc.steps is not None:
            limits.append(tc.steps * tc.batch_size * tc.seq_len)
        if tc.epochs is not None:
            limits.append(tc.epochs * train_chars)
        if tc.time_s is not None:
            if rung not in speeds:
                speeds[rung] = speed(config)
            limits.append(speeds[rung] * tc.time_s * TRAINING_SHARE)
        return min(limits)

    def out_of_reach(candidate: Rung, smaller: Rung) -> bool:
        """Whether a time budget cannot pay ``candidate`` off even at ``smaller``'s
        speed (a bigger model is no faster), so it need not be measured: on a short
        budget, measuring it only added to the start-up the budget pays for."""
        config = settle(_tables(smaller, no_dropout, train_chars))
        time_s = config.train.time_s
        if time_s is None:
            return False
        if smaller not in speeds:
            speeds[smaller] = speed(config)
        return speeds[smaller] * time_s * TRAINING_SHARE < candidate.min_chars

    rung = LADDER[0]
    for candidate in LADDER[1:]:
        if out_of_reach(candidate, rung) or chars_of(candidate) < candidate.min_chars:
            break
        rung = candidate
    chars = chars_of(rung)
    epochs = chars / max(train_chars, 1)
    regularisation = next(r[1:] for r in reversed(REGULARISATION) if epochs >= r[0])
    tables = fit_items(_tables(rung, regularisation, train_chars), items)
    chosen = layers.settle(tables)
    m, tc = chosen.model, chosen.train
    regularised = (
        f"dropout {m.dropout:g}, weight drop {m.weight_drop:g}" if m.dropout else "no dropout"
    )
    if rung in speeds:
        how = f"{tc.time_s:g} s at the {speeds[rung] / 1e3:.0f}k characters/s measured here"
    else:
        how = "the budget"
    parameters = count_parameters(m.cell, m.num_layers, m.hidden_size, m.embed_size, vocab)
    reason = (
        f"auto settings: {m.num_layers}x{m.hidden_size} {m.cell.upper()} "
        f"({human(parameters)} parameters), batch {tc.batch_size}x{tc.seq_len}, "
        f"lr {tc.lr:g}, {regularised}, {tc.precision}: about {human(chars)} characters in "
        f"{how} = {epochs:.1f} passes over {human(train_chars)} training characters"
    )
    return Choice(chosen, tables, reason, speeds.get(rung))
