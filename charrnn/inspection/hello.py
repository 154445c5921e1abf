"""The lecture's example: a vanilla RNN with 3 hidden units learns "hello".

Vocabulary {h, e, l, o}, one-hot inputs, hidden size 3 — the figure in Karpathy's
"The Unreasonable Effectiveness of Recurrent Neural Networks" and CS231n's RNN
lecture. The inputs "hell" must predict "ello"; the two 'l's need different
answers (l -> l, then l -> o), which only the hidden state can tell apart.
"""

from __future__ import annotations

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
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, len(vocab)), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
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
