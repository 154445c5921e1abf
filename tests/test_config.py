from __future__ import annotations

import math
from pathlib import Path

import pytest

from charrnn.config import (
    Cell,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    parse_duration,
    to_toml,
)
from charrnn.errors import ConfigError
from charrnn.layering import layered, overrides, read_toml
from charrnn.presets import PRESETS, preset_tables


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("10m", 600), ("1.5h", 5400), ("1h30m", 5400), ("2d", 172800)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5m", "0", "10x", "m", "1e999"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError, match="invalid duration"):
        parse_duration(text)


def test_toml_round_trip(tmp_path: Path) -> None:
    config = RunConfig(
        DataConfig(path="a.txt", val_frac=0.1),
        ModelConfig(cell="gru", hidden_size=33),
        TrainConfig(steps=None, time_s=60.0, seed=5),
    )
    path = tmp_path / "c.toml"
    path.write_text(to_toml(config))
    assert RunConfig.from_dict(read_toml(path)) == config


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ModelConfig(cell="transformer"), "cell must be one of"),
        (lambda: ModelConfig(hidden_size=0), "hidden must be a positive integer"),
        (lambda: ModelConfig(dropout=1.0), "dropout"),
        (lambda: ModelConfig(embed_size=-1), "embed"),
        (lambda: TrainConfig(lr=math.nan), "lr must be a number"),
        (lambda: TrainConfig(lr=0), "lr must be a number"),
        (lambda: TrainConfig(batch_size=-3), "batch-size"),
        (lambda: TrainConfig(seq_len=2.5), "seq-len"),
        (lambda: TrainConfig(clip=-1), "clip"),
        (lambda: TrainConfig(schedule="linear"), "schedule must be one of"),
        (lambda: TrainConfig(device="tpu"), "device must be one of"),
        (lambda: TrainConfig(steps=None, epochs=None, time_s=None), "budget"),
        (lambda: DataConfig(val_frac=0.0), "val-frac"),
        (lambda: DataConfig(val_frac=0.9), "val-frac"),
    ],
)
def test_invalid_settings_fail_when_built(make: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()  # type: ignore[operator]


def test_unknown_and_mistyped_keys() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \[train\] stpes"):
        RunConfig.from_dict({"train": {"stpes": 5}})
    with pytest.raises(ConfigError, match="unknown config table"):
        RunConfig.from_dict({"optimizer": {}})
    with pytest.raises(ConfigError, match="hidden must be a positive integer"):
        RunConfig.from_dict({"model": {"hidden_size": "big"}})


def test_a_stated_budget_replaces_the_default_steps() -> None:
    config = RunConfig.from_dict({"train": {"time_s": 30}})
    assert config.train.steps is None and config.train.time_s == 30
    assert RunConfig.from_dict({}).train.steps == TrainConfig().steps


def test_invalid_toml_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\ncell = ")
    with pytest.raises(ConfigError, match="invalid TOML"):
        read_toml(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        read_toml(tmp_path / "missing.toml")


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_are_valid_settings_without_budget_or_corpus(name: str) -> None:
    tables = preset_tables(name)
    config = RunConfig.from_dict(tables)
    assert config.model == ModelConfig(**tables["model"])
    assert not {"steps", "epochs", "time_s"} & set(tables.get("train", {}))
    assert "data" not in tables


def test_unknown_preset_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'huge': choose one of auto, tiny"):
        preset_tables("huge")


def test_a_retired_preset_says_why_and_what_to_use() -> None:
    with pytest.raises(ConfigError, match=r"'cpu-fast' was retired .* leave --preset out"):
        preset_tables("cpu-fast")


def test_layers_override_in_order_preset_file_options(tmp_path: Path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text("[model]\nhidden_size = 99\n[train]\nlr = 0.5\nsteps = 7\n")
    given = overrides(lr=0.25, cell=Cell.gru, time_s=60.0)
    config = layered(file="a.txt", config_file=toml, preset="tiny", given=given)
    assert config.model.num_layers == PRESETS["tiny"][1]["model"]["num_layers"]  # preset
    assert config.model.hidden_size == 99  # the file beats the preset
    assert config.train.lr == 0.25 and config.model.cell == "gru"  # options beat the file
    # a budget given as an option replaces the file's budget whole
    assert config.train.time_s == 60.0 and config.train.steps is None
    assert config.data.path == "a.txt"


def test_overrides_leave_out_what_was_not_given() -> None:
    tables = overrides(layers=3, hidden=None, val_file=Path("v.txt"), precision=None)
    assert tables == {"data": {"val_file": "v.txt"}, "model": {"num_layers": 3}, "train": {}}


def test_an_unknown_option_name_is_a_bug_not_a_setting() -> None:
    with pytest.raises(KeyError):
        overrides(hiden=3)


def test_choices_are_defined_once_for_typer_and_the_dataclasses() -> None:
    assert [c.value for c in Cell] == ["rnn", "lstm", "gru"]
    with pytest.raises(ConfigError, match="cell must be one of rnn, lstm, gru"):
        ModelConfig(cell="transformer")
