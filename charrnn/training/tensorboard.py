"""``train --tensorboard``: the evaluations as TensorBoard events, for people who
already watch their runs there. ``metrics.jsonl`` stays the source of truth; this is
a copy in another format, written under ``RUN/tensorboard``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from charrnn.errors import ConfigError
from charrnn.events import Evaluation, Progress, Reporter, RunStart, Summary

EXTRA = "pip install 'charrnn[tensorboard]'"


def _writer_class() -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(f"--tensorboard needs the tensorboard extra: {EXTRA}") from None
    except Exception as exc:
        what = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise ConfigError(
            f"--tensorboard: the installed tensorboard fails to import ({what}); "
            f"reinstall it: {EXTRA}"
        ) from None
    return SummaryWriter


class TensorBoardReporter:
    """Passes everything on to ``inner`` and writes each evaluation as events in the
    run directory's ``tensorboard`` folder."""

    def __init__(self, inner: Reporter) -> None:
        self.writer_class = _writer_class()  # fails now, before any training, if missing
        self.inner = inner
        self.writer: Any = None

    def start(self, info: RunStart) -> None:
        self.inner.start(info)
        # A resumed run drops events a killed run wrote after its last checkpoint.
        purge = info.start_step or None
        log_dir = Path(info.run_dir) / "tensorboard"
        self.writer = self.writer_class(log_dir=str(log_dir), purge_step=purge)

    def progress(self, progress: Progress) -> None:
        self.inner.progress(progress)

    def evaluated(self, evaluation: Evaluation) -> None:
        self.inner.evaluated(evaluation)
        if self.writer is None:
            return
        step, write = evaluation.step, self.writer.add_scalar
        write("loss/train", evaluation.train_loss, step)
        write("loss/val", evaluation.val_loss, step)
        write("bpc/val", evaluation.val_bpc, step)
        write("lr", evaluation.lr, step)
        write("speed/chars_per_s", evaluation.chars_per_s, step)
        if evaluation.sample:
            # Markdown: four spaces keep the sample's own line breaks and indentation.
            shown = "\n".join("    " + line for line in evaluation.sample.splitlines())
            self.writer.add_text("sample", shown, step)
        self.writer.flush()

    def finish(self, summary: Summary) -> None:
        self.inner.finish(summary)
        self.close()

    def notice(self, text: str) -> None:
        self.inner.notice(text)

    def warning(self, text: str) -> None:
        self.inner.warning(text)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
