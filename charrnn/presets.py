"""Named starting points for ``--preset``: model and training settings.

A preset never sets the budget or the corpus; a ``--config`` file and options given on
the command line override it (see :func:`charrnn.config.layered`).
"""

from __future__ import annotations

from typing import Any

from charrnn.errors import ConfigError

PRESETS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {
    "tiny": (
        "1x128 GRU: seconds per epoch on small texts, for trying things out",
        {
            "model": {"cell": "gru", "num_layers": 1, "hidden_size": 128, "embed_size": 32},
            "train": {"batch_size": 16, "seq_len": 64, "lr": 3e-3},
        },
    ),
    "cpu-fast": (
        "2x256 LSTM, small batches: the most learning per CPU-minute on a laptop",
        {
            "model": {"cell": "lstm", "num_layers": 2, "hidden_size": 256, "embed_size": 64},
            "train": {"batch_size": 8, "seq_len": 100, "lr": 5e-3, "eval_every": 500},
        },
    ),
    "cpu-75s": (
        "1x512 LSTM, bf16 where the CPU has it: the best loss in about a minute of CPU",
        {
            "model": {"cell": "lstm", "num_layers": 1, "hidden_size": 512, "embed_size": 64},
            "train": {
                "batch_size": 32,
                "seq_len": 32,
                "lr": 1e-2,
                "precision": "auto",
                "eval_every": 1000,
            },
        },
    ),
    "cpu-30m": (
        "2x512 LSTM with dropout, bf16 where the CPU has it: for half an hour of CPU",
        {
            "model": {
                "cell": "lstm",
                "num_layers": 2,
                "hidden_size": 512,
                "embed_size": 64,
                "dropout": 0.5,
            },
            "train": {
                "batch_size": 32,
                "seq_len": 64,
                "lr": 4e-3,
                "precision": "auto",
                "eval_every": 1000,
            },
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
            "train": {"batch_size": 64, "seq_len": 128, "lr": 2e-3, "eval_every": 1000},
        },
    ),
}


def preset_tables(name: str) -> dict[str, dict[str, Any]]:
    """The settings tables of preset ``name`` (copies, safe to change)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return {section: dict(values) for section, values in PRESETS[name][1].items()}
