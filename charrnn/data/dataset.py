"""A run's text: the corpus resolved, encoded (cached) and split for training."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from charrnn.config import Docs, RunConfig, TrainConfig
from charrnn.data.catalog import PREFIX, resolve_corpus
from charrnn.data.items import ItemBatches, Items, ItemValidation, find_items, split_items
from charrnn.data.sources import file_starts
from charrnn.data.streams import StreamBatches, ValidationWindows
from charrnn.data.text import Corpus, encode_validation_file, load_corpus, split_ids
from charrnn.data.vocab import Vocab
from charrnn.errors import CorpusError
from charrnn.events import SILENT, Reporter


@dataclass(frozen=True)
class Dataset:
    """A corpus split for training; with ``--docs``, also split into whole items."""

    corpus: Corpus
    train_ids: np.ndarray
    val_ids: np.ndarray
    train_items: Items | None = None
    val_items: Items | None = None
    train_file_starts: np.ndarray | None = None  # a joined corpus: where each file starts

    @property
    def train_chars(self) -> int:
        """Characters one epoch predicts (items: with their ends)."""
        if self.train_items is None:
            return len(self.train_ids)
        return self.train_items.num_targets

    @property
    def item_counts(self) -> tuple[int, int] | None:
        """(training items, validation items) with ``--docs``, else None."""
        if self.train_items is None or self.val_items is None:
            return None
        return len(self.train_items), len(self.val_items)


def load_dataset(
    config: RunConfig,
    *,
    cache_dir: Path | None = None,
    vocab: Vocab | None = None,
    extend: bool = False,
    skip_unknown: bool = False,
    reporter: Reporter = SILENT,
) -> Dataset:
    """Read, encode (cached) and split the corpus named by ``config.data``.

    ``vocab``, when given (a resumed run), must hold every character of the corpus
    (a fine-tuned run's holds more); with ``extend`` (a run starting from another's
    weights) the corpus is encoded with the union of both.
    """
    data = config.data
    path, name = resolve_corpus(
        data.path, max_mb=data.max_mb, cache_dir=cache_dir, reporter=reporter
    )
    corpus = load_corpus(
        path,
        encoding=data.encoding,
        byte_level=data.byte_level,
        cache_dir=cache_dir,
        name=name,
        reporter=reporter,
    )
    if vocab is not None and corpus.vocab != vocab:
        if not extend and not vocab.covers(corpus.vocab):
            raise CorpusError(
                f"{path}: its vocabulary differs from the run's: {vocab.difference(corpus.vocab)}"
            )
        target = vocab.union(corpus.vocab) if extend else vocab
        counts = np.zeros(len(target), dtype=corpus.counts.dtype)
        counts[corpus.vocab.remap(np.arange(len(corpus.vocab)), target)] = corpus.counts
        ids = corpus.vocab.remap(corpus.ids, target)
        corpus = replace(corpus, vocab=target, ids=ids, counts=counts)
    if data.val_file:
        val_ids = encode_validation_file(
            Path(data.val_file),
            corpus.vocab,
            encoding=data.encoding,
            skip_unknown=skip_unknown,
            reporter=reporter,
        )
        train_ids = corpus.ids
    starts = file_starts(path, data.byte_level)
    if not data.val_file and not Docs(data.docs).on:
        train_ids, val_ids = split_files(corpus.ids, data.val_frac, starts)
    if not Docs(data.docs).on:
        return Dataset(corpus, train_ids, val_ids, train_file_starts=starts)
    newline = corpus.vocab.index_of("\n")
    items = find_items(corpus.ids, newline, data.docs)
    if data.val_file:
        return Dataset(corpus, corpus.ids, val_ids, items, find_items(val_ids, newline, data.docs))
    train, val = split_items(items, data.val_frac)
    return Dataset(corpus, corpus.ids, corpus.ids[:0], train, val)


WHOLE_FILES_FROM = 10  # files in a joined corpus from which validation is whole files


def split_files(
    ids: np.ndarray, val_frac: float, starts: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Split off the last ``val_frac`` for validation: at the file boundary nearest
    that point when a joined corpus has enough files (and that keeps the share within
    a factor of two of ``val_frac``), else at the exact point (:func:`split_ids`)."""
    if starts is not None and len(starts) >= WHOLE_FILES_FROM:
        target = len(ids) - int(len(ids) * val_frac)
        inner = starts[(starts > 0) & (starts < len(ids))]
        if len(inner):
            cut = int(inner[np.argmin(np.abs(inner - target))])
            share = (len(ids) - cut) / len(ids)
            if val_frac / 2 <= share <= val_frac * 2:
                return ids[:cut], ids[cut:]
    return split_ids(ids, val_frac)


def with_absolute_paths(config: RunConfig) -> RunConfig:
    """Settings whose corpus paths no longer depend on the working directory.

    A run may be resumed from anywhere, so ``config.toml`` and the checkpoint name the
    corpus by absolute path.
    """
    data = config.data
    named = bool(data.path and data.path.startswith(PREFIX))
    return replace(
        config,
        data=replace(
            data,
            path=os.path.abspath(data.path) if data.path and not named else data.path,
            val_file=os.path.abspath(data.val_file) if data.val_file else None,
        ),
    )


def batches_for(
    dataset: Dataset, train: TrainConfig
) -> tuple[StreamBatches | ItemBatches, ValidationWindows | ItemValidation]:
    """The training batches and validation windows of ``dataset``: whole items with
    ``--docs``, else streams."""
    if dataset.train_items is not None and dataset.val_items is not None:
        return (
            ItemBatches(dataset.train_items, train.batch_size, train.seq_len, seed=train.seed),
            ItemValidation(dataset.val_items, train.batch_size, train.seq_len),
        )
    random_seed = train.seed if train.windows == "random" else None
    starts = dataset.train_file_starts
    if starts is not None:
        starts = starts[starts < len(dataset.train_ids)]
    return (
        StreamBatches(
            dataset.train_ids,
            train.batch_size,
            train.seq_len,
            random_seed=random_seed,
            file_starts=starts,
        ),
        ValidationWindows(dataset.val_ids, train.batch_size, train.seq_len),
    )
