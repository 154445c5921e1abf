"""How the command line reports failure: one line on stderr and a conventional exit code.

A :class:`CharRNNError` (a domain error: a bad file, a damaged checkpoint, settings
that contradict each other) exits 1 (130 for an interruption); a usage error (an
unknown option, a number out of range) exits 2. Anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from typer.core import TyperCommand, TyperGroup

from charrnn.cli.live import printable
from charrnn.errors import CharRNNError, TrainingInterrupted


def _base(name: str) -> type[Exception]:
    """Click's exception class ``name``, found through Typer's public ``BadParameter``
    (newer Typer vendors Click under a private name, older Typer depends on it)."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


UsageError = _base("UsageError")
ClickException = _base("ClickException")


class OneLineErrors(TyperGroup):
    """Click prints a usage error as three lines of usage and hint; say it in one."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        standalone_mode = kwargs.pop("standalone_mode", True)
        try:
            result = super().main(*args, **{**kwargs, "standalone_mode": False})
        except ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            typer.echo(f"error: {exc.format_message()}{where}", err=True)  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        except typer.Abort:
            typer.echo("aborted", err=True)
            sys.exit(1)
        if standalone_mode:
            sys.exit(result if isinstance(result, int) else 0)
        return result


class PlainUsage(TyperCommand):
    """Usage lines in the usual Unix spelling, ``charrnn sample [OPTIONS] RUN``: Typer
    wraps a required argument in braces (``{RUN}``), which reads as a placeholder."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return [
            piece[1:].replace("}", "", 1) if piece.startswith("{") else piece
            for piece in super().collect_usage_pieces(ctx)
        ]


F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(command: F) -> F:
    """Print a CharRNNError as one line on stderr and exit with its code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Under torchrun every process runs the command: rank 0 speaks for the run, and
        # another rank only for a failure of its own, saying which rank it is. Outside
        # it, torch is not loaded here (vocab, corpus, info do without it).
        rank = 0
        if "RANK" in os.environ:
            from charrnn.training.distributed import from_environment

            try:
                rank = from_environment().rank
            except CharRNNError:  # malformed torchrun variables: the command says so
                rank = 0
        prefix = f"rank {rank}: " if rank else ""
        try:
            return command(*args, **kwargs)
        except TrainingInterrupted as exc:
            if not prefix:
                typer.echo(printable(str(exc), keep="\n"), err=True)
            raise typer.Exit(code=exc.exit_code) from None
        except CharRNNError as exc:
            if not prefix or not _peer_failed(exc):
                typer.echo(f"{prefix}error: {printable(str(exc), keep=chr(10))}", err=True)
            raise typer.Exit(code=exc.exit_code) from None
        except KeyboardInterrupt as exc:  # Ctrl-C, or a StopSignal (TERM, HUP, QUIT)
            typer.echo(str(exc) or "interrupted", err=True)
            raise typer.Exit(code=getattr(exc, "exit_code", 130)) from None

    return wrapper  # type: ignore[return-value]


def _peer_failed(exc: CharRNNError) -> bool:
    """Whether another rank's failure stopped this one (that rank says why)."""
    from charrnn.training.distributed import PeerFailed

    return isinstance(exc, PeerFailed)
