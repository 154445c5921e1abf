"""Typer options that set the model: its shape and its regularisation (shared by
``train`` and ``compare``). Each defaults to None, so only given ones override a
preset, a ``--config`` file or ``--preset auto``'s choice.
"""

from __future__ import annotations

from typing import Annotated

import typer

from charrnn.config import Cell, ModelConfig

_M = ModelConfig()


CellOpt = Annotated[
    Cell | None,
    typer.Option("--cell", help=f"Recurrent cell. [default: {_M.cell}]", show_default=False),
]


LayersOpt = Annotated[
    int | None,
    typer.Option(
        "--layers",
        min=1,
        help=f"Recurrent layers. [default: {_M.num_layers}]",
        show_default=False,
    ),
]


HiddenOpt = Annotated[
    int | None,
    typer.Option(
        "--hidden",
        min=1,
        help=f"Hidden units per layer. [default: {_M.hidden_size}]",
        show_default=False,
    ),
]


EmbedOpt = Annotated[
    int | None,
    typer.Option(
        "--embed",
        min=0,
        help=f"Character embedding size; 0 = one-hot inputs. [default: {_M.embed_size}]",
        show_default=False,
    ),
]


DropoutOpt = Annotated[
    float | None,
    typer.Option(
        "--dropout",
        min=0.0,
        max=0.95,
        help="Locked dropout between layers and before the output (one mask per "
        f"sequence), 0-0.95. [default: {_M.dropout}]",
        show_default=False,
    ),
]


InputDropoutOpt = Annotated[
    float | None,
    typer.Option(
        "--input-dropout",
        min=0.0,
        max=0.95,
        help=f"Locked dropout on the model's inputs: one mask per sequence. "
        f"[default: {_M.input_dropout}]",
        show_default=False,
    ),
]

EmbedDropoutOpt = Annotated[
    float | None,
    typer.Option(
        "--embed-dropout",
        min=0.0,
        max=0.95,
        help=f"Share of characters whose embedding is dropped from a batch. "
        f"[default: {_M.embed_dropout}]",
        show_default=False,
    ),
]

WeightDropOpt = Annotated[
    float | None,
    typer.Option(
        "--weight-drop",
        min=0.0,
        max=0.95,
        help=f"DropConnect on the recurrent weight matrices, one mask per batch. "
        f"[default: {_M.weight_drop}]",
        show_default=False,
    ),
]


ForgetBiasOpt = Annotated[
    float | None,
    typer.Option(
        "--forget-bias",
        min=-10.0,
        max=10.0,
        help=f"Starting bias of the LSTM's forget gates. [default: {_M.forget_bias:g}]",
        show_default=False,
    ),
]
