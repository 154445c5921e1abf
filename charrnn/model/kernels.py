"""Which GRU/RNN recurrence is faster on this machine, for a shape: measured, not assumed.

The hand-written recurrence (:mod:`charrnn.model.recurrent`) beat PyTorch's own loop by
1.04-1.63x on an AVX-512 CPU and lost to it by 0.83-0.92x on an AVX2 one, at the same
shapes: a size threshold tuned on one CPU is wrong on the next. So the first time a
layer of a given shape (cell, sizes, batch, threads) trains, both run a few forward
and backward passes on a copy of it and the faster one is kept: in this process, and
in ``$CHARRNN_CACHE/kernels.json`` under this CPU and torch version, so a later run
on the same machine takes the same kernels (and, with a fixed seed, the same numbers)
without measuring again. Measuring costs a few tenths of a second once per shape; it
draws from its own random stream, so the run's is untouched.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from charrnn.data.text import default_cache_dir
from charrnn.files import atomic_write_text
from charrnn.hardware import cpu_name

# Below this batch x hidden size a step's matrices are tiny, the hand-written loop's
# per-step Python work dominates everywhere, and measuring would cost more than any
# choice could save: the stock loop, unmeasured.
MEASURE_MIN_BATCH_X_HIDDEN = 2048
MEASURE_STEPS = 32  # time steps of the measured window (both paths scale alike in T)
REPEATS = 3  # timed passes of each, alternating, after one warm-up; the fastest counts
MARGIN = 1.02  # the hand-written path must win by 2 %: a tie goes to PyTorch's own
CACHE_NAME = "kernels.json"

_chosen: dict[str, bool] = {}  # shape -> hand-written wins, for this process

# Runs a layer stack on a batch-first window, the hand-written way (True) or PyTorch's.
Runner = Callable[[nn.RNNBase, torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor]]


def machine_key() -> str:
    """This CPU and torch build: what a remembered choice is valid for."""
    return f"{cpu_name()} | torch {torch.__version__}"


def shape_key(module: nn.RNNBase, batch: int) -> str:
    return (
        f"{module.mode} {module.input_size}->{module.hidden_size} x{module.num_layers} "
        f"batch {batch} threads {torch.get_num_threads()}"
    )


def hand_written_wins(module: nn.RNNBase, batch: int, run: Runner) -> bool:
    """Whether the hand-written recurrence trains ``module`` faster at ``batch`` rows
    here (measured once per shape with ``run``, remembered)."""
    if batch * module.hidden_size < MEASURE_MIN_BATCH_X_HIDDEN:
        return False
    key = shape_key(module, batch)
    if key not in _chosen:
        remembered = _read_cache().get(machine_key(), {}).get(key)
        if isinstance(remembered, bool):
            _chosen[key] = remembered
        else:
            _chosen[key] = measure(module, batch, run)
            _remember(key, _chosen[key])
    return _chosen[key]


def measure(module: nn.RNNBase, batch: int, run: Runner) -> bool:
    """Time a forward and backward pass of a copy of ``module`` both ways."""
    # Asked from inside an evaluation (no_grad) or sampling (inference mode) too.
    with torch.inference_mode(False), torch.enable_grad(), torch.random.fork_rng(devices=[]):
        twin: Any = copy.deepcopy(module).float().train()
        torch.manual_seed(0)  # its own stream: the run's stays where it was
        x = torch.randn(batch, MEASURE_STEPS, module.input_size)
        best = {True: float("inf"), False: float("inf")}
        for repeat in range(REPEATS + 1):
            for fast in (True, False):
                start = time.perf_counter()
                out, last = run(twin, x, fast)
                (out.sum() + last.sum()).backward()
                if repeat:  # the first pass of each warms up
                    best[fast] = min(best[fast], time.perf_counter() - start)
    return best[True] * MARGIN < best[False]


def _cache_file() -> Path:
    return default_cache_dir() / CACHE_NAME


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(key: str, wins: bool) -> None:
    """Add one choice to the cache file; a cache that cannot be written is skipped."""
    data = _read_cache()
    mine = data.get(machine_key())
    mine = mine if isinstance(mine, dict) else {}
    data[machine_key()] = {**mine, key: wins}
    try:
        _cache_file().parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(_cache_file(), json.dumps(data, indent=1, sort_keys=True))
    except OSError:
        pass
