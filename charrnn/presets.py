"""Named starting points for ``--preset``: model and training settings.

A preset never sets the budget or the corpus; a ``--config`` file and options given on
the command line override it (see :func:`charrnn.layering.layered`).
"""

from __future__ import annotations

from typing import Any

from charrnn.errors import ConfigError

AUTO = "auto"  # not a table: settings chosen per run by charrnn.training.auto

PRESETS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "tiny": (
        "1x128 GRU: seconds per epoch on small texts, for trying things out",
        {
            "model": {"cell": "gru", "num_layers": 1, "hidden_size": 128, "embed_size": 32},
            "train": {"batch_size": 16, "seq_len": 64, "lr": 3e-3},
        },
    ),
    "cpu-75s": (
        "1x512 LSTM, bf16 where the CPU has it: the best loss in about a minute of CPU "
        "(what auto picks for short runs)",
        {
            "model": {"cell": "lstm", "num_layers": 1, "hidden_size": 512, "embed_size": 64},
            "train": {"batch_size": 32, "seq_len": 32, "lr": 1e-2, "precision": "auto"},
        },
    ),
    "cpu-30m": (
        "2x768 LSTM with AWD-LSTM regularisation, bf16 where the CPU has it: for half an "
        "hour of CPU (what auto picks for about 1 MB and 30 minutes)",
        {
            "model": {
                "cell": "lstm",
                "num_layers": 2,
                "hidden_size": 768,
                "embed_size": 64,
                "dropout": 0.2,
                "weight_drop": 0.2,
                "input_dropout": 0.05,
            },
            "train": {"batch_size": 32, "seq_len": 64, "lr": 3e-3, "precision": "auto"},
        },
    ),
    "large": (
        "3x512 LSTM with dropout, large batches: for a GPU or hours of CPU",
        {
            "model": {
                "cell": "lstm",
                "num_layers": 3,
                "hidden_size": 512,
                "embed_size": 128,
                "dropout": 0.2,
            },
            "train": {"batch_size": 64, "seq_len": 128, "lr": 2e-3},
        },
    ),
}


# Presets that measurements made obsolete, and why (named in the error).
RETIRED = {
    "cpu-fast": "retired in 0.2: auto (the default) beat it at 75 s on Tiny Shakespeare, "
    "1.48 nats against 1.61; leave --preset out",
}


def preset_tables(name: str) -> dict[str, dict[str, Any]]:
    """The settings tables of preset ``name`` (copies, safe to change)."""
    if name in RETIRED:
        raise ConfigError(f"preset {name!r} was {RETIRED[name]}")
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join([AUTO, *PRESETS])}")
    return {section: dict(values) for section, values in PRESETS[name][1].items()}
