"""One worker that steps every active generation of one model together, as one batch.

Each completion request becomes a :class:`Job` of ``n`` rows. The worker thread
admits waiting jobs (running each prompt through the model once), then loops: one
recurrent step for all rows of all jobs, one draw per row, each job's new characters
handed back to its request, finished jobs out of the batch. A row joins at the next
step after its prompt ran and leaves as soon as it ends, so 32 clients cost about one
batch-32 step per character rather than 32 batch-1 steps.

What a request gets does not depend on who else is being served: each job draws from
its own ``torch.Generator`` seeded by the request. The draw is ``torch.multinomial``'s
own fast path written out (argmax of p / q with q ~ Exp(1), which is how it draws one
sample), so a job's noise comes from its generator in the same order as
``charrnn sample --seed`` uses it, and the same seed gives the same text.

The HTTP layer never waits on the worker; the worker never waits on a client: events
are handed over with ``call_soon_threadsafe``, and a job whose client went away is
dropped at the next step.
"""

from __future__ import annotations

import codecs
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from charrnn.data.vocab import Vocab
from charrnn.model.network import CharRNN, State
from charrnn.sampling.sampler import PRIME_CHUNK, SampleSettings, fresh_seed, primed

NOISE_BLOCK = 32  # steps of noise drawn from a job's generator at once (same sequence)
TOP_LOGPROBS = 5  # the API's cap on alternatives per position


@dataclass
class Delta:
    """What one row of a job produced since the last event."""

    index: int  # the choice (row) within the job
    text: str
    finish_reason: str | None = None  # "stop" or "length" once the row has ended
    # Per character drawn: (char, its log-probability, top alternatives) when asked.
    logprobs: list[tuple[str, float, dict[str, float]]] = field(default_factory=list)


@dataclass
class Job:
    """One completion request: ``n`` rows primed with ``prompt_ids``.

    ``emit`` receives a list of :class:`Delta` after every step that produced text
    (from the worker thread: it must only hand them over); ``None`` when the job is
    over (finished, cancelled or the server stopping).
    """

    prompt_ids: np.ndarray
    n: int
    max_tokens: int
    settings: SampleSettings
    emit: Callable[[list[Delta] | None], None]
    seed: int | None = None
    stops: tuple[str, ...] = ()
    logprobs: int | None = None
    cancelled: bool = False  # set by the request when its client went away

    def cancel(self) -> None:
        self.cancelled = True


class _Row:
    """One row's text so far and what it may still emit (a possible stop held back)."""

    def __init__(self, vocab: Vocab) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.sent = 0  # characters of text already emitted
        self.drawn = 0  # model steps drawn (the API's completion tokens)
        self.finish: str | None = None
        self.logprobs: list[tuple[str, float, dict[str, float]]] = []


class _Active:
    """A job in the batch: its rows, its generator and its noise."""

    def __init__(self, job: Job, vocab: Vocab, device: torch.device) -> None:
        self.job = job
        self.rows = [_Row(vocab) for _ in range(job.n)]
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(job.seed if job.seed is not None else fresh_seed())
        self.noise: torch.Tensor | None = None
        self.noise_at = 0
        self.hold = max((len(s) for s in job.stops), default=1) - 1

    def next_noise(self, vocab_size: int, device: torch.device) -> torch.Tensor:
        """(n, V) exponential noise for this step, in the generator's own order.

        Drawn ``NOISE_BLOCK`` steps at a time: one (K, n, V) draw is the same sequence
        as K draws of (n, V) (tested), at a fraction of the calls.
        """
        if self.noise is None or self.noise_at == len(self.noise):
            shape = (NOISE_BLOCK, self.job.n, vocab_size)
            self.noise = torch.empty(shape, device=device).exponential_(generator=self.generator)
            self.noise_at = 0
        noise = self.noise[self.noise_at]
        self.noise_at += 1
        return noise

    @property
    def finished(self) -> bool:
        return all(row.finish is not None for row in self.rows)


def choose_rows(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """One id per row of ``logits`` (B, V), each row with its own settings.

    ``temperature`` (B,) (0: the most likely), ``top_k`` (B,) (0: all), ``top_p`` (B,)
    (1: all), ``noise`` (B, V) Exp(1). Row by row the same arithmetic as
    :func:`charrnn.sampling.sampler.choose`, so a row draws what it would alone.
    """
    logits = logits.float()
    greedy = logits.argmax(dim=-1)
    warm = temperature > 0
    scale = torch.where(warm, temperature, torch.ones_like(temperature))[:, None]
    z = (logits - logits.max(dim=-1, keepdim=True).values) / scale
    if bool((top_k > 0).any()):
        k = top_k.clamp(min=1, max=z.shape[-1])
        kth = torch.sort(z, dim=-1, descending=True).values.gather(1, (k - 1)[:, None])
        z = torch.where((top_k > 0)[:, None] & (z < kth), -math.inf, z)
    nucleus = top_p < 1.0
    if bool(nucleus.any()):
        sorted_z, order = torch.sort(z, dim=-1, descending=True)
        probs = sorted_z.softmax(dim=-1)
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p[:, None]
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        z = torch.where(nucleus[:, None] & drop, -math.inf, z)
    drawn = (z.softmax(dim=-1) / noise).argmax(dim=-1)
    return torch.where(warm, drawn, greedy)


class Engine:
    """The model, its batch and the worker thread that steps it.

    Args:
        model: in eval mode, on its device.
        vocab: the model's vocabulary.
        max_batch: rows stepped together at most; waiting jobs join as rows free up.
        max_queue: jobs waiting to join at most; :meth:`submit` refuses more.
        precision: ``fp32`` or ``bf16`` weights for the step.
    """

    def __init__(
        self,
        model: CharRNN,
        vocab: Vocab,
        *,
        max_batch: int = 64,
        max_queue: int = 256,
        precision: str = "fp32",
    ) -> None:
        self.model = model
        self.vocab = vocab
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.precision = precision
        self.device = model.head.weight.device
        self.symbols = [vocab.decode_bytes([i]) for i in range(len(vocab))]
        self._waiting: list[Job] = []
        self._active: list[_Active] = []
        self._lock = threading.Condition()
        self._running = True
        self._steps = 0
        with torch.inference_mode():
            zero = np.zeros(1, dtype=np.int64)
            _, self._stepper = primed(model, zero, 1, precision)  # weights prepared once
        self._logits = torch.zeros(0, len(vocab), device=self.device)
        # The rows' settings as tensors, rebuilt only when a job joins or leaves.
        self._row_settings: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._thread = threading.Thread(target=self._work, name="charrnn-engine", daemon=True)
        self._thread.start()

    # -- the request side ----------------------------------------------------------------

    def submit(self, job: Job) -> bool:
        """Queue ``job``; False when the queue is full (the caller answers busy)."""
        if job.n > self.max_batch:
            raise ValueError(f"n={job.n} exceeds the batch of {self.max_batch}")
        with self._lock:
            if not self._running or len(self._waiting) >= self.max_queue:
                return False
            self._waiting.append(job)
            self._lock.notify()
        return True

    @property
    def load(self) -> dict[str, int]:
        """Rows being stepped and jobs waiting, for /health."""
        with self._lock:
            rows = sum(a.job.n for a in self._active)
            return {"active_rows": rows, "waiting": len(self._waiting), "steps": self._steps}

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking jobs, end the waiting ones, let the running ones finish (up to
        ``timeout`` seconds, then end them too), and stop the worker."""
        with self._lock:
            self._running = False
            waiting, self._waiting = self._waiting, []
            self._lock.notify()
        for job in waiting:
            job.emit(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            with self._lock:
                for active in self._active:
                    active.job.cancel()
            self._thread.join(5.0)

    # -- the worker ----------------------------------------------------------------------

    def _work(self) -> None:
        with torch.inference_mode():
            while True:
                with self._lock:
                    while self._running and not self._waiting and not self._active:
                        self._lock.wait()
                    if not self._running and not self._active:
                        return
                    room = self.max_batch - sum(a.job.n for a in self._active)
                    joining = []
                    while self._waiting and self._waiting[0].n <= room:
                        job = self._waiting.pop(0)
                        room -= job.n
                        joining.append(job)
                self._admit(joining)
                self._drop_finished()
                if self._active:
                    self._step()
                    self._drop_finished()

    def _admit(self, joining: list[Job]) -> None:
        """Run the joining jobs' prompts; their rows join the batch at the next step.

        Prompts of one length run as one batch through the model: a forward pass for
        32 rows costs about what one row costs.
        """
        by_length: dict[int, list[Job]] = {}
        for job in joining:
            if job.cancelled:
                job.emit(None)
            elif job.max_tokens == 0:  # nothing to draw (scoring the prompt, say)
                job.emit([Delta(i, "", "length") for i in range(job.n)])
                job.emit(None)
            else:
                by_length.setdefault(len(job.prompt_ids), []).append(job)
        for jobs in by_length.values():
            ids = np.concatenate([np.tile(job.prompt_ids, (job.n, 1)) for job in jobs])
            logits, state = self._prime(ids)
            if not self._active:  # the batch was empty: drop its leftover rows
                self._stepper.h = [h[:0] for h in self._stepper.h]
                self._stepper.c = [c[:0] for c in self._stepper.c]
                self._logits = self._logits[:0]
            ours = self._stepper
            ours.h = [torch.cat([h, state[0][k]]) for k, h in enumerate(ours.h)]
            ours.c = [torch.cat([c, state[1][k]]) for k, c in enumerate(ours.c)]
            self._logits = torch.cat([self._logits, logits])
            self._active += [_Active(job, self.vocab, self.device) for job in jobs]
            self._row_settings = None

    def _prime(self, ids: np.ndarray) -> tuple[torch.Tensor, State]:
        """The logits after each row of ``ids`` (R, L) -> (R, V), and the state there,
        as :func:`~charrnn.sampling.sampler.primed` computes them, but without building
        a stepper (preparing its weights takes longer than a short prompt)."""
        state: State | None = None
        for start in range(0, ids.shape[1], PRIME_CHUNK):
            x = torch.as_tensor(ids[:, start : start + PRIME_CHUNK], device=self.device).long()
            logits, state = self.model(x, state)
        assert state is not None, "a job has at least one id to prime with"
        return logits[:, -1].float(), tuple(s.float() for s in state)

    def _settings(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        temps, ks, ps = [], [], []
        for active in self._active:
            s = active.job.settings
            n = active.job.n
            temps += [s.temperature] * n
            ks += [s.top_k or 0] * n
            ps += [s.top_p if s.top_p is not None else 1.0] * n
        device = self.device
        return (
            torch.tensor(temps, device=device, dtype=torch.float32),
            torch.tensor(ks, device=device, dtype=torch.long),
            torch.tensor(ps, device=device, dtype=torch.float32),
        )

    def _step(self) -> None:
        vocab_size = len(self.vocab)
        noise = torch.cat([a.next_noise(vocab_size, self.device) for a in self._active])
        if self._row_settings is None:
            self._row_settings = self._settings()
        temperature, top_k, top_p = self._row_settings
        ids = choose_rows(self._logits, temperature, top_k, top_p, noise)
        logprobs = None
        if any(a.job.logprobs is not None for a in self._active):
            logprobs = self._logits.float().log_softmax(dim=-1)
        drawn = ids.tolist()
        start = 0
        for active in self._active:
            n = active.job.n
            rows_lp = logprobs[start : start + n] if logprobs is not None else None
            self._advance(active, drawn[start : start + n], rows_lp)
            start += n
        self._logits = self._stepper(ids)
        self._steps += 1

    def _advance(self, active: _Active, ids: list[int], logprobs: torch.Tensor | None) -> None:
        """Append each row's new character, end rows at a stop or the length, emit."""
        job = active.job
        deltas = []
        for index, (row, char_id) in enumerate(zip(active.rows, ids, strict=True)):
            if row.finish is not None:
                continue  # a finished row keeps drawing noise (as sample does), unseen
            row.drawn += 1
            piece = row.decoder.decode(self.symbols[char_id])
            row.text += piece
            if job.logprobs is not None and logprobs is not None:
                row.logprobs.append(self._logprob(logprobs[index], char_id, job.logprobs))
            cut = _first_stop(row.text, job.stops, len(row.text) - len(piece))
            if cut is not None:
                row.text = row.text[:cut]
                row.finish = "stop"
            elif row.drawn >= job.max_tokens:
                row.text += row.decoder.decode(b"", final=True)
                row.finish = "length"
            ready = len(row.text) if row.finish else max(row.sent, len(row.text) - active.hold)
            if ready > row.sent or row.finish or row.logprobs:
                deltas.append(Delta(index, row.text[row.sent : ready], row.finish, row.logprobs))
                row.sent = ready
                row.logprobs = []
        if deltas:
            job.emit(deltas)
        if active.finished:
            job.emit(None)

    def _logprob(
        self, row: torch.Tensor, char_id: int, top: int
    ) -> tuple[str, float, dict[str, float]]:
        values, order = row.topk(min(top, len(self.vocab)))
        alternatives = {
            self.vocab.decode([int(i)]): float(v)
            for v, i in zip(values.tolist(), order.tolist(), strict=True)
        }
        return self.vocab.decode([char_id]), float(row[char_id]), alternatives

    def _drop_finished(self) -> None:
        """Finished and cancelled jobs leave the batch; their rows' state goes too."""
        keep: list[_Active] = []
        rows: list[int] = []
        start = 0
        for active in self._active:
            n = active.job.n
            if active.job.cancelled and not active.finished:
                active.job.emit(None)
            elif not active.finished:
                keep.append(active)
                rows.extend(range(start, start + n))
            start += n
        if len(keep) == len(self._active):
            return
        self._active = keep
        self._row_settings = None
        if not keep:
            return  # the stepper's rows are replaced when the next job joins
        index = torch.tensor(rows, device=self.device)
        self._stepper.reorder(index)
        self._logits = self._logits[index]


def _first_stop(text: str, stops: tuple[str, ...], new_from: int) -> int | None:
    """Where the first stop string in ``text`` begins, looking only at matches that
    end in the new part (from ``new_from`` on); None if there is none."""
    best = None
    for stop in stops:
        at = text.find(stop, max(0, new_from - len(stop) + 1))
        if at != -1 and (best is None or at < best):
            best = at
    return best


def wait_idle(engine: Engine, timeout: float = 10.0) -> bool:
    """True once the engine has nothing running or waiting (for tests and shutdown)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        load = engine.load
        if load["active_rows"] == 0 and load["waiting"] == 0:
            return True
        time.sleep(0.01)
    return False
