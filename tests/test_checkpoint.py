from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from charrnn.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    Checkpoint,
    load_checkpoint,
    load_model,
    resolve_checkpoint,
    save_checkpoint,
)
from charrnn.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from charrnn.data.vocab import Vocab
from charrnn.errors import CheckpointError
from charrnn.model.network import CharRNN


def _payload(hidden: int = 8) -> Checkpoint:
    vocab = Vocab.from_text("abcdef")
    config = RunConfig(
        DataConfig(), ModelConfig(cell="gru", num_layers=1, hidden_size=hidden), TrainConfig()
    )
    model = CharRNN(len(vocab), config.model)
    return Checkpoint(config=config, vocab=vocab, model=model.state_dict(), step=3)


def test_save_then_load_gives_identical_logits(tmp_path: Path) -> None:
    torch.manual_seed(0)
    payload = _payload()
    path = tmp_path / "m.pt"
    save_checkpoint(path, payload)
    model, vocab, record = load_model(path)
    reference = CharRNN(len(vocab), ModelConfig(cell="gru", num_layers=1, hidden_size=8))
    reference.load_state_dict(payload.model)
    reference.eval()
    x = torch.tensor([[0, 1, 2, 3]])
    assert torch.equal(model(x)[0], reference(x)[0])
    assert record.step == 3
    assert torch.load(path, weights_only=True)["format_version"] == FORMAT_VERSION
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"], "no temporary files left"


def test_crafted_pickle_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "charrnn-checkpoint", "payload": Exploit()}, path)
    with pytest.raises(CheckpointError, match="refused: it holds Python objects"):
        load_checkpoint(path)
    assert not marker.exists()

    raw = tmp_path / "evil.pkl"  # a plain pickle, not even a torch zip file
    raw.write_bytes(pickle.dumps(Exploit()))
    with pytest.raises(CheckpointError):
        load_checkpoint(raw)
    assert not marker.exists()


def test_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(path, _payload())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_checkpoint(path)


def test_zero_byte_and_random_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_checkpoint(empty)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(CheckpointError):
        load_checkpoint(junk)


def test_not_a_charrnn_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a charrnn checkpoint"):
        load_checkpoint(path)


def test_newer_format_version(tmp_path: Path) -> None:
    path = tmp_path / "future.pt"
    torch.save({**_payload().to_dict(), "format": FORMAT, "format_version": 99}, path)
    with pytest.raises(CheckpointError, match=r"newer charrnn .*format 99"):
        load_checkpoint(path)


def test_weights_that_do_not_match_the_settings(tmp_path: Path) -> None:
    payload = _payload(hidden=8).to_dict()
    payload["config"]["model"]["hidden_size"] = 16
    path = tmp_path / "m.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="weights do not match the stored settings"):
        load_model(path)


def test_failed_save_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, _payload())
    before = path.read_bytes()

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointError, match="No space left on device"):
        save_checkpoint(path, _payload())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_resolve_prefers_best_then_last(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"holds no best\.pt or last\.pt"):
        resolve_checkpoint(tmp_path)
    save_checkpoint(tmp_path / "last.pt", _payload())
    assert resolve_checkpoint(tmp_path).name == "last.pt"
    save_checkpoint(tmp_path / "best.pt", _payload())
    assert resolve_checkpoint(tmp_path).name == "best.pt"
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        resolve_checkpoint(tmp_path / "nope.pt")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("step", "12", "step should be a whole number"),
        ("step", -1, "step should be a whole number"),
        ("elapsed_s", float("nan"), "elapsed_s should be a number"),
        ("chars_seen", True, "chars_seen should be a whole number"),
        ("config", ["not", "a", "mapping"], "config should be a mapping"),
        ("optimizer", [1, 2], "optimizer should be a mapping"),
        ("state", [torch.zeros(8)], "state should be a list of 3-D tensors"),
        (
            "state",
            [torch.zeros(1, 5, 8)],
            r"carried state \(1, 5, 8\) is not finite or does not fit",
        ),
    ],
)
def test_fields_of_the_wrong_type_are_named(
    tmp_path: Path, field: str, value: object, message: str
) -> None:
    raw = _payload().to_dict()
    raw[field] = value
    path = tmp_path / "m.pt"
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_a_huge_claimed_model_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    # A small file claiming hidden_size 10^9: the arithmetic check refuses it before any
    # allocation (building it would need terabytes).
    raw = _payload().to_dict()
    raw["config"]["model"]["hidden_size"] = 10**9
    path = tmp_path / "m.pt"
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match="weights do not match the stored settings"):
        load_model(path)


def test_checkpoint_round_trips_every_field(tmp_path: Path) -> None:
    original = _payload()
    original.state = [torch.randn(1, 32, 8)]
    original.best_val_loss, original.train_loss_count = 1.25, 7
    save_checkpoint(tmp_path / "m.pt", original)
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.best_val_loss == 1.25 and loaded.train_loss_count == 7
    assert torch.equal(loaded.state[0], original.state[0])
    assert loaded.config == original.config and loaded.vocab == original.vocab


def _batch_state(value: float) -> list[torch.Tensor]:
    batch = TrainConfig().batch_size
    return [torch.full((1, batch, 8), value)]


# Round three: each of these loaded before, as something other than what was saved.
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["vocab"].update(byte_level="yes"), "byte_level is 'yes'"),  # was True
        (lambda r: r["vocab"].update(symbols=[97.9, 98.0]), "symbols must be whole numbers"),
        (lambda r: r.update(finished="no"), "finished should be true or false"),  # was True
        (lambda r: r.update(stopped_by={"x": 1}), "stopped_by should be a string"),
        (lambda r: r.update(charrnn_version=3), "charrnn_version should be a string"),
        (lambda r: r.update(corpus={"name": ["a"]}), "corpus.name should be a string"),
        (lambda r: r.update(state=_batch_state(float("nan"))), "carried state .* is not finite"),
        (
            lambda r: r.update(model={k: v.long() for k, v in r["model"].items()}),
            "model weights are not floats",
        ),
    ],
)
def test_crafted_fields_are_refused_not_coerced(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    raw = _payload().to_dict()
    edit(raw)
    path = tmp_path / "m.pt"
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_a_stored_parameter_count_is_derived_not_trusted(tmp_path: Path) -> None:
    raw = _payload().to_dict()
    raw["num_parameters"] = 10**15  # info showed it
    torch.save(raw, tmp_path / "m.pt")
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.num_parameters == sum(t.numel() for t in raw["model"].values())


def test_weights_scaled_far_past_training_are_refused(tmp_path: Path) -> None:
    raw = _payload().to_dict()
    raw["model"] = {k: v * 1e30 for k, v in raw["model"].items()}  # sampled "aaaa", exit 0
    torch.save(raw, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="far outside any trained model's range"):
        load_model(tmp_path / "m.pt")
