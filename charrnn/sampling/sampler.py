"""Generate text one character at a time, each drawn character fed back as input.

The priming text runs through the model once (one call over the whole prefix);
after that the recurrent state is carried one step at a time, so the prefix is
never re-run. Several samples are one batch. Drawing uses a seeded
``torch.Generator``, so a seed makes samples reproducible.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from charrnn.data.vocab import Vocab
from charrnn.errors import ConfigError, VocabError
from charrnn.events import SILENT, Reporter
from charrnn.hardware import sampling_dtype
from charrnn.model.network import CharRNN
from charrnn.model.stepper import Stepper

MAX_SAMPLES = 100_000  # drawn as one batch: more would only exhaust memory
PRIME_CHUNK = 4096  # priming text runs through the model this many characters at a time


@dataclass(frozen=True)
class SampleSettings:
    """How to draw each character.

    Attributes:
        temperature: divides the logits; 0 takes the most likely character (greedy).
        top_k: keep only the k most likely characters (None or 0: all).
        top_p: keep the smallest set whose probability reaches p (nucleus), in (0, 1].
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None

    def __post_init__(self) -> None:
        t = self.temperature
        if not (isinstance(t, int | float) and math.isfinite(t) and t >= 0):
            raise ConfigError(f"temperature must be a number >= 0, got {t!r}")
        if self.top_k is not None and self.top_k < 0:
            raise ConfigError(f"top-k must be >= 0 (0 = off), got {self.top_k}")
        p = self.top_p
        if p is not None and not (math.isfinite(p) and 0.0 < p <= 1.0):
            raise ConfigError(f"top-p must be in (0, 1], got {p!r}")


@dataclass(frozen=True)
class Request:
    """What to draw: the one input of every way of drawing (a plain stream, items,
    stop strings, beam search, novelty; :func:`stream` and
    :func:`charrnn.sampling.shaping.shaped_samples`), checked once when it is made.

    ``count`` is items for a ``--docs`` run, else samples of up to ``length``
    characters drawn together as one batch; ``novel`` is on/off for items, a span
    length for streams.
    """

    count: int = 1
    length: int = 500
    prime: str = ""
    settings: SampleSettings = field(default_factory=SampleSettings)
    seed: int = 0
    stop: str | None = None
    min_chars: int = 0
    novel: int | None = None
    beam: int | None = None
    skip_unknown: bool = False
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if not (isinstance(self.length, int) and self.length >= 0):
            raise ConfigError(f"length must be >= 0, got {self.length!r}")
        if not (isinstance(self.count, int) and 1 <= self.count <= MAX_SAMPLES):
            raise ConfigError(f"num-samples must be 1 to {MAX_SAMPLES:,}, got {self.count!r}")

    def prime_ids(self, vocab: Vocab, reporter: Reporter = SILENT) -> np.ndarray:
        """The priming text as ids (int64; empty for no priming text): characters
        outside ``vocab`` are dropped with a warning under ``skip_unknown``, else a
        :class:`VocabError`."""
        ids = vocab.encode(
            self.prime,
            what="priming text",
            on_unknown="drop" if self.skip_unknown else "error",
            reporter=reporter,
        ).astype(np.int64)
        if len(ids) == 0 and self.prime and not self.skip_unknown:
            raise VocabError("priming text has no characters of the vocabulary")
        return ids


def choose(
    logits: torch.Tensor, settings: SampleSettings, generator: torch.Generator
) -> torch.Tensor:
    """Draw one id per row of ``logits`` (B, V); returns (B,) int64."""
    if settings.temperature == 0:
        return logits.argmax(dim=-1)
    # Subtract the maximum first: with a tiny temperature (1e-39) the scaled logits
    # would overflow to inf and the softmax to NaN; this way they go to -inf and 0.
    logits = logits.float()
    logits = (logits - logits.max(dim=-1, keepdim=True).values) / settings.temperature
    if settings.top_k:
        k = min(settings.top_k, logits.shape[-1])
        kth = torch.topk(logits, k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    if settings.top_p is not None and settings.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a character when the ones ranked above it already reach top_p; the
        # most likely one always stays.
        drop_sorted = probs.cumsum(dim=-1) - probs >= settings.top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, -math.inf)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def fresh_seed() -> int:
    """A random seed in [0, 2^63), drawn here so that it can be recorded."""
    return int.from_bytes(os.urandom(8), "little") >> 1


def stream(
    model: CharRNN, vocab: Vocab, request: Request, *, reporter: Reporter = SILENT
) -> Iterator[torch.Tensor]:
    """Yield ``request.length`` steps of ``request.count`` drawn ids, each (count,) on
    CPU: the samples of a plain request, drawn together as one batch after the
    priming text (not yielded; none starts from a newline). ``request.precision``
    ``bf16`` steps with bfloat16 weights: faster where the CPU has bf16 instructions,
    but the draws differ from fp32's for the same seed. The model is put in eval mode.
    """
    sampling_dtype(request.precision, model.head.weight.device)  # a bad precision fails here
    prime_ids = request.prime_ids(vocab, reporter)
    if len(prime_ids) == 0:
        prime_ids = np.array([vocab.start_id], dtype=np.int64)
    device = model.head.weight.device
    generator = torch.Generator(device=device)
    generator.manual_seed(request.seed)
    model.eval()
    # Checks above run now; drawing below runs lazily, as the caller consumes it.
    return _draw(
        model, prime_ids, request.length, request.settings, request.count, generator,
        request.precision,
    )  # fmt: skip


def _draw(
    model: CharRNN,
    prime_ids: np.ndarray,
    length: int,
    settings: SampleSettings,
    num_samples: int,
    generator: torch.Generator,
    precision: str,
) -> Iterator[torch.Tensor]:
    with torch.inference_mode():
        logits, stepper = primed(model, prime_ids, num_samples, precision)
        for _ in range(length):
            ids = choose(logits, settings, generator)  # (M,)
            yield ids.cpu()
            logits = stepper(ids)


def primed(
    model: CharRNN, prime_ids: np.ndarray, rows: int, precision: str = "fp32"
) -> tuple[torch.Tensor, Stepper]:
    """Run ``prime_ids`` through the model for ``rows`` identical rows: the logits for
    the next character (rows, V) and a :class:`Stepper` holding the state after it.

    The prefix goes in chunks, state carried: constant memory for any priming text (in
    one call, a 4 MB prime took 2.9 GB of activations and logits). Call it under
    ``torch.inference_mode()``.
    """
    device = model.head.weight.device
    state = None
    for start in range(0, len(prime_ids), PRIME_CHUNK):
        chunk = torch.as_tensor(np.asarray(prime_ids[start : start + PRIME_CHUNK]), device=device)
        x = chunk.long().unsqueeze(0).expand(rows, -1)  # (rows, <=PRIME_CHUNK)
        logits, state = model(x, state)
    assert state is not None, "a priming text has at least one character"
    return logits[:, -1].float(), Stepper(model, state, precision)  # weights prepared once


def generate(
    model: CharRNN,
    vocab: Vocab,
    *,
    length: int,
    prime: str = "",
    settings: SampleSettings | None = None,
    num_samples: int = 1,
    seed: int | None = None,
    skip_unknown: bool = False,
    reporter: Reporter = SILENT,
    precision: str = "fp32",
) -> list[str]:
    """The ``num_samples`` finished samples of a plain :class:`Request` as text (the
    library's short way: ``seed`` None draws a fresh one)."""
    request = Request(
        count=num_samples,
        length=length,
        prime=prime,
        settings=settings or SampleSettings(),
        seed=seed if seed is not None else fresh_seed(),
        skip_unknown=skip_unknown,
        precision=precision,
    )
    steps = list(stream(model, vocab, request, reporter=reporter))
    if not steps:
        return [""] * num_samples
    drawn = torch.stack(steps, dim=1)  # (M, length)
    return [vocab.decode(row.numpy()) for row in drawn]


def encoded_samples(
    steps: Iterator[torch.Tensor], vocab: Vocab, num_samples: int
) -> Iterator[tuple[int, bytes]]:
    """The UTF-8 bytes of drawn samples, as ``(sample number, chunk)`` pairs.

    One sample streams: a chunk per character as it is drawn. Several samples are
    drawn together, so each is yielded whole, in order, once all are drawn (decoded
    a sample at a time, not a character at a time).
    """
    if num_samples == 1:
        for ids in steps:
            yield 1, vocab.decode_bytes(ids.numpy())
        return
    drawn = list(steps)
    rows = torch.stack(drawn, dim=1) if drawn else torch.zeros(num_samples, 0, dtype=torch.long)
    for number, row in enumerate(rows, 1):
        yield number, vocab.decode_bytes(row.numpy())
