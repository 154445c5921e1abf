"""The OpenAI-compatible HTTP API over one or more :class:`~charrnn.serving.engine.Engine`.

Routes: ``GET /health``, ``GET /v1/models``, ``POST /v1/completions`` (plain or
streamed as server-sent events ending with ``data: [DONE]``) and the page at ``/``.
This layer only parses, checks, queues, streams and maps errors to the API's own
shape (``{"error": {"message", "type", "param", "code"}}``) and status codes; the
engine does the work. Starlette rather than FastAPI: every field is checked here by
hand so that a bad value is a 400 in the API's shape, not FastAPI's 422, and
Starlette is all of FastAPI this needs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from charrnn.errors import CharRNNError
from charrnn.serving.engine import Delta, Job, PromptTooLong
from charrnn.serving.page import page_html
from charrnn.serving.requests import (
    ApiError,
    Completion,
    Limits,
    Served,
    check_completion,
    logprobs_body,
)

OWNER = "charrnn"
# 50 updates a second is smooth to watch, and 64 streams of them cost the server and
# its clients far less than a chunk per character each.
STREAM_INTERVAL_S = 0.02


# -- checking a request ------------------------------------------------------------------


# Parameters of the API this server does not implement: refused unless neutral.


# -- scoring a prompt (echo with logprobs) -----------------------------------------------


# -- the app -----------------------------------------------------------------------------


class BodyLimit:
    """ASGI middleware: a request that declares a body over ``limit`` bytes is a 413
    before anything reads it (a chunked body that grows past the limit is stopped by
    :func:`read_body` as it is read)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for key, value in scope.get("headers", []):
                if key != b"content-length":
                    continue
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.limit or declared < 0:
                    await _too_large(self.limit).response()(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is over {limit} bytes", code="too_large")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read as it arrives and refused (413) once it passes ``limit`` bytes."""
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise _too_large(limit)
        parts.append(part)
    return b"".join(parts)


def _authorised(request: Request, key: str | None) -> bool:
    """The key as ``Authorization: Bearer KEY`` (clients) or HTTP Basic with KEY as
    the password (the browser, for the page), compared in constant time."""
    if key is None:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    given = ""
    if scheme.lower() == "bearer":
        given = value.strip()
    elif scheme.lower() == "basic":
        try:
            given = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            given = ""
    return hmac.compare_digest(given.encode(), key.encode())


def build_app(
    models: dict[str, Served],
    *,
    api_key: str | None = None,
    limits: Limits | None = None,
    max_batch: int = 64,
    retry_after_s: int = 1,
) -> ASGIApp:
    """The ASGI app serving ``models`` (by id)."""
    limits = limits or Limits()

    def guarded(
        handler: Callable[[Request], Awaitable[Response]], *, page: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def route(request: Request) -> Response:
            if not _authorised(request, api_key):
                if page:  # the browser asks for the key (as the password) and resends it
                    return Response(
                        "an API key is needed", 401, {"WWW-Authenticate": 'Basic realm="charrnn"'}
                    )
                return ApiError(
                    401, "a valid API key is needed (Authorization: Bearer KEY)",
                    kind="authentication_error", code="invalid_api_key",
                ).response()  # fmt: skip
            try:
                return await handler(request)
            except ApiError as exc:
                return exc.response()

        return route

    async def health(request: Request) -> Response:
        load = {m.id: m.engine.load for m in models.values()}
        return JSONResponse({"status": "ok", "models": load})

    async def list_models(request: Request) -> Response:
        data = [
            {
                "id": m.id,
                "object": "model",
                "created": m.created,
                "owned_by": OWNER,
                "charrnn": m.facts,
            }
            for m in models.values()
        ]
        return JSONResponse({"object": "list", "data": data})

    async def page(request: Request) -> Response:
        return HTMLResponse(page_html([m.id for m in models.values()]))

    async def completions(request: Request) -> Response:
        raw = await read_body(request, limits.max_body)
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "the body is not valid JSON", code="invalid_json") from None
        try:
            job = check_completion(body, models, limits, max_batch)
        except CharRNNError as exc:  # a setting the sampler refuses
            raise ApiError(400, str(exc)) from None
        return await _complete(request, job, retry_after_s)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", guarded(list_models), methods=["GET"]),
        Route("/v1/completions", guarded(completions), methods=["POST"]),
        Route("/", guarded(page, page=True), methods=["GET"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return ApiError(404, f"no route {request.url.path}", code="not_found").response()

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return ApiError(405, f"{request.method} is not allowed here").response()

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_allowed})
    return BodyLimit(app, limits.max_body)


async def _complete(request: Request, c: Completion, retry_after_s: int) -> Response:
    """Queue the job and answer it, whole or as a stream of server-sent events."""
    events = Mailbox(asyncio.get_running_loop())

    job = Job(
        prompt_ids=c.prompt_ids,
        n=c.n,
        max_tokens=c.max_tokens,
        settings=c.settings,
        emit=events.put,
        seed=c.seed,
        stops=c.stops,
        logprobs=c.logprobs,
        # Echo scoring runs in the engine's queue, chunked like any prompt.
        echo=c.logprobs if c.echo else None,
        text_from=1 if c.served.docs.on or not c.prompt else 0,  # a newline or start id
    )
    # One wake-up of this loop per engine turn for all jobs (idempotent; the loop is
    # only known here, as uvicorn runs without a lifespan).
    c.served.engine.hand_over_with(events.loop.call_soon_threadsafe)
    try:
        queued = c.served.engine.submit(job)
    except PromptTooLong as exc:
        raise ApiError(400, str(exc), param="prompt", code="prompt_too_long") from None
    if not queued:
        raise ApiError(
            503, "the server is busy; retry shortly", kind="server_error", code="busy",
            headers={"Retry-After": str(retry_after_s)},
        )  # fmt: skip
    meta = {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": c.served.id,
    }
    prompt_chars = len(c.prompt)
    if c.stream:
        stream = _stream(request, job, events, meta, c, prompt_chars)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream, media_type="text/event-stream", headers=headers)
    return await _whole(request, job, events, meta, c, prompt_chars)


class Mailbox:
    """What the worker hands one request: deltas gather here, and the event loop is
    woken at most once until it has taken them. Under load the loop falls behind the
    worker; it then takes many steps' deltas at once and sends them as one chunk,
    rather than paying a wake-up, a JSON dump and a write per character per client.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: deque[list[Delta] | None] = deque()
        self.ready = asyncio.Event()
        self._woken = False
        self._lock = threading.Lock()

    def put(self, deltas: list[Delta] | None) -> None:
        """Called on the worker thread, or on the loop by the engine's batched
        hand-over; never blocks."""
        self.items.append(deltas)
        if _running_loop() is self.loop:
            self.ready.set()
            return
        with self._lock:
            if self._woken:
                return
            self._woken = True
        self.loop.call_soon_threadsafe(self.ready.set)

    async def take(self, timeout: float) -> tuple[list[Delta], bool] | None:
        """The deltas gathered so far, merged per choice, and whether the job is over;
        None when nothing came within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            return None
        self.ready.clear()
        with self._lock:
            self._woken = False
        merged: dict[int, Delta] = {}
        over = False
        while self.items:
            item = self.items.popleft()
            if item is None:
                over = True
                continue
            for d in item:
                if d.index in merged:
                    was = merged[d.index]
                    was.text += d.text
                    was.logprobs = was.logprobs + d.logprobs
                    was.finish_reason = d.finish_reason or was.finish_reason
                else:
                    merged[d.index] = Delta(d.index, d.text, d.finish_reason, list(d.logprobs))
        return [merged[i] for i in sorted(merged)], over


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # the worker thread
        return None


async def _next(request: Request, job: Job, events: Mailbox) -> tuple[list[Delta], bool]:
    """The next deltas (several steps' worth, merged, when they pile up) and whether
    the job is over. The job is cancelled if the client goes away meanwhile."""
    while not job.cancelled:
        taken = await events.take(timeout=0.5)
        if taken is not None:
            return taken
        if await request.is_disconnected():
            job.cancel()
    return [], True


def _echo(c: Completion, job: Job) -> tuple[str, list[Any]]:
    """The echoed prompt and its scores (set by the engine before the job's first event)."""
    return (c.prompt if c.echo else ""), (job.prompt_logprobs or [])


async def _whole(
    request: Request,
    job: Job,
    events: Mailbox,
    meta: dict[str, Any],
    c: Completion,
    prompt_chars: int,
) -> Response:
    texts = [""] * c.n
    finish: list[str | None] = [None] * c.n
    logprobs: list[list[Any]] = [[] for _ in range(c.n)]
    over = False
    while not over:
        deltas, over = await _next(request, job, events)
        for d in deltas:
            texts[d.index] += d.text
            logprobs[d.index] += [(ch, lp, alt) for ch, lp, alt in d.logprobs]
            finish[d.index] = d.finish_reason or finish[d.index]
    if job.cancelled:
        return Response(status_code=499)  # the client is gone; nobody reads this
    prefix, prefix_lp = _echo(c, job)
    texts = [prefix + text for text in texts]
    logprobs = [list(prefix_lp) + lp for lp in logprobs]
    choices = []
    for i in range(c.n):
        lp = logprobs_body(logprobs[i], 0) if c.logprobs is not None else None
        choices.append(
            {"text": texts[i], "index": i, "logprobs": lp, "finish_reason": finish[i] or "length"}
        )
    completion_chars = sum(len(t) for t in texts) - len(prefix) * c.n
    usage = {
        "prompt_tokens": prompt_chars,
        "completion_tokens": completion_chars,
        "total_tokens": prompt_chars + completion_chars,
    }
    return JSONResponse({**meta, "choices": choices, "usage": usage})


async def _stream(
    request: Request,
    job: Job,
    events: Mailbox,
    meta: dict[str, Any],
    c: Completion,
    prompt_chars: int,
) -> AsyncIterator[bytes]:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return f"data: {json.dumps({**meta, 'choices': choices, **extra})}\n\n".encode()

    completion_chars = 0
    offsets = [0] * c.n
    try:
        over = False
        sent_at = 0.0
        echoed = False
        while not over:
            # At most one chunk per STREAM_INTERVAL_S a client: what is drawn meanwhile
            # gathers in the mailbox and goes as one (the first goes at once).
            wait = sent_at + STREAM_INTERVAL_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            deltas, over = await _next(request, job, events)
            prefix, prefix_lp = _echo(c, job)
            if not echoed and (prefix or prefix_lp) and not job.cancelled:
                echoed = True  # after the first event: the engine has scored the prompt
                lp = logprobs_body(prefix_lp, 0) if c.logprobs is not None else None
                yield chunk(
                    [
                        {"text": prefix, "index": i, "logprobs": lp, "finish_reason": None}
                        for i in range(c.n)
                    ]
                )
                offsets = [len(prefix)] * c.n
            if not deltas:
                continue
            sent_at = time.monotonic()
            choices = []
            for d in deltas:
                lp = None
                if c.logprobs is not None:
                    lp = logprobs_body(d.logprobs, offsets[d.index])
                offsets[d.index] += len(d.text)
                completion_chars += len(d.text)
                finish = d.finish_reason
                choices.append(
                    {"text": d.text, "index": d.index, "logprobs": lp, "finish_reason": finish}
                )
            yield chunk(choices)
        if c.include_usage:
            usage = {
                "prompt_tokens": prompt_chars,
                "completion_tokens": completion_chars,
                "total_tokens": prompt_chars + completion_chars,
            }
            yield chunk([], usage=usage)
        yield b"data: [DONE]\n\n"
    finally:
        job.cancel()  # a client that left mid-stream frees its rows at the next step
