"""The page at ``/``: write together with the model, in one self-contained file.

A text box the model's continuation streams into (``/v1/completions`` with
``stream: true``), temperature / top-p / length controls, and a "next character"
panel: the model's five likeliest characters after the text (``max_tokens: 1,
logprobs: 5``) with their probabilities; a click appends one. Nothing is fetched
from anywhere but this server.
"""

from __future__ import annotations

import html

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0; background: #f6f6f3; color: #222; }
header { padding: 10px 18px; background: #23303b; color: #f0f0f0; }
header b { font-size: 17px; }
main { display: grid; grid-template-columns: minmax(0, 1fr) 260px; gap: 16px; padding: 16px; }
textarea { width: 100%; box-sizing: border-box; height: 420px; font: 15px/1.5 ui-monospace,
  monospace; padding: 10px; border: 1px solid #bbb; border-radius: 6px; resize: vertical; }
.controls { display: flex; flex-wrap: wrap; gap: 14px; align-items: center; margin: 10px 0; }
.controls label { display: flex; gap: 6px; align-items: center; }
input[type=number] { width: 72px; }
button { font: inherit; padding: 5px 14px; border-radius: 5px; border: 1px solid #667;
  background: #fff; cursor: pointer; }
button.primary { background: #2d6cdf; color: #fff; border-color: #2d6cdf; }
button:disabled { opacity: 0.5; cursor: default; }
aside { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 10px 12px; }
aside h2 { font-size: 14px; margin: 0 0 8px; color: #555; }
.candidate { display: flex; width: 100%; justify-content: space-between; margin: 4px 0;
  font-family: ui-monospace, monospace; }
.bar { height: 4px; background: #2d6cdf; border-radius: 2px; margin: -2px 0 6px; }
#status { color: #666; font-size: 13px; }
"""

_SCRIPT = r"""
const $ = (id) => document.getElementById(id);
const text = $("text"), go = $("generate"), halt = $("stop"), status = $("status");
let controller = null;
let nextTimer = null;

function show(ch) {
  if (ch === "\n") return "⏎ newline";
  if (ch === " ") return "␣ space";
  if (ch === "\t") return "⇥ tab";
  return ch;
}

function settings() {
  return {
    model: $("model").value,
    temperature: parseFloat($("temperature").value),
    top_p: parseFloat($("top_p").value),
    max_tokens: parseInt($("length").value, 10),
  };
}

async function generate() {
  controller = new AbortController();
  go.disabled = true; halt.disabled = false;
  status.textContent = "writing…";
  status.dataset.chunks = "0";  // events received in this stream (the test reads it)
  const body = Object.assign(settings(), { prompt: text.value, stream: true });
  try {
    const reply = await fetch("v1/completions", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body), signal: controller.signal,
    });
    if (!reply.ok) {
      const err = await reply.json();
      throw new Error(err.error ? err.error.message : reply.statusText);
    }
    const reader = reply.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
        if (!event.startsWith("data: ")) continue;
        const data = event.slice(6);
        if (data === "[DONE]") continue;
        const chunk = JSON.parse(data);
        status.dataset.chunks = String(Number(status.dataset.chunks || 0) + 1);
        for (const choice of chunk.choices) text.value += choice.text;
        text.scrollTop = text.scrollHeight;
      }
    }
    status.textContent = "done";
  } catch (e) {
    status.textContent = e.name === "AbortError" ? "stopped" : "error: " + e.message;
  } finally {
    go.disabled = false; halt.disabled = true; controller = null;
    refreshNext();
  }
}

async function refreshNext() {
  const asked = text.value;
  const body = {
    model: $("model").value, prompt: asked, max_tokens: 1, logprobs: 5, temperature: 0,
  };
  const list = $("candidates");
  try {
    const reply = await fetch("v1/completions", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const data = await reply.json();
    if (!reply.ok) { list.textContent = data.error.message; return; }
    if (text.value !== asked) return;  // the text moved on: a newer call is coming
    const top = data.choices[0].logprobs.top_logprobs[0] || {};
    const ranked = Object.entries(top).sort((a, b) => b[1] - a[1]);
    list.replaceChildren();
    for (const [ch, lp] of ranked) {
      const p = Math.exp(lp);
      const button = document.createElement("button");
      button.className = "candidate";
      button.dataset.char = ch;
      const label = document.createElement("span"); label.textContent = show(ch);
      const share = document.createElement("span"); share.textContent = (100 * p).toFixed(1) + " %";
      button.append(label, share);
      button.addEventListener("click", () => { text.value += ch; refreshNext(); });
      const bar = document.createElement("div");
      bar.className = "bar"; bar.style.width = (100 * p).toFixed(1) + "%";
      list.append(button, bar);
    }
    list.dataset.forLength = String(asked.length);  // what the choices follow (tests)
  } catch (e) {
    list.textContent = "error: " + e.message;
  }
}

go.addEventListener("click", generate);
halt.addEventListener("click", () => controller && controller.abort());
text.addEventListener("input", () => {
  clearTimeout(nextTimer);
  nextTimer = setTimeout(refreshNext, 150);
});
$("model").addEventListener("change", refreshNext);
refreshNext();
"""


def page_html(models: list[str]) -> str:
    """The whole page: style and script inline, the models as the choices."""
    options = "".join(
        f'<option value="{html.escape(m, quote=True)}">{html.escape(m)}</option>' for m in models
    )
    title = html.escape(models[0] if len(models) == 1 else "charrnn")
    # The model ids reach the script only as the <option> values above (escaped HTML):
    # nothing from a run is written into the <script> block.
    assert "</script" not in _SCRIPT.lower()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>charrnn · {title}</title><style>{_STYLE}</style></head>
<body>
<header><b>charrnn</b> · write with a character-level model</header>
<main>
<section>
<textarea id="text" spellcheck="false" placeholder="Type a beginning, or press Generate"></textarea>
<div class="controls">
<label>model <select id="model">{options}</select></label>
<label>temperature
<input id="temperature" type="number" min="0" max="2" step="0.1" value="0.8"></label>
<label>top-p <input id="top_p" type="number" min="0.01" max="1" step="0.05" value="1"></label>
<label>characters
<input id="length" type="number" min="1" max="4096" step="50" value="200"></label>
<button id="generate" class="primary">Generate</button>
<button id="stop" disabled>Stop</button>
<span id="status"></span>
</div>
</section>
<aside><h2>Next character</h2><div id="candidates"></div>
<p id="status-note" style="color:#777;font-size:12px">The model's likeliest characters after
the text; click one to append it.</p></aside>
</main>
<script>{_SCRIPT}</script>
</body></html>
"""
