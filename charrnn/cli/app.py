"""The ``charrnn`` command line: parse options, call one library function, render.

A :class:`CharRNNError` (a domain error: a bad file, a damaged checkpoint, settings
that contradict each other) becomes one line on stderr and exit code 1; a usage error
(an unknown option, a number out of range) one line and exit code 2. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from charrnn._version import __version__
from charrnn.cli.compare import compare
from charrnn.cli.corpus import corpus_app
from charrnn.cli.errors import OneLineErrors, PlainUsage
from charrnn.cli.export import export
from charrnn.cli.hello import hello
from charrnn.cli.info import info, vocab
from charrnn.cli.inspect import inspect
from charrnn.cli.sample import sample
from charrnn.cli.score import score
from charrnn.cli.serve import serve
from charrnn.cli.train import train

app = typer.Typer(
    name="charrnn",
    cls=OneLineErrors,
    help="Train character-level RNN, LSTM and GRU language models on any text, and sample "
    "from them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts hold literal [brackets] such as "[default: 4]"
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"charrnn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Train character-level RNN, LSTM and GRU language models on any text."""


# The commands, in the order --help lists them.
for command in (train, compare, sample, score, serve, export, inspect, info, vocab, hello):
    app.command(cls=PlainUsage)(command)
app.add_typer(corpus_app, name="corpus")


def main() -> None:
    """Console-script entry point."""
    _stop_like_ctrl_c()
    try:
        app()
    except KeyboardInterrupt as exc:  # a stop before a command started (while loading)
        sys.stderr.write(f"{str(exc) or 'interrupted'}\n")
        sys.exit(getattr(exc, "exit_code", 130))


def _stop_like_ctrl_c() -> None:
    """Make SIGTERM, SIGHUP and SIGQUIT unwind a command the way Ctrl-C does.

    Their default action kills the process where it stands, leaving a writer's hidden
    temporary file behind; raised as :class:`StopSignal` instead, every ``finally``
    runs. Training and ``serve`` install their own handlers while they run.
    """
    import signal

    from charrnn.errors import StopSignal

    def stop(signum: int, frame: object) -> None:
        raise StopSignal(signum)

    for name in ("SIGTERM", "SIGHUP", "SIGQUIT"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop)
