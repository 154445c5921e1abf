"""A shared model folder, in the layout model hubs use: its file names, its
``config.json``, and reading it back as a checkpoint record.

::

    my-model/
      model.safetensors   the weights, named as CharRNN's state_dict (float32)
      config.json         format, format_version, charrnn_version, the settings
                          (data, model, train), the vocabulary, training facts
      README.md           the model card (written by charrnn.sharing.hub)

Only this module knows the folder's names and fields. :func:`folder_files` turns a
checkpoint record (:meth:`charrnn.checkpoint.Checkpoint.to_dict`) into the two data
files; :func:`read_record` turns a folder back into a record that
:meth:`Checkpoint.from_dict` then checks like any checkpoint's. Reading never runs
code: ``config.json`` is JSON and safetensors is a JSON header and raw numbers. The
header's names, types and shapes are checked against the settings before a tensor
is read, and every value must be finite: a crafted or truncated folder is one
:class:`CheckpointError` line.

Version 1 of the folder (``FORMAT_VERSION``) holds ``config.json``::

    format "charrnn-hub-folder", format_version 1, library_name "charrnn",
    charrnn_version, settings {"data", "model", "train"},
    vocab {"symbols": [int, ...], "byte_level": bool}, vocab_size, start_id,
    training {"step", "chars_seen", "elapsed_s", "best_val_loss", "last_val_loss",
              "finished", "stopped_by", "best_whole"},
    corpus {"name", "sha256", "file", "bytes"} or null

Losses that are not finite (no evaluation yet) are ``null``: JSON has no infinity.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from charrnn.config import RunConfig
from charrnn.data.vocab import Vocab
from charrnn.errors import CharRNNError, CheckpointError
from charrnn.model.network import MAX_PARAMETERS, parameter_shapes

FORMAT = "charrnn-hub-folder"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
FILES = (WEIGHTS, CONFIG, CARD)
MAX_CONFIG_BYTES = 64 << 20  # a vocabulary of every code point is ~8 MB of JSON
# What the safetensors header may call a weight; each is read as float32.
FLOAT_TYPES = {"F32", "F16", "BF16"}
# The record's training facts that config.json carries, with their defaults.
TRAINING = {
    "step": 0,
    "chars_seen": 0,
    "elapsed_s": 0.0,
    "best_val_loss": math.inf,
    "last_val_loss": math.inf,
    "finished": True,
    "stopped_by": None,
    "best_whole": True,
}


def is_hub_folder(path: Path) -> bool:
    """Whether ``path`` is a folder that holds a ``config.json`` (a shared model)."""
    return path.is_dir() and (path / CONFIG).is_file()


def config_json(record: dict[str, Any], *, corpus_bytes: int | None = None) -> dict[str, Any]:
    """``config.json``'s object for a checkpoint record. Local paths (the corpus, the
    run it started from) keep only their file names: a shared model does not tell
    where its owner keeps files."""
    settings = json.loads(json.dumps(record["config"]))  # a deep copy of plain values
    for section, key in (("data", "path"), ("data", "val_file"), ("train", "init_from")):
        if settings[section].get(key):
            settings[section][key] = Path(settings[section][key]).name
    vocab = Vocab.from_dict(record["vocab"])
    corpus = record.get("corpus")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_name": "charrnn",
        "charrnn_version": record.get("charrnn_version", "?"),
        "settings": settings,
        "vocab": vocab.to_dict(),
        "vocab_size": len(vocab),
        "start_id": vocab.start_id,
        "training": {key: _plain(record.get(key, default)) for key, default in TRAINING.items()},
        "corpus": None
        if not corpus
        else {
            "name": corpus["name"],
            "sha256": corpus["sha256"],
            "file": Path(corpus["path"]).name,
            "bytes": corpus_bytes,
        },
    }


def _plain(value: Any) -> Any:
    """A value JSON can hold: a loss that is not finite becomes null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def safetensors_bytes(
    weights: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32
) -> bytes:
    """``weights`` as a safetensors file, each tensor stored as ``dtype``."""
    from safetensors.torch import save

    tensors = {name: t.detach().to("cpu", dtype).contiguous() for name, t in weights.items()}
    return save(tensors, metadata={"format": "pt"})  # one key: the same bytes every time


def folder_files(record: dict[str, Any], *, corpus_bytes: int | None = None) -> dict[str, bytes]:
    """The bytes of ``config.json`` and ``model.safetensors`` for a checkpoint record."""
    config = config_json(record, corpus_bytes=corpus_bytes)
    text = json.dumps(config, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    return {CONFIG: text.encode("utf-8"), WEIGHTS: safetensors_bytes(record["model"])}


def read_record(folder: Path) -> dict[str, Any]:
    """The folder as a checkpoint record (without its ``format`` keys, which the
    checkpoint module adds), every field and tensor checked; a CheckpointError names
    the first flaw."""
    folder = Path(folder)
    config = _read_config(folder)
    try:
        settings = RunConfig.from_dict(_field(config, "settings", dict, folder))
        vocab = Vocab.from_dict(_field(config, "vocab", dict, folder))
    except CheckpointError:
        raise
    except CharRNNError as exc:
        raise CheckpointError(f"{folder / CONFIG}: bad settings: {exc}") from None
    for key, want in (("vocab_size", len(vocab)), ("start_id", vocab.start_id)):
        if key in config and config[key] != want:
            raise CheckpointError(
                f"{folder / CONFIG}: {key} is {str(config[key])[:40]}, but the vocabulary "
                f"gives {want}"
            )
    weights = _read_weights(folder, settings, vocab)
    training = _field(config, "training", dict, folder, default={})
    corpus = _field(config, "corpus", dict, folder, default=None)
    record: dict[str, Any] = {
        "charrnn_version": _field(config, "charrnn_version", str, folder, default="?"),
        "config": settings.to_dict(),
        "vocab": vocab.to_dict(),
        "model": weights,
        # Checked, with their types, by Checkpoint.from_dict; null losses are "none yet".
        **{
            key: (math.inf if value is None and key.endswith("_loss") else value)
            for key, value in {k: training.get(k, d) for k, d in TRAINING.items()}.items()
        },
    }
    if corpus is not None:
        record["corpus"] = {
            "name": corpus.get("name", "?"),
            "sha256": corpus.get("sha256", ""),
            "path": corpus.get("file", ""),
        }
    return record


def _field(config: dict[str, Any], key: str, kind: type, folder: Path, **fallback: Any) -> Any:
    """``config[key]`` if it is a ``kind``; absent, the ``default`` if one is given."""
    if key not in config and "default" in fallback:
        return fallback["default"]
    value = config.get(key)
    if value is None and "default" in fallback and fallback["default"] is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
        names: dict[type, str] = {dict: "an object", str: "a string"}
        raise CheckpointError(
            f"{folder / CONFIG}: {key} should be {names.get(kind, kind.__name__)}, "
            f"got {json.dumps(value)[:60]}"
        )
    return value


def _read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` parsed and identified as a charrnn folder of a version we read."""
    path = folder / CONFIG
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{path}: is larger than any charrnn config.json")
        text = path.read_bytes().decode("utf-8")
        config = json.loads(text)
    except FileNotFoundError:
        raise CheckpointError(f"{folder}: no {CONFIG}, not a shared charrnn model") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc.strerror}") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CheckpointError(f"{path}: is not JSON, not a charrnn model's config") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a charrnn model's config (no format {FORMAT!r})")
    version = config.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: format_version should be a whole number >= 1")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: written by a newer charrnn (folder format {version}, this version reads "
            f"up to {FORMAT_VERSION}); upgrade charrnn"
        )
    return config


def _read_weights(folder: Path, settings: RunConfig, vocab: Vocab) -> dict[str, torch.Tensor]:
    """The weights, their names, types and shapes checked against the settings before
    any is read, then their values checked finite."""
    from safetensors import SafetensorError, safe_open

    path = folder / WEIGHTS
    m = settings.model
    want = parameter_shapes(m.cell, m.num_layers, m.hidden_size, m.embed_size, len(vocab))
    if sum(math.prod(shape) for shape in want.values()) > MAX_PARAMETERS:
        raise CheckpointError(f"{folder / CONFIG}: describes a model larger than charrnn builds")
    described = f"vocabulary {len(vocab)}, {m.cell} {m.num_layers}x{m.hidden_size}"
    if not path.is_file():
        raise CheckpointError(f"{folder}: no {WEIGHTS}, the weights are missing")
    try:
        with safe_open(str(path), framework="pt") as handle:
            found = {name: handle.get_slice(name) for name in handle.keys()}  # noqa: SIM118
            missing = sorted(set(want) - set(found))
            unknown = sorted(set(found) - set(want))
            if missing or unknown:
                parts = [f"missing {', '.join(missing[:3])}"] if missing else []
                parts += [f"unknown {', '.join(unknown[:3])}"] if unknown else []
                raise CheckpointError(
                    f"{path}: the tensors do not fit the settings ({described}): "
                    + "; ".join(parts)
                )
            for name, part in found.items():
                shape, dtype = tuple(part.get_shape()), part.get_dtype()
                if dtype not in FLOAT_TYPES or shape != want[name]:
                    raise CheckpointError(
                        f"{path}: the tensors do not fit the settings ({described}): {name} "
                        f"is {dtype} {list(shape)}, they need float {list(want[name])}"
                    )
            weights = {name: handle.get_tensor(name).float() for name in want}
    except SafetensorError as exc:
        detail = str(exc).splitlines()[0][:120] if str(exc) else "unreadable"
        raise CheckpointError(f"{path}: truncated or not a safetensors file ({detail})") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read: {exc.strerror}") from None
    broken = [name for name, tensor in weights.items() if not torch.isfinite(tensor).all()]
    if broken:
        raise CheckpointError(f"{path}: weights are not finite ({', '.join(broken[:3])})")
    return weights
