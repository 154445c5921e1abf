"""The only code that reads or writes checkpoint files.

A checkpoint is a dict of tensors and plain values (no pickled classes), so it is
read with ``torch.load(weights_only=True)``: a file crafted to run code when
unpickled is refused instead of executed. Writes go to a temporary file in the same
folder, are flushed to disk, then renamed over the old file — a crash or kill at
any instant leaves either the old checkpoint or the new one, never a torn file.

Layout (``FORMAT_VERSION`` 1)::

    format, format_version, charrnn_version
    config        {"data": {...}, "model": {...}, "train": {...}}
    vocab         {"symbols": [...], "byte_level": bool}
    model         state_dict            optimizer   state_dict
    step, epoch, chars_seen, elapsed_s, bad_steps
    best_val_loss, last_val_loss, corpus {"name", "sha256", "path"}
    state         list of (N, B, H) tensors: the carried recurrent state
    rng           {"torch": ByteTensor, "cuda": [ByteTensor, ...]}
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from charrnn.config import RunConfig
from charrnn.errors import CharRNNError, CheckpointError
from charrnn.model import CharRNN
from charrnn.vocab import Vocab

FORMAT = "charrnn-checkpoint"
FORMAT_VERSION = 1
LAST = "last.pt"
BEST = "best.pt"

_REQUIRED = ("config", "vocab", "model", "step")


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (temp file, fsync, rename).

    On any failure the previous file at ``path`` is untouched, no temporary file
    is left behind, and a :class:`CheckpointError` says why.
    """
    path = Path(path)
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise CheckpointError(f"cannot save checkpoint {path}: {exc.strerror or exc}") from None
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        _test_pause()
        os.replace(temp, path)
        _fsync_dir(path.parent)
    except OSError as exc:
        raise CheckpointError(f"cannot save checkpoint {path}: {exc.strerror or exc}") from None
    finally:
        temp.unlink(missing_ok=True)


def _test_pause() -> None:
    """Test hook: ``CHARRNN_TEST_SAVE_DELAY`` seconds between writing and renaming, so
    the kill tests can land a SIGKILL inside a save. Unset (always, for users): no pause.
    """
    delay = os.environ.get("CHARRNN_TEST_SAVE_DELAY")
    if delay:
        time.sleep(float(delay))


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint; every kind of bad file is a one-line CheckpointError."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc.strerror}") from None
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory without {LAST} or {BEST}")
    if size == 0:
        raise CheckpointError(f"{path}: is empty (0 bytes), not a checkpoint")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on odd pickle protocols
            record = torch.load(path, map_location=map_location, weights_only=True)
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
    return check_record(record, path)


def _looks_like_zip(path: Path) -> bool:
    """A file that starts like torch's zip format (a truncated one loses its index)."""
    try:
        with path.open("rb") as handle:
            return handle.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def check_record(record: Any, path: Path) -> dict[str, Any]:
    """Confirm a loaded object is a charrnn checkpoint this version can read."""
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a charrnn checkpoint")
    version = record.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{path}: not a charrnn checkpoint (no format version)")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written by a newer charrnn (checkpoint format {version}, this version "
            f"reads up to {FORMAT_VERSION}); upgrade charrnn"
        )
    missing = [key for key in _REQUIRED if key not in record]
    if missing:
        raise CheckpointError(f"{path}: damaged checkpoint, missing {', '.join(missing)}")
    return record


def resolve_checkpoint(target: Path, prefer: str = BEST) -> Path:
    """A checkpoint file, or a run directory's ``best.pt`` (else its ``last.pt``)."""
    target = Path(target)
    if target.is_dir():
        order = (prefer, LAST if prefer == BEST else BEST)
        for name in order:
            if (target / name).is_file():
                return target / name
        raise CheckpointError(f"{target}: run directory holds no {BEST} or {LAST}")
    if not target.exists():
        raise CheckpointError(f"{target}: no such checkpoint or run directory")
    return target


def model_from_record(
    record: dict[str, Any], path: Path, device: str | torch.device = "cpu"
) -> tuple[CharRNN, Vocab, RunConfig]:
    """Rebuild the model, vocabulary and settings stored in a checkpoint."""
    try:
        config = RunConfig.from_dict(record["config"])
        vocab = Vocab.from_dict(record["vocab"])
    except CharRNNError as exc:
        raise CheckpointError(f"{path}: bad settings in checkpoint: {exc}") from None
    except (TypeError, AttributeError):
        raise CheckpointError(f"{path}: damaged checkpoint (settings unreadable)") from None
    model = CharRNN(len(vocab), config.model)
    state = record["model"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: damaged checkpoint (model weights unreadable)")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise CheckpointError(
            f"{path}: weights do not match the stored settings (vocabulary {len(vocab)}, "
            f"{config.model.cell} {config.model.num_layers}x{config.model.hidden_size}): {detail}"
        ) from None
    return model.to(device), vocab, config


def load_model(
    target: Path, device: str | torch.device = "cpu", prefer: str = BEST
) -> tuple[CharRNN, Vocab, dict[str, Any]]:
    """Load a model for inference from a checkpoint file or run directory.

    Returns:
        The model in eval mode, its vocabulary, and the whole checkpoint record.
    """
    path = resolve_checkpoint(target, prefer)
    record = load_checkpoint(path)
    model, vocab, _ = model_from_record(record, path, device)
    model.eval()
    return model, vocab, record
