"""``charrnn sample`` beyond a plain stream: whole items, stop strings, beam search and
samples kept apart from the training text — one function, :func:`shaped_samples`,
that the CLI calls and renders.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from charrnn._version import __version__
from charrnn.checkpoint import Checkpoint
from charrnn.config import Docs
from charrnn.data.dataset import Dataset, load_dataset
from charrnn.data.text import default_cache_dir
from charrnn.data.vocab import Vocab
from charrnn.errors import CharRNNError, ConfigError, CorpusError, VocabError
from charrnn.events import SILENT, Reporter
from charrnn.files import output_target, write_output
from charrnn.model.network import CharRNN
from charrnn.sampling.beam import MAX_BEAM, Hypothesis, beam_search
from charrnn.sampling.endings import Ending, draw_items, draw_until
from charrnn.sampling.novelty import MAX_SPAN, ItemSets, NgramIndex
from charrnn.sampling.sampler import Request

ITEM_WINDOWS = 2  # an item may run to twice the training window before it is cut


@dataclass(frozen=True)
class Shaped:
    """The finished samples, how to join them, and the line that says what they are."""

    texts: list[str]
    separator: str
    report: str | None


def wants_shaping(request: Request, checkpoint: Checkpoint) -> bool:
    """Whether the plain character stream will not do."""
    return bool(
        Docs(checkpoint.config.data.docs).on
        or request.stop
        or request.min_chars
        or request.novel
        or request.beam
    )


def shaped_samples(
    model: CharRNN,
    checkpoint: Checkpoint,
    request: Request,
    *,
    cache_dir: Path | None = None,
    reporter: Reporter = SILENT,
    on_progress: Callable[[int], None] | None = None,
) -> Shaped:
    """Draw what ``request`` asks from the model of ``checkpoint``; ``on_progress``
    (streams drawn at random) hears the characters each sample has gained, up to
    ``request.length``."""
    vocab = checkpoint.vocab
    docs = checkpoint.config.data.docs
    if request.beam is not None and not 1 <= request.beam <= MAX_BEAM:
        raise ConfigError(f"--beam must be 1 to {MAX_BEAM}, got {request.beam}")
    prime = request.prime_ids(vocab, reporter)
    generator = torch.Generator(device=model.head.weight.device)
    generator.manual_seed(request.seed)
    if Docs(docs).on:
        return _items(model, checkpoint, request, prime, generator, cache_dir, reporter)
    stop = _stop_ids(vocab, request.stop)
    if request.min_chars and not stop:
        raise ConfigError("--min-chars needs an end to hold back: give --stop (or a --docs run)")
    ending = Ending(request.length, stop, request.min_chars)
    if len(prime) == 0:
        prime = np.array([vocab.start_id], dtype=np.int64)
    head = vocab.decode(prime) if request.prime else ""
    if request.beam:
        found = beam_search(
            model, prime, request.beam, ending, precision=request.precision, want=request.count
        )
        texts = [head + vocab.decode(h.ids) for h in found[: request.count]]
        return Shaped(texts, "\n", _beam_line(found[: request.count]))
    index = val_index = None
    if request.novel is not None:
        index, val_index = _span_indexes(checkpoint, request.novel, cache_dir, reporter)
    drawn = draw_until(
        model, prime, request.count, ending, request.settings, generator,
        precision=request.precision, novel=index, on_progress=on_progress,
    )  # fmt: skip
    texts = [head + vocab.decode(ids) for ids in drawn.samples]
    report = None
    if index is not None and val_index is not None:
        report = _span_line(drawn.samples, drawn.redrawn, drawn.forced, index, val_index)
    return Shaped(texts, "\n", report)


def _stop_ids(vocab: Vocab, stop: str | None) -> tuple[int, ...]:
    if not stop:
        return ()
    if vocab.byte_level:  # every byte is in its vocabulary: the stop is its UTF-8 bytes
        return tuple(int(i) for i in vocab.encode(stop))
    unknown = sorted({c for c in stop if c not in vocab})
    if unknown:
        shown = ", ".join(repr(c) for c in unknown)
        raise VocabError(
            f"--stop {stop!r} has characters the model never writes: {shown}; "
            "it would never stop there"
        )
    return tuple(int(i) for i in vocab.encode(stop))


def _items(
    model: CharRNN,
    checkpoint: Checkpoint,
    request: Request,
    prime: np.ndarray,
    generator: torch.Generator,
    cache_dir: Path | None,
    reporter: Reporter,
) -> Shaped:
    vocab, config = checkpoint.vocab, checkpoint.config
    docs = config.data.docs
    newline = vocab.index_of("\n")
    if newline is None:
        raise VocabError("this --docs run's vocabulary has no newline to end an item with")
    if request.stop:
        raise ConfigError("a --docs run's samples end with their item: --stop is for streams")
    separator = Docs(docs).separator
    min_chars = max(1, request.min_chars)  # no training item is empty
    max_chars = ITEM_WINDOWS * config.train.seq_len
    if request.beam:
        ending = Ending(max_chars, (newline,) * Docs(docs).end_length, min_chars)
        starts = np.concatenate([[newline], prime])
        found = beam_search(
            model, starts, request.beam, ending, precision=request.precision, want=request.count
        )
        texts = [vocab.decode(np.concatenate([prime, h.ids])) for h in found[: request.count]]
        return Shaped(texts, separator, _beam_line(found[: request.count]))
    known = None
    try:
        dataset = _dataset(checkpoint, cache_dir, reporter)
        if dataset.train_items is not None and dataset.val_items is not None:
            known = ItemSets.of(dataset.train_items, dataset.val_items)
    except CharRNNError as exc:
        if request.novel:
            raise CorpusError(f"--novel needs the run's training text: {exc}") from None
        reporter.warning(f"cannot tell new items from training ones: {exc}")
    items, tally = draw_items(
        model, newline, prime, request.count, Docs(docs).end_length, max_chars,
        request.settings, generator, min_chars=min_chars, known=known,
        novel=bool(request.novel), precision=request.precision,
    )  # fmt: skip
    report = tally.line(len(items), bool(request.novel)) if known is not None else None
    if request.novel and len(items) < request.count:
        report = f"only {report}; the model mostly writes training items at these settings"
    return Shaped([vocab.decode(ids) for ids in items], separator, report)


def _dataset(checkpoint: Checkpoint, cache_dir: Path | None, reporter: Reporter) -> Dataset:
    return load_dataset(
        checkpoint.config, cache_dir=cache_dir, vocab=checkpoint.vocab, reporter=reporter
    )


def _span_indexes(
    checkpoint: Checkpoint, n: int, cache_dir: Path | None, reporter: Reporter
) -> tuple[NgramIndex, NgramIndex]:
    """The training and validation texts' n-character spans (the training one cached)."""
    if not 2 <= n <= MAX_SPAN:
        raise ConfigError(f"--novel takes a span of 2 to {MAX_SPAN} characters, got {n}")
    try:
        dataset = _dataset(checkpoint, cache_dir, reporter)
    except CharRNNError as exc:
        raise CorpusError(f"--novel needs the run's training text: {exc}") from None
    corpus = dataset.corpus
    key = f"{corpus.sha256}-{len(dataset.train_ids)}-{int(corpus.vocab.byte_level)}-{n}"
    name = hashlib.sha256(key.encode()).hexdigest()[:24]
    cache = (cache_dir or default_cache_dir()) / "ngrams" / f"{name}.npy"
    return NgramIndex.build(dataset.train_ids, n, cache), NgramIndex.build(dataset.val_ids, n)


def _span_line(
    samples: list[np.ndarray], redrawn: int, forced: int, index: NgramIndex, val: NgramIndex
) -> str:
    total = in_train = in_val = 0
    for ids in samples:
        known, spans = index.share_known(ids)
        total, in_train = total + spans, in_train + known
        in_val += val.share_known(ids)[0]
    n = index.n
    line = (
        f"--novel {n}: {total - in_train} of {total} {n}-character spans are new "
        f"({in_train} in the training text, {in_val} in the validation text); "
        f"{redrawn} characters redrawn"
    )
    if forced:
        line += f", {forced} steps where every character would have copied"
    return line


def _beam_line(found: list[Hypothesis]) -> str:
    parts = [f"{-h.log_prob:.2f}" for h in found]
    return f"beam search, most likely first: -log p = {', '.join(parts)} nats"


def check_samples_target(path: Path, *, overwrite: bool) -> Path | None:
    """Refuse ``path`` (and its ``.json`` record) before any drawing by the rule of
    :func:`charrnn.files.output_target`; return where the record goes (None for a
    device or pipe: ``--out /dev/stdout`` gets the text alone)."""
    _, through = output_target(path, overwrite=overwrite)
    if through:
        return None
    record = Path(f"{path}.json")
    output_target(record, overwrite=overwrite)
    return record


def write_samples(
    path: Path, text: str, request: Request, run: Path, *, overwrite: bool = False
) -> None:
    """``text`` to ``path`` and the settings that drew it to ``path.json``, each atomic."""
    record_path = check_samples_target(path, overwrite=overwrite)
    record = {
        "run": str(Path(run).resolve()),
        "charrnn": __version__,
        "seed": request.seed,
        "count": request.count,
        "length": request.length,
        "prime": request.prime,
        "temperature": request.settings.temperature,
        "top_k": request.settings.top_k,
        "top_p": request.settings.top_p,
        "stop": request.stop,
        "min_chars": request.min_chars,
        "novel_span": request.novel,
        "beam": request.beam,
        "precision": request.precision,
    }
    write_output(path, text, overwrite=overwrite)
    if record_path is not None:
        write_output(record_path, json.dumps(record, indent=2) + "\n", overwrite=overwrite)
