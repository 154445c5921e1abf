"""Settings: frozen dataclasses, validated when built, read from and written to TOML.

A run's settings come in three parts — what it reads (:class:`DataConfig`), what it
builds (:class:`ModelConfig`) and how it trains (:class:`TrainConfig`). Each part is
a table in ``config.toml``; the CLI fills them from a ``--config`` file first and
its own options second, so options on the command line win.
"""

from __future__ import annotations

import codecs
import math
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any, TypeVar

import tomli_w

from charrnn.errors import ConfigError


# The choices, defined once: the dataclasses validate against them and the CLI's
# options are typed by them (Typer lists them in --help and rejects others).
class Cell(StrEnum):
    rnn = "rnn"
    lstm = "lstm"
    gru = "gru"


class Schedule(StrEnum):
    cosine = "cosine"
    step = "step"
    constant = "constant"


class Windows(StrEnum):
    """How training windows are laid out."""

    streams = "streams"
    random = "random"


class Docs(StrEnum):
    """How the text divides into items (see :mod:`charrnn.data.items`)."""

    none = "none"
    lines = "lines"
    blank_lines = "blank-lines"

    @property
    def on(self) -> bool:
        """Whether the text is read as items at all."""
        return self is not Docs.none

    @property
    def end_length(self) -> int:
        """How many newlines end an item: 1 after a line, 2 (a blank line) after a paragraph."""
        return 2 if self is Docs.blank_lines else 1

    @property
    def separator(self) -> str:
        """What ends an item, and so what sits between two items written out."""
        return "\n" * self.end_length


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Precision(StrEnum):
    """Arithmetic of training's forward pass."""

    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
    auto = "auto"


class SamplePrecision(StrEnum):
    """Weights used while drawing."""

    fp32 = "fp32"
    bf16 = "bf16"


CELLS = tuple(Cell)
SCHEDULES = tuple(Schedule)
DEVICES = tuple(Device)
WINDOWS = tuple(Windows)
DOCS = tuple(Docs)
PRECISIONS = tuple(Precision)
SAMPLE_PRECISIONS = tuple(SamplePrecision)
BUDGET_KEYS = ("steps", "epochs", "time_s")


def text_codec(encoding: str) -> bool:
    """Whether ``encoding`` names a codec that turns bytes into text (not rot13, hex,
    base64 or zlib, which Python also calls codecs)."""
    try:
        return bool(codecs.lookup(encoding)._is_text_encoding)
    except LookupError:
        return True  # unknown: the corpus reader names it, with its own message


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _positive_int(name: str, value: Any) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
    _require(ok, f"{name} must be a positive integer, got {value!r}")


def _finite(name: str, value: Any, low: float, high: float, *, open_low: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if open_low else value >= low) and value <= high
    bracket = "(" if open_low else "["
    _require(ok, f"{name} must be a number in {bracket}{low:g}, {high:g}], got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """The network: embedding -> ``num_layers`` recurrent layers -> linear.

    ``embed_size`` 0 feeds one-hot vectors instead of a learned embedding (as in
    the lecture's figure). The dropouts and weight drop are described in
    :mod:`charrnn.model.network`; ``forget_bias`` is the LSTM forget gates' starting bias.
    """

    cell: str = "lstm"
    num_layers: int = 2
    hidden_size: int = 256
    embed_size: int = 64
    dropout: float = 0.0
    input_dropout: float = 0.0
    embed_dropout: float = 0.0
    weight_drop: float = 0.0
    forget_bias: float = 0.0

    @property
    def state_parts(self) -> int:
        """Tensors in the recurrent state: (h, c) for an LSTM, h for an RNN or GRU."""
        return 2 if self.cell == "lstm" else 1

    def __post_init__(self) -> None:
        _require(self.cell in CELLS, f"cell must be one of {', '.join(CELLS)}, got {self.cell!r}")
        _positive_int("layers", self.num_layers)
        _positive_int("hidden", self.hidden_size)
        ok = isinstance(self.embed_size, int) and self.embed_size >= 0
        _require(ok, f"embed must be 0 (one-hot) or a positive integer, got {self.embed_size!r}")
        for name in ("dropout", "input_dropout", "embed_dropout", "weight_drop"):
            _finite(name.replace("_", "-"), getattr(self, name), 0.0, 0.95)
        _finite("forget-bias", self.forget_bias, -10.0, 10.0)


@dataclass(frozen=True)
class DataConfig:
    """The corpus: a file (None = the embedded default) and how to read and split it.

    ``docs`` other than "none" learns the text as separate items, one per line or
    per paragraph (:mod:`charrnn.data.items`).
    """

    path: str | None = None
    encoding: str = "utf-8"
    byte_level: bool = False
    val_frac: float = 0.05
    val_file: str | None = None
    max_mb: float = 4.0
    docs: str = "none"

    def __post_init__(self) -> None:
        for name in ("path", "val_file"):
            value = getattr(self, name)
            _require(value is None or isinstance(value, str), f"{name} must be text, got {value!r}")
        _require(isinstance(self.encoding, str), f"encoding must be text, got {self.encoding!r}")
        _require(text_codec(self.encoding), f"{self.encoding!r} is not a text encoding")
        _require(
            isinstance(self.byte_level, bool),
            f"byte_level must be true or false, got {self.byte_level!r}",
        )
        _finite("val-frac", self.val_frac, 0.0, 0.5, open_low=True)
        _finite("max-mb", self.max_mb, 0.0, 1e6, open_low=True)
        _require(self.docs in DOCS, f"docs must be one of {', '.join(DOCS)}, got {self.docs!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, budget, cadence and hardware.

    The budget is whichever of ``steps``, ``epochs`` and ``time_s`` ends first; the
    learning-rate schedule follows the fraction of that budget used so far.
    ``eval_every`` None evaluates at each tenth of the budget (see
    :class:`charrnn.training.schedule.Cadence`); ``patience`` ends the run after that many
    evaluations without a new best.
    """

    batch_size: int = 32
    seq_len: int = 100
    windows: str = "streams"
    lr: float = 2e-3
    weight_decay: float = 0.01
    clip: float = 5.0
    warmup: float = 0.02
    schedule: str = "cosine"
    min_lr_frac: float = 0.1
    steps: int | None = 5000
    epochs: float | None = None
    time_s: float | None = None
    eval_every: int | None = None
    # Characters each evaluation during training reads (a fixed, seeded subset of the
    # validation text); None: sized so evaluations take ~8 % of the budget; 0: all.
    # The final evaluation always reads the whole text.
    eval_chars: int | None = None
    # Keep a running average of the weights and keep it when it validates better (see
    # charrnn.training.averaging); off: the weights the run ends with, or best.pt.
    average: bool = True
    save_every: int = 500
    patience: int | None = None
    sample_length: int = 200
    seed: int = 1337
    device: str = "auto"
    threads: int | None = None
    max_bad_steps: int = 10
    precision: str = "fp32"
    init_from: str | None = None  # the run whose weights this one started from

    def __post_init__(self) -> None:
        _positive_int("batch-size", self.batch_size)
        _positive_int("seq-len", self.seq_len)
        _require(
            self.windows in WINDOWS,
            f"windows must be one of {', '.join(WINDOWS)}, got {self.windows!r}",
        )
        _finite("lr", self.lr, 0.0, 10.0, open_low=True)
        _finite("weight-decay", self.weight_decay, 0.0, 10.0)
        _finite("clip", self.clip, 0.0, 1e6)
        _finite("warmup", self.warmup, 0.0, 0.5)
        _require(
            self.schedule in SCHEDULES,
            f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}",
        )
        _finite("min-lr-frac", self.min_lr_frac, 0.0, 1.0)
        if self.steps is not None:
            _positive_int("steps", self.steps)
        if self.epochs is not None:
            _finite("epochs", self.epochs, 0.0, 1e9, open_low=True)
        if self.time_s is not None:
            _finite("time", self.time_s, 0.0, 1e9, open_low=True)
        _require(
            any(b is not None for b in (self.steps, self.epochs, self.time_s)),
            "give a training budget: --steps, --epochs or --time",
        )
        if self.eval_every is not None:
            _positive_int("eval-every", self.eval_every)
        if self.eval_chars is not None:
            _require(
                isinstance(self.eval_chars, int)
                and not isinstance(self.eval_chars, bool)
                and self.eval_chars >= 0,
                f"eval-chars must be a whole number >= 0, got {self.eval_chars!r}",
            )
        _require(
            isinstance(self.average, bool), f"average must be true or false, got {self.average!r}"
        )
        if self.patience is not None:
            _positive_int("patience", self.patience)
        _positive_int("save-every", self.save_every)
        ok = isinstance(self.sample_length, int) and 0 <= self.sample_length <= 100_000
        _require(ok, f"sample-length must be 0 to 100000, got {self.sample_length!r}")
        ok = isinstance(self.seed, int) and not isinstance(self.seed, bool)
        _require(
            ok and 0 <= self.seed < 2**63,
            f"seed must be an integer in [0, 2^63), got {self.seed!r}",
        )
        _require(
            self.device in DEVICES,
            f"device must be one of {', '.join(DEVICES)}, got {self.device!r}",
        )
        if self.threads is not None:
            _positive_int("threads", self.threads)
            _require(self.threads <= 1024, f"threads must be at most 1024, got {self.threads}")
        _positive_int("max-bad-steps", self.max_bad_steps)
        ok = self.init_from is None or isinstance(self.init_from, str)
        _require(ok, f"init_from must be a path, got {self.init_from!r}")
        _require(
            self.precision in PRECISIONS,
            f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}",
        )


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs: the three tables of ``config.toml``."""

    data: DataConfig
    model: ModelConfig
    train: TrainConfig

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Plain values; ``None`` (not representable in TOML) is left out."""
        return {
            section: {k: v for k, v in asdict(getattr(self, section)).items() if v is not None}
            for section in ("data", "model", "train")
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build from nested tables; unknown tables or keys are a ConfigError."""
        unknown = set(data) - {"data", "model", "train"}
        _require(not unknown, f"unknown config table(s): {', '.join(sorted(unknown))}")
        train = dict(data.get("train", {}))
        if any(key in train for key in BUDGET_KEYS):
            # A stated budget is the whole budget: the default step count does not apply.
            for key in BUDGET_KEYS:
                train.setdefault(key, None)
        return cls(
            data=build(DataConfig, data.get("data", {}), "data"),
            model=build(ModelConfig, data.get("model", {}), "model"),
            train=build(TrainConfig, train, "train"),
        )


T = TypeVar("T")


def build(kind: type[T], values: dict[str, Any], section: str = "") -> T:
    """``kind(**values)`` with a clear error for unknown keys or bad types."""
    names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    unknown = set(values) - names
    where = f"[{section}] " if section else ""
    _require(not unknown, f"unknown setting(s) {where}{', '.join(sorted(unknown))}")
    try:
        return kind(**values)
    except TypeError as exc:
        raise ConfigError(f"bad settings {where}{exc}") from None


def to_toml(config: RunConfig) -> str:
    """``config.toml`` text for a run directory."""
    return tomli_w.dumps(config.to_dict())


def parse_duration(text: str) -> float:
    """Seconds in ``"90"``, ``"90s"``, ``"10m"``, ``"1.5h"`` or ``"1h30m"``."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    raw = text.strip().lower()
    total, number = 0.0, ""
    try:
        for char in raw:
            if char.isdigit() or char == ".":
                number += char
            elif char in units and number:
                total += float(number) * units[char]
                number = ""
            else:
                raise ValueError
        if number:
            total += float(number)
    except ValueError:
        total = -1.0
    if not raw or total <= 0 or not math.isfinite(total):
        raise ConfigError(f"invalid duration {text!r}: use e.g. 90s, 10m, 1h30m")
    return total
