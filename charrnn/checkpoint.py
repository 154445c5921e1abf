"""The checkpoint record: one typed object, its file format, versions and upgrades.

This is the only module that reads or writes checkpoint files or knows their keys;
everyone else uses :class:`Checkpoint`'s attributes. A shared model folder
(:mod:`charrnn.hub`) is read here too, into the same record and through the same
checks, so every command that takes a run takes a folder.

On disk a checkpoint is a dict of tensors and plain values (no pickled classes), so
it is read with ``torch.load(weights_only=True)``: a file crafted to run code when
unpickled is refused instead of executed. Writes go through
:func:`charrnn.files.atomic_file`, so a crash at any instant leaves the old
checkpoint or the new one, never a torn file.

Layout (``FORMAT_VERSION`` 2)::

    format "charrnn-checkpoint", format_version 2, charrnn_version
    config            {"data": {...}, "model": {...}, "train": {...}}
    vocab             {"symbols": [int, ...], "byte_level": bool}
    model             state_dict        optimizer   state_dict (absent: weights only)
    step, chars_seen, bad_steps, num_parameters, train_loss_count     ints
    elapsed_s, best_val_loss, last_val_loss, train_loss_sum           floats
    corpus            {"name", "sha256", "path"}
    state             list of (N, B, H) tensors: the carried recurrent state
    finished          bool; stopped_by (what ended it: "steps", "time", "patience"...)
    since_best        int: evaluations since the best one (for --patience)
    best_whole        bool: best_val_loss read the whole validation text (absent: true,
                      as every evaluation did before 0.4)
    averaged          {"updates": int, "weights": state_dict}: the running weight
                      average (absent: none kept, or a run from before 0.4)
    rng               {"torch": ByteTensor, "torch_ranks": [...], "cuda": [...]}

Version 1 (charrnn 0.1.0) kept ``train_loss_sum`` as a 0-d tensor and could lack
the counters; :func:`_upgrade_v1` brings it to version 2 when read.
"""

from __future__ import annotations

import math
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from charrnn.config import RunConfig
from charrnn.data.vocab import Vocab
from charrnn.errors import CharRNNError, CheckpointError
from charrnn.files import atomic_file
from charrnn.hub import CONFIG as HUB_CONFIG
from charrnn.hub import WEIGHTS as HUB_WEIGHTS
from charrnn.hub import is_hub_folder, read_record
from charrnn.model.network import MAX_PARAMETERS, CharRNN, count_parameters

FORMAT = "charrnn-checkpoint"
FORMAT_VERSION = 2
LAST = "last.pt"
BEST = "best.pt"


@dataclass(frozen=True)
class CorpusRecord:
    """Which text a run trained on: resume refuses a changed one."""

    name: str
    sha256: str
    path: str


@dataclass
class Checkpoint:
    """Everything a run needs to continue, or a model needs to be used."""

    config: RunConfig
    vocab: Vocab
    model: dict[str, torch.Tensor]
    step: int
    optimizer: dict[str, Any] | None = None
    chars_seen: int = 0
    elapsed_s: float = 0.0
    bad_steps: int = 0
    best_val_loss: float = math.inf
    last_val_loss: float = math.inf
    num_parameters: int = 0
    corpus: CorpusRecord | None = None
    state: list[torch.Tensor] = field(default_factory=list)
    finished: bool = False
    stopped_by: str | None = None
    since_best: int = 0
    best_whole: bool = True
    averaged: dict[str, torch.Tensor] | None = None  # the running weight average
    averaged_updates: int = 0
    train_loss_sum: float = 0.0
    train_loss_count: int = 0
    rng: dict[str, Any] = field(default_factory=dict)
    charrnn_version: str = "?"

    def to_dict(self) -> dict[str, Any]:
        """The plain record written to disk (current format)."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "charrnn_version": self.charrnn_version,
            "config": self.config.to_dict(),
            "vocab": self.vocab.to_dict(),
            "model": self.model,
            **({"optimizer": self.optimizer} if self.optimizer is not None else {}),
            "step": self.step,
            "chars_seen": self.chars_seen,
            "elapsed_s": self.elapsed_s,
            "bad_steps": self.bad_steps,
            "best_val_loss": self.best_val_loss,
            "last_val_loss": self.last_val_loss,
            "num_parameters": self.num_parameters,
            "corpus": None if self.corpus is None else vars(self.corpus).copy(),
            "state": self.state,
            "finished": self.finished,
            "stopped_by": self.stopped_by,
            "since_best": self.since_best,
            "best_whole": self.best_whole,
            **(
                {"averaged": {"updates": self.averaged_updates, "weights": self.averaged}}
                if self.averaged is not None
                else {}
            ),
            "train_loss_sum": self.train_loss_sum,
            "train_loss_count": self.train_loss_count,
            "rng": self.rng,
        }

    @classmethod
    def from_dict(cls, raw: Any, path: Path) -> Checkpoint:
        """Check, upgrade and type a loaded record; any flaw is a CheckpointError."""
        read = _Reader(_upgraded(raw, path), path)
        try:
            config = RunConfig.from_dict(read.mapping("config"))
            vocab = Vocab.from_dict(read.mapping("vocab"))
        except CharRNNError as exc:
            raise CheckpointError(f"{path}: bad settings in checkpoint: {exc}") from None
        weights = read.mapping("model")
        if not all(isinstance(v, torch.Tensor) for v in weights.values()):
            raise CheckpointError(f"{path}: damaged checkpoint (model weights unreadable)")
        if not all(v.is_floating_point() for v in weights.values()):
            raise CheckpointError(f"{path}: damaged checkpoint (model weights are not floats)")
        corpus = read.optional_mapping("corpus")
        corpus_read = _Reader(corpus or {}, path, "corpus.")
        averaged = read.optional_mapping("averaged")
        average_read = _Reader(averaged or {}, path, "averaged.")
        checkpoint = cls(
            config=config,
            vocab=vocab,
            model=weights,
            step=read.count("step"),
            optimizer=read.optional_mapping("optimizer"),
            chars_seen=read.count("chars_seen", 0),
            elapsed_s=read.number("elapsed_s", 0.0),
            bad_steps=read.count("bad_steps", 0),
            best_val_loss=read.number("best_val_loss", math.inf, loss=True),
            last_val_loss=read.number("last_val_loss", math.inf, loss=True),
            # Derived, never trusted: a crafted count made info show 10^15.
            num_parameters=sum(t.numel() for t in weights.values()),
            corpus=None
            if not corpus
            else CorpusRecord(
                corpus_read.text("name", "?"),
                corpus_read.text("sha256", ""),
                corpus_read.text("path", ""),
            ),
            state=read.tensors("state"),
            finished=read.flag("finished", False),
            stopped_by=read.optional_text("stopped_by"),
            since_best=read.count("since_best", 0),
            best_whole=read.flag("best_whole", True),
            averaged=None if averaged is None else _averaged_weights(average_read, weights, path),
            averaged_updates=0 if averaged is None else average_read.count("updates"),
            train_loss_sum=read.number("train_loss_sum", 0.0),
            train_loss_count=read.count("train_loss_count", 0),
            rng=read.optional_mapping("rng") or {},
            charrnn_version=read.text("charrnn_version", "?"),
        )
        checkpoint._check_state(path)
        return checkpoint

    def _check_state(self, path: Path) -> None:
        """The carried state must be finite floats (layers, batch, hidden), one tensor per part."""
        m, batch = self.config.model, self.config.train.batch_size
        parts = m.state_parts
        want = (m.num_layers, batch, m.hidden_size)
        if self.state and (
            len(self.state) != parts
            or any(tuple(s.shape) != want for s in self.state)
            or not all(s.is_floating_point() and torch.isfinite(s).all() for s in self.state)
        ):
            shapes = ", ".join(str(tuple(s.shape)) for s in self.state)
            raise CheckpointError(
                f"{path}: damaged checkpoint: carried state {shapes} is not finite or does "
                f"not fit a {m.cell} of {m.num_layers}x{m.hidden_size} at batch {batch}"
            )


def _averaged_weights(
    read: _Reader, weights: dict[str, torch.Tensor], path: Path
) -> dict[str, torch.Tensor]:
    """The weight average: finite floats, each shaped like the weight it averages."""
    averaged = read.mapping("weights")
    for name, tensor in averaged.items():
        own = weights.get(name)
        if (
            own is None
            or not isinstance(tensor, torch.Tensor)
            or not tensor.is_floating_point()
            or tuple(tensor.shape) != tuple(own.shape)
            or not torch.isfinite(tensor).all()
        ):
            raise CheckpointError(
                f"{path}: damaged checkpoint: averaged weight {name!r} is not a finite "
                "float tensor shaped like the model's"
            )
    return averaged


class _Reader:
    """Typed access to a raw record's fields, each failure naming the field."""

    def __init__(self, raw: dict[str, Any], path: Path, prefix: str = "") -> None:
        self.raw, self.path, self.prefix = raw, path, prefix

    def _bad(self, key: str, want: str) -> CheckpointError:
        value = repr(self.raw.get(key))[:60]
        return CheckpointError(
            f"{self.path}: damaged checkpoint: {self.prefix}{key} should be {want}, got {value}"
        )

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):  # bool("yes") would be True
            raise self._bad(key, "true or false")
        return value

    def text(self, key: str, default: str) -> str:
        value = self.raw.get(key, default)
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def optional_text(self, key: str) -> str | None:
        return None if self.raw.get(key) is None else self.text(key, "")

    def value(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.raw.get(key)
        if not isinstance(value, dict):
            raise self._bad(key, "a mapping")
        return value

    def optional_mapping(self, key: str) -> dict[str, Any] | None:
        return None if self.raw.get(key) is None else self.mapping(key)

    def count(self, key: str, default: int | None = None) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self._bad(key, "a whole number >= 0")
        return value

    def number(self, key: str, default: float, *, loss: bool = False) -> float:
        """A finite number >= 0; a ``loss`` may also be inf (none yet) or NaN (diverged)."""
        value = self.raw.get(key, default)
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and loss and not math.isfinite(value):
            return float(value)
        if not ok or not math.isfinite(value) or value < 0:
            raise self._bad(key, "a number >= 0")
        return float(value)

    def tensors(self, key: str) -> list[torch.Tensor]:
        value = self.raw.get(key) or []
        if not isinstance(value, list | tuple) or not all(
            isinstance(t, torch.Tensor) and t.dim() == 3 for t in value
        ):
            raise self._bad(key, "a list of 3-D tensors")
        return list(value)


def _upgraded(raw: Any, path: Path) -> dict[str, Any]:
    """``raw`` as a current-format record, or a CheckpointError saying why not."""
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a charrnn checkpoint")
    version = raw.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{path}: not a charrnn checkpoint (no format version)")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written by a newer charrnn (checkpoint format {version}, this version "
            f"reads up to {FORMAT_VERSION}); upgrade charrnn"
        )
    missing = [key for key in ("config", "vocab", "model", "step") if key not in raw]
    if missing:
        raise CheckpointError(f"{path}: damaged checkpoint, missing {', '.join(missing)}")
    if version == 1:
        raw = _upgrade_v1(raw)
    return raw


def _upgrade_v1(raw: dict[str, Any]) -> dict[str, Any]:
    """Format 1 (charrnn 0.1.0) to 2: the running loss sum as a float."""
    upgraded = dict(raw, format_version=2)
    loss_sum = raw.get("train_loss_sum")
    if isinstance(loss_sum, torch.Tensor) and loss_sum.numel() == 1:
        upgraded["train_loss_sum"] = float(loss_sum.item())
    return upgraded


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically (temp file, fsync, rename).

    On any failure the previous file at ``path`` is untouched, no temporary file
    is left behind, and a :class:`CheckpointError` says why.
    """
    path = Path(path)
    try:
        with atomic_file(path) as handle:
            torch.save(checkpoint.to_dict(), handle)
    except (OSError, RuntimeError) as exc:  # a full disk inside torch.save is a RuntimeError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CheckpointError(f"cannot save checkpoint {path}: {reason.splitlines()[0]}") from None


def load_checkpoint(path: Path) -> Checkpoint:
    """Read and check a checkpoint file or a shared model folder (:mod:`charrnn.hub`);
    every kind of bad file is a one-line CheckpointError."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc.strerror}") from None
    if path.is_dir():
        if is_hub_folder(path):  # a shared model: checked field by field, then as below
            raw = {"format": FORMAT, "format_version": FORMAT_VERSION, **read_record(path)}
            return Checkpoint.from_dict(raw, path)
        raise CheckpointError(f"{path}: is a directory without {LAST}, {BEST} or {HUB_CONFIG}")
    if size == 0:
        raise CheckpointError(f"{path}: is empty (0 bytes), not a checkpoint")
    if not _looks_like_torch(path):
        raise CheckpointError(f"{path}: not a checkpoint (not a file PyTorch wrote)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on odd pickle protocols
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
            raise CheckpointError(
                f"{path}: refused: it holds Python objects that could run code when loaded; "
                "charrnn checkpoints hold only tensors and plain values"
            ) from None
        raise CheckpointError(f"{path}: not a checkpoint (unreadable data)") from None
    except PermissionError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc.strerror}") from None
    except Exception as exc:
        if zipfile.is_zipfile(path) or _looks_like_zip(path):
            raise CheckpointError(f"{path}: truncated or corrupted checkpoint") from None
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path}: not a checkpoint ({detail[:120]})") from None
    return Checkpoint.from_dict(raw, path)


def _looks_like_torch(path: Path) -> bool:
    """Starts as torch.save's zip format does, or as a pickle (its legacy format)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError:
        return True  # let torch.load report the read error
    return head == b"PK\x03\x04" or head[:1] == b"\x80"


def _looks_like_zip(path: Path) -> bool:
    """A file that starts like torch's zip format (a truncated one loses its index)."""
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def resolve_checkpoint(target: Path, prefer: str = BEST) -> Path:
    """A checkpoint file, a run directory's ``best.pt`` (else its ``last.pt``), or a
    shared model folder (named by itself or by one of its files)."""
    target = Path(target)
    if target.is_dir():
        order = (prefer, LAST if prefer == BEST else BEST)
        for name in order:
            if (target / name).is_file():
                return target / name
        if is_hub_folder(target):
            return target
        raise CheckpointError(
            f"{target}: run directory holds no {BEST} or {LAST} (nor a shared model's {HUB_CONFIG})"
        )
    if target.name in (HUB_CONFIG, HUB_WEIGHTS) and is_hub_folder(target.parent):
        return target.parent
    if not target.exists():
        raise CheckpointError(f"{target}: no such checkpoint or run directory")
    return target


def check_weights(checkpoint: Checkpoint, path: Path) -> None:
    """The stored settings must describe the stored weights: checked by arithmetic,
    before anything is allocated (a crafted file cannot make charrnn build a huge model)."""
    m, vocab_size = checkpoint.config.model, len(checkpoint.vocab)
    claimed = count_parameters(m.cell, m.num_layers, m.hidden_size, m.embed_size, vocab_size)
    stored = sum(t.numel() for t in checkpoint.model.values())
    if claimed > MAX_PARAMETERS or claimed != stored:
        raise CheckpointError(
            f"{path}: weights do not match the stored settings ({_described(checkpoint)}: "
            f"{claimed:,} parameters, the file holds {stored:,})"
        )


def _described(checkpoint: Checkpoint) -> str:
    m = checkpoint.config.model
    return f"vocabulary {len(checkpoint.vocab)}, {m.cell} {m.num_layers}x{m.hidden_size}"


def build_model(checkpoint: Checkpoint, path: Path, device: str | torch.device = "cpu") -> CharRNN:
    """The stored model, its weights checked against its settings before any allocation."""
    check_weights(checkpoint, path)
    described = _described(checkpoint)
    broken = [name for name, t in checkpoint.model.items() if not torch.isfinite(t).all()]
    if broken:
        raise CheckpointError(
            f"{path}: its weights are not finite ({', '.join(broken[:3])}): the run diverged "
            "or the file is damaged; use an earlier checkpoint"
        )
    model = CharRNN(len(checkpoint.vocab), checkpoint.config.model)
    try:
        model.load_state_dict(checkpoint.model)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise CheckpointError(
            f"{path}: weights do not match the stored settings ({described}): {detail}"
        ) from None
    _check_outputs(model, checkpoint.vocab, path)
    return model.to(device)


# No trained model's next-character scores span more than a few dozen nats: a span
# of 10^4 puts e^-10000 on every other character, and only a damaged or crafted file
# gets there (weights scaled by 1e30 sampled "aaaa" and exited 0).
MAX_LOGIT_SPAN = 1e4


def _check_outputs(model: CharRNN, vocab: Vocab, path: Path) -> None:
    """Run the model a few characters: its scores must be finite and in a sane range."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits, _ = model(torch.full((1, 8), vocab.start_id, dtype=torch.long))
    model.train(was_training)
    span = (
        float((logits.amax(-1) - logits.amin(-1)).max())
        if torch.isfinite(logits).all()
        else math.inf
    )
    if not span <= MAX_LOGIT_SPAN:
        raise CheckpointError(
            f"{path}: the model's scores are not finite or far outside any trained "
            f"model's range (spanning {span:.3g} nats): the file is damaged"
        )


def load_model(
    target: Path, device: str | torch.device = "cpu", prefer: str = BEST
) -> tuple[CharRNN, Vocab, Checkpoint]:
    """Load a model for inference from a checkpoint file or run directory.

    Returns:
        The model in eval mode, its vocabulary, and the whole checkpoint.
    """
    path = resolve_checkpoint(target, prefer)
    checkpoint = load_checkpoint(path)
    model = build_model(checkpoint, path, device)
    model.eval()
    return model, checkpoint.vocab, checkpoint


def check_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Raise ValueError unless ``saved`` has the shape of ``optimizer``'s own state.

    ``load_state_dict`` checks the groups' sizes but not the tensors: a crafted moment
    of the wrong shape would be broadcast against its parameter at every step (a run was
    seen growing to 4 GB). Every tensor must be a float of its parameter's shape.
    """
    groups, own = saved.get("param_groups"), optimizer.param_groups
    if not isinstance(groups, list) or len(groups) != len(own):
        raise ValueError("its optimizer state has the wrong parameter groups")
    params: dict[int, torch.Tensor] = {}
    for group, mine in zip(groups, own, strict=True):
        ids = group.get("params") if isinstance(group, dict) else None
        if not isinstance(ids, list) or len(ids) != len(mine["params"]):
            raise ValueError("its optimizer state has the wrong parameter groups")
        params.update(zip(ids, mine["params"], strict=True))
    state = saved.get("state")
    if not isinstance(state, dict):
        raise ValueError("its optimizer state is malformed")
    for index, moments in state.items():
        if index not in params or not isinstance(moments, dict):
            raise ValueError(f"its optimizer state names an unknown parameter {index!r}")
        for name, value in moments.items():
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                raise ValueError(f"its optimizer state {name!r} is not a float tensor")
            want = () if name == "step" else tuple(params[index].shape)
            if tuple(value.shape) != want:
                raise ValueError(
                    f"its optimizer state {name!r} is {tuple(value.shape)}, not {want}"
                )
            if not torch.isfinite(value).all():
                raise ValueError(f"its optimizer state {name!r} is not finite")
