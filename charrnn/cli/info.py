"""``charrnn info`` (a checkpoint's facts) and ``charrnn vocab`` (a text's symbols)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from charrnn.cli import options as opt
from charrnn.cli.errors import friendly_errors
from charrnn.cli.live import duration, printable, stdout_console, stop_reason
from charrnn.config import Docs
from charrnn.units import to_bits

if TYPE_CHECKING:
    import numpy as np

    from charrnn.checkpoint import Checkpoint
    from charrnn.config import ModelConfig
    from charrnn.data.vocab import Vocab


@friendly_errors
def info(
    checkpoint: opt.CheckpointArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
) -> None:
    """Show a checkpoint's settings, size, progress and validation loss."""
    from charrnn.checkpoint import check_weights, load_checkpoint, resolve_checkpoint

    path = resolve_checkpoint(checkpoint)
    record = load_checkpoint(path)
    check_weights(record, path)  # the weights fit the settings, without building the model
    if as_json:
        typer.echo(json.dumps(info_dict(record), indent=2))
    else:
        stdout_console().print(info_table(path, record))


@friendly_errors
def vocab(
    files: opt.CorpusFiles = None,
    encoding: opt.EncodingOpt = None,
    byte_level: opt.BytesOpt = None,
    max_mb: opt.MaxMbOpt = None,
    strict: opt.StrictOpt = False,
    include_hidden: opt.IncludeHiddenOpt = False,
    show: Annotated[int, typer.Option("--show", min=1, help="Most frequent symbols listed.")] = 40,
    rarest: Annotated[int, typer.Option("--rarest", min=0, help="Rarest symbols listed.")] = 10,
    cache_dir: opt.CacheOpt = None,
) -> None:
    """Show a text's vocabulary: size, characters with counts, the rarest ones."""
    from charrnn.cli.live import Noticed
    from charrnn.data.catalog import resolve_corpus
    from charrnn.data.sources import resolve_inputs
    from charrnn.data.text import vocabulary_of

    file = resolve_inputs(
        files or [],
        encoding=encoding or "utf-8",
        strict=strict,
        hidden=include_hidden,
        byte_level=bool(byte_level),
        cache_dir=cache_dir,
        reporter=Noticed(),
    )  # fmt: skip  (what was joined and left out, on stderr, as train says it)
    path, name = resolve_corpus(file, max_mb=max_mb or opt._DATA.max_mb, cache_dir=cache_dir)
    symbols, counts = vocabulary_of(
        path, encoding=encoding or "utf-8", byte_level=bool(byte_level), cache_dir=cache_dir
    )
    console = stdout_console()
    label = name if not files else " ".join(str(f) for f in files)
    for part in vocab_table(symbols, counts, label, show=show, rarest=rarest):
        console.print(part)


def vocab_table(
    vocab: Vocab, counts: np.ndarray, source: str, *, show: int = 40, rarest: int = 10
) -> list[Any]:
    """Renderables for ``charrnn vocab``: a summary line, the commonest and rarest symbols."""
    from charrnn.data.vocab import describe_symbol

    total = int(counts.sum())
    import numpy as np

    order = np.argsort(-counts, kind="stable")
    summary = Text.assemble(
        (f"{source}", "bold"),
        f": {len(vocab)} symbols, {total:,} characters"
        + (" (byte-level)" if vocab.byte_level else ""),
    )

    def table(title: str, ids: np.ndarray) -> Table:
        t = Table(title=title, title_justify="left")
        t.add_column("id", justify="right")
        t.add_column("char")
        t.add_column("code", justify="right")
        t.add_column("count", justify="right")
        t.add_column("share", justify="right")
        for i in ids:
            sym = vocab.symbols[int(i)]
            code = f"0x{sym:02X}" if vocab.byte_level else f"U+{sym:04X}"
            share = counts[i] / total if total else 0.0
            t.add_row(
                str(int(i)),
                describe_symbol(sym, vocab.byte_level),
                code,
                f"{int(counts[i]):,}",
                f"{share:.3%}",
            )
        return t

    if len(vocab) <= show + rarest:
        return [summary, table("all symbols, most frequent first", order)]
    return [
        summary,
        table(f"the {show} most frequent", order[:show]),
        table(f"the {rarest} rarest", order[::-1][:rarest]),
    ]


def _loss(nats: float) -> str:
    return f"{nats:.4f} nats = {to_bits(nats):.4f} bpc" if math.isfinite(nats) else "-"


def info_table(path: Path, checkpoint: Checkpoint) -> Table:
    """The settings and progress stored in a checkpoint (strings from the file escaped)."""
    model, train, data = checkpoint.config.model, checkpoint.config.train, checkpoint.config.data
    corpus = checkpoint.corpus
    where = corpus.path if corpus is not None else (data.path or "?")
    from charrnn.data.run_sources import RUN_SOURCES, run_skipped, run_sources
    from charrnn.data.sources import left_out_text

    files = len(run_sources(path.parent) or [])
    left_out = left_out_text(run_skipped(path.parent))
    # A finished run's figures read the whole validation text (its final evaluation
    # did) unless its time budget ran out first; until then, the fixed part
    # evaluations during training read.
    measured = (
        " (the whole validation text)"
        if checkpoint.best_whole
        else " (a part of the validation text: the one evaluations read during training,"
        " or what the final evaluation had time for)"
    )
    listed = escape(printable(str(path.parent / RUN_SOURCES)))
    t = Table(title=escape(printable(str(path))), title_justify="left", show_header=False)
    t.add_column("setting", style="bold")
    t.add_column("value")
    byte_level = " (byte-level)" if checkpoint.vocab.byte_level else ""
    rows = [
        ("cell", model.cell),
        ("layers x hidden", f"{model.num_layers} x {model.hidden_size}"),
        ("embedding", str(model.embed_size or "one-hot")),
        ("regularisation", regularisation(model)),
        ("parameters", f"{checkpoint.num_parameters:,}"),
        ("vocabulary", f"{len(checkpoint.vocab)} symbols{byte_level}"),
        ("corpus", f"{corpus.name if corpus else '?'} ({where})"),
        *([("files", f"{files:,} joined (listed in {listed})")] if files else []),
        *([("left out", left_out)] if files and left_out else []),
        *([("items", f"--docs {data.docs}")] if Docs(data.docs).on else []),
        *([("started from", train.init_from)] if train.init_from else []),
        ("steps trained", f"{checkpoint.step:,}"),
        ("characters seen", f"{checkpoint.chars_seen:,}"),
        ("run time", duration(checkpoint.elapsed_s)),
        (
            "ended by",
            stop_reason(checkpoint.stopped_by) if checkpoint.finished else "(saved mid-run)",
        ),
        ("batch x seq-len", f"{train.batch_size} x {train.seq_len}"),
        ("lr, schedule", f"{train.lr}, {train.schedule}"),
        ("best val loss", _loss(checkpoint.best_val_loss) + measured),
        ("last val loss", _loss(checkpoint.last_val_loss)),
        ("charrnn version", checkpoint.charrnn_version),
    ]
    for key, value in rows:
        t.add_row(key, Text(printable(value)))  # Text: never read as Rich markup
    return t


def regularisation(model: ModelConfig) -> str:
    """The model's dropouts in one line ("none" when all are off)."""
    parts = [
        f"{name} {value:g}"
        for name, value in (
            ("dropout", model.dropout),
            ("input", model.input_dropout),
            ("embedding", model.embed_dropout),
            ("weight drop", model.weight_drop),
        )
        if value
    ]
    if model.cell == "lstm" and model.forget_bias:
        parts.append(f"forget bias {model.forget_bias:g}")
    return ", ".join(parts) or "none"


def info_dict(checkpoint: Checkpoint) -> dict[str, Any]:
    """``charrnn info --json``: the same facts as plain values."""
    best = checkpoint.best_val_loss
    finite = math.isfinite(best)
    return {
        "config": checkpoint.config.to_dict(),
        "vocab_size": len(checkpoint.vocab),
        "parameters": checkpoint.num_parameters,
        "step": checkpoint.step,
        "chars_seen": checkpoint.chars_seen,
        "elapsed_s": checkpoint.elapsed_s,
        "finished": checkpoint.finished,
        "stopped_by": checkpoint.stopped_by,
        "best_val_loss": best if finite else None,
        "best_val_bpc": to_bits(best) if finite else None,
        "corpus": vars(checkpoint.corpus) if checkpoint.corpus else {},
        "charrnn_version": checkpoint.charrnn_version,
    }
