"""Generate text one character at a time, each drawn character fed back as input.

The priming text runs through the model once (one call over the whole prefix);
after that the recurrent state is carried one step at a time, so the prefix is
never re-run. Several samples are one batch. Drawing uses a seeded
``torch.Generator``, so a seed makes samples reproducible.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from charrnn.data.vocab import Vocab
from charrnn.errors import ConfigError, VocabError
from charrnn.events import SILENT, Reporter
from charrnn.hardware import sampling_dtype
from charrnn.model.network import CharRNN
from charrnn.model.prefix import prefix_state
from charrnn.model.stepper import Stepper

MAX_SAMPLES = 100_000  # drawn as one batch: more would only exhaust memory
NOISE_BLOCK = 32  # steps of noise drawn from a generator at once (the same sequence)


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


@dataclass(frozen=True)
class RowSettings:
    """Each row's :class:`SampleSettings` as (B,) tensors, built once per batch layout.

    ``temperature`` (0: the most likely), ``top_k`` (0: all), ``top_p`` (1: all);
    the flags say which steps of :func:`choose` any row needs, so that a step does not
    ask the tensors (a device sync) every time.
    """

    temperature: torch.Tensor
    top_k: torch.Tensor
    top_p: torch.Tensor
    all_greedy: bool
    any_greedy: bool
    max_k: int  # the largest top-k asked for (0: none)
    any_nucleus: bool

    @classmethod
    def of(cls, groups: Sequence[tuple[SampleSettings, int]], device: torch.device) -> RowSettings:
        """``groups``: (settings, rows) in row order."""
        temps, ks, ps = [], [], []
        for settings, rows in groups:
            temps += [float(settings.temperature)] * rows
            ks += [settings.top_k or 0] * rows
            ps += [settings.top_p if settings.top_p is not None else 1.0] * rows
        return cls(
            temperature=torch.tensor(temps, device=device, dtype=torch.float32),
            top_k=torch.tensor(ks, device=device, dtype=torch.long),
            top_p=torch.tensor(ps, device=device, dtype=torch.float32),
            all_greedy=all(t == 0 for t in temps),
            any_greedy=any(t == 0 for t in temps),
            max_k=max(ks, default=0),
            any_nucleus=any(p < 1.0 for p in ps),
        )


class NoiseStream:
    """Exp(1) noise for ``rows`` rows a step, from one seeded generator.

    ``torch.multinomial`` draws one sample as the argmax of p / q with q ~ Exp(1)
    drawn from its generator over p's shape; :func:`choose` does the same with noise
    from here, so a seed gives what ``torch.multinomial`` would have drawn (tested).
    The noise is drawn ``block`` steps at a time (:data:`NOISE_BLOCK`): one
    (K, rows, V) draw is the same sequence as K draws of (rows, V) (tested), at a
    fraction of the calls. Everything that draws from ``generator`` must take its
    noise from here; a caller that makes several streams from one generator one after
    another (items drawn batch by batch) takes ``block=1``, so that no stream leaves
    drawn noise unused and each continues where the last stopped.
    """

    def __init__(
        self, generator: torch.Generator, rows: int, vocab_size: int, block: int = NOISE_BLOCK
    ) -> None:
        self.generator = generator
        self.shape = (block, rows, vocab_size)
        self.block: torch.Tensor | None = None
        self.at = block

    def next(self) -> torch.Tensor:
        """The next step's (rows, V) noise."""
        if self.at == self.shape[0]:
            device = self.generator.device
            block = torch.empty(self.shape, device=device, dtype=torch.float32)
            self.block = block.exponential_(generator=self.generator)
            self.at = 0
        assert self.block is not None
        self.at += 1
        return self.block[self.at - 1]


def choose(
    logits: torch.Tensor,
    settings: SampleSettings | RowSettings,
    noise: torch.Generator | NoiseStream | torch.Tensor | None,
) -> torch.Tensor:
    """Draw one id per row of ``logits`` (B, V), each row with its own settings;
    returns (B,) int64. The one draw of ``sample``, its endings, and the server.

    ``settings``: one for every row, or :class:`RowSettings`. ``noise``: a generator
    (drawn from now over (B, V), as ``torch.multinomial`` draws), a
    :class:`NoiseStream`, or (B, V) Exp(1) noise already drawn (the server joins the
    noise of its jobs' streams). Greedy rows take the most likely id and ignore the
    noise; when every row is greedy, no noise is drawn (``noise`` may be None).
    """
    if isinstance(settings, SampleSettings):
        settings = RowSettings.of([(settings, logits.shape[0])], logits.device)
    greedy = logits.argmax(dim=-1)
    if settings.all_greedy:
        return greedy
    if noise is None:
        raise ValueError("choose needs noise (a generator) unless every row is greedy")
    if isinstance(noise, torch.Generator):
        shape = logits.shape
        noise = torch.empty(shape, device=logits.device).exponential_(generator=noise)
    elif isinstance(noise, NoiseStream):
        noise = noise.next()
    # Subtract the maximum first: with a tiny temperature (1e-39) the scaled logits
    # would overflow to inf and the softmax to NaN; this way they go to -inf and 0.
    temperature = settings.temperature
    if settings.any_greedy:
        temperature = torch.where(temperature > 0, temperature, 1.0)
    z = logits.float() - logits.max(dim=-1, keepdim=True).values
    z = z.div_(temperature[:, None])
    if settings.max_k:
        k = settings.top_k.clamp(1, min(settings.max_k, z.shape[-1]))
        top = torch.topk(z, min(settings.max_k, z.shape[-1]), dim=-1).values
        kth = top.gather(1, (k - 1)[:, None])  # (B, 1)
        z = z.masked_fill((settings.top_k > 0)[:, None] & (z < kth), -math.inf)
    if settings.any_nucleus:
        sorted_z, order = torch.sort(z, dim=-1, descending=True)
        probs = sorted_z.softmax(dim=-1)
        # Drop a character when the ones ranked above it already reach top_p; the
        # most likely one always stays. Rows at top_p 1 drop nothing (a cumulative
        # sum can pass 1 by rounding).
        drop_sorted = probs.cumsum(dim=-1) - probs >= settings.top_p[:, None]
        drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
        z = z.masked_fill(drop & (settings.top_p < 1.0)[:, None], -math.inf)
    drawn = (z.softmax(dim=-1) / noise).argmax(dim=-1)
    return torch.where(settings.temperature > 0, drawn, greedy) if settings.any_greedy else drawn


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
        rows = RowSettings.of([(settings, num_samples)], logits.device)
        noise = NoiseStream(generator, num_samples, logits.shape[-1])
        for _ in range(length):
            ids = choose(logits, rows, noise)  # (M,)
            yield ids.cpu()
            logits = stepper(ids)


def primed(
    model: CharRNN, prime_ids: np.ndarray, rows: int, precision: str = "fp32"
) -> tuple[torch.Tensor, Stepper]:
    """Run ``prime_ids`` through the model for ``rows`` identical rows: the logits for
    the next character (rows, V) and a :class:`Stepper` holding the state after it.

    The prefix runs once, as one row, through :func:`~charrnn.model.prefix.run_prefix`
    (in chunks: constant memory for any priming text); its state is then copied to
    every row. Call it under ``torch.inference_mode()``.
    """
    logits, state = prefix_state(model, prime_ids)
    state = tuple(s.expand(-1, rows, -1) for s in state)
    return logits.repeat(rows, 1), Stepper(model, state, precision)  # weights prepared once


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
