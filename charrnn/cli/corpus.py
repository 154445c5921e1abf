"""``charrnn corpus``: list, generate and download corpora."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from charrnn.cli import options as opt
from charrnn.cli.errors import PlainUsage, friendly_errors
from charrnn.cli.live import stderr_console, stdout_console
from charrnn.units import to_bits

if TYPE_CHECKING:
    from charrnn.data.catalog import CorpusInfo


corpus_app = typer.Typer(
    help="List, generate and download corpora (train on one with corpus:NAME).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@corpus_app.command("list", cls=PlainUsage)
@friendly_errors
def corpus_list(cache_dir: opt.CacheOpt = None) -> None:
    """Every corpus charrnn knows: name, kind, size, what it is good for."""
    from charrnn.data.catalog import list_corpora

    stdout_console().print(corpus_table(list_corpora(cache_dir)))


@corpus_app.command("make", cls=PlainUsage)
@friendly_errors
def corpus_make(
    name: GeneratorArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write.", show_default=False)],
    size: GeneratedSizeOpt = 1_000_000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed.")] = 0,
    distance: DistanceOpt = None,
    max_mb: opt.MaxMbOpt = None,
    overwrite: opt.ReplaceFileOpt = False,
) -> None:
    """Write a generated corpus to a file and report its best achievable loss."""
    from charrnn.data.catalog import make_corpus

    made = make_corpus(
        name, out, size=size, seed=seed, distance=distance, max_mb=max_mb, overwrite=overwrite
    )
    if made is None:  # the standard library's source: no known floor
        typer.echo(f"wrote {out}: {out.stat().st_size:,} bytes of Python source", err=True)
        return
    typer.echo(
        f"wrote {out}: {len(made.text):,} characters, {made.symbols} symbols\n"
        f"best achievable loss {made.floor_nats:.4f} nats = {made.floor_bpc:.4f} bpc; "
        f"unigram baseline {made.unigram_nats:.4f} nats = {to_bits(made.unigram_nats):.4f} bpc",
        err=True,
    )


@corpus_app.command("get", cls=PlainUsage)
@friendly_errors
def corpus_get(
    name: Annotated[
        str,
        typer.Argument(
            help="A downloadable corpus (see corpus list).", show_default=False, metavar="NAME"
        ),
    ],
    cache_dir: opt.CacheOpt = None,
) -> None:
    """Download a classic corpus into the cache, verify it, and print its path."""
    from charrnn.data.catalog import download_entry, get_download

    entry = download_entry(name)
    with download_bar(name, entry.archive_size or entry.size) as progress:
        path = get_download(entry, cache_dir, progress=progress)
    typer.echo(f"{name}: {path.stat().st_size:,} bytes, verified ({entry.check})", err=True)
    typer.echo(str(path))


GeneratorArg = Annotated[
    str,
    typer.Argument(
        help="A generated corpus (see corpus list), or python-stdlib.",
        show_default=False,
        metavar="NAME",
    ),
]


GeneratedSizeOpt = Annotated[
    int,
    typer.Option(
        "--size", min=1, max=10**8, help="Characters to generate (whole lines, 1 to 10^8)."
    ),
]


DistanceOpt = Annotated[
    int | None,
    typer.Option(
        "--distance",
        min=1,
        max=10**6,
        help="How far back the answer lies, in characters "
        "(recall, brackets). [default: per generator]",
        show_default=False,
    ),
]


@contextmanager
def download_bar(name: str, total: int | None) -> Iterator[Callable[[int, int | None], None]]:
    """A transient download bar on stderr; yields the progress callback to give fetch.

    Drawn only on a terminal: elsewhere Rich's transient bar leaves a blank line."""
    console = stderr_console()
    with Progress(
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(name, total=total)

        def progress(done: int, size: int | None) -> None:
            bar.update(task, completed=done, total=size)

        yield progress


def corpus_table(rows: list[CorpusInfo]) -> Table:
    """``charrnn corpus list``."""
    t = Table(title="corpora (train on one with: charrnn train corpus:NAME)", title_justify="left")
    for column in ("name", "kind", "size", "good for", "status"):
        t.add_column(column)
    for row in rows:
        t.add_row(row.name, row.kind, row.size, row.good_for, row.status)
    return t
