"""``charrnn export --format web``: one HTML file that writes with the model in a
browser, opened from disk, with nothing fetched and no server.

The page carries the weights as a safetensors file in base64 (the same layout as the
hub folder's ``model.safetensors``) and a plain-JavaScript forward step
(``assets/web.js``): a table lookup for the first layer's input, then per layer two
Float32Array matrix-vector products and the cell's element-wise equations, then the
head. Plain JavaScript needs nothing inlined, runs all three cells, and can be read
against :mod:`charrnn.model.cells` line by line; docs/sharing.md says why it was
chosen over onnxruntime-web and measures it.

The weights are stored in float16 (half the file) when that changes nothing a person
would see: greedy decoding (temperature 0) writes the same text with the rounded
weights as with the float32 ones, from the start and after a priming text. Otherwise
they stay float32.
"""

from __future__ import annotations

import base64
import copy
import html
import json
import math
from pathlib import Path

import torch

from charrnn.checkpoint import Checkpoint
from charrnn.data.vocab import Vocab
from charrnn.hub import safetensors_bytes
from charrnn.model.network import CharRNN
from charrnn.sampling.sampler import SampleSettings, generate
from charrnn.units import human, to_bits

HALF_CHECK_CHARS = 300  # greedy characters that must agree for float16 to be used
ASSETS = Path(__file__).parent / "assets"


def half_keeps_text(model: CharRNN, vocab: Vocab) -> bool:
    """Whether float16-rounded weights write the same greedy text as ``model``'s own,
    from the start symbol and after a priming text the model wrote itself."""
    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in rounded.parameters():
            half = parameter.half()
            if not torch.isfinite(half).all():  # beyond float16's range
                return False
            parameter.copy_(half.float())
    greedy = SampleSettings(temperature=0)
    prime = generate(model, vocab, length=100, seed=0)[0]
    for start in ("", prime):
        texts = [
            generate(m, vocab, length=HALF_CHECK_CHARS, prime=start, settings=greedy, seed=0,
                     skip_unknown=True)[0]
            for m in (model, rounded)
        ]  # fmt: skip
        if texts[0] != texts[1]:
            return False
    return True


def page_facts(model: CharRNN, checkpoint: Checkpoint, precision: str) -> dict[str, object]:
    """What the script needs (shape, vocabulary) and what the page shows about the model."""
    m, vocab = checkpoint.config.model, checkpoint.vocab
    best = checkpoint.best_val_loss
    return {
        "name": checkpoint.corpus.name if checkpoint.corpus else "model",
        "cell": m.cell,
        "layers": m.num_layers,
        "hidden": m.hidden_size,
        "embed": m.embed_size,
        "vocab_size": len(vocab),
        "symbols": list(vocab.symbols),
        "byte_level": vocab.byte_level,
        "start_id": vocab.start_id,
        "parameters": model.num_parameters,
        "val_bpc": round(to_bits(best), 4) if math.isfinite(best) else None,
        "step": checkpoint.step,
        "charrnn_version": checkpoint.charrnn_version,
        "precision": precision,
    }


def _script_json(value: object) -> str:
    """JSON safe inside a ``<script>`` element: no ``<`` can close it."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def web_page(model: CharRNN, checkpoint: Checkpoint) -> str:
    """The whole page: style, script, model facts and weights inline."""
    dtype = torch.float16 if half_keeps_text(model, checkpoint.vocab) else torch.float32
    precision = "float16" if dtype == torch.float16 else "float32"
    facts = page_facts(model, checkpoint, precision)
    weights = base64.b64encode(safetensors_bytes(model.state_dict(), dtype)).decode("ascii")
    script = (ASSETS / "web.js").read_text(encoding="utf-8")
    style = (ASSETS / "web.css").read_text(encoding="utf-8")
    assert "</script" not in script.lower()
    m = checkpoint.config.model
    name = html.escape(str(facts["name"]))
    bpc = f" · {facts['val_bpc']} bits/char" if facts["val_bpc"] is not None else ""
    summary = html.escape(
        f"{m.cell.upper()} {m.num_layers}x{m.hidden_size}, {human(model.num_parameters)} "
        f"parameters, {len(checkpoint.vocab)} symbols{bpc} · {precision} weights"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; \
script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<link rel="icon" href="data:,">
<title>charrnn · {name}</title><style>{style}</style></head>
<body>
<header><b>charrnn</b> · {name}<span class="facts">{summary}</span></header>
<main>
<section>
<textarea id="text" spellcheck="false" placeholder="Type a beginning, or press Generate"></textarea>
<div class="controls">
<label>temperature
<input id="temperature" type="number" min="0" max="2" step="0.1" value="0.8"></label>
<label>characters
<input id="length" type="number" min="1" max="100000" step="50" value="300"></label>
<button id="generate" class="primary" disabled>Generate</button>
<button id="stop" disabled>Stop</button>
<span id="status" data-state="loading">loading the model…</span>
</div>
<div id="note"></div>
</section>
<aside><h2>Next character</h2><div id="candidates"></div>
<p class="small">The model's likeliest characters after the text; click one to append it.
Everything runs in this page: nothing is sent anywhere.</p></aside>
</main>
<script type="application/json" id="model">{_script_json(facts)}</script>
<script type="application/octet-stream" id="weights">{weights}</script>
<script>{script}</script>
</body></html>
"""
