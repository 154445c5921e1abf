"""Settings in layers: the defaults, then a named ``--preset`` or the tables
``--preset auto`` chose, then a TOML ``--config`` file, then the options given on the
command line, then the corpus named. Each layer overrides the one before.

:class:`Layers` holds what a person gave, as data; :func:`charrnn.training.launch.train`
settles it (:meth:`Layers.settle`) before and after auto chooses, so no caller
hands the library a closure.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from charrnn.config import BUDGET_KEYS, RunConfig, TrainConfig
from charrnn.errors import ConfigError
from charrnn.presets import AUTO, preset_tables

Tables = dict[str, dict[str, Any]]

# Where each command-line option goes in the settings tables.
_OPTION_KEYS: dict[str, tuple[str, str]] = {
    "encoding": ("data", "encoding"),
    "byte_level": ("data", "byte_level"),
    "docs": ("data", "docs"),
    "val_frac": ("data", "val_frac"),
    "val_file": ("data", "val_file"),
    "max_mb": ("data", "max_mb"),
    "cell": ("model", "cell"),
    "layers": ("model", "num_layers"),
    "hidden": ("model", "hidden_size"),
    "embed": ("model", "embed_size"),
    **{
        name: ("model", name)
        for name in ("dropout", "input_dropout", "embed_dropout", "weight_drop", "forget_bias")
    },
    **{name: ("train", name) for name in (f.name for f in fields(TrainConfig))},
}


def overrides(**options: Any) -> Tables:
    """Settings tables from options named as on the command line (``layers``,
    ``hidden``, ``time_s``...); None means "not given" and is left out."""
    tables: Tables = {"data": {}, "model": {}, "train": {}}
    for name, value in options.items():
        section, key = _OPTION_KEYS[name]  # a KeyError here is a bug in the caller
        if value is None:
            continue
        if isinstance(value, StrEnum):
            value = value.value
        elif isinstance(value, Path):
            value = str(value)
        tables[section][key] = value
    return tables


def layered(
    *,
    file: Path | str | None = None,
    config_file: Path | None = None,
    preset: str | None = None,
    given: Tables | None = None,
    chosen: Tables | None = None,
) -> RunConfig:
    """Settings, each layer overriding the one before: the defaults, ``preset`` (or the
    tables ``chosen`` by :mod:`charrnn.training.auto`), the ``config_file`` (TOML), then ``given``
    (from :func:`overrides`) and the corpus ``file``.

    A budget (steps, epochs or time) in ``given`` replaces the file's budget entirely.
    """
    tables: Tables = {"data": {}, "model": {}, "train": {}}
    base = preset_tables(preset) if preset not in (None, AUTO) else chosen or {}
    for name, table in base.items():
        tables[name].update(table)
    if config_file is not None:
        for name, table in read_toml(config_file).items():
            if not isinstance(table, dict):
                raise ConfigError(f"{config_file}: [{name}] must be a table")
            tables.setdefault(name, {}).update(table)
    for name, values in (given or {}).items():
        if name == "train" and any(k in values for k in BUDGET_KEYS):
            for key in BUDGET_KEYS:
                tables["train"].pop(key, None)
        tables[name].update(values)
    if file is not None:
        tables["data"]["path"] = str(file)
    return RunConfig.from_dict(tables)


def read_toml(path: Path) -> dict[str, Any]:
    """The tables of a TOML settings file (validated later by :meth:`RunConfig.from_dict`)."""
    try:
        with Path(path).open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}); TOML files are UTF-8"
        ) from None


@dataclass(frozen=True)
class Layers:
    """The settings a person gave, layer by layer, before anything is chosen for them."""

    file: Path | str | None = None  # the corpus (after the inputs are resolved)
    config_file: Path | None = None
    preset: str | None = None
    given: Tables = field(default_factory=dict)  # from :func:`overrides`

    @property
    def auto(self) -> bool:
        """Whether settings not given are chosen for the corpus, budget and machine."""
        return self.preset in (None, AUTO)

    def settle(self, chosen: Tables | None = None) -> RunConfig:
        """The settings, with ``chosen`` (auto's tables) under everything given."""
        if chosen is not None:
            return layered(
                file=self.file, config_file=self.config_file, chosen=chosen, given=self.given
            )
        return layered(
            file=self.file, config_file=self.config_file, preset=self.preset, given=self.given
        )

    def under(self, tables: Tables) -> Layers:
        """These layers with ``tables`` set over what was given (fine-tuning's shape)."""
        merged = {k: {**self.given.get(k, {}), **tables.get(k, {})} for k in {*self.given, *tables}}
        return Layers(self.file, self.config_file, self.preset, merged)
