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
from charrnn.cli.errors import OneLineErrors
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
    app.command()(command)
app.add_typer(corpus_app, name="corpus")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C before a command started (while loading, say)
        sys.stderr.write("interrupted\n")
        sys.exit(130)
