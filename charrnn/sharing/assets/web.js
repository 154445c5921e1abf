// charrnn's model in the browser: the weights (a safetensors file, base64) and the
// vocabulary sit in the page; this script runs the network one character at a time.
// The step is charrnn's (charrnn/model/cells.py), in PyTorch's gate order:
//   layer 0 input:  table[id] = W_ih0 · embedding[id] + b_ih0   (one-hot: W_ih0's column)
//   layer k > 0:    gi = W_ih_k · h_{k-1} + b_ih_k
//   every layer:    gh = W_hh_k · h_k + b_hh_k
//   LSTM  i, f, g, o = gi + gh;  c = σf·c + σi·tanh g;  h = σo·tanh c
//   GRU   r = σ(ir + hr);  z = σ(iz + hz);  n = tanh(in + r·hn);  h = (1 − z)·n + z·h
//   RNN   h = tanh(gi + gh)
//   head  logits = W · h_top + b
// State and weights are float32 (Float32Array); sums run in double and are rounded to
// float32 when stored, as close to PyTorch's float32 as a different summation order allows.
"use strict";

const $ = (id) => document.getElementById(id);
const MODEL = JSON.parse($("model").textContent);

// -- the weights ------------------------------------------------------------------

function base64Bytes(text) {
  const raw = atob(text);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

let HALF = null;  // float16 bit pattern -> float32, built once if needed
function halfTable() {
  if (HALF) return HALF;
  HALF = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
    HALF[h] = exp === 0 ? sign * Math.pow(2, -14) * (frac / 1024)
      : exp === 31 ? (frac ? NaN : sign * Infinity)
      : sign * Math.pow(2, exp - 15) * (1 + frac / 1024);
  }
  return HALF;
}

// A safetensors file: 8 bytes of header length (little-endian), a JSON header naming
// each tensor's dtype, shape and byte range, then the data.
function readSafetensors(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + size)));
  const start = 8 + size, tensors = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [from, to] = info.data_offsets;
    const raw = bytes.slice(start + from, start + to);  // a copy: aligned for the views
    let values;
    if (info.dtype === "F32") values = new Float32Array(raw.buffer);
    else if (info.dtype === "F16") {
      const bits = new Uint16Array(raw.buffer), table = halfTable();
      values = new Float32Array(bits.length);
      for (let i = 0; i < bits.length; i++) values[i] = table[bits[i]];
    } else throw new Error(`${name}: weights of type ${info.dtype} are not supported`);
    tensors[name] = values;
  }
  return tensors;
}

// -- the network ------------------------------------------------------------------

const GATES = { rnn: 1, gru: 3, lstm: 4 };

class Network {
  constructor(model, tensors) {
    const { cell, layers, hidden, embed, vocab_size: V } = model;
    Object.assign(this, { cell, layers, hidden, V });
    const G = GATES[cell] * hidden;
    this.G = G;
    const wih0 = tensors["rnn.weight_ih_l0"], bih0 = tensors["rnn.bias_ih_l0"];
    // Every character's layer-0 input product, computed once (V rows of G).
    this.table = new Float32Array(V * G);
    const emb = embed ? tensors["embedding.weight"] : null;
    for (let v = 0; v < V; v++) {
      for (let r = 0; r < G; r++) {
        let s = bih0[r];
        if (emb) {
          const w = r * embed, e = v * embed;
          for (let k = 0; k < embed; k++) s += wih0[w + k] * emb[e + k];
        } else {
          s += wih0[r * V + v];
        }
        this.table[v * G + r] = s;
      }
    }
    this.wih = [], this.bih = [], this.whh = [], this.bhh = [];
    for (let k = 0; k < layers; k++) {
      this.wih.push(tensors[`rnn.weight_ih_l${k}`]);
      this.bih.push(tensors[`rnn.bias_ih_l${k}`]);
      this.whh.push(tensors[`rnn.weight_hh_l${k}`]);
      this.bhh.push(tensors[`rnn.bias_hh_l${k}`]);
    }
    this.headW = tensors["head.weight"];
    this.headB = tensors["head.bias"];
    this.gi = new Float32Array(G);
    this.gh = new Float32Array(G);
    this.logits = new Float32Array(V);
  }

  zeroState() {
    const parts = this.cell === "lstm" ? 2 : 1, state = [];
    for (let p = 0; p < parts; p++) {
      const layers = [];
      for (let k = 0; k < this.layers; k++) layers.push(new Float32Array(this.hidden));
      state.push(layers);
    }
    return state;
  }

  copyState(state) {
    return state.map((layers) => layers.map((h) => h.slice()));
  }

  // One character: the state moves on in place; returns the next character's logits.
  step(id, state) {
    const H = this.hidden, G = this.G, gi = this.gi, gh = this.gh;
    let x = null;
    for (let k = 0; k < this.layers; k++) {
      if (k === 0) gi.set(this.table.subarray(id * G, (id + 1) * G));
      else matvec(this.wih[k], this.bih[k], x, gi, G, H);
      const h = state[0][k];
      matvec(this.whh[k], this.bhh[k], h, gh, G, H);
      if (this.cell === "lstm") {
        const c = state[1][k];
        for (let j = 0; j < H; j++) {
          const i = sigmoid(gi[j] + gh[j]), f = sigmoid(gi[H + j] + gh[H + j]);
          const g = Math.tanh(gi[2 * H + j] + gh[2 * H + j]);
          const o = sigmoid(gi[3 * H + j] + gh[3 * H + j]);
          c[j] = f * c[j] + i * g;
          h[j] = o * Math.tanh(c[j]);
        }
      } else if (this.cell === "gru") {
        for (let j = 0; j < H; j++) {
          const r = sigmoid(gi[j] + gh[j]), z = sigmoid(gi[H + j] + gh[H + j]);
          const n = Math.tanh(gi[2 * H + j] + r * gh[2 * H + j]);
          h[j] = (1 - z) * n + z * h[j];
        }
      } else {
        for (let j = 0; j < H; j++) h[j] = Math.tanh(gi[j] + gh[j]);
      }
      x = h;
    }
    matvec(this.headW, this.headB, x, this.logits, this.V, H);
    return this.logits;
  }
}

function sigmoid(v) { return 1 / (1 + Math.exp(-v)); }

// out = W · x + b, W row-major (rows × cols).
function matvec(W, b, x, out, rows, cols) {
  for (let r = 0; r < rows; r++) {
    let s = b[r];
    const base = r * cols;
    for (let c = 0; c < cols; c++) s += W[base + c] * x[c];
    out[r] = s;
  }
}

// -- text <-> ids -----------------------------------------------------------------

const idOf = new Map(MODEL.symbols.map((s, i) => [s, i]));
const encoder = new TextEncoder();

// The ids of a text, and the characters the vocabulary lacks (skipped).
function encode(text) {
  const units = MODEL.byte_level ? encoder.encode(text) : Array.from(text, (ch) => ch.codePointAt(0));
  const ids = [], unknown = new Set();
  for (const u of units) {
    const id = idOf.get(u);
    if (id === undefined) unknown.add(MODEL.byte_level ? "0x" + u.toString(16) : String.fromCodePoint(u));
    else ids.push(id);
  }
  return { ids, unknown: [...unknown] };
}

function makeDecoder() {
  if (!MODEL.byte_level) return (id) => String.fromCodePoint(MODEL.symbols[id]);
  const bytes = new TextDecoder("utf-8");
  return (id) => bytes.decode(new Uint8Array([MODEL.symbols[id]]), { stream: true });
}

function choose(logits, temperature) {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  if (temperature === 0) return best;  // the first of equal maxima, as torch.argmax
  const top = logits[best], p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += (p[i] = Math.exp((logits[i] - top) / temperature));
  let u = Math.random() * sum;
  for (let i = 0; i < p.length; i++) if ((u -= p[i]) <= 0) return i;
  return p.length - 1;
}

// -- where the model stands -------------------------------------------------------
// `known` holds the state after some ids (and the logits for the next one), so a text
// that extends it runs only its new characters. An empty text starts from the start
// symbol (a newline when the vocabulary has one), as `charrnn sample` does.

let net = null, known = null, work = 0;

function startingPoint() {
  const state = net.zeroState();
  const logits = net.step(MODEL.start_id, state).slice();
  return { ids: [], state, logits, started: true };
}

function isPrefix(a, b) {
  if (a.length > b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// The point after `ids`, reached a slice at a time so the page stays responsive; null
// when newer work (`ticket` no longer current) made it moot.
async function advance(ids, ticket) {
  if (ids.length === 0) return startingPoint();
  let point;
  if (known && known.ids.length > 0 && isPrefix(known.ids, ids)) {
    point = { ids: known.ids.slice(), state: net.copyState(known.state), logits: known.logits, started: known.started };
  } else {
    point = { ids: [], state: net.zeroState(), logits: null, started: false };
  }
  let clock = performance.now();
  while (point.ids.length < ids.length) {
    const id = ids[point.ids.length];
    point.logits = net.step(id, point.state).slice();
    point.ids.push(id);
    if (performance.now() - clock > 30) {
      await new Promise((resolve) => setTimeout(resolve));
      if (ticket !== work) return null;
      clock = performance.now();
    }
  }
  return point;
}

// -- the page ---------------------------------------------------------------------

const text = $("text"), go = $("generate"), halt = $("stop"), status = $("status");
const note = $("note");
let stopping = false, nextTimer = null;

function show(ch) {
  if (ch === "\n") return "⏎ newline";
  if (ch === " ") return "␣ space";
  if (ch === "\t") return "⇥ tab";
  return ch;
}

function warnUnknown(unknown) {
  note.textContent = unknown.length
    ? `skipped characters the model does not know: ${unknown.slice(0, 8).join(" ")}`
    : "";
}

async function generate() {
  const ticket = ++work;
  stopping = false;
  go.disabled = true; halt.disabled = false;
  status.dataset.state = "writing";
  status.textContent = "reading the text…";
  const temperature = Math.max(0, parseFloat($("temperature").value) || 0);
  const length = Math.max(0, parseInt($("length").value, 10) || 0);
  const { ids, unknown } = encode(text.value);
  warnUnknown(unknown);
  let point = await advance(ids, ticket);
  if (!point) return;
  const decode = makeDecoder();
  let written = 0;
  const began = performance.now();
  while (written < length && !stopping) {
    let piece = "";
    const clock = performance.now();
    while (written < length && performance.now() - clock < 25) {
      const id = choose(point.logits, temperature);
      point.logits = net.step(id, point.state).slice();
      point.ids.push(id);
      piece += decode(id);
      written++;
    }
    text.value += piece;
    text.scrollTop = text.scrollHeight;
    const rate = written / ((performance.now() - began) / 1000);
    status.dataset.chars = String(written);
    status.dataset.rate = rate.toFixed(1);
    status.textContent = `${written} characters · ${rate.toFixed(0)} characters/s`;
    await new Promise((resolve) => setTimeout(resolve));
  }
  known = point;
  status.textContent += stopping ? " · stopped" : " · done";
  status.dataset.state = "done";
  go.disabled = false; halt.disabled = true;
  refreshNext();
}

async function refreshNext() {
  const ticket = ++work;
  const asked = text.value;
  const { ids, unknown } = encode(asked);
  warnUnknown(unknown);
  const point = await advance(ids, ticket);
  if (!point || text.value !== asked) return;
  known = point;
  const logits = point.logits;
  let top = -Infinity;
  for (const v of logits) top = Math.max(top, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - top);
  const ranked = Array.from(logits, (v, i) => [i, Math.exp(v - top) / sum])
    .sort((a, b) => b[1] - a[1]).slice(0, 5);
  const list = $("candidates");
  list.replaceChildren();
  const decode = makeDecoder();
  for (const [id, p] of ranked) {
    const partial = MODEL.byte_level && MODEL.symbols[id] >= 0x80;  // part of a character
    const ch = partial ? "0x" + MODEL.symbols[id].toString(16) : decode(id);
    const button = document.createElement("button");
    button.className = "candidate";
    button.dataset.char = ch;
    button.disabled = partial;
    const label = document.createElement("span"); label.textContent = show(ch);
    const share = document.createElement("span"); share.textContent = (100 * p).toFixed(1) + " %";
    button.append(label, share);
    button.addEventListener("click", () => { text.value += ch; refreshNext(); });
    const bar = document.createElement("div");
    bar.className = "bar"; bar.style.width = (100 * p).toFixed(1) + "%";
    list.append(button, bar);
  }
  list.dataset.forLength = String(asked.length);  // what the choices follow (tests)
}

function load() {
  const began = performance.now();
  net = new Network(MODEL, readSafetensors(base64Bytes($("weights").textContent.trim())));
  status.dataset.loadMs = (performance.now() - began).toFixed(0);
  status.dataset.state = "ready";
  status.textContent = "ready";
  go.disabled = false;
  go.addEventListener("click", generate);
  halt.addEventListener("click", () => { stopping = true; });
  text.addEventListener("input", () => {
    clearTimeout(nextTimer);
    nextTimer = setTimeout(refreshNext, 150);
  });
  refreshNext();
}

try {
  load();
} catch (e) {
  status.dataset.state = "error";
  status.textContent = "cannot load the model: " + e.message;
}
