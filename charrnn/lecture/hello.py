"""The lecture's example: a vanilla RNN with 3 hidden units learns "hello".

Vocabulary {h, e, l, o}, one-hot inputs, hidden size 3 — the figure in Karpathy's
"The Unreasonable Effectiveness of Recurrent Neural Networks" and CS231n's RNN
lecture. The inputs "hell" must predict "ello"; the two 'l's need different
answers (l -> l, then l -> o), which only the hidden state can tell apart.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from charrnn.config import ModelConfig
from charrnn.data.vocab import Vocab
from charrnn.model.network import CharRNN
from charrnn.sampling.sampler import SampleSettings, generate

WORD = "hello"


@dataclass(frozen=True)
class StepScores:
    """The output layer at one time step: input, target, scores and prediction."""

    input_char: str
    target_char: str
    scores: tuple[float, ...]  # one per vocabulary symbol, in vocabulary order
    predicted: str
    hidden: tuple[float, ...] = ()  # the hidden state after reading input_char


@dataclass(frozen=True)
class HelloResult:
    """What the demo shows: scores before and after training, the losses, the sample."""

    vocab: Vocab
    before: list[StepScores]
    after: list[StepScores]
    first_loss: float
    final_loss: float
    steps: int
    sample: str


def _scores(model: CharRNN, vocab: Vocab, x: torch.Tensor, word: str) -> list[StepScores]:
    model.eval()
    with torch.no_grad():
        logits, _ = model(x)  # (1, T, V)
        hidden, _ = model.rnn(model._inputs(x), model.initial_state(1)[0])  # (1, T, H)
    model.train()
    chars = [chr(s) for s in vocab.symbols]
    return [
        StepScores(
            input_char=word[t],
            target_char=word[t + 1],
            scores=tuple(round(float(v), 2) for v in logits[0, t]),
            predicted=chars[int(logits[0, t].argmax())],
            hidden=tuple(round(float(v), 2) for v in hidden[0, t]),
        )
        for t in range(len(word) - 1)
    ]


class Adam:
    """Adam's update written out (Kingma & Ba, 2015), as ``torch.optim.Adam`` does it.

    ``torch.optim`` loads the whole compiler stack (``torch._dynamo``) when the first
    optimizer is built: 1.4 s of a 2-second lesson on a fast CPU, several seconds on a
    busy one. Five lines of arithmetic cost nothing.
    """

    def __init__(
        self, params: list[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999)
    ) -> None:
        self.params, self.lr, self.betas, self.eps, self.t = params, lr, betas, 1e-8, 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        for p, m, v in zip(self.params, self.m, self.v, strict=True):
            if p.grad is None:
                continue
            m.lerp_(p.grad, 1 - b1)  # m = b1 m + (1 - b1) g
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            denom = (v.sqrt() / math.sqrt(1 - b2**self.t)).add_(self.eps)
            p.addcdiv_(m, denom, value=-self.lr / (1 - b1**self.t))


def run_hello(word: str = WORD, steps: int = 300, seed: int = 0, lr: float = 0.05) -> HelloResult:
    """Train the 3-unit RNN on ``word`` and sample it back from its first letter.

    Args:
        word: the training text (the lecture uses "hello").
        steps: full-batch Adam steps (each one pass over the word).
        seed: initial weights.
        lr: Adam's learning rate.
    """
    vocab = Vocab.from_text(word)
    torch.manual_seed(seed)
    model = CharRNN(len(vocab), ModelConfig(cell="rnn", num_layers=1, hidden_size=3, embed_size=0))
    ids = torch.as_tensor(vocab.encode(word)).unsqueeze(0)  # (1, T+1)
    x, y = ids[:, :-1], ids[:, 1:]
    before = _scores(model, vocab, x, word)
    update = Adam(list(model.parameters()), lr=lr)
    losses = []
    for _ in range(steps):
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, len(vocab)), y.reshape(-1))
        model.zero_grad()
        loss.backward()
        update.step()
        losses.append(float(loss.detach()))
    after = _scores(model, vocab, x, word)
    drawn = generate(
        model, vocab, length=len(word) - 1, prime=word[0], settings=SampleSettings(temperature=0)
    )[0]
    return HelloResult(
        vocab=vocab,
        before=before,
        after=after,
        first_loss=losses[0],
        final_loss=losses[-1],
        steps=steps,
        sample=word[0] + drawn,
    )


_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:1000px;margin:24px auto;padding:0 16px;
color:#222}
.net{display:grid;grid-template-columns:110px repeat(4,1fr);gap:6px 14px;align-items:center;
margin:12px 0 28px}
.label{color:#666;font-size:13px;text-align:right}
.col{display:flex;flex-direction:column;align-items:center}
.box{border:2px solid #999;border-radius:6px;padding:4px 8px;font:13px ui-monospace,monospace;
text-align:center;min-width:64px}
.in{border-color:#d62728}.hid{border-color:#2ca02c}.out{border-color:#1f77b4}
.cell{display:block;padding:1px 4px;border-radius:3px}
.target{font-weight:700;outline:2px solid #2ca02c}.wrong{color:#d62728}
.arrow{color:#aaa;font-size:18px;text-align:center}
"""


def _colour(value: float, low: float, high: float) -> str:
    """Red for high scores/values, blue for low, white in between."""
    if high <= low:
        return "#fff"
    t = (value - low) / (high - low) * 2 - 1  # -1..1
    alpha = abs(t) * 0.55
    rgb = "214,39,40" if t > 0 else "31,119,180"
    return f"rgba({rgb},{alpha:.2f})"


def _network(steps: list[StepScores], symbols: list[str]) -> str:
    """Rows: output scores, hidden state, one-hot input; one column per time step."""
    scores = [v for s in steps for v in s.scores]
    cells: list[str] = ['<div class="label">output layer<br>(scores)</div>']
    for s in steps:
        rows = []
        for char, v in zip(symbols, s.scores, strict=True):
            classes = "cell target" if char == s.target_char else "cell"
            style = f"background:{_colour(v, min(scores), max(scores))}"
            rows.append(
                f'<span class="{classes}" style="{style}">{html.escape(char)}: {v:+.2f}</span>'
            )
        ok = "" if s.predicted == s.target_char else " wrong"
        cells.append(
            f'<div class="col"><div class="box out">{"".join(rows)}</div>'
            f'<div class="{ok.strip()}">predicts "{html.escape(s.predicted)}", wants '
            f'"{html.escape(s.target_char)}"</div></div>'
        )
    cells.append('<div class="label">hidden layer<br>(3 units)</div>')
    for s in steps:
        column = "".join(
            f'<span class="cell" style="background:{_colour(v, -1, 1)}">{v:+.2f}</span>'
            for v in s.hidden
        )
        cells.append(f'<div class="col"><div class="box hid">{column}</div></div>')
    cells.append('<div class="label">input layer<br>(one-hot)</div>')
    for s in steps:
        column = "".join(
            f'<span class="cell">{html.escape(c)}: {int(c == s.input_char)}</span>' for c in symbols
        )
        cells.append(f'<div class="col"><div class="box in">{column}</div>'
                     f'<div>reads "{html.escape(s.input_char)}"</div></div>')  # fmt: skip
    return f'<div class="net">{"".join(cells)}</div>'


def hello_page(result: HelloResult) -> str:
    """The whole page."""
    symbols = [chr(s) for s in result.vocab.symbols]
    hidden = [v for s in result.before + result.after for v in s.hidden]
    if not hidden:
        raise ValueError("the result has no hidden states to show")
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>hello: the lecture's RNN</title><style>{_STYLE}</style></head><body>
<h1>"hello", one character at a time</h1>
<p>A vanilla RNN with 3 hidden units and the vocabulary {html.escape(str(symbols))} reads
"hell" and must predict "ello". The two l's need different answers (l → l, then
l → o): only the hidden state, which carries what came before, can tell them apart.
Each column is a time step; scores are red when high, blue when low; the target is
outlined.</p>
<h2>Before training (random weights): loss {result.first_loss:.3f} nats</h2>
{_network(result.before, symbols)}
<h2>After {result.steps} steps of Adam: loss {result.final_loss:.4f} nats</h2>
{_network(result.after, symbols)}
<p>Sampled from "h", always taking the most likely next character:
<b>{html.escape(result.sample)}</b>. Notice the hidden state at the two l's: the same
input, different states, different predictions.</p>
</body></html>
"""
