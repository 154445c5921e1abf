"""One worker that steps every active generation of one model together, as one batch.

Each completion request becomes a :class:`Job` of ``n`` rows. The worker thread
loops; each turn it

1. drops the jobs whose client went away (prefilling or decoding),
2. runs at most ``prefill_chunk`` positions of waiting prompts through the model
   (chunked prefill, as llama.cpp's ``n_batch`` and vLLM's chunked prefill do),
3. lets the jobs whose prompt has run join the batch (their rows' state copied in),
4. makes one recurrent step for all rows of all jobs, one draw per row, and hands
   each job its new characters; finished jobs leave the batch.

A row joins at the step after its prompt ran and leaves as soon as it ends, so 32
clients cost about one batch-32 step per character rather than 32 batch-1 steps.

**Which prompt runs first: shortest remaining first, within a per-turn budget.** The
budget counts positions run one after another, since that is what a recurrent model's
prefill costs (prompts side by side in one batched call cost about one). Each turn,
the waiting prompts that end within the budget run whole, shortest first (ties by
arrival); what is left of the budget goes to all the longer ones together, one piece
each. So a running stream never waits for more than one budget of other people's
prompts per character, and a short prompt is never queued behind a long one: a
4-character prompt that arrives while four 50,000-character prompts are running runs
at the next turn and draws its first character there. Arrival order with a budget
(the other common policy) would make it wait for every long prompt ahead of it,
hundreds of turns. The price of shortest-first is that long prompts wait while
shorter ones keep arriving; the bounded queue (``max_queue``) and the budget (short
prompts use only their length of it) limit that. A prompt runs only when its rows
will have room in the batch, so no stream is slowed for a job that could not join.

Scoring a prompt (``echo`` with ``logprobs``) is the same prefill with the logits
of every position kept: it waits in the same bounded queue and runs in the same
chunks. A job whose client went away leaves at the next turn, whether its prompt is
still running or its rows are decoding.

What a request gets does not depend on who else is being served: each job draws from
its own ``torch.Generator`` seeded by the request, through the one
:func:`~charrnn.sampling.sampler.choose` that ``charrnn sample`` uses, and its prompt
runs through the one prefix runner (:func:`~charrnn.model.prefix.run_chunk`), once,
its state then copied to the job's rows, as ``sample`` primes; so the same seed gives
the same text (tested, alone and among others).

The HTTP layer never waits on the worker; the worker never waits on a client: a
job's ``emit`` only hands events over, and a job whose client went away is dropped at
the next turn.
"""

from __future__ import annotations

import codecs
import functools
import itertools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from charrnn.data.vocab import Vocab
from charrnn.errors import CharRNNError
from charrnn.model.network import CharRNN, State
from charrnn.model.prefix import run_chunk
from charrnn.model.stepper import Stepper
from charrnn.sampling.sampler import NoiseStream, RowSettings, SampleSettings, choose, fresh_seed

TOP_LOGPROBS = 5  # the API's cap on alternatives per position
PREFILL_CHUNK = 128  # prompt positions run per worker turn, at most (prompts batched)
MAX_PROMPT_CHARS = 32_768  # the longest prompt a job may have
# A job's characters are handed over at most this often (and at once when it starts or
# a row ends): vLLM's stream interval. A character is a quarter of a token; an event
# per character per client costs the worker and the event loop more than the step.
EMIT_INTERVAL_S = 0.01

# (character, its log-probability or None for the first, top alternatives or None)
Entry = tuple[str, float | None, dict[str, float] | None]


class PromptTooLong(CharRNNError):
    """A job's prompt is over the engine's ``max_prompt_chars`` (the API's 400)."""

    def __init__(self, chars: int, limit: int) -> None:
        super().__init__(
            f"the prompt has {chars:,} characters; this server takes at most {limit:,}"
        )
        self.chars, self.limit = chars, limit


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

    ``emit`` receives a list of :class:`Delta` with what its rows produced (on the
    worker thread, or where :meth:`Engine.hand_over_with` has it run: it must only
    hand them over): at once for the first characters and a row's end, else at most
    once per the engine's ``emit_interval_s``; then ``None`` when the job is over
    (finished, cancelled or the server stopping).

    ``echo`` (0 to :data:`TOP_LOGPROBS`) asks for the prompt to be scored: each of its
    characters with its log-probability given those before it and that many
    alternatives, in :attr:`prompt_logprobs`, set before the job's first event.
    ``text_from`` counts the leading ids of ``prompt_ids`` that are not the prompt's
    text (an item's newline, the start symbol of an empty prompt): they are neither
    scored nor counted against the engine's prompt cap.
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
    echo: int | None = None
    text_from: int = 0
    prompt_logprobs: list[Entry] | None = None  # filled by the worker when echo is set

    def cancel(self) -> None:
        self.cancelled = True

    @property
    def prompt_chars(self) -> int:
        """Characters of the prompt's text (what the cap counts)."""
        return len(self.prompt_ids) - self.text_from


class _Waiting:
    """A job in the queue: how much of its prompt has run, and the state after it.

    The prompt runs as one row; its state is copied to the job's ``n`` rows when it
    joins the batch.
    """

    def __init__(self, job: Job, order: int) -> None:
        self.job = job
        self.order = order  # arrival
        self.ids = np.asarray(job.prompt_ids, dtype=np.int64)
        self.done = 0  # prompt characters run so far
        self.state: State | None = None  # (N, 1, H) after ``done`` characters
        self.logits: torch.Tensor | None = None  # (1, V) after the last of them
        self.scores: list[Entry] = []

    @property
    def left(self) -> int:
        return len(self.ids) - self.done

    @property
    def rows(self) -> int:
        """Rows it will take in the batch (a scoring-only job takes none)."""
        return self.job.n if self.job.max_tokens > 0 else 0


class _Row:
    """One row's text so far and what it may still emit (a possible stop held back)."""

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""
        self.sent = 0  # characters of text already emitted
        self.drawn = 0  # model steps drawn (the API's completion tokens)
        self.finish: str | None = None
        self.reported = False  # its end has been emitted
        self.logprobs: list[tuple[str, float, dict[str, float]]] = []


class _Active:
    """A job in the batch: its rows and the noise of its generator."""

    def __init__(self, job: Job, vocab_size: int, device: torch.device) -> None:
        self.job = job
        self.rows = [_Row() for _ in range(job.n)]
        generator = torch.Generator(device=device)
        generator.manual_seed(job.seed if job.seed is not None else fresh_seed())
        self.noise = NoiseStream(generator, job.n, vocab_size)
        self.hold = max((len(s) for s in job.stops), default=1) - 1
        self.emitted_at = -math.inf  # the first characters go at once

    @property
    def finished(self) -> bool:
        return all(row.finish is not None for row in self.rows)


class Engine:
    """The model, its batch and the worker thread that steps it.

    Args:
        model: in eval mode, on its device.
        vocab: the model's vocabulary.
        max_batch: rows stepped together at most; waiting jobs join as rows free up.
        max_queue: jobs waiting (their prompt running or not yet started) at most;
            :meth:`submit` refuses more.
        precision: ``fp32`` or ``bf16`` weights for the step.
        prefill_chunk: prompt positions run per turn at most (prompts side by side as
            a batch cost one): how long a running stream may wait for other
            people's prompts per step.
        max_prompt_chars: the longest prompt :meth:`submit` takes.
        emit_interval_s: a job's new characters are handed over at most this often
            (0: every step); its first ones and its end go at once.
    """

    def __init__(
        self,
        model: CharRNN,
        vocab: Vocab,
        *,
        max_batch: int = 64,
        max_queue: int = 256,
        precision: str = "fp32",
        prefill_chunk: int = PREFILL_CHUNK,
        max_prompt_chars: int = MAX_PROMPT_CHARS,
        emit_interval_s: float = EMIT_INTERVAL_S,
    ) -> None:
        if prefill_chunk < 1:
            raise ValueError(f"prefill_chunk must be >= 1, got {prefill_chunk}")
        self.model = model
        self.vocab = vocab
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.precision = precision
        self.prefill_chunk = prefill_chunk
        self.max_prompt_chars = max_prompt_chars
        self.emit_interval_s = emit_interval_s
        self.device = model.head.weight.device
        self.symbols = [vocab.decode_bytes([i]) for i in range(len(vocab))]
        self._waiting: list[_Waiting] = []  # guarded by _lock (the worker edits its items)
        self._active: list[_Active] = []  # the worker's own
        self._lock = threading.Condition()
        self._running = True
        self._steps = 0  # decoding steps
        self._turns = 0  # worker turns (a prefill piece and/or a step)
        self._arrivals = itertools.count()
        with torch.inference_mode():
            self._stepper = Stepper(model, model.initial_state(1), precision)  # weights once
            self._stepper.keep([])  # no rows until a job joins
        self._logits = torch.zeros(0, len(vocab), device=self.device)
        self._row_settings: RowSettings | None = None  # rebuilt when a job joins or leaves
        self._outbox: list[tuple[Callable[[list[Delta] | None], None], list[Delta] | None]] = []
        self._schedule: Callable[[Callable[[], None]], object] | None = None
        self._thread = threading.Thread(target=self._work, name="charrnn-engine", daemon=True)
        self._thread.start()

    # -- the request side ----------------------------------------------------------------

    def submit(self, job: Job) -> bool:
        """Queue ``job``; False when the queue is full (the caller answers busy).

        Raises:
            PromptTooLong: the prompt is over ``max_prompt_chars``.
            ValueError: ``n`` is over the batch.
        """
        if job.n > self.max_batch:
            raise ValueError(f"n={job.n} exceeds the batch of {self.max_batch}")
        if len(job.prompt_ids) == 0:
            raise ValueError("a job's prompt_ids need at least one id (the start symbol)")
        if job.prompt_chars > self.max_prompt_chars:
            raise PromptTooLong(job.prompt_chars, self.max_prompt_chars)
        with self._lock:
            if not self._running or len(self._waiting) >= self.max_queue:
                return False
            self._waiting.append(_Waiting(job, next(self._arrivals)))
            self._lock.notify()
        return True

    @property
    def load(self) -> dict[str, int]:
        """Rows being stepped, jobs waiting, and steps and turns so far (for /health)."""
        with self._lock:
            rows = sum(a.job.n for a in self._active)
            return {
                "active_rows": rows,
                "waiting": len(self._waiting),
                "steps": self._steps,
                "turns": self._turns,
            }

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking jobs, end the waiting ones, let the running ones finish (up to
        ``timeout`` seconds, then end them too), and stop the worker."""
        with self._lock:
            self._running = False
            waiting, self._waiting = self._waiting, []
            self._lock.notify()
        for item in waiting:
            item.job.emit(None)
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
                    waiting = list(self._waiting)
                waiting = self._drop_cancelled(waiting)
                self._prefill(waiting)
                self._join(waiting)
                self._drop_finished()
                if self._active:
                    self._step()
                    self._drop_finished()
                self._flush()
                self._turns += 1

    def hand_over_with(self, schedule: Callable[[Callable[[], None]], object] | None) -> None:
        """Hand each turn's events over in one call: ``schedule(deliver)`` (say, the
        event loop's ``call_soon_threadsafe``) runs ``deliver``, which calls every
        job's ``emit`` of that turn, on the scheduler's side. One wake-up of the loop
        per turn for all jobs, not one per job. None (the default): the worker calls
        each ``emit`` itself at the end of the turn."""
        self._schedule = schedule

    def _send(self, job: Job, event: list[Delta] | None) -> None:
        self._outbox.append((job.emit, event))

    def _flush(self) -> None:
        """This turn's events, to their jobs, in order."""
        if not self._outbox:
            return
        batch, self._outbox = self._outbox, []
        schedule = self._schedule
        if schedule is not None:
            try:
                schedule(functools.partial(_deliver, batch))
                return
            except RuntimeError:  # the loop has closed (the server stopping)
                self._schedule = None
        _deliver(batch)

    def _leave_queue(self, items: list[_Waiting]) -> None:
        if items:
            with self._lock:
                gone = {id(item) for item in items}
                self._waiting = [w for w in self._waiting if id(w) not in gone]

    def _drop_cancelled(self, waiting: list[_Waiting]) -> list[_Waiting]:
        """Cancelled jobs leave the queue (their prompt stops running); the rest."""
        cancelled = [w for w in waiting if w.job.cancelled]
        self._leave_queue(cancelled)
        for item in cancelled:
            self._send(item.job, None)
        return [w for w in waiting if not w.job.cancelled]

    def _free_rows(self, waiting: list[_Waiting]) -> int:
        """Rows of the batch not taken by running jobs nor promised to ready ones."""
        taken = sum(a.job.n for a in self._active)
        return self.max_batch - taken - sum(w.rows for w in waiting if w.left == 0)

    def _prefill(self, waiting: list[_Waiting]) -> None:
        """Run this turn's budget of prompt positions, shortest remaining first.

        The budget counts positions run one after another (a recurrent model's cost),
        not characters times rows: prompts whose pieces have the same length run as
        one batched call for the price of one. So the prompts that end within the
        budget run whole, shortest first, each length once; what is left of the budget
        then goes to every longer prompt at once, as one batch of equal pieces. Only
        prompts whose rows will fit in the batch run (a scoring-only job needs none).
        """
        budget = self.prefill_chunk
        free = self._free_rows(waiting)
        runnable: list[_Waiting] = []
        for item in sorted((w for w in waiting if w.left > 0), key=lambda w: (w.left, w.order)):
            if item.rows <= free and len(runnable) < self.max_batch:
                free -= item.rows
                runnable.append(item)
        pieces: dict[int, list[_Waiting]] = {}
        for item in runnable:
            if item.left not in pieces and item.left > budget:
                break  # the rest are longer than what is left: one batch below
            if item.left not in pieces:
                budget -= item.left
                pieces[item.left] = []
            pieces[item.left].append(item)
        longer = [w for w in runnable if w.left not in pieces]
        if budget > 0 and longer:
            pieces.setdefault(budget, []).extend(longer)
        for length, items in pieces.items():
            ids = np.stack([w.ids[w.done : w.done + length] for w in items])  # (R, length)
            state = self._stack_states(items)
            logits, after = run_chunk(self.model, ids, state)  # (R, length, V)
            for r, item in enumerate(items):
                if item.job.echo is not None:
                    self._score(item, logits[r], length)
                item.state = tuple(s[:, r : r + 1] for s in after)
                item.logits = logits[r, -1:].clone()  # not a view that keeps the chunk
                item.done += length

    def _stack_states(self, items: list[_Waiting]) -> State | None:
        """The rows' states side by side (N, R, H); None when all start from zeros."""
        if all(w.state is None for w in items):
            return None
        zero = self.model.initial_state(1)
        parts = [w.state if w.state is not None else zero for w in items]
        return tuple(torch.cat([p[k] for p in parts], dim=1) for k in range(len(zero)))

    def _score(self, item: _Waiting, logits: torch.Tensor, length: int) -> None:
        """Score the prompt characters that ``logits`` (length, V), the logits after
        ``item.ids[done : done + length]``, predict (those of its text only)."""
        job, top = item.job, item.job.echo or 0
        start = item.done
        if start == 0 and job.text_from == 0 and len(item.ids):
            item.scores.append((self.vocab.decode(item.ids[:1]), None, None))  # no context
        # logits[t] predicts ids[start + t + 1]: keep the targets in the text.
        first = max(start + 1, job.text_from)
        last = min(start + length, len(item.ids) - 1)  # the last logits predict a draw
        if first > last:
            return
        targets = torch.as_tensor(item.ids[first : last + 1], device=logits.device)
        logp = logits[first - start - 1 : last - start].log_softmax(dim=-1)  # (T, V)
        chosen = logp.gather(1, targets[:, None])[:, 0].tolist()
        values, order = logp.topk(min(max(top, 1), logp.shape[-1]), dim=-1)
        values_l, order_l = values.tolist(), order.tolist()
        for j, char_id in enumerate(targets.tolist()):
            alternatives = None
            if top:
                alternatives = {
                    self.vocab.decode([i]): v for v, i in zip(values_l[j], order_l[j], strict=True)
                }
            item.scores.append((self.vocab.decode([char_id]), chosen[j], alternatives))

    def _join(self, waiting: list[_Waiting]) -> None:
        """Jobs whose prompt has run join the batch in arrival order, as rows allow;
        scoring-only jobs are answered now."""
        free = self.max_batch - sum(a.job.n for a in self._active)
        joined: list[_Waiting] = []
        with self._lock:  # not those that close() has ended meanwhile
            queued = {id(w) for w in self._waiting}
        for item in waiting:
            job = item.job
            if id(item) not in queued:
                continue
            if item.left > 0 and not (job.max_tokens == 0 and job.echo is None):
                continue
            if job.echo is not None:
                job.prompt_logprobs = item.scores
            if job.max_tokens == 0:  # nothing to draw (scoring the prompt, say)
                joined.append(item)
                self._send(job, [Delta(i, "", "length") for i in range(job.n)])
                self._send(job, None)
                continue
            if job.n > free:
                continue
            free -= job.n
            joined.append(item)
            assert item.state is not None and item.logits is not None
            if not self._active:  # the batch was empty: drop its leftover rows
                self._stepper.keep([])
                self._logits = self._logits[:0]
            self._stepper.add(tuple(s.expand(-1, job.n, -1) for s in item.state))
            self._logits = torch.cat([self._logits, item.logits.expand(job.n, -1)])
            self._active.append(_Active(job, len(self.vocab), self.device))
            self._row_settings = None
        self._leave_queue(joined)

    def _step(self) -> None:
        """One draw for every row, the characters handed out, one recurrent step."""
        if self._row_settings is None:
            groups = [(a.job.settings, a.job.n) for a in self._active]
            self._row_settings = RowSettings.of(groups, self.device)
        settings = self._row_settings
        noise = None  # all greedy: none drawn
        if not settings.all_greedy:
            noise = torch.cat([a.noise.next() for a in self._active])  # (B, V)
        ids = choose(self._logits, settings, noise)
        logprobs = None
        if any(a.job.logprobs is not None for a in self._active):
            logprobs = self._logits.log_softmax(dim=-1)
        drawn = ids.tolist()
        start = 0
        now = time.monotonic()
        for active in self._active:
            n = active.job.n
            rows_lp = logprobs[start : start + n] if logprobs is not None else None
            self._advance(active, drawn[start : start + n], rows_lp, now)
            start += n
        self._logits = self._stepper(ids)
        self._steps += 1

    def _advance(
        self, active: _Active, ids: list[int], logprobs: torch.Tensor | None, now: float
    ) -> None:
        """Append each row's new character, end rows at a stop or the length, and emit
        what is ready: at once for a job's first characters and when a row ends, else at
        most once per ``emit_interval_s`` (the rest gathers in the rows meanwhile)."""
        job = active.job
        ended = False
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
            ended = ended or row.finish is not None
        if not ended and now - active.emitted_at < self.emit_interval_s:
            return
        deltas = []
        for index, row in enumerate(active.rows):
            if row.reported:
                continue
            ready = len(row.text) if row.finish else max(row.sent, len(row.text) - active.hold)
            if ready > row.sent or row.finish or row.logprobs:
                deltas.append(Delta(index, row.text[row.sent : ready], row.finish, row.logprobs))
                row.sent = ready
                row.logprobs = []
                row.reported = row.finish is not None
        if deltas:
            active.emitted_at = now
            self._send(job, deltas)
        if active.finished:
            self._send(job, None)

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
                self._send(active.job, None)
            elif not active.finished:
                keep.append(active)
                rows.extend(range(start, start + n))
            start += n
        if len(keep) == len(self._active):
            return
        self._active = keep
        self._row_settings = None
        self._stepper.keep(rows)
        self._logits = self._logits[torch.as_tensor(rows, dtype=torch.long, device=self.device)]


def _deliver(
    batch: list[tuple[Callable[[list[Delta] | None], None], list[Delta] | None]],
) -> None:
    for emit, event in batch:
        emit(event)


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
