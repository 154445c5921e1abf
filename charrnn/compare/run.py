"""RNN vs LSTM vs GRU under equal conditions.

Fair by construction: every run of a comparison shares one :class:`DataConfig` and one
:class:`TrainConfig` — the same corpus, split, batches in the same order, seed,
optimiser, schedule and budget — and differs only in its :class:`ModelConfig`. Grids
(``layers`` x ``hidden``) run every combination, as in Karpathy, Johnson & Fei-Fei
(2015), "Visualizing and Understanding Recurrent Networks", table 1.

The comparison folder holds one ordinary run directory per model (``sample`` and
``info`` work on each) plus ``compare.json``, ``compare.md`` and ``curves.png``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from charrnn.checkpoint import LAST, load_checkpoint, load_model
from charrnn.compare.report import (
    MAX_LAG,
    RunResult,
    collect,
    measure_flows,
    plot_curves,
    plot_flows,
    write_json,
    write_markdown,
    write_report,
)
from charrnn.config import CELLS, RunConfig
from charrnn.data.catalog import corpus_name
from charrnn.data.dataset import load_dataset, with_absolute_paths
from charrnn.errors import CheckpointError, ConfigError, TrainingInterrupted
from charrnn.events import SILENT, Reporter
from charrnn.model.network import count_parameters
from charrnn.sampling.sampler import SampleSettings, generate
from charrnn.training.launch import resume, train


def matched_hidden(cell: str, layers: int, embed: int, vocab: int, target: int) -> int:
    """The hidden size whose parameter count is closest to ``target``."""
    low, high = 1, 1
    while count_parameters(cell, layers, high, embed, vocab) < target:
        high *= 2
    while low < high:
        mid = (low + high) // 2
        if count_parameters(cell, layers, mid, embed, vocab) < target:
            low = mid + 1
        else:
            high = mid
    candidates = [h for h in (low - 1, low) if h >= 1]
    return min(
        candidates, key=lambda h: abs(count_parameters(cell, layers, h, embed, vocab) - target)
    )


@dataclass(frozen=True)
class PlannedRun:
    """One model of a comparison: its folder name and full settings."""

    name: str
    config: RunConfig


def plan(
    base: RunConfig,
    *,
    cells: Sequence[str],
    layers: Sequence[int],
    hiddens: Sequence[int],
    vocab_size: int,
    match_params: bool = False,
) -> list[PlannedRun]:
    """Every (layers, hidden, cell) combination, sharing ``base``'s data and training.

    With ``match_params`` the hidden size of each cell is chosen so its parameter
    count is closest to an LSTM's with the requested hidden size, and the folder
    name records the requested size.
    """
    if not cells:
        raise ConfigError("--cells needs at least one of rnn, lstm, gru")
    for cell in cells:
        if cell not in CELLS:
            raise ConfigError(f"unknown cell {cell!r} in --cells: use rnn, lstm, gru")
    if len(set(cells)) != len(cells):
        raise ConfigError("--cells lists a cell twice")
    if not layers or not hiddens or min(layers) < 1 or min(hiddens) < 1:
        raise ConfigError("--layers and --hidden need positive integers")
    embed = base.model.embed_size
    runs = []
    for n_layers in layers:
        for hidden in hiddens:
            target = count_parameters("lstm", n_layers, hidden, embed, vocab_size)
            for cell in cells:
                size = (
                    matched_hidden(cell, n_layers, embed, vocab_size, target)
                    if match_params
                    else hidden
                )
                model = replace(base.model, cell=cell, num_layers=n_layers, hidden_size=size)
                suffix = "-matched" if match_params else ""
                name = f"{cell}-{n_layers}x{hidden}{suffix}"
                runs.append(PlannedRun(name, replace(base, model=model)))
    return runs


class CompareReporter(Reporter, Protocol):
    """What a comparison reports: which run starts, and the runs' own progress."""

    def begin_run(self, index: int, total: int, run: PlannedRun, reused: bool) -> None: ...


def _is_finished(run_dir: Path) -> bool:
    """True when the run's last.pt has used its whole budget (so --resume skips it)."""
    try:
        return load_checkpoint(run_dir / LAST).finished
    except CheckpointError:
        return False


def run_comparison(
    runs: Sequence[PlannedRun],
    out: Path,
    *,
    resume_existing: bool = False,
    reporter: CompareReporter | None = None,
    cache_dir: Path | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[RunResult]:
    """Train every planned run into ``out/<name>`` and return their results.

    With ``resume_existing``, finished runs are kept, interrupted ones continue from
    their ``last.pt`` and missing ones start; without it, an ``out`` that already
    holds runs is refused.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the comparison folder {out}: {exc.strerror}") from None
    existing = [r for r in runs if (out / r.name / LAST).exists()]
    if existing and not resume_existing:
        raise ConfigError(
            f"{out} already holds runs ({', '.join(r.name for r in existing)}): continue "
            "with --resume, or choose another --out"
        )
    for run in existing:  # a comparison is fair only if every cell ran under one setting
        changed = _changed_settings(load_checkpoint(out / run.name / LAST).config, run.config)
        if changed:
            raise ConfigError(
                f"{out}: {run.name} ran with other settings ({'; '.join(changed)}); a resumed "
                "comparison must use the settings it started with (or choose another --out)"
            )
    results: list[RunResult] = []
    for index, run in enumerate(runs):
        run_dir = out / run.name
        finished = resume_existing and _is_finished(run_dir)
        if reporter is not None:
            reporter.begin_run(index, len(runs), run, finished)
        if not finished:
            if resume_existing and (run_dir / LAST).exists():
                resume(run_dir, reporter=reporter, cache_dir=cache_dir, stop=stop)
            else:
                train(
                    run.config,
                    run_dir,
                    overwrite=True,
                    reporter=reporter,
                    cache_dir=cache_dir,
                    stop=stop,
                )
        results.append(collect(run.name, run_dir))
        write_json(out, results, _shared_settings(runs))
    return results


def samples(
    out: Path, results: Sequence[RunResult], *, prime: str, length: int, seed: int
) -> dict[str, str]:
    """A sample from each run's best model: same priming text, same seed."""
    texts = {}
    for result in results:
        model, vocab, _ = load_model(out / result.name)
        texts[result.name] = generate(
            model,
            vocab,
            length=length,
            prime=prime,
            seed=seed,
            settings=SampleSettings(temperature=0.8),
            skip_unknown=True,
        )[0]
    return texts


def _changed_settings(stored: RunConfig, planned: RunConfig) -> list[str]:
    """``table.key: old -> new`` for every setting that differs."""
    old, new = stored.to_dict(), planned.to_dict()
    return [
        f"{table}.{key}: {old[table].get(key)!r} -> {new[table].get(key)!r}"
        for table in ("data", "model", "train")
        for key in sorted(set(old[table]) | set(new[table]))
        if old[table].get(key) != new[table].get(key)
    ]


def _shared_settings(runs: Sequence[PlannedRun]) -> dict[str, object]:
    """The data and training settings every run shares (the model is what differs)."""
    shared: dict[str, object] = dict(runs[0].config.to_dict()) if runs else {}
    shared.pop("model", None)
    return shared


@dataclass(frozen=True)
class Comparison:
    """A finished comparison: where it lies, its rows, and a sample from each model."""

    out: Path
    results: list[RunResult]
    samples: dict[str, str]
    files: list[Path]
    flows: dict[str, np.ndarray] = field(default_factory=dict)


def compare(
    base: RunConfig,
    *,
    cells: Sequence[str],
    layers: Sequence[int],
    hiddens: Sequence[int],
    out: Path | None = None,
    match_params: bool = False,
    resume_existing: bool = False,
    prime: str = "",
    sample_length: int = 200,
    reporter: CompareReporter | None = None,
    cache_dir: Path | None = None,
    stop: Callable[[], bool] | None = None,
) -> Comparison:
    """Plan, train (or continue) and report a comparison of ``base`` across cells and sizes.

    Writes ``compare.json`` (after every run), ``compare.md`` and ``curves.png`` into
    ``out`` (default ``compare/<corpus>``), beside one run directory per model.
    """
    # Per-evaluation samples would only slow the runs down; the final ones are compared.
    base = with_absolute_paths(replace(base, train=replace(base.train, sample_length=0)))
    dataset = load_dataset(base, cache_dir=cache_dir, reporter=reporter or SILENT)
    runs = plan(
        base,
        cells=cells,
        layers=layers,
        hiddens=hiddens,
        vocab_size=len(dataset.corpus.vocab),
        match_params=match_params,
    )
    name = corpus_name(base.data.path)
    out = out or Path("compare") / name
    try:
        results = run_comparison(
            runs,
            out,
            resume_existing=resume_existing,
            reporter=reporter,
            cache_dir=cache_dir,
            stop=stop,
        )
    except TrainingInterrupted as exc:
        how = f"continue the comparison with the same command and --resume --out {out}"
        raise exc.continue_with(how) from None
    files = [
        out / "compare.json",
        write_markdown(out, results),
        plot_curves(out, results, title=f"{name}: validation bpc"),
    ]
    texts = (
        samples(out, results, prime=prime, length=sample_length, seed=base.train.seed)
        if sample_length
        else {}
    )
    ids = dataset.val_ids if len(dataset.val_ids) > MAX_LAG + 2 else dataset.train_ids
    flows = measure_flows(out, results, np.asarray(ids))
    files.append(plot_flows(out, flows, title=f"{name}: how far back the gradient reaches"))
    files.append(
        write_report(out, results, flows, texts, title=f"Comparison on {name}", prime=prime)
    )
    return Comparison(out, results, texts, files, flows)
