"""``charrnn serve``: load runs, start one engine per model, run the app on uvicorn.

Safe by default: it listens on loopback; another address without an API key is
refused unless the caller says it means it (``allow_no_key``). SIGTERM or Ctrl-C
stops taking connections, lets running requests finish (up to ``grace_s``), ends the
rest, and returns normally, so the process exits 0.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charrnn.checkpoint import load_model
from charrnn.config import Docs
from charrnn.errors import ConfigError
from charrnn.hardware import sampling_dtype, select_device
from charrnn.serving.api import build_app
from charrnn.serving.engine import Engine
from charrnn.serving.requests import Limits, Served


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
    if options.api_key is not None and not options.api_key:
        raise ConfigError("--api-key is empty; give a key or leave the option out")
    if not is_loopback(options.host) and options.api_key is None and not options.allow_no_key:
        raise ConfigError(
            f"--host {options.host} lets other machines in, and there is no --api-key; give "
            "one (or set CHARRNN_API_KEY), or pass --allow-no-key if you mean it"
        )


def load_served(runs: list[Path], options: ServeOptions) -> dict[str, Served]:
    """One :class:`Served` per run, named by its folder (made unique)."""
    device = select_device(options.device)
    sampling_dtype(options.precision, device)  # a bad precision fails before any load
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
        served[unique] = Served(unique, model, vocab, engine, Docs(config.data.docs), facts)
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
        ConfigError: an exposed server without a key, a bad precision.
        CharRNNError: a run that does not load.
    """
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("charrnn serve needs its extra: pip install 'charrnn[serve]'") from None
    check_exposure(options)
    served = load_served(runs, options)
    app = build_app(
        served, api_key=options.api_key, limits=options.limits, max_batch=options.max_batch
    )
    config = uvicorn.Config(
        app,
        host=options.host,
        port=options.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=int(options.grace_s),
        lifespan="off",
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
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
                ready(f"http://{options.host}:{options.port}", list(served))

        server.startup = announce  # type: ignore[method-assign]
    try:
        server.run()
    finally:
        for s in served.values():
            s.engine.close(timeout=options.grace_s)
    if not server.started:
        raise ConfigError(f"could not listen on {options.host}:{options.port} (in use?)")
