"""``charrnn serve``: trained runs behind the OpenAI-compatible completions and chat API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charrnn.cli import options as opt
from charrnn.cli.errors import friendly_errors
from charrnn.config import Device, SamplePrecision

RunsArg = Annotated[
    list[Path],
    typer.Argument(
        help="Run directories (their best.pt) or checkpoint files.",
        show_default=False,
        metavar="RUN",
    ),
]


@friendly_errors
def serve(
    runs: RunsArg,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback unless you say).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TCP port.")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="CHARRNN_API_KEY",
            help="Key every request but /health must carry (Authorization: Bearer KEY). "
            "[env: CHARRNN_API_KEY]",
            show_default=False,
            show_envvar=False,
        ),
    ] = None,
    allow_no_key: Annotated[
        bool,
        typer.Option("--allow-no-key", help="Listen on a non-loopback --host without an API key."),
    ] = False,
    max_batch: Annotated[
        int, typer.Option("--max-batch", min=1, max=4096, help="Rows stepped together at most.")
    ] = 64,
    max_queue: Annotated[
        int,
        typer.Option("--max-queue", min=0, help="Requests waiting at most; more get a 503."),
    ] = 256,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", min=1, help="Characters one request may ask for.")
    ] = 4096,
    max_prompt: Annotated[
        int,
        typer.Option(
            "--max-prompt",
            min=1,
            help="Characters one prompt may have (a 400 beyond); prompts run in chunks "
            "between decoding steps, so a long one slows no other request.",
        ),
    ] = 100_000,
    chat_template: Annotated[
        str | None,
        typer.Option(
            "--chat-template",
            metavar="FORMAT|FILE",
            help="How chat messages are written for the model: a format string with "
            "{Role}, {role} and {content} (\\n for a newline) or a file holding one; a "
            "reply stops at what follows {content}. [default: '{Role}:\\n{content}\\n\\n']",
            show_default=False,
        ),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            metavar="NAME",
            help="Another Host name to answer (repeatable; '*' for any). By default only "
            "localhost, 127.0.0.1, [::1] and the --host address.",
            show_default=False,
        ),
    ] = None,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-origin",
            metavar="ORIGIN",
            help="A web page origin that may call the API, e.g. http://localhost:3000 "
            "(repeatable; '*' for any). By default only the server's own page.",
            show_default=False,
        ),
    ] = None,
    read_timeout: Annotated[
        float,
        typer.Option(
            "--read-timeout",
            min=0.1,
            max=3600,
            help="Seconds a client has to send a request's headers, and again its body.",
        ),
    ] = 10.0,
    max_connections: Annotated[
        int,
        typer.Option("--max-connections", min=1, help="Open connections at most; more get a 503."),
    ] = 1024,
    device: opt.DeviceOpt = None,
    precision: opt.SamplePrecisionOpt = SamplePrecision.fp32,
) -> None:
    """Serve trained models over HTTP: the OpenAI completions and chat API (any client
    library works with base_url http://HOST:PORT/v1), and a page at / to write with them."""
    from charrnn.serving.prompts import Limits
    from charrnn.serving.server import ServeOptions
    from charrnn.serving.server import serve as run_server

    options = ServeOptions(
        host=host,
        port=port,
        api_key=api_key,
        allow_no_key=allow_no_key,
        max_batch=max_batch,
        max_queue=max_queue,
        device=(device or Device.auto).value,
        precision=precision.value,
        limits=Limits(max_tokens=max_tokens, max_prompt=max_prompt, read_timeout_s=read_timeout),
        allow_hosts=tuple(allow_host or ()),
        allow_origins=tuple(allow_origin or ()),
        chat_template=chat_template,
        max_connections=max_connections,
    )

    def ready(url: str, models: list[str]) -> None:
        typer.echo(
            f"serving {', '.join(models)} at {url}/v1 (page: {url}/); Ctrl-C stops", err=True
        )

    run_server(runs, options, ready=ready)
    typer.echo("stopped", err=True)
