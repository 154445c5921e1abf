"""A run directory: its file names, its metrics log, its settings and its lock.

::

    runs/<corpus>-<cell>/
      last.pt         latest state (resume from here)
      best.pt         lowest validation loss so far (sample from here)
      metrics.jsonl   one JSON object per evaluation
      config.toml     the settings actually used
      .lock           held while a process trains here
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from charrnn.checkpoint import BEST, LAST
from charrnn.config import RunConfig, to_toml
from charrnn.errors import RunDirError
from charrnn.events import SILENT, Reporter
from charrnn.files import atomic_write_text

METRICS = "metrics.jsonl"
CONFIG = "config.toml"
LOCK = ".lock"

try:  # POSIX advisory locks die with their process, so a killed run never leaves a stale one.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def default_run_name(corpus_name: str, cell: str) -> str:
    """``<corpus>-<cell>`` with anything but letters, digits, '.', '_' and '-' replaced."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", corpus_name).strip("._") or "corpus"
    return f"{safe}-{cell}"


class RunDir:
    """The files of one training run."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def last(self) -> Path:
        return self.path / LAST

    @property
    def best(self) -> Path:
        return self.path / BEST

    @property
    def metrics(self) -> Path:
        return self.path / METRICS

    @property
    def config(self) -> Path:
        return self.path / CONFIG

    def make(self) -> None:
        """Make the folder (and its parents) if needed; nothing in it is touched."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path}: exists and is not a directory")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create run directory {self.path}: {exc.strerror}") from None

    def claim(self, *, overwrite: bool = False) -> None:
        """Make the folder ready for a new run; call with the lock held, so nothing a live
        process owns is ever deleted. An existing run is refused unless ``overwrite``;
        a run that never saved a checkpoint (it failed at its start) is simply replaced."""
        ours = [p for p in (self.last, self.best, self.metrics, self.config) if p.exists()]
        saved = self.last.exists() or self.best.exists()
        if saved and not overwrite:
            raise RunDirError(
                f"{self.path} already holds a run: continue it with --resume {self.path}, "
                "start again with --overwrite, or choose another --out"
            )
        try:
            for stale in ours:
                stale.unlink()
        except OSError as exc:
            raise RunDirError(f"cannot prepare run directory {self.path}: {exc.strerror}") from None

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the run's lock: a second process training here is refused."""
        if fcntl is None:  # pragma: no cover
            yield
            return
        try:
            handle = (self.path / LOCK).open("a+")
        except OSError as exc:
            raise RunDirError(f"cannot lock run directory {self.path}: {exc.strerror}") from None
        try:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise RunDirError(
                    f"{self.path}: another charrnn process is training in this run directory"
                ) from None
            try:  # the holder's pid, for a person wondering who trains here
                handle.seek(0)
                handle.truncate()
                handle.write(f"{os.getpid()}\n")
                handle.flush()
            except OSError as exc:  # a full disk: the kernel lock itself is held
                raise RunDirError(f"cannot write {self.path / LOCK}: {exc.strerror}") from None
            yield
        finally:
            handle.close()

    def clean_temporaries(self) -> list[Path]:
        """Remove temporary files a killed process left behind (call with the lock held)."""
        removed = []
        for stale in self.path.glob(".*.tmp"):
            try:
                stale.unlink()
                removed.append(stale)
            except OSError:
                pass
        return removed

    def write_config(self, config: RunConfig) -> None:
        """Write ``config.toml`` atomically."""
        try:
            atomic_write_text(self.config, to_toml(config))
        except OSError as exc:
            raise RunDirError(f"cannot write {self.config}: {exc.strerror}") from None

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one evaluation as a JSON line, flushed to disk."""
        line = json.dumps(record, separators=(",", ":")) + "\n"
        try:
            with self.metrics.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise RunDirError(f"cannot write {self.metrics}: {exc.strerror}") from None

    def read_metrics(self, reporter: Reporter = SILENT) -> list[dict[str, Any]]:
        """All complete evaluation records; a torn line (killed mid-write) is skipped,
        with a warning to ``reporter``."""
        try:
            lines = self.metrics.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []
        records = []
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except ValueError:
                reporter.warning(
                    f"{self.metrics}: skipped line {number}, torn by an interrupted write"
                )
                continue
            step = record.get("step") if isinstance(record, dict) else None
            if isinstance(step, int) and not isinstance(step, bool):
                records.append(record)
            else:  # hand-edited or foreign: keep the rest readable
                reporter.warning(f"{self.metrics}: skipped line {number}, it has no step number")
        return records

    def truncate_metrics(self, step: int, reporter: Reporter = SILENT) -> None:
        """Keep only records up to ``step`` (evaluations after the resumed checkpoint go)."""
        if not self.metrics.exists():
            return
        kept = [r for r in self.read_metrics(reporter) if r["step"] <= step]
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in kept)
        try:
            atomic_write_text(self.metrics, text)
        except OSError as exc:
            raise RunDirError(f"cannot rewrite {self.metrics}: {exc.strerror}") from None
