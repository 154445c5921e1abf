"""What happens inside a trained model while it reads a text — the numbers behind
``charrnn inspect`` (after Karpathy, Johnson & Fei-Fei 2015, "Visualizing and
Understanding Recurrent Networks").

* :func:`trace` runs the written-out cells (:mod:`charrnn.model.cells`) over a text and
  keeps, for every character, the surprisal, the top predictions for the next one,
  and every layer's hidden state, cell state (LSTM) and gates.
* :func:`feature_table` and :func:`correlations`: which units follow simple features
  of the text (inside quotes, position in the line, indentation ...).
* :func:`saturation`: how often each gate is almost shut (< 0.1) or wide open (> 0.9).
* :func:`gradient_flow`: how much the loss at step t depends on the input k steps
  earlier, ‖∂L_t/∂x_{t−k}‖ averaged over positions — the vanishing gradient, measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from charrnn.data.vocab import Vocab
from charrnn.model.cells import GATES, cell_step
from charrnn.model.network import CharRNN

LEFT, RIGHT = 0.1, 0.9  # a gate below LEFT is "left-saturated", above RIGHT "right-"
TOP = 5


@dataclass(frozen=True)
class Trace:
    """A model reading ``text``; arrays are indexed by character position t.

    ``surprisal[t]`` is −ln p(text[t]) given what came before (the first character is
    predicted after a newline, as sampling starts); ``top_ids/top_probs[t]`` are the
    predictions made *after* reading text[t]; ``hidden[l][t]`` (and ``cell``, and each
    gate) is layer l's value after reading text[t].
    """

    text: str
    ids: np.ndarray  # (T,)
    surprisal: np.ndarray  # (T,) nats
    top_ids: np.ndarray  # (T, TOP)
    top_probs: np.ndarray  # (T, TOP)
    hidden: list[np.ndarray]  # per layer (T, H)
    cell: list[np.ndarray]  # per layer (T, H); empty unless LSTM
    gates: list[dict[str, np.ndarray]]  # per layer: gate name -> (T, H)


@torch.no_grad()
def trace(model: CharRNN, vocab: Vocab, text: str) -> Trace:
    """Run ``model`` over ``text`` one character at a time, keeping everything."""
    model.eval()
    config = model.config
    ids = vocab.encode(text, what="text").astype(np.int64)
    inputs = torch.from_numpy(np.concatenate([[vocab.start_id], ids]))
    device = model.head.weight.device
    rnn = model.rnn
    x = model._inputs(inputs.to(device)[None])[0].float()  # (T+1, E)
    hidden: list[np.ndarray] = []
    cells: list[np.ndarray] = []
    gates: list[dict[str, np.ndarray]] = []
    for k in range(config.num_layers):
        w_ih, b_ih = getattr(rnn, f"weight_ih_l{k}").float(), getattr(rnn, f"bias_ih_l{k}").float()
        w_hh, b_hh = getattr(rnn, f"weight_hh_l{k}").float(), getattr(rnn, f"bias_hh_l{k}").float()
        gi_all = F.linear(x, w_ih, b_ih)  # every step's input product at once
        h = torch.zeros(config.hidden_size, device=device)
        c = torch.zeros_like(h) if config.cell == "lstm" else None
        hs, cs, gs = [], [], []
        for t in range(len(gi_all)):
            step = cell_step(config.cell, gi_all[t], F.linear(h, w_hh, b_hh), h, c)
            h, c = step.h, step.c
            hs.append(h)
            if c is not None:
                cs.append(c)
            gs.append(torch.stack(step.gates) if step.gates else h[:0])
        x = torch.stack(hs)  # (T+1, H): the next layer's input
        hidden.append(x[1:].cpu().numpy())
        if cs:
            cells.append(torch.stack(cs)[1:].cpu().numpy())
        stacked = torch.stack(gs)[1:].cpu().numpy()  # (T, G, H)
        gates.append({name: stacked[:, g] for g, name in enumerate(GATES[config.cell])})
    log_probs = model.head(x).float().log_softmax(dim=-1).cpu()  # (T+1, V)
    target = torch.from_numpy(ids)
    surprisal = -log_probs[:-1].gather(1, target[:, None])[:, 0].numpy()
    top = log_probs[1:].exp().topk(min(TOP, len(vocab)), dim=-1)
    return Trace(
        text=vocab.decode(ids),
        ids=ids,
        surprisal=surprisal.astype(np.float64),
        top_ids=top.indices.numpy(),
        top_probs=top.values.numpy(),
        hidden=hidden,
        cell=cells,
        gates=gates,
    )


# -- units and features -------------------------------------------------------------------

FEATURES = {
    "inside quotes": "between a pair of \" or ' on a line",
    "inside brackets": "inside ( ), [ ] or { }, nested (reset at a blank line)",
    "position in line": "characters since the last newline",
    "indentation": "leading spaces of the current line",
    "after a newline": "the first character of a line",
    "vowel": "a, e, i, o, u",
    "space": "a space or tab",
}


def feature_table(text: str) -> dict[str, np.ndarray]:
    """Each of :data:`FEATURES` as a number per character of ``text``."""
    n = len(text)
    values = {name: np.zeros(n) for name in FEATURES}
    quote: str | None = None
    depth = column = indent = 0
    counting_indent = True
    for t, ch in enumerate(text):
        values["after a newline"][t] = column == 0
        if ch == "\n":
            if column == 0:  # a blank line: an unmatched bracket in prose ends here
                depth = 0
            quote, column, indent, counting_indent = None, 0, 0, True
        else:
            if counting_indent and ch == " ":
                indent += 1
            else:
                counting_indent = False
            column += 1
        if ch in "\"'":
            quote = None if quote == ch else (ch if quote is None else quote)
        values["inside quotes"][t] = quote is not None
        depth = max(0, depth + (ch in "([{") - (ch in ")]}"))
        values["inside brackets"][t] = depth > 0
        values["position in line"][t] = column
        values["indentation"][t] = indent
        values["vowel"][t] = ch.lower() in "aeiou"
        values["space"][t] = ch in " \t"
    return values


@dataclass(frozen=True)
class UnitMatch:
    feature: str
    layer: int
    state: str  # "hidden" or "cell"
    unit: int
    r: float  # Pearson correlation over the text


# Below this many characters a correlation is no finding: with hundreds of units to
# choose from, some unit follows a feature of a 30-character text with |r| near 0.9
# by chance alone (an untrained 1x512 LSTM: |r| = 0.88 for "space").
MIN_CORRELATION_CHARS = 200


def too_short_to_correlate(length: int) -> str | None:
    """Why a text of ``length`` characters gets no feature correlations (None: it does)."""
    if length >= MIN_CORRELATION_CHARS:
        return None
    return (
        f"The text is too short to correlate ({length:,} characters; at least "
        f"{MIN_CORRELATION_CHARS} are needed): among hundreds of units some follow any "
        "feature of a short text by chance."
    )


def correlations(trace: Trace, per_feature: int = 5) -> list[UnitMatch]:
    """For each feature, the units (hidden and cell state, every layer) whose value
    over the text correlates with it most strongly (by |r|); none for a text shorter
    than :data:`MIN_CORRELATION_CHARS`."""
    if too_short_to_correlate(len(trace.text)):
        return []
    features = feature_table(trace.text)
    blocks = [("hidden", k, a) for k, a in enumerate(trace.hidden)]
    blocks += [("cell", k, a) for k, a in enumerate(trace.cell)]
    found: list[UnitMatch] = []
    for name, values in features.items():
        f = values - values.mean()
        if not f.any():
            continue  # constant over this text: nothing to correlate with
        f /= np.linalg.norm(f)
        candidates: list[UnitMatch] = []
        for state, layer, acts in blocks:
            a = acts - acts.mean(axis=0)
            norms = np.linalg.norm(a, axis=0)
            r = np.divide(a.T @ f, norms, out=np.zeros(a.shape[1]), where=norms > 1e-9)
            for unit in np.argsort(-np.abs(r))[:per_feature]:
                candidates.append(UnitMatch(name, layer, state, int(unit), float(r[unit])))
        found += sorted(candidates, key=lambda m: -abs(m.r))[:per_feature]
    return found


def saturation(trace: Trace) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per layer, per gate: the fraction of characters each unit's gate spends below
    :data:`LEFT` and above :data:`RIGHT` — the 2015 paper's saturation plot."""
    return [
        {name: ((g < LEFT).mean(axis=0), (g > RIGHT).mean(axis=0)) for name, g in layer.items()}
        for layer in trace.gates
    ]


# -- gradients through time ---------------------------------------------------------------


def gradient_flow(
    model: CharRNN, ids: np.ndarray, max_lag: int = 200, positions: int = 32, seed: int = 0
) -> np.ndarray:
    """``flow[k]`` = mean over ``positions`` windows of ‖∂L_t/∂x_{t−k}‖, k = 0..max_lag,
    where L_t is the loss at a window's last step and x the input vectors.

    Each window of ``max_lag + 1`` characters starts from a zero state; the gradient
    of its last loss alone is taken with respect to every earlier input.
    """
    ids = np.asarray(ids, dtype=np.int64)
    max_lag = min(max_lag, len(ids) - 2)
    if max_lag < 1:
        raise ValueError("gradient flow needs a text of at least 3 characters")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, len(ids) - max_lag - 1, size=positions)
    window = torch.from_numpy(np.stack([ids[s : s + max_lag + 2] for s in starts]))
    device = model.head.weight.device
    x, y = window[:, :-1].to(device), window[:, -1].to(device)
    was_training = model.training
    model.eval()
    model.rnn.train()  # cuDNN runs backward only in training mode; no dropout here
    try:
        with torch.enable_grad():
            inputs = model._inputs(x).detach().float().requires_grad_(True)
            zero = model.initial_state(len(x), device)
            out, _ = model.rnn(inputs, zero if model.config.cell == "lstm" else zero[0])
            loss = F.cross_entropy(model.head(out[:, -1]).float(), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, inputs)
    finally:
        model.train(was_training)
    norms = grad.norm(dim=-1).mean(dim=0).flip(0)  # lag 0 first
    return norms.detach().cpu().double().numpy()


def flow_summary(flow: np.ndarray) -> str:
    """One line: how far back the gradient reaches before falling 1000-fold."""
    reach = np.flatnonzero(flow < flow[0] * 1e-3)
    where = (
        f"falls 1000-fold by {int(reach[0])} steps back"
        if len(reach)
        else (f"is still above 1/1000 of its size {len(flow) - 1} steps back")
    )
    decades = math.log10(max(flow[0], 1e-30) / max(flow[-1], 1e-30))
    return f"The gradient {where} ({decades:.1f} decades over {len(flow) - 1} steps)"
