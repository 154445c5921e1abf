"""``charrnn serve``: load runs, start one engine per model, run the app on uvicorn.

Safe by default: it listens on loopback and answers only the hosts it is bound to
and its own page's origin (:mod:`~charrnn.serving.guard`); another address without
an API key is refused unless the caller says it means it (``allow_no_key``).

Sockets are bounded: a request's headers must arrive within ``read_timeout_s`` of
the connection (or of its first byte after a keep-alive pause), and its body within
as long again (:func:`~charrnn.serving.api.read_body`); an idle keep-alive connection
closes after 5 s; headers are capped at 64 KiB; at most ``max_connections`` are open
(uvicorn answers more with a 503).

SIGTERM or Ctrl-C stops taking connections, lets running requests finish for up to
``grace_s`` less two seconds, then ends each open stream with an error event and
``[DONE]`` (a waiting whole response gets a 503), stops the engines and returns
normally, so the process exits 0 within ``grace_s``.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11

from charrnn.checkpoint import load_model
from charrnn.config import Docs
from charrnn.errors import ConfigError
from charrnn.hardware import sampling_dtype, select_device
from charrnn.serving.api import build_app
from charrnn.serving.chat import ChatTemplate
from charrnn.serving.engine import Engine
from charrnn.serving.guard import Access
from charrnn.serving.jobs import Stopping
from charrnn.serving.prompts import Limits, Served

KEEP_ALIVE_S = 5  # an idle keep-alive connection closes after this
MAX_HEADER_BYTES = 64 * 1024
STOP_MARGIN_S = 2.0  # of the grace period, left for closing connections and exiting


@dataclass(frozen=True)
class ServeOptions:
    """How to serve: where, who may, and how much at once."""

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    allow_no_key: bool = False
    max_batch: int = 64
    max_queue: int = 256
    device: str = "auto"
    precision: str = "fp32"
    limits: Limits = field(default_factory=Limits)
    grace_s: float = 10.0
    allow_hosts: tuple[str, ...] = ()
    allow_origins: tuple[str, ...] = ()
    chat_template: str | None = None  # a format string or a file (see serving.chat)
    max_connections: int = 1024


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(options: ServeOptions) -> None:
    """A server reachable from other machines must have a key, or be told it need not."""
    key = options.api_key
    if key is not None and not key.strip():
        raise ConfigError("--api-key is blank; give a key or leave the option out")
    if key is not None and key != key.strip():
        raise ConfigError(
            "--api-key starts or ends with whitespace, which a client's header cannot carry; "
            "give the key without it"
        )
    if not is_loopback(options.host) and options.api_key is None and not options.allow_no_key:
        raise ConfigError(
            f"--host {options.host} lets other machines in, and there is no --api-key; give "
            "one (or set CHARRNN_API_KEY), or pass --allow-no-key if you mean it"
        )


def load_served(runs: list[Path], options: ServeOptions) -> dict[str, Served]:
    """One :class:`Served` per run, named by its folder (made unique)."""
    device = select_device(options.device)
    sampling_dtype(options.precision, device)  # a bad precision fails before any load
    chat = ChatTemplate.parse(options.chat_template) if options.chat_template else ChatTemplate()
    served: dict[str, Served] = {}
    for run in runs:
        model, vocab, checkpoint = load_model(run, device)
        name = (run if run.is_dir() else run.parent).resolve().name or "model"
        unique, k = name, 2
        while unique in served:
            unique, k = f"{name}-{k}", k + 1
        config = checkpoint.config
        facts: dict[str, Any] = {
            "cell": config.model.cell,
            "layers": config.model.num_layers,
            "hidden": config.model.hidden_size,
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "vocab_size": len(vocab),
            "docs": config.data.docs,
            "step": checkpoint.step,
            "best_val_loss": checkpoint.best_val_loss,
            "corpus": checkpoint.corpus.name if checkpoint.corpus else None,
        }
        engine = Engine(
            model,
            vocab,
            max_batch=options.max_batch,
            max_queue=options.max_queue,
            precision=options.precision,
            max_prompt_chars=options.limits.max_prompt,
        )
        docs = Docs(config.data.docs)
        served[unique] = Served(unique, model, vocab, engine, docs, facts, chat=chat)
    return served


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (for tests and benchmarks)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def serve(
    runs: list[Path],
    options: ServeOptions,
    *,
    ready: Callable[[str, list[str]], None] | None = None,
) -> None:
    """Serve ``runs`` until SIGTERM or Ctrl-C; ``ready(url, model ids)`` once listening.

    Raises:
        ConfigError: an exposed server without a key, a blank key, a bad precision or
            chat template, a port in use.
        CharRNNError: a run that does not load.
    """
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("charrnn serve needs its extra: pip install 'charrnn[serve]'") from None
    check_exposure(options)
    access = Access.bound_to(options.host, options.allow_hosts, options.allow_origins)
    listener = listen(options.host, options.port)
    try:
        served = load_served(runs, options)
    except BaseException:
        listener.close()
        raise
    stopping = Stopping()
    app = build_app(
        served,
        api_key=options.api_key,
        limits=options.limits,
        max_batch=options.max_batch,
        access=access,
        stopping=stopping,
    )
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        http=timed_protocol(options.limits.read_timeout_s),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=max(1, round(options.grace_s)),
        timeout_keep_alive=KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        limit_concurrency=options.max_connections,
        lifespan="off",
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # Streams get the grace period less two seconds to finish, then end with an
            # error event, so every connection is closed before uvicorn's own deadline
            # (which would cancel them mid-write) and the process is gone within grace_s.
            stopping.begin(options.grace_s - STOP_MARGIN_S)
            super().handle_exit(sig, frame)
            # uvicorn re-raises a caught SIGTERM after its graceful shutdown, so the
            # process would end by the signal; a requested stop is a clean one: exit 0.
            self._captured_signals.clear()

    server = Server(config)
    if ready is not None:
        startup = server.startup

        async def announce(sockets: Any = None) -> None:
            await startup(sockets)
            if server.started:
                ready(f"http://{_url_host(options.host)}:{options.port}", list(served))

        server.startup = announce  # type: ignore[method-assign]
    try:
        server.run(sockets=[listener])
    finally:
        listener.close()
        for s in served.values():
            s.engine.close(timeout=options.grace_s)
    if not server.started:
        raise ConfigError(f"could not serve on {options.host}:{options.port}")


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening; a :class:`ConfigError` in one line
    when the port is taken or the address is not this machine's."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} on {host} is in use; stop what listens there or pick another --port"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def timed_protocol(read_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request headers have not
    all arrived ``read_timeout_s`` seconds after it opened (or after the first byte of
    a later request on it). uvicorn bounds only idle keep-alive connections; a client
    that sends half its headers would otherwise hold its socket for ever."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class TimedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.IDLE:
                self._arm()  # a request's headers are coming, not all there yet
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(read_timeout_s, self._late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _late(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return TimedH11Protocol
