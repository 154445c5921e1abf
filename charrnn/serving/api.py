"""The OpenAI-compatible HTTP API over one or more :class:`~charrnn.serving.engine.Engine`.

Routes: ``GET /health``, ``GET /v1/models``, ``GET /v1/models/{id}``,
``POST /v1/completions``, ``POST /v1/chat/completions`` (each plain or streamed as
server-sent events ending with ``data: [DONE]``) and the page at ``/``. This layer
only parses (:mod:`~charrnn.serving.schemas`), checks (:mod:`~charrnn.serving.prompts`),
queues, streams (:mod:`~charrnn.serving.render`) and maps errors to the API's own
shape; :mod:`~charrnn.serving.guard` decides who may reach it, and the engine does
the work. Starlette rather than FastAPI: a bad value is a 400 in the API's shape,
not FastAPI's 422, and Starlette is all of FastAPI this needs.

A request whose client goes away is cancelled: a stream when a write fails, a
whole response when the connection is seen closed (polled while it waits), so its
rows leave the batch at the engine's next step (:mod:`~charrnn.serving.jobs`). When
the server is told to stop (:meth:`~charrnn.serving.jobs.Stopping.begin`), running
requests may finish until a deadline; then each open stream ends with an error event
and ``[DONE]``, and each waiting whole response with a 503.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from charrnn.errors import CharRNNError
from charrnn.serving import prompts
from charrnn.serving.guard import Access, Guard, too_large
from charrnn.serving.jobs import Gone, Run, Stopping, stopping_error
from charrnn.serving.page import page_html
from charrnn.serving.prompts import Generation, Limits, Served
from charrnn.serving.render import DONE, ChatRenderer, CompletionRenderer, Piece, Renderer
from charrnn.serving.schemas import ApiError, ChatBody, CompletionBody, parse_body

log = logging.getLogger("uvicorn.error")
OWNER = "charrnn"
# 50 updates a second is smooth to watch, and 64 streams of them cost the server and
# its clients far less than a chunk per character each.
STREAM_INTERVAL_S = 0.02


# -- the app -------------------------------------------------------------------------


def build_app(
    models: dict[str, Served],
    *,
    api_key: str | None = None,
    limits: Limits | None = None,
    max_batch: int = 64,
    retry_after_s: int = 1,
    access: Access | None = None,
    stopping: Stopping | None = None,
) -> ASGIApp:
    """The ASGI app serving ``models`` (by id), behind the :class:`Guard` of ``access``
    (loopback only by default)."""
    limits = limits or Limits()
    access = access or Access.bound_to("127.0.0.1")
    stopping = stopping or Stopping()

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
                if exc.status != 503:
                    log.warning("%s %s: %d %s", request.method, request.url.path,
                                exc.status, exc.message[:200])  # fmt: skip
                return exc.response()
            except Gone:
                log.info("%s %s: the client went away", request.method, request.url.path)
                return Response(status_code=499)

        return route

    async def health(request: Request) -> Response:
        load = {m.id: m.engine.load for m in models.values()}
        return JSONResponse({"status": "stopping" if stopping.begun else "ok", "models": load})

    def describe(m: Served) -> dict[str, Any]:
        return {"id": m.id, "object": "model", "created": m.created, "owned_by": OWNER,
                "charrnn": m.facts}  # fmt: skip

    async def list_models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [describe(m) for m in models.values()]})

    async def one_model(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in models:
            raise ApiError(
                404, f"no model {name!r}; this server has: {', '.join(sorted(models))}",
                param="model", code="model_not_found",
            )  # fmt: skip
        return JSONResponse(describe(models[name]))

    async def page(request: Request) -> Response:
        return HTMLResponse(page_html([m.id for m in models.values()]))

    async def completions(request: Request) -> Response:
        body = parse_body(await read_body(request, limits), CompletionBody)
        gen = _checked(prompts.completion, body, models, limits, max_batch)
        created, rid = int(time.time()), f"cmpl-{uuid.uuid4().hex}"
        renderer = CompletionRenderer(gen, rid, created)
        return await _answer(request, gen, renderer, stopping, retry_after_s)

    async def chat_completions(request: Request) -> Response:
        body = parse_body(await read_body(request, limits), ChatBody)
        gen = _checked(prompts.chat, body, models, limits, max_batch)
        created, rid = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"
        return await _answer(request, gen, ChatRenderer(gen, rid, created), stopping, retry_after_s)

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/v1/models", guarded(list_models), methods=["GET"]),
        Route("/v1/models/{name:path}", guarded(one_model), methods=["GET"]),
        Route("/v1/completions", guarded(completions), methods=["POST"]),
        Route("/v1/chat/completions", guarded(chat_completions), methods=["POST"]),
        Route("/", guarded(page, page=True), methods=["GET"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return ApiError(404, f"no route {request.url.path}", code="not_found").response()

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return ApiError(405, f"{request.method} is not allowed here").response()

    async def bug(request: Request, exc: Exception) -> Response:  # logged with its traceback
        return ApiError(500, "internal error", kind="server_error").response()

    handlers = {404: not_found, 405: not_allowed, Exception: bug}
    app = Starlette(routes=routes, exception_handlers=handlers)
    return Guard(app, access, limits.max_body)


def _checked(
    check: Callable[[Any, dict[str, Served], Limits, int], Generation],
    body: Any,
    models: dict[str, Served],
    limits: Limits,
    max_batch: int,
) -> Generation:
    try:
        return check(body, models, limits, max_batch)
    except CharRNNError as exc:  # a setting the sampler refuses
        raise ApiError(400, str(exc)) from None


async def read_body(request: Request, limits: Limits) -> bytes:
    """The body, read as it arrives: a 413 once it passes the size cap, a 408 (and the
    connection closed) when it has not all come within the read timeout."""
    parts, size = [], 0
    try:
        async with asyncio.timeout(limits.read_timeout_s):
            async for part in request.stream():
                size += len(part)
                if size > limits.max_body:
                    raise too_large(limits.max_body)
                parts.append(part)
    except TimeoutError:
        raise ApiError(
            408, f"the body did not arrive within {limits.read_timeout_s:g} s",
            code="timeout", headers={"Connection": "close"},
        ) from None  # fmt: skip
    except ClientDisconnect:
        raise Gone from None
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


# -- running a request ---------------------------------------------------------------


async def _answer(
    request: Request, gen: Generation, renderer: Renderer, stopping: Stopping, retry_after_s: int
) -> Response:
    """Queue the request's jobs and answer, whole or as a stream of server-sent events."""
    if stopping.begun:
        raise stopping_error()
    run = Run(gen, stopping)
    if not run.submit():
        raise ApiError(
            503, "the server is busy; retry shortly", kind="server_error", code="busy",
            headers={"Retry-After": str(retry_after_s)},
        )  # fmt: skip
    if gen.stream:
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        events = _stream(run, renderer)
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    try:
        merged = [Piece(i, "") for i in range(gen.choices)]
        async for pieces in run.pieces(request):
            for p in pieces:
                whole = merged[p.index]
                whole.text += p.text
                whole.tokens += p.tokens
                whole.finish_reason = p.finish_reason or whole.finish_reason
    finally:
        run.cancel()  # nothing if it finished; frees the rows if this ended otherwise
    renderer.echo = run.echo_tokens()
    return Response(renderer.whole(merged), media_type="application/json")


def _opening(run: Run, renderer: Renderer, held: list[list[Piece]]) -> list[bytes]:
    """A stream's first events: its opening (for completions with ``echo``, the
    prompts with the scores the engine gave them) and what was drawn meanwhile."""
    renderer.echo = run.echo_tokens()
    opening = renderer.opening()
    return ([opening] if opening else []) + [renderer.chunk(p) for p in held]


async def _stream(run: Run, renderer: Renderer) -> AsyncIterator[bytes]:
    """The events of one streamed response: the opening, the text as it comes (at
    most one event per :data:`STREAM_INTERVAL_S`), usage if asked, ``[DONE]``."""
    try:
        opened = False
        held: list[list[Piece]] = []  # what came before every echoed prompt was scored
        sent_at = 0.0
        async for pieces in run.pieces(None):
            if not opened:
                if not run.echo_ready:
                    held.append(pieces)
                    continue
                opened = True
                for event in _opening(run, renderer, held):
                    yield event
            yield renderer.chunk(pieces)
            sent_at = time.monotonic()
            # At most one event per STREAM_INTERVAL_S a client: what is drawn meanwhile
            # gathers in the mailbox and goes as one (the first goes at once).
            wait = sent_at + STREAM_INTERVAL_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        if not opened:  # nothing drawn (max_tokens 0): the echo alone
            for event in _opening(run, renderer, held):
                yield event
        if run.gen.include_usage:
            yield renderer.usage_event()
    except ApiError as exc:  # the server is stopping
        yield renderer.error_event(exc)
    finally:
        run.cancel()  # a client that left mid-stream frees its rows at the next step
    yield DONE
