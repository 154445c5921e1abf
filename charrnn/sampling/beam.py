"""Beam search over characters: the most likely continuation, not a random one.

``K`` hypotheses are kept; each step extends every one by every character and keeps
the ``K`` with the highest total log-probability. A hypothesis that reaches the stop
(an item's end, a ``--stop`` string) is finished; the search ends when no unfinished
one can beat the best finished one any more (adding characters only lowers a
score), or at ``max_chars``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from charrnn.model.network import CharRNN
from charrnn.sampling.endings import Ending
from charrnn.sampling.sampler import primed

MAX_BEAM = 1000


@dataclass(frozen=True)
class Hypothesis:
    ids: tuple[int, ...]  # drawn after the priming text, the stop left out
    log_prob: float  # natural log, the stop included
    ended: bool


def beam_search(
    model: CharRNN,
    prime_ids: np.ndarray,
    width: int,
    ending: Ending,
    *,
    precision: str = "fp32",
    want: int = 1,
) -> list[Hypothesis]:
    """The best hypotheses, most likely first: finished ones, else the unfinished.

    The search goes on until ``want`` hypotheses have ended and the ``want``-th best
    of them is at least as likely as the best one still growing (scores only fall,
    so no later ending can outrank it): ``-n 5`` gets five items, not one."""
    device = model.head.weight.device
    stop, k = ending.stop, len(ending.stop)
    model.eval()
    with torch.inference_mode():
        logits, stepper = primed(model, np.asarray(prime_ids, dtype=np.int64), width, precision)
        scores = torch.full((width,), -math.inf)
        scores[0] = 0.0  # the rows start identical: one live hypothesis
        seqs: list[tuple[int, ...]] = [()] * width
        finished: list[Hypothesis] = []
        for t in range(ending.max_chars + k):
            log_probs = logits.log_softmax(dim=-1).cpu()
            if stop and t < ending.min_chars + k - 1:  # no end before --min-chars
                for row, seq in enumerate(seqs):
                    if k == 1 or seq[-(k - 1) :] == stop[:-1]:
                        log_probs[row, stop[-1]] = -math.inf
            total = (scores[:, None] + log_probs).flatten()
            best = torch.topk(total, min(2 * width, total.numel()))
            rows: list[int] = []
            chars: list[int] = []
            alive_scores: list[float] = []
            for score, flat in zip(best.values.tolist(), best.indices.tolist(), strict=True):
                if score == -math.inf:
                    break
                row, char = divmod(flat, log_probs.shape[1])
                seq = (*seqs[row], char)
                if stop and seq[-k:] == stop:
                    finished.append(Hypothesis(seq[:-k], score, True))
                elif len(rows) < width:
                    rows.append(row)
                    chars.append(char)
                    alive_scores.append(score)
            if not rows:
                break
            ranked = sorted((h.log_prob for h in finished), reverse=True)
            settled = ranked[want - 1] if len(ranked) >= want else -math.inf
            if settled >= alive_scores[0] or t + 1 >= ending.max_chars + k:
                if not finished or t + 1 >= ending.max_chars + k:
                    finished += [
                        Hypothesis((*seqs[r], c)[: ending.max_chars], s, False)
                        for r, c, s in zip(rows, chars, alive_scores, strict=True)
                    ]
                break
            seqs = [(*seqs[r], c) for r, c in zip(rows, chars, strict=True)]
            pad = width - len(rows)
            index = torch.tensor(rows + [rows[0]] * pad)
            scores = torch.tensor(alive_scores + [-math.inf] * pad)
            seqs += [seqs[0]] * pad
            stepper.keep(index)
            logits = stepper(torch.tensor(chars + [chars[0]] * pad, device=device)).float()
    return sorted(finished, key=lambda h: (not h.ended, -h.log_prob))
