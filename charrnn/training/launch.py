"""Starting and continuing runs: everything around the loop, in the order it happens.

``train`` and ``resume`` join the process group (under torchrun), load the dataset
(rank 0 first, so only it encodes the corpus), prepare and lock the run directory,
build the :class:`~charrnn.training.loop.Trainer`, and run it with Ctrl-C turned into a
clean stop. The library is usable on its own::

    from charrnn import RunConfig, ModelConfig, TrainConfig, DataConfig, train
    config = RunConfig(DataConfig("input.txt"), ModelConfig(), TrainConfig())
    summary = train(config, Path("runs/x"))
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch

from charrnn.checkpoint import Checkpoint, check_weights, load_checkpoint
from charrnn.config import RunConfig
from charrnn.data.catalog import PREFIX, corpus_name
from charrnn.data.dataset import Dataset, load_dataset, with_absolute_paths
from charrnn.data.download import sha256_of
from charrnn.data.items import ItemBatches
from charrnn.data.run_sources import check_sources, record_sources
from charrnn.data.streams import StreamBatches
from charrnn.data.text import check_readable
from charrnn.errors import CheckpointError, CorpusError
from charrnn.events import Reporter, Summary, for_rank
from charrnn.hardware import select_device, set_threads
from charrnn.hub import is_hub_folder
from charrnn.layering import Layers
from charrnn.rundir import RunDir, default_run_name
from charrnn.training.auto import Choice, choose, measure_speed
from charrnn.training.distributed import Group, holding, main_first, on_main, session
from charrnn.training.finetune import Start, describe, fine_tuning, transplant
from charrnn.training.loop import Trainer


def train(
    settings: RunConfig | Layers,
    out: Path | None = None,
    *,
    overwrite: bool = False,
    reporter: Reporter | None = None,
    cache_dir: Path | None = None,
    skip_unknown: bool = False,
    stop: Callable[[], bool] | None = None,
    init_from: Path | None = None,
    started: float | None = None,
) -> Summary:
    """Train a new model, keeping its files in ``out`` (default ``runs/NAME``).

    ``settings`` is a whole :class:`RunConfig`, or the :class:`Layers` a person gave:
    then, under ``--preset auto``, what they did not give is chosen for this corpus,
    budget and machine (:mod:`charrnn.training.auto`) once the corpus is read, and
    layered under what they gave.

    With ``init_from`` (``--init-from``), the model starts from that run's weights, keeps
    its shape and reads the text with both vocabularies
    (:mod:`charrnn.training.finetune`).

    ``started`` (a :func:`time.monotonic` reading) is when the command began: a time
    budget counts from there, start-up included, so the command ends on time by a
    clock on the wall (default: from when the run is set up and training can begin).

    Under torchrun every process calls this; rank 0 alone writes ``out`` and speaks.

    Raises:
        CharRNNError: for bad input or files (never leaves a half-written run).
        TrainingInterrupted: after Ctrl-C (or ``stop()``), once ``last.pt`` is saved.
    """
    start = Start.load(init_from) if init_from is not None else None
    if start is not None:
        settings = fine_tuning(settings, start)
    layers = settings if isinstance(settings, Layers) else None
    config = with_absolute_paths(settings.settle() if isinstance(settings, Layers) else settings)
    out = out if out is not None else default_out(config)
    device = select_device(config.train.device)  # chosen once for the run, passed down
    with session(device.type) as group:
        device = group.place(device)
        speaker = for_rank(reporter, group.is_main)
        dataset = main_first(
            group,
            lambda: load_dataset(
                config,
                cache_dir=cache_dir,
                vocab=start.checkpoint.vocab if start else None,
                extend=start is not None,
                skip_unknown=skip_unknown,
                reporter=speaker,
            ),
        )
        chosen = None
        if layers is not None and layers.auto:
            chosen = _auto_settings(dataset, group, device, layers)
            config = with_absolute_paths(chosen.config)
        run_dir = RunDir(out)
        # Build the trainer first: bad settings fail before the run directory is touched.
        trainer = Trainer(
            config,
            dataset,
            run_dir,
            reporter=speaker,
            stop=stop,
            group=group,
            device=device,
            planned_chars_per_s=chosen.planned_chars_per_s if chosen else None,
            started=started,
        )
        if chosen is not None:
            speaker.notice(chosen.reason)
        if start is not None:
            transplant(start.model, start.checkpoint.vocab, trainer.model, trainer.vocab)
            speaker.notice(describe(config, start, trainer.vocab))
        with holding(group, run_dir, claim=lambda: run_dir.claim(overwrite=overwrite)):
            on_main(group, lambda: run_dir.write_config(config))
            on_main(group, lambda: record_sources(dataset.corpus.source, run_dir.path))
            return _run(trainer, stop)


def default_out(config: RunConfig) -> Path:
    """Where a new run keeps its files when none is named: ``runs/CORPUS-CELL-...``."""
    return Path("runs") / default_run_name(corpus_name(config.data.path), config.model.cell)


def resume(
    run_path: Path,
    *,
    steps: int | None = None,
    epochs: float | None = None,
    time_s: float | None = None,
    reporter: Reporter | None = None,
    cache_dir: Path | None = None,
    skip_unknown: bool = False,
    stop: Callable[[], bool] | None = None,
    started: float | None = None,
) -> Summary:
    """Continue the run in ``run_path`` from its ``last.pt``, optionally with a new budget
    (``started``: as for :func:`train`)."""
    run_dir = RunDir(run_path)
    if not run_dir.path.is_dir():
        raise CheckpointError(f"{run_dir.path}: no such run directory")
    if is_hub_folder(run_dir.path) and not run_dir.last.exists():
        raise CheckpointError(
            f"{run_dir.path}: a shared model holds no training state to resume; start a new "
            f"run from its weights with --init-from {run_dir.path}"
        )
    checkpoint = load_checkpoint(run_dir.last)
    check_weights(checkpoint, run_dir.last)  # before any other work
    config = checkpoint.config
    extended = config.train
    if steps is not None:
        extended = replace(extended, steps=steps)
    if epochs is not None:
        extended = replace(extended, epochs=epochs)
    if time_s is not None:
        extended = replace(extended, time_s=time_s)
    config = replace(config, train=extended)
    _check_corpus_unchanged(checkpoint, config)
    check_sources(run_dir.path)  # a joined corpus: every file as it was
    device = select_device(config.train.device)  # chosen once for the run, passed down
    with session(device.type) as group:
        device = group.place(device)
        speaker = for_rank(reporter, group.is_main)
        dataset = main_first(
            group,
            lambda: load_dataset(
                config,
                cache_dir=cache_dir,
                vocab=checkpoint.vocab,
                skip_unknown=skip_unknown,
                reporter=speaker,
            ),
        )
        stored = checkpoint.corpus
        if stored is not None and stored.sha256 and stored.sha256 != dataset.corpus.sha256:
            raise CorpusError(
                f"{dataset.corpus.source} changed since this run started; resuming would "
                "train on different text (start a new run instead)"
            )
        with holding(group, run_dir):
            trainer = Trainer(
                config,
                dataset,
                run_dir,
                reporter=speaker,
                stop=stop,
                group=group,
                device=device,
                started=started,
            )
            trainer.restore(checkpoint, run_dir.last)
            if checkpoint.stopped_by == "patience":
                trainer.since_best = 0  # asked to go on: patience counts afresh
                speaker.notice(
                    f"{run_dir.path} had stopped early (no new best for --patience "
                    "evaluations); continuing, the count starts again"
                )
            if trainer.budget.limit(trainer.step, trainer.clock.banked) is not None:
                raise CheckpointError(
                    f"{run_dir.path} has already used its budget ({trainer.step} steps); "
                    "give a larger --steps, --epochs or --time to continue"
                )

            def rewrite() -> None:
                run_dir.truncate_metrics(trainer.step, speaker)
                run_dir.write_config(config)

            on_main(group, rewrite)
            return _run(trainer, stop)


def _auto_settings(dataset: Dataset, group: Group, device: torch.device, layers: Layers) -> Choice:
    """The settings :func:`charrnn.training.auto.choose` picks for this corpus and
    machine, settled under ``layers``."""
    items = dataset.train_items

    def speed(candidate: RunConfig) -> float:
        tc = candidate.train
        if items is None:  # fits the text, or says why not
            StreamBatches(dataset.train_ids, tc.batch_size, tc.seq_len)
        else:
            ItemBatches(items, tc.batch_size, tc.seq_len, seed=tc.seed)
        set_threads(tc.threads)
        vocab = len(dataset.corpus.vocab)
        measured = group.from_main(measure_speed(candidate, vocab, device))
        if items is None:
            return measured
        # Measured on full windows; an item batch is padded only to its longest item,
        # but most of it is still padding: count the characters that are predicted.
        return measured * items.num_targets / len(items) / tc.seq_len

    shape = None if items is None else (items.span, len(items))
    vocab = len(dataset.corpus.vocab)
    return choose(layers, dataset.train_chars, vocab, speed, items=shape)


def _check_corpus_unchanged(checkpoint: Checkpoint, config: RunConfig) -> None:
    """The file a run names must be the text it trained on, checked by its SHA-256
    before anything is encoded or cached: a checkpoint from elsewhere cannot make
    charrnn copy an arbitrary file (``/etc/shadow``, say) into the corpus cache."""
    stored, path = checkpoint.corpus, config.data.path
    if stored is None or not stored.sha256 or not path or path.startswith(PREFIX):
        return
    source = Path(path)
    check_readable(source)
    if sha256_of(source) != stored.sha256:
        raise CorpusError(
            f"{source} is not the text this run trained on (its SHA-256 differs); resuming "
            "would train on different text (start a new run instead)"
        )


def _run(trainer: Trainer, stop: Callable[[], bool] | None) -> Summary:
    """Run with Ctrl-C turned into a clean stop, unless the caller handles stopping."""
    try:
        if stop is not None:
            return trainer.run()
        request = StopRequest()
        trainer.stop = request
        with graceful_interrupt(request):
            return trainer.run()
    finally:
        trainer.release()


# The signals that mean "stop": each becomes a request to save and exit.
STOP_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
    if hasattr(signal, name)
)


class StopRequest:
    """Set by the first stop signal (or by a caller); the loop checks it between steps."""

    def __init__(self) -> None:
        self.requested = False
        self.signal: int = signal.SIGINT  # which signal asked, for the exit code

    def __call__(self) -> bool:
        return self.requested


@contextmanager
def graceful_interrupt(stop: StopRequest) -> Iterator[None]:
    """Turn the first stop signal into a stop request, so the loop can save between steps.

    A second Ctrl-C (more than two seconds later) interrupts at once; the last
    checkpoint on disk stays intact.
    Only the main thread may install signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    first_at: list[float] = []

    def handler(signum: int, frame: object) -> None:
        # torchrun forwards the terminal's Ctrl-C to workers that already got it: a
        # repeat within two seconds is the same Ctrl-C, not a second one.
        if stop.requested and time.monotonic() - first_at[0] > 2.0:
            raise KeyboardInterrupt
        if not stop.requested:
            first_at.append(time.monotonic())
            stop.signal = signum
        stop.requested = True

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
