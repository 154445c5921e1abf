"""A request's jobs in the engine, read from the event loop.

The worker thread hands each request's deltas to its :class:`Mailbox`, which wakes
the event loop at most once until they are taken; :class:`Run` submits a request's
jobs (one per prompt), reads them back as :class:`~charrnn.serving.render.Piece`
lists, and cancels them when the client goes away or the server's stop
(:class:`Stopping`) reaches its deadline, so their rows leave the batch at the
engine's next step.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

from starlette.requests import Request

from charrnn.serving.engine import Delta, Job, PromptTooLong
from charrnn.serving.prompts import Entry, Generation
from charrnn.serving.render import Piece, Tokens
from charrnn.serving.schemas import ApiError

POLL_S = 0.25  # how often a waiting request looks for a closed connection or a stop


class Stopping:
    """The server's stop: set once (from the signal handler), read by every request."""

    def __init__(self) -> None:
        self.deadline: float | None = None

    def begin(self, grace_s: float) -> None:
        """Running requests may go on for ``grace_s`` seconds more; new ones get a 503."""
        if self.deadline is None:
            self.deadline = time.monotonic() + max(0.0, grace_s)

    @property
    def begun(self) -> bool:
        return self.deadline is not None

    @property
    def over(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


class Gone(Exception):
    """The client went away; nobody reads the answer."""


def stopping_error() -> ApiError:
    return ApiError(
        503, "the server is stopping; retry on another", kind="server_error", code="stopping"
    )


class Mailbox:
    """What the worker hands one request (all its jobs): deltas gather here, and the
    event loop is woken at most once until it has taken them. Under load the loop
    falls behind the worker; it then takes many steps' deltas at once and sends them
    as one chunk, rather than paying a wake-up, a JSON dump and a write per character
    per client.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int, jobs: int) -> None:
        self.loop, self.n = loop, n
        self.items: deque[tuple[int, list[Delta] | None]] = deque()
        self.ready = asyncio.Event()
        self.open_jobs = jobs
        self._woken = False
        self._lock = threading.Lock()

    def sender(self, job_no: int) -> Callable[[list[Delta] | None], None]:
        """The ``emit`` for job ``job_no`` (its choices are ``job_no * n + j``)."""
        return lambda deltas: self.put(job_no, deltas)

    def put(self, job_no: int, deltas: list[Delta] | None) -> None:
        """Called on the worker thread, or on the loop by the engine's batched
        hand-over (:meth:`Engine.hand_over_with`); never blocks."""
        self.items.append((job_no, deltas))
        if _running_loop() is self.loop:
            self.ready.set()
            return
        with self._lock:
            if self._woken:
                return
            self._woken = True
        self.loop.call_soon_threadsafe(self.ready.set)

    async def take(self, timeout: float) -> list[Delta] | None:
        """The deltas gathered so far, merged per choice (``index`` is the choice's
        place in the response); None when nothing came within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            return None
        self.ready.clear()
        with self._lock:
            self._woken = False
        merged: dict[int, Delta] = {}
        while self.items:
            job_no, item = self.items.popleft()
            if item is None:
                self.open_jobs -= 1
                continue
            for d in item:
                index = job_no * self.n + d.index
                if index in merged:
                    was = merged[index]
                    was.text += d.text
                    was.logprobs = was.logprobs + d.logprobs
                    was.finish_reason = d.finish_reason or was.finish_reason
                else:
                    merged[index] = Delta(index, d.text, d.finish_reason, list(d.logprobs))
        return [merged[i] for i in sorted(merged)]

    @property
    def over(self) -> bool:
        return self.open_jobs <= 0 and not self.items


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # the worker thread
        return None


class Run:
    """One request's jobs in the engine, read as :class:`Piece` lists."""

    def __init__(self, gen: Generation, stopping: Stopping) -> None:
        self.gen, self.stopping = gen, stopping
        self.box = Mailbox(asyncio.get_running_loop(), gen.n, len(gen.prompts))
        byte_level = gen.served.vocab.byte_level
        self.tokens = [Tokens(byte_level) for _ in range(gen.choices)]
        self.jobs = [
            Job(
                prompt_ids=p.primer,
                n=gen.n,
                max_tokens=gen.max_tokens,
                settings=gen.settings,
                emit=self.box.sender(k),
                seed=gen.seed,
                stops=gen.stops,
                logprobs=gen.logprobs,
                # Echo with logprobs: the engine scores the prompt in its own queue,
                # chunked like any prompt, before the job's first event.
                echo=gen.logprobs if gen.echo and gen.logprobs is not None else None,
                text_from=len(p.primer) - len(p.ids),  # a newline or the start symbol
            )
            for k, p in enumerate(gen.prompts)
        ]

    def submit(self) -> bool:
        """Queue every job, or none: False (and nothing left queued) when busy; a
        prompt over the engine's limit is the API's 400."""
        engine = self.gen.served.engine
        # One wake-up of this loop per engine turn for all jobs (idempotent; the loop
        # is only known here, as uvicorn runs without a lifespan).
        engine.hand_over_with(self.box.loop.call_soon_threadsafe)
        for k, job in enumerate(self.jobs):
            try:
                queued = engine.submit(job)
            except PromptTooLong as exc:
                queued = False
                refusal: ApiError | None = ApiError(
                    400, str(exc), param="prompt", code="prompt_too_long"
                )
            else:
                refusal = None
            if not queued:
                for earlier in self.jobs[:k]:
                    earlier.cancel()
                if refusal is not None:
                    raise refusal
                return False
        return True

    @property
    def echo_ready(self) -> bool:
        """Whether every prompt the engine scores (echo with logprobs) has its scores."""
        return all(job.echo is None or job.prompt_logprobs is not None for job in self.jobs)

    def echo_tokens(self) -> list[list[Entry]]:
        """Per prompt, its scored tokens (echo with logprobs), grouped as the text is."""
        byte_level = self.gen.served.vocab.byte_level
        return [
            Tokens(byte_level).take(p.text, list(job.prompt_logprobs or []), final=True)
            for job, p in zip(self.jobs, self.gen.prompts, strict=True)
        ]

    def cancel(self) -> None:
        for job in self.jobs:
            job.cancel()

    async def pieces(self, request: Request | None) -> AsyncIterator[list[Piece]]:
        """What the choices gain, as it comes. With ``request`` (a whole response) the
        connection is watched while waiting and the jobs cancelled when it closes
        (:class:`Gone`); at the stop's deadline they are cancelled too
        (:class:`ApiError` 503)."""
        checked = time.monotonic()
        while not self.box.over:
            timeout = POLL_S
            if self.stopping.deadline is not None:
                timeout = min(timeout, max(0.0, self.stopping.deadline - time.monotonic()))
            deltas = await self.box.take(timeout)
            if self.stopping.over and not self.box.over:
                self.cancel()
                raise stopping_error()
            if request is not None and time.monotonic() - checked >= POLL_S:
                checked = time.monotonic()
                if await request.is_disconnected():
                    self.cancel()
                    raise Gone
            if deltas:
                yield [self._piece(d) for d in deltas]

    def _piece(self, d: Delta) -> Piece:
        tokens: list[Entry] = []
        if self.gen.logprobs is not None:
            entries: list[Entry] = list(d.logprobs)
            tokens = self.tokens[d.index].take(d.text, entries, final=d.finish_reason is not None)
        return Piece(d.index, d.text, tokens, d.finish_reason)
