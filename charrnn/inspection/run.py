"""``charrnn inspect``: measure a run's model on a text and write the page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charrnn.checkpoint import Checkpoint, load_model
from charrnn.config import ModelConfig
from charrnn.data.dataset import load_dataset
from charrnn.data.text import check_readable
from charrnn.errors import ConfigError, CorpusError
from charrnn.events import SILENT, Reporter
from charrnn.files import output_target, write_output
from charrnn.inspection.measures import (
    Trace,
    UnitMatch,
    correlations,
    flow_summary,
    gradient_flow,
    saturation,
    too_short_to_correlate,
    trace,
)
from charrnn.inspection.page import flow_svg, page_data, printable_vocab, render, saturation_svg
from charrnn.units import to_bits

DEFAULT_CHARS = 2000
MAX_CHARS = 20_000
MAX_LAG = 200


@dataclass(frozen=True)
class Inspection:
    page: Path
    trace: Trace
    matches: list[UnitMatch]
    flow: np.ndarray | None
    summary: str
    correlation_note: str | None = None  # why there are no matches (a short text)


def _text_of(
    checkpoint: Checkpoint,
    file: Path | None,
    text: str | None,
    limit: int,
    cache_dir: Path | None,
    reporter: Reporter,
) -> tuple[str, str]:
    """(up to ``limit`` characters to read, where they came from)."""
    if text is not None:
        return text[:limit], f"--text ({len(text):,} characters)"
    model_config = checkpoint.config
    if file is not None:
        check_readable(file)
        with open(file, encoding=model_config.data.encoding, errors="strict") as handle:
            try:
                head = handle.read(limit + 1)
            except UnicodeDecodeError as exc:
                raise CorpusError(
                    f"{file}: not {model_config.data.encoding} text ({exc.reason})"
                ) from None
        more = " or more" if len(head) > limit else ""
        return head[:limit], f"{file} (first {min(len(head), limit):,} characters{more})"
    dataset = load_dataset(
        model_config, cache_dir=cache_dir, vocab=checkpoint.vocab, reporter=reporter
    )
    vocab = dataset.corpus.vocab
    if dataset.val_items is not None:
        items = dataset.val_items
        pieces, size = [], 0
        for start, length in zip(items.starts, items.lengths, strict=True):
            pieces.append(vocab.decode(items.ids[start : start + length]))
            size += length + 1
            if size >= limit:
                break
        return "\n".join(pieces)[:limit], "the run's validation items"
    return vocab.decode(dataset.val_ids[:limit]), "the run's validation text"


def check_unit(model: ModelConfig, unit: tuple[int, str, int]) -> None:
    """``unit`` (layer, "hidden" or "cell", index) must exist in the model."""
    layer, state, index = unit
    if state == "cell" and model.cell != "lstm":
        raise ConfigError("--unit: only an LSTM has a cell state; use hidden")
    if not 0 <= layer < model.num_layers or not 0 <= index < model.hidden_size:
        raise ConfigError(
            f"--unit: the model has {model.num_layers} layers of {model.hidden_size} units "
            f"(layers 0 to {model.num_layers - 1}, units 0 to {model.hidden_size - 1})"
        )


def inspect_run(
    run: Path,
    *,
    file: Path | None = None,
    text: str | None = None,
    out: Path | None = None,
    overwrite: bool = False,
    unit: tuple[int, str, int] | None = None,
    max_chars: int = DEFAULT_CHARS,
    skip_unknown: bool = False,
    cache_dir: Path | None = None,
    reporter: Reporter = SILENT,
) -> Inspection:
    """Trace ``run``'s best model over the text and write the page (``out``, default
    ``RUN/inspect.html``, by the rule of :func:`charrnn.files.output_target`)."""
    if not 1 <= max_chars <= MAX_CHARS:
        raise ConfigError(f"--max-chars must be 1 to {MAX_CHARS:,}, got {max_chars}")
    run = Path(run)
    target = out or (run if run.is_dir() else run.parent) / "inspect.html"
    overwrite = overwrite or out is None  # the default page is the run's own, redrawn
    output_target(target, overwrite=overwrite)  # refused before the work, not after
    model, vocab, checkpoint = load_model(run)
    if unit is not None:
        check_unit(checkpoint.config.model, unit)
    content, source = _text_of(checkpoint, file, text, max_chars, cache_dir, reporter)
    if skip_unknown:
        content = "".join(ch for ch in content if ch in vocab)
    if not content:
        raise CorpusError(f"{source}: nothing to inspect (no characters of the vocabulary)")
    found = trace(model, vocab, content)
    matches = correlations(found)
    correlation_note = too_short_to_correlate(len(found.text))
    flow = gradient_flow(model, found.ids, MAX_LAG) if len(found.ids) >= 3 else None
    m = checkpoint.config.model
    described = f"{m.num_layers}x{m.hidden_size} {m.cell.upper()}"
    bpc = to_bits(float(found.surprisal.mean()))
    summary = (
        f"{described}, step {checkpoint.step}, reading {source}: {len(found.ids):,} characters "
        f"at {bpc:.3f} bits per character (--max-chars reads up to {MAX_CHARS:,}; fewer keep "
        "the page quick)."
    )
    note = flow_summary(flow) + "." if flow is not None else "The text is too short to measure it."
    chars = printable_vocab(vocab.symbols, vocab.byte_level)
    page = render(
        title=f"Inside {run}",
        summary=summary,
        data=page_data(found, chars, matches),
        saturation=saturation_svg(saturation(found)),
        flow=flow_svg({described: flow}) if flow is not None else "",
        flow_note=note,
        matches_note=correlation_note or "",
    )
    write_output(target, page, overwrite=overwrite)
    return Inspection(target, found, matches, flow, summary, correlation_note)
