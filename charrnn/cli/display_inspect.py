"""``charrnn inspect --terminal``: the surprisal and one unit as coloured text."""

from __future__ import annotations

import math

import numpy as np
from rich.rule import Rule

from charrnn.cli.display_score import shaded, unit_text
from charrnn.cli.live import stdout_console
from charrnn.errors import ConfigError
from charrnn.inspection.trace import Inspection

SHOWN = 3000  # characters printed: a terminal shows no more usefully


def show_inspection(found: Inspection, unit: tuple[int, str, int] | None) -> None:
    """Print the text by surprisal, then by ``unit`` (layer, state, index; default the
    unit most correlated with a feature)."""
    trace = found.trace
    console = stdout_console()
    text = trace.text[:SHOWN]
    console.print(
        Rule("surprisal: plain < 1 bit, grey < 2, orange < 4, red < 7, bright red beyond")
    )
    console.print(shaded(text, (trace.surprisal[:SHOWN] / math.log(2)).tolist()))
    if unit is None:
        if not found.matches:
            return
        best = max(found.matches, key=lambda m: abs(m.r))
        unit = (best.layer, best.state, best.unit)
    layer, state, index = unit
    layers = trace.hidden if state == "hidden" else trace.cell
    if not layers:
        raise ConfigError("--unit: only an LSTM has a cell state; use hidden")
    if not 0 <= layer < len(layers) or not 0 <= index < layers[0].shape[1]:
        raise ConfigError(
            f"--unit: the model has {len(layers)} layers of {layers[0].shape[1]} units"
        )
    values = layers[layer][: len(text), index]
    scaled = values / max(float(np.abs(values).max()), 1e-9)
    console.print(Rule(f"layer {layer + 1} {state} unit {index}: red positive, blue negative"))
    console.print(unit_text(text, scaled.tolist()))
