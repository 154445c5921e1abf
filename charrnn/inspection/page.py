"""The ``charrnn inspect`` page: one self-contained HTML file (data, style and script
inline, nothing fetched), opened from disk on an offline laptop.

Its data is what :mod:`charrnn.inspection.measures` measured; the activations travel as int8
(hidden states are in [-1, 1]; cell states are scaled per unit), base64-encoded, so
2,000 characters of a 2x512 LSTM embed in about 5 MB and recolouring the text for
another unit is one pass over typed arrays.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from charrnn.data.vocab import describe_symbol
from charrnn.inspection.measures import FEATURES, LEFT, RIGHT, Trace, UnitMatch
from charrnn.units import to_bits

NEURON_BUDGET = 4_000_000  # activation values embedded (int8: 5.3 MB as base64)


def _int8(values: np.ndarray) -> tuple[str, list[float]]:
    """(T, H) floats as base64 int8, and the per-unit scale that restores them."""
    scale = np.maximum(np.abs(values).max(axis=0), 1e-6)
    q = np.clip(np.round(values / scale * 127), -127, 127).astype(np.int8)
    return base64.b64encode(q.tobytes()).decode("ascii"), [round(float(s), 4) for s in scale]


def neuron_chars(trace: Trace) -> int:
    """How many characters' activations the page embeds: :data:`NEURON_BUDGET` values
    in all, so a big model's page stays a few megabytes."""
    series = sum(a.shape[1] for a in trace.hidden) + sum(a.shape[1] for a in trace.cell)
    return max(1, min(len(trace.text), NEURON_BUDGET // max(series, 1)))


def page_data(
    trace: Trace, chars: Sequence[str], matches: Sequence[UnitMatch]
) -> dict[str, object]:
    """Everything the page's script needs, as plain JSON values."""
    shown = neuron_chars(trace)
    states: dict[str, list[dict[str, object]]] = {"hidden": [], "cell": []}
    for name, layers in (("hidden", trace.hidden), ("cell", trace.cell)):
        for acts in layers:
            data, scale = _int8(acts[:shown])
            states[name].append({"data": data, "scale": scale})
    return {
        "text": trace.text,
        "bits": [round(float(s), 2) for s in to_bits(trace.surprisal)],
        "vocab": list(chars),
        "topIds": trace.top_ids.astype(int).ravel().tolist(),
        "topProbs": [round(float(p), 3) for p in trace.top_probs.ravel()],
        "top": int(trace.top_ids.shape[1]),
        "hiddenSize": int(trace.hidden[0].shape[1]),
        "neuronChars": shown,
        "states": {k: v for k, v in states.items() if v},
        "matches": [
            {
                "feature": m.feature,
                "layer": m.layer,
                "state": m.state,
                "unit": m.unit,
                "r": round(m.r, 3),
            }
            for m in matches
        ],
    }


def printable_vocab(symbols: Sequence[int], byte_level: bool) -> list[str]:
    """Names for the tooltip, in words where a browser font may lack the symbol (␠)."""
    names = [describe_symbol(s, byte_level) for s in symbols]
    return ["space" if n == "␠" else n for n in names]


# -- static pictures ------------------------------------------------------------------------


def saturation_svg(layers: Sequence[dict[str, tuple[np.ndarray, np.ndarray]]]) -> str:
    """One small scatter per layer and gate: each dot a unit, x the fraction of time it
    is below LEFT, y above RIGHT (as in the 2015 paper's figure 3)."""
    if not layers or not layers[0]:
        return "<p>A vanilla RNN has no gates: its state is all it has.</p>"
    size, pad = 170, 34
    blocks = []
    for k, gates in enumerate(layers):
        for name, (left, right) in gates.items():
            dots = "".join(
                f'<circle cx="{pad + x * size:.1f}" cy="{pad + (1 - y) * size:.1f}" r="2.2"/>'
                for x, y in zip(left, right, strict=True)
            )
            blocks.append(
                f'<svg class="sat" width="{size + 2 * pad}" height="{size + 2 * pad + 8}" '
                f'role="img"><title>layer {k + 1} {name} gate</title>'
                f'<rect x="{pad}" y="{pad}" width="{size}" height="{size}" class="frame"/>'
                f'<g class="dots">{dots}</g>{_saturation_ticks(size, pad)}'
                f'<text x="{pad + size / 2}" y="16" class="head">layer {k + 1}: {name}</text>'
                f'<text x="{pad + size / 2}" y="{size + 2 * pad}" class="axis">'
                f"time &lt; {LEFT} (left-saturated)</text>"
                f'<text x="9" y="{pad + size / 2}" class="axis" transform="rotate(-90 9 '
                f'{pad + size / 2})">time &gt; {RIGHT}</text></svg>'
            )
    return "".join(blocks)


def _saturation_ticks(size: int, pad: int) -> str:
    """0, 0.5 and 1 along both axes of a saturation scatter (fractions of the time)."""
    marks = []
    for value in (0.0, 0.5, 1.0):
        x, y = pad + value * size, pad + (1 - value) * size
        bottom = pad + size
        label = f"{value:g}"
        marks.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 4}" class="tick"/>'
            f'<text x="{x:.1f}" y="{bottom + 13}" class="tick">{label}</text>'
            f'<line x1="{pad - 4}" y1="{y:.1f}" x2="{pad}" y2="{y:.1f}" class="tick"/>'
            f'<text x="{pad - 6}" y="{y + 3:.1f}" class="tick" text-anchor="end">{label}</text>'
        )
    return "".join(marks)


def flow_svg(curves: dict[str, np.ndarray], width: int = 640, height: int = 300) -> str:
    """‖∂L_t/∂x_{t−k}‖ against k on a log scale, one line per curve."""
    pad_l, pad_b, pad_t, pad_r = 60, 40, 16, 120
    finite = np.concatenate([c[c > 0] for c in curves.values()])
    lo = math.floor(math.log10(max(finite.min(), 1e-30)))
    hi = math.ceil(math.log10(finite.max()))
    hi = max(hi, lo + 1)
    k_max = max(len(c) - 1 for c in curves.values())
    w, h = width - pad_l - pad_r, height - pad_t - pad_b

    def xy(k: int, v: float) -> str:
        y = (math.log10(max(v, 10.0**lo)) - lo) / (hi - lo)
        return f"{pad_l + k / k_max * w:.1f},{pad_t + (1 - y) * h:.1f}"

    colours = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    parts = [f'<svg class="flow" width="{width}" height="{height}" role="img">']
    step = max(1, (hi - lo) // 6)
    for d in range(lo, hi + 1, step):
        y = pad_t + (1 - (d - lo) / (hi - lo)) * h
        parts.append(
            f'<line x1="{pad_l}" x2="{pad_l + w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        parts.append(
            f'<text x="{pad_l - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">1e{d}</text>'
        )
    for k in np.linspace(0, k_max, 6).astype(int):
        x = pad_l + k / k_max * w
        parts.append(
            f'<text x="{x:.1f}" y="{pad_t + h + 16}" class="tick" text-anchor="middle">{k}</text>'
        )
    parts.append(
        f'<text x="{pad_l + w / 2}" y="{height - 4}" class="axis">'
        "k: steps between the input and the loss</text>"
    )
    for i, (name, curve) in enumerate(curves.items()):
        colour = colours[i % len(colours)]
        points = " ".join(xy(k, float(v)) for k, v in enumerate(curve) if v > 0)
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(
            f'<text x="{pad_l + w + 8}" y="{pad_t + 14 + 16 * i}" fill="{colour}" class="legend">'
            f"{html.escape(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


# -- the page -------------------------------------------------------------------------------


def asset(name: str) -> str:
    """A file of ``charrnn/assets`` (the page's style and script), as text."""
    return (Path(__file__).parent / "assets" / name).read_text(encoding="utf-8")


# Inside <script> the HTML parser still looks for "</script" and, after "<!--", for
# "<script" (the "double-escaped" state, which swallows the rest of the page). JSON may
# spell <, > and & as \u escapes, so none of those sequences can appear at all.
_INERT = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def inert_json(data: object) -> str:
    """``data`` as JSON that is safe inside a ``<script type="application/json">`` block
    whatever texts, vocabulary characters or names it holds."""
    return json.dumps(data, separators=(",", ":")).translate(_INERT)


def render(
    *,
    title: str,
    summary: str,
    data: dict[str, object],
    saturation: str,
    flow: str,
    flow_note: str,
    matches_note: str = "",
) -> str:
    """The whole page as one string."""
    payload = inert_json(data)
    features = "".join(
        f"<li><b>{html.escape(name)}</b>: {html.escape(text)}</li>"
        for name, text in FEATURES.items()
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{asset("inspect.css")}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="note">{html.escape(summary)}</p>
<h2>Surprisal</h2>
<p>Each character on a background as red as it surprised the model (bits = −log₂ p,
white 0, darkest 10 or more). Hover a character for what the model expects next.</p>
<div id="surprisal" class="text"></div>
<h2>Neurons</h2>
<p>The text coloured by one unit's value after reading each character (the first
<span id="neuron-chars"></span> characters: the page embeds at most
{NEURON_BUDGET:,} values). The table lists the units whose values correlate most with
simple features of the whole text; click one.</p>
<div class="controls"><label>state <select id="state"></select></label>
<label><select id="layer"></select></label>
<label>unit <input id="unit" type="number" min="0" value="0" style="width:6em"></label>
<span id="which" class="note"></span></div>
<div id="neurons" class="text"></div>
<h3>Units that track a feature</h3>
<table class="matches"><thead><tr><th>feature</th><th>where</th><th>unit</th>
<th>correlation</th></tr></thead><tbody id="matches"></tbody></table>
{f'<p class="note" id="matches-note">{html.escape(matches_note)}</p>' if matches_note else ""}
<ul class="note">{features}</ul>
<h2>Gate saturation</h2>
<p>Each dot is a unit: how often its gate is almost shut (&lt; {LEFT}, x) or wide open
(&gt; {RIGHT}, y) over this text. Dots on the right edge ignore their input; on the
top edge they pass it through — forget gates up there are the LSTM remembering.</p>
<div>{saturation}</div>
<h2>Gradient flow through time</h2>
<p>How much the loss at a step depends on the input k steps before it,
‖∂L<sub>t</sub>/∂x<sub>t−k</sub>‖ averaged over positions, log scale. {html.escape(flow_note)}</p>
{flow}
<div id="tip"></div>
<script type="application/json" id="data">{payload}</script>
<script>{asset("inspect.js")}</script>
</body></html>
"""
