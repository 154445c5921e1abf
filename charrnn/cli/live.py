"""Rich rendering for the CLI: the live training display, tables, and JSON lines.

Nothing here computes anything the library does not already report; it only shows
it. Diagnostics go to stderr, data (JSON lines, samples) to stdout.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from charrnn.checkpoint import Checkpoint
from charrnn.config import ModelConfig
from charrnn.data.catalog import CorpusInfo
from charrnn.data.vocab import Vocab, describe_symbol
from charrnn.events import Evaluation, RunStart, Silent, Summary
from charrnn.events import Progress as TrainProgress
from charrnn.inspection.hello import HelloResult
from charrnn.units import to_bits

BAR_UNITS = 1000  # the bar follows the budget fraction, which time budgets need


def stderr_console() -> Console:
    """A console on stderr that follows redirections made after import (tests)."""
    return Console(stderr=True, highlight=False)


def stdout_console() -> Console:
    return Console(highlight=False)


def human(n: float) -> str:
    """1234567 -> '1.23M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Quiet(Silent):
    """``--quiet``: nothing but warnings (on stderr)."""

    def warning(self, text: str) -> None:
        stderr_console().print(f"warning: {escape(text)}", soft_wrap=True)


class LiveReporter(Quiet):
    """The training display: a progress bar with the numbers a person watches.

    At every evaluation a line with the validation loss and a short sample is
    printed above the bar, so the model can be seen learning.
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or stderr_console()
        self.bar = Progress(
            BarColumn(bar_width=20),
            TextColumn("step {task.fields[step]}"),
            TextColumn("epoch {task.fields[epoch]}"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("val bpc {task.fields[bpc]}"),
            TextColumn("{task.fields[speed]} char/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(compact=True),
            console=self.console,
            transient=False,
        )
        self.task: TaskID | None = None
        self.total_steps: int | None = None

    def start(self, info: RunStart) -> None:
        resumed = f", resuming at step {info.start_step}" if info.start_step else ""
        items = ""
        if info.items is not None:
            items = f"{info.items[0]:,} training and {info.items[1]:,} validation items, "
        self.console.print(
            f"[bold]{escape(printable(info.corpus))}[/]: {items}{human(info.train_chars)} "
            f"training and {human(info.val_chars)} validation characters, vocabulary "
            f"{info.vocab_size}; "
            f"model {human(info.parameters)} parameters on {info.device}{resumed}\n"
            f"run directory: {escape(str(info.run_dir))}"
        )
        self.total_steps = info.total_steps
        self.bar.start()
        self.task = self.bar.add_task(
            "train",
            total=BAR_UNITS,
            step=self._steps(info.start_step),
            epoch="0.00",
            loss="-",
            bpc="-",
            speed="-",
        )

    def _steps(self, step: int) -> str:
        return f"{step}/{self.total_steps}" if self.total_steps else str(step)

    def progress(self, p: TrainProgress) -> None:
        if self.task is None:
            return
        self.bar.update(
            self.task,
            completed=p.fraction * BAR_UNITS,
            step=self._steps(p.step),
            epoch=f"{p.epoch:.2f}",
            loss=f"{p.train_loss:.3f}",
            bpc=f"{p.val_bpc:.3f}" if p.val_bpc is not None else "-",
            speed=human(p.chars_per_s),
        )

    def evaluated(self, e: Evaluation) -> None:
        if self.task is not None:
            self.bar.update(self.task, bpc=f"{e.val_bpc:.3f}")
        star = " [green]★ best[/]" if e.is_best else ""
        self.console.print(
            f"[bold]step {e.step}[/] epoch {e.epoch:.2f}: train {e.train_loss:.4f}  "
            f"val {e.val_loss:.4f} nats = [bold]{e.val_bpc:.4f} bpc[/]{star}"
        )
        if e.sample:
            sample = e.sample.replace("\r", "").strip("\n")
            self.console.print(Text(sample, style="dim"), soft_wrap=True)

    def finish(self, s: Summary) -> None:
        self.bar.stop()
        self.console.print(
            f"done after {s.step} steps ({human(s.chars_seen)} characters, "
            f"{duration(s.elapsed_s)}; {stop_reason(s.stopped_by)}): best validation "
            f"{s.best_val_loss:.4f} nats = {s.best_val_bpc:.4f} bpc\n"
            f"time spent: {time_spent(s.time_spent)}\n"
            f"checkpoints in {escape(str(s.run_dir))} — sample with: "
            f"charrnn sample {escape(str(s.run_dir))}"
        )

    def notice(self, text: str) -> None:
        self.console.print(escape(text), soft_wrap=True)

    def close(self) -> None:
        """Stop the bar (if it was started), e.g. when training ended in an error."""
        if self.task is not None:
            with suppress(OSError):  # the terminal or pipe has gone: nothing left to tidy
                self.bar.stop()


class JsonReporter(Quiet):
    """One JSON object per evaluation on stdout (``--json``), for scripts; notices (the
    settings chosen, for one) on stderr."""

    def evaluated(self, evaluation: Evaluation) -> None:
        sys.stdout.write(json.dumps(evaluation.record()) + "\n")
        sys.stdout.flush()

    def notice(self, text: str) -> None:
        stderr_console().print(escape(text), soft_wrap=True)


# -- tables ---------------------------------------------------------------------------------


def vocab_table(
    vocab: Vocab, counts: np.ndarray, source: str, *, show: int = 40, rarest: int = 10
) -> list[Any]:
    """Renderables for ``charrnn vocab``: a summary line, the commonest and rarest symbols."""
    total = int(counts.sum())
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


def printable(text: str) -> str:
    """``text`` with control characters (terminal escape sequences among them) shown as
    ``\\xNN`` escapes: strings from a file never drive the terminal."""
    return "".join(
        c if c.isprintable() or c == " " else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def _loss(nats: float) -> str:
    return f"{nats:.4f} nats = {to_bits(nats):.4f} bpc" if math.isfinite(nats) else "-"


def info_table(path: Path, checkpoint: Checkpoint) -> Table:
    """The settings and progress stored in a checkpoint (strings from the file escaped)."""
    model, train, data = checkpoint.config.model, checkpoint.config.train, checkpoint.config.data
    corpus = checkpoint.corpus
    where = corpus.path if corpus is not None else (data.path or "?")
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
        *([("items", f"--docs {data.docs}")] if data.docs != "none" else []),
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
        ("best val loss", _loss(checkpoint.best_val_loss)),
        ("last val loss", _loss(checkpoint.last_val_loss)),
        ("charrnn version", checkpoint.charrnn_version),
    ]
    for key, value in rows:
        t.add_row(key, Text(printable(value)))  # Text: never read as Rich markup
    return t


_STOP_REASONS = {
    "steps": "budget: steps",
    "epochs": "budget: epochs",
    "time": "budget: time",
    "patience": "early stop: no new best for --patience evaluations",
}


def stop_reason(stopped_by: str | None) -> str:
    """What ended a run, in words."""
    return _STOP_REASONS.get(stopped_by or "", stopped_by or "unknown")


def time_spent(spent: dict[str, float]) -> str:
    """``"71.2 s training, 3.1 s evaluating, 0.4 s saving"``."""
    return ", ".join(f"{seconds:.1f} s {activity}" for activity, seconds in spent.items())


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


def hello_tables(result: HelloResult) -> list[Any]:
    """The lecture's figure as tables: output scores per input, before and after."""
    chars = [chr(s) for s in result.vocab.symbols]

    def table(title: str, rows: list[Any]) -> Table:
        t = Table(title=title, title_justify="left")
        t.add_column("input")
        t.add_column("target")
        for c in chars:
            t.add_column(f"score '{c}'", justify="right")
        t.add_column("predicted")
        for r in rows:
            best = max(r.scores)
            scores = [f"[bold green]{s:+.2f}[/]" if s == best else f"{s:+.2f}" for s in r.scores]
            mark = "[green]✓[/]" if r.predicted == r.target_char else "[red]✗[/]"
            t.add_row(r.input_char, r.target_char, *scores, f"{r.predicted} {mark}")
        return t

    return [
        Text(
            f"vocabulary {chars} (sorted), one-hot inputs, vanilla RNN with 3 hidden units",
        ),
        table(f"before training (loss {result.first_loss:.3f})", result.before),
        table(f"after {result.steps} steps (loss {result.final_loss:.4f})", result.after),
    ]


@contextmanager
def download_bar(name: str, total: int | None) -> Iterator[Callable[[int, int | None], None]]:
    """A transient download bar on stderr; yields the progress callback to give fetch."""
    with Progress(
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=stderr_console(),
        transient=True,
    ) as bar:
        task = bar.add_task(name, total=total)

        def progress(done: int, size: int | None) -> None:
            bar.update(task, completed=done, total=size)

        yield progress


def corpus_table(rows: list[CorpusInfo]) -> Table:
    """``charrnn corpus list``."""
    t = Table(title="corpora (train on one with: charrnn train corpus:NAME)", title_justify="left")
    for column in ("name", "kind", "size", "good for", "status"):
        t.add_column(column)
    for row in rows:
        t.add_row(row.name, row.kind, row.size, row.good_for, row.status)
    return t
