"""The ``charrnn`` command line: parse options, call the library, show the result.

Every command turns a :class:`CharRNNError` into one line on stderr and a non-zero
exit code; anything else is a bug and keeps its traceback. Usage errors (a bad
``--cell``, a number out of range) are Typer's and exit with code 2.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.text import Text

from charrnn import __version__
from charrnn import cli_options as opt
from charrnn.config import (
    RunConfig,
    parse_duration,
    preset_tables,
    read_toml,
)
from charrnn.distributed import PeerFailed
from charrnn.errors import CharRNNError, ConfigError, TrainingInterrupted

app = typer.Typer(
    name="charrnn",
    help="Train character-level RNN, LSTM and GRU language models on any text, and sample "
    "from them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts hold literal [brackets] such as "[default: 4]"
    context_settings={"help_option_names": ["-h", "--help"]},
)

F = TypeVar("F", bound=Callable[..., Any])


def _warn(message: str) -> None:
    typer.echo(f"warning: {message}", err=True)


def friendly_errors(command: F) -> F:
    """Print a CharRNNError as one line on stderr and exit with its code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Under torchrun every process runs the command: rank 0 speaks for the run, and
        # another rank only for a failure of its own, saying which rank it is.
        rank = os.environ.get("RANK", "0")
        prefix = "" if rank == "0" else f"rank {rank}: "
        try:
            return command(*args, **kwargs)
        except TrainingInterrupted as exc:
            if not prefix:
                typer.echo(str(exc), err=True)
            raise typer.Exit(code=exc.exit_code) from None
        except CharRNNError as exc:
            if not prefix or not isinstance(exc, PeerFailed):
                typer.echo(f"{prefix}error: {exc}", err=True)
            raise typer.Exit(code=exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


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


# -- train ---------------------------------------------------------------------------------


def _budget_seconds(value: str | None) -> float | None:
    return parse_duration(value) if value is not None else None


def build_run_config(
    file: Path | None,
    config_file: Path | None,
    cli_values: dict[str, dict[str, Any]],
    preset: str | None = None,
) -> RunConfig:
    """Settings, each layer overriding the one before: defaults, ``--preset``,
    ``--config`` file, then the options given on the command line.

    ``cli_values`` holds, per table, the options the user actually gave (None = not
    given). Giving any budget (steps, epochs, time) replaces the default one.
    """
    tables: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "train": {}}
    if preset is not None:
        for name, table in preset_tables(preset).items():
            tables[name].update(table)
    if config_file is not None:
        loaded = read_toml(config_file)
        for name, table in loaded.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{config_file}: [{name}] must be a table")
            tables.setdefault(name, {}).update(table)
    for name, values in cli_values.items():
        given = {k: v for k, v in values.items() if v is not None}
        if name == "train" and any(k in given for k in ("steps", "epochs", "time_s")):
            # A budget on the command line replaces the file's budget entirely.
            for key in ("steps", "epochs", "time_s"):
                tables["train"].pop(key, None)
        tables[name].update(given)
    if file is not None:
        tables["data"]["path"] = str(file)
    return RunConfig.from_dict(tables)


@app.command()
@friendly_errors
def train(
    file: opt.CorpusFile = None,
    config: opt.ConfigOpt = None,
    resume: opt.ResumeOpt = None,
    out: opt.OutOpt = None,
    overwrite: opt.OverwriteOpt = False,
    preset: opt.PresetOpt = None,
    cell: opt.CellOpt = None,
    layers: opt.LayersOpt = None,
    hidden: opt.HiddenOpt = None,
    embed: opt.EmbedOpt = None,
    dropout: opt.DropoutOpt = None,
    batch_size: opt.BatchSizeOpt = None,
    seq_len: opt.SeqLenOpt = None,
    lr: opt.LrOpt = None,
    weight_decay: opt.WeightDecayOpt = None,
    clip: opt.ClipOpt = None,
    warmup: opt.WarmupOpt = None,
    schedule: opt.ScheduleOpt = None,
    steps: opt.StepsOpt = None,
    epochs: opt.EpochsOpt = None,
    time_budget: opt.TimeBudgetOpt = None,
    eval_every: opt.EvalEveryOpt = None,
    save_every: opt.SaveEveryOpt = None,
    sample_length: opt.SampleLengthOpt = None,
    seed: opt.SeedOpt = None,
    val_frac: opt.ValFracOpt = None,
    val_file: opt.ValFileOpt = None,
    encoding: opt.EncodingOpt = None,
    byte_level: opt.BytesOpt = None,
    max_mb: opt.MaxMbOpt = None,
    device: opt.DeviceOpt = None,
    threads: opt.ThreadsOpt = None,
    max_bad_steps: opt.MaxBadStepsOpt = None,
    precision: opt.PrecisionOpt = None,
    quiet: opt.QuietOpt = False,
    json_lines: opt.JsonLinesOpt = False,
    skip_unknown: opt.SkipUnknownOpt = False,
    cache_dir: opt.CacheOpt = None,
) -> None:
    """Train a model on FILE (default: Python's standard library source)."""
    from charrnn import training as library
    from charrnn.corpora import corpus_name
    from charrnn.rundir import default_run_name

    reporter, live, callbacks = _reporting(quiet=quiet, json_lines=json_lines)
    time_s = _budget_seconds(time_budget)
    try:
        if resume is not None:
            architecture = [file, config, preset, cell, layers, hidden, embed, dropout]
            architecture += [byte_level, out]
            if any(v is not None for v in architecture):
                raise ConfigError(
                    "--resume takes its corpus, settings and model from the run; only "
                    "--steps, --epochs and --time may change"
                )
            library.resume(
                resume,
                steps=steps,
                epochs=epochs,
                time_s=time_s,
                reporter=reporter,
                cache_dir=cache_dir,
                skip_unknown=skip_unknown,
                **callbacks,
            )
            return
        run_config = build_run_config(
            file, config, option_tables({**locals(), "time_s": time_s}), preset=preset
        )
        if out is None:
            name = corpus_name(run_config.data.path)
            out = Path("runs") / default_run_name(name, run_config.model.cell)
        library.train(
            run_config,
            out,
            overwrite=overwrite,
            reporter=reporter,
            cache_dir=cache_dir,
            skip_unknown=skip_unknown,
            **callbacks,
        )
    finally:
        if live is not None:
            live.close()


def _reporting(*, quiet: bool, json_lines: bool) -> tuple[Any, Any, dict[str, Any]]:
    """The reporter for --quiet / --json / the live display, and the notice callbacks."""
    from charrnn.display import JsonReporter, LiveReporter
    from charrnn.training import SilentReporter

    live = None
    reporter: Any
    if json_lines:
        reporter = JsonReporter()
    elif quiet:
        reporter = SilentReporter()
    else:
        reporter = live = LiveReporter()
    # Under torchrun the Trainer already silences the reporter of ranks other than 0;
    # notices are printed here, so the same rule applies to them.
    talk = not quiet and not json_lines and os.environ.get("RANK", "0") == "0"

    def on_encode(path: Path) -> None:
        # Worth a word only when the pause is noticeable (about 50 ms per MB).
        if talk and path.stat().st_size > 20_000_000:
            typer.echo(f"encoding {path} (cached for next time)...", err=True)

    def notice(message: str) -> None:
        if talk:
            typer.echo(message, err=True)

    return reporter, live, {"warn": _warn, "on_encode": on_encode, "notice": notice}


# Where each command-line option goes in the settings tables.
_OPTION_KEYS = {
    "encoding": ("data", "encoding"),
    "byte_level": ("data", "byte_level"),
    "val_frac": ("data", "val_frac"),
    "val_file": ("data", "val_file"),
    "max_mb": ("data", "max_mb"),
    "cell": ("model", "cell"),
    "layers": ("model", "num_layers"),
    "hidden": ("model", "hidden_size"),
    "embed": ("model", "embed_size"),
    "dropout": ("model", "dropout"),
    **{
        name: ("train", name)
        for name in (
            "batch_size",
            "seq_len",
            "lr",
            "weight_decay",
            "clip",
            "warmup",
            "schedule",
            "steps",
            "epochs",
            "time_s",
            "eval_every",
            "save_every",
            "sample_length",
            "seed",
            "device",
            "threads",
            "max_bad_steps",
            "precision",
        )
    },
}


def option_tables(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The settings tables from a command's options (None = not given; others ignored)."""
    tables: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "train": {}}
    for name, (section, key) in _OPTION_KEYS.items():
        value = options.get(name)
        if isinstance(value, StrEnum):
            value = value.value
        elif isinstance(value, Path):
            value = str(value)
        tables[section][key] = value
    return tables


# -- compare --------------------------------------------------------------------------------


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{option} takes comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise ConfigError(f"{option} takes positive integers, got {text!r}")
    return values


@app.command()
@friendly_errors
def compare(
    file: opt.CorpusFile = None,
    cells: Annotated[
        str, typer.Option("--cells", help="Comma-separated cells to compare.")
    ] = "rnn,lstm,gru",
    layers_grid: Annotated[
        str,
        typer.Option(
            "--layers", help="Comma-separated layer counts; every combination with --hidden runs."
        ),
    ] = "2",
    hidden_grid: Annotated[
        str, typer.Option("--hidden", help="Comma-separated hidden sizes.")
    ] = "128",
    match_params: Annotated[
        bool,
        typer.Option(
            "--match-params",
            help="Size each cell's hidden layer to about the "
            "parameter count of an LSTM with --hidden (reported in the table).",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Comparison folder. [default: compare/<corpus>]", show_default=False
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue an interrupted comparison in --out, keeping finished runs."
        ),
    ] = False,
    prime: Annotated[
        str,
        typer.Option(
            "--prime",
            help="Priming text for the final samples. [default: a newline]",
            show_default=False,
        ),
    ] = "",
    sample_length: Annotated[
        int, typer.Option("--sample-length", min=0, help="Characters in each final sample.")
    ] = 200,
    config: opt.ConfigOpt = None,
    preset: opt.PresetOpt = None,
    embed: opt.EmbedOpt = None,
    dropout: opt.DropoutOpt = None,
    batch_size: opt.BatchSizeOpt = None,
    seq_len: opt.SeqLenOpt = None,
    lr: opt.LrOpt = None,
    weight_decay: opt.WeightDecayOpt = None,
    clip: opt.ClipOpt = None,
    warmup: opt.WarmupOpt = None,
    schedule: opt.ScheduleOpt = None,
    steps: opt.StepsOpt = None,
    epochs: opt.EpochsOpt = None,
    time_budget: opt.TimeBudgetOpt = None,
    eval_every: opt.EvalEveryOpt = None,
    seed: opt.SeedOpt = None,
    val_frac: opt.ValFracOpt = None,
    val_file: opt.ValFileOpt = None,
    encoding: opt.EncodingOpt = None,
    byte_level: opt.BytesOpt = None,
    max_mb: opt.MaxMbOpt = None,
    device: opt.DeviceOpt = None,
    threads: opt.ThreadsOpt = None,
    quiet: opt.QuietOpt = False,
    cache_dir: opt.CacheOpt = None,
) -> None:
    """Train RNN, LSTM and GRU under equal conditions; show which learns FILE best."""
    from dataclasses import replace

    from charrnn import compare as comparison
    from charrnn.corpora import corpus_name
    from charrnn.display import CompareDisplay, compare_table, stdout_console
    from charrnn.training import load_dataset, with_absolute_paths

    time_s = _budget_seconds(time_budget)
    options = option_tables({**locals(), "time_s": time_s, "save_every": None})
    base = build_run_config(file, config, options, preset=preset)
    # Per-evaluation samples would only slow the runs down; the final ones are compared.
    base = with_absolute_paths(replace(base, train=replace(base.train, sample_length=0)))
    dataset = load_dataset(base, cache_dir=cache_dir)
    runs = comparison.plan(
        base,
        cells=[c.strip() for c in cells.split(",") if c.strip()],
        layers=_int_list(layers_grid, "--layers"),
        hiddens=_int_list(hidden_grid, "--hidden"),
        vocab_size=len(dataset.corpus.vocab),
        match_params=match_params,
    )
    out = out or Path("compare") / corpus_name(base.data.path)
    display = None if quiet else CompareDisplay()
    try:
        results = comparison.run_comparison(
            runs, out, resume_existing=resume, reporter=display, cache_dir=cache_dir
        )
    except TrainingInterrupted as exc:
        raise TrainingInterrupted(
            f"{exc}".split(" (continue with")[0]
            + f"; continue the comparison with the same command and --resume --out {out}"
        ) from None
    finally:
        if display is not None:
            display.close()
    comparison.write_markdown(out, results)
    comparison.plot_curves(out, results, title=f"{corpus_name(base.data.path)}: validation bpc")
    console = stdout_console()
    console.print(compare_table(results))
    if sample_length:
        texts = comparison.samples(
            out, results, prime=prime, length=sample_length, seed=base.train.seed
        )
        for name, text in texts.items():
            console.print(f"[bold]── {name}[/]")
            console.print(Text(prime + text), soft_wrap=True)
    console.print(f"saved in {out}: compare.json, compare.md, curves.png and one run per model")


# -- sample ----------------------------------------------------------------------------------


class _Throttled:
    """Writes bytes at once but flushes at most every 30 ms (a pipe to head still works)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.flushed = time.monotonic()

    def write(self, data: bytes) -> None:
        self.stream.write(data)
        now = time.monotonic()
        if now - self.flushed > 0.03:
            self.stream.flush()
            self.flushed = now

    def flush(self) -> None:
        self.stream.flush()


@app.command()
@friendly_errors
def sample(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="A run directory (its best.pt) or a checkpoint file.", show_default=False
        ),
    ],
    length: Annotated[
        int, typer.Option("--length", "-n", help="Characters to generate (>= 0).")
    ] = 500,
    temperature: Annotated[
        float,
        typer.Option(
            "--temperature",
            "-T",
            help="Sharpness: <1 safer, >1 wilder, 0 = always the most likely character.",
        ),
    ] = 1.0,
    prime: Annotated[
        str,
        typer.Option(
            "--prime",
            "-p",
            help="Text to start from (printed first); '-' reads it "
            "from stdin. [default: a newline, not printed]",
            show_default=False,
        ),
    ] = "",
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            min=0,
            help="Seed for reproducible samples. [default: random]",
            show_default=False,
        ),
    ] = None,
    top_k: Annotated[
        int,
        typer.Option("--top-k", help="Draw only from the k most likely characters; 0 = off."),
    ] = 0,
    top_p: Annotated[
        float,
        typer.Option(
            "--top-p",
            help="Draw from the smallest set of characters whose "
            "probability reaches p, in (0, 1]; 1 = off.",
        ),
    ] = 1.0,
    num_samples: Annotated[
        int,
        typer.Option("--num-samples", "-m", help="Samples drawn together as one batch (>= 1)."),
    ] = 1,
    device: Annotated[
        opt.Device, typer.Option("--device", help="Where to run the model.")
    ] = opt.Device.cpu,
    skip_unknown: opt.SkipUnknownOpt = False,
    precision: opt.SamplePrecisionOpt = opt.SamplePrecision.fp32,
) -> None:
    """Generate text from a trained model, streaming it as it is drawn."""
    import torch

    from charrnn.checkpoint import load_model
    from charrnn.hardware import select_device
    from charrnn.sample import SampleSettings, stream

    if length < 0:
        raise ConfigError(f"--length must be >= 0, got {length}")
    if prime == "-":
        prime = sys.stdin.read()
    settings = SampleSettings(
        temperature=temperature, top_k=top_k or None, top_p=top_p if top_p != 1.0 else None
    )
    model, vocab, _ = load_model(checkpoint, device=select_device(device.value))
    steps = stream(
        model,
        vocab,
        length=length,
        prime=prime,
        settings=settings,
        num_samples=num_samples,
        seed=seed,
        skip_unknown=skip_unknown,
        warn=_warn,
        precision=precision.value,
    )
    out = _Throttled(typer.get_binary_stream("stdout"))
    head = prime.encode("utf-8", "surrogateescape")
    try:
        if num_samples == 1:
            out.write(head)
            for ids in steps:
                out.write(vocab.decode_bytes(ids.numpy()))
            out.write(b"\n")
        else:
            # Drawn together, so held until done, then decoded a whole sample at a time.
            drawn = list(steps)
            rows = torch.stack(drawn, dim=1) if drawn else torch.zeros(num_samples, 0)
            for n, row in enumerate(rows, 1):
                out.flush()
                typer.echo(f"── sample {n}/{num_samples} ──", err=True)
                out.write(head + vocab.decode_bytes(row.long().numpy()) + b"\n")
        out.flush()
    except BrokenPipeError:
        # The reader (e.g. `head`) has gone: stop quietly, like any Unix filter.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass


# -- info, vocab, hello --------------------------------------------------------------------


@app.command()
@friendly_errors
def info(
    checkpoint: Annotated[
        Path,
        typer.Argument(
            help="A run directory (its best.pt) or a checkpoint file.", show_default=False
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
) -> None:
    """Show a checkpoint's settings, size, progress and validation loss."""
    from charrnn.checkpoint import load_checkpoint, model_from_record, resolve_checkpoint
    from charrnn.display import info_dict, info_table, stdout_console

    path = resolve_checkpoint(checkpoint)
    record = load_checkpoint(path)
    model, _, _ = model_from_record(record, path)  # proves the weights match the settings
    record.setdefault("num_parameters", model.num_parameters)
    if as_json:
        typer.echo(json.dumps(info_dict(record), indent=2))
    else:
        stdout_console().print(info_table(path, record))


@app.command()
@friendly_errors
def vocab(
    file: opt.CorpusFile = None,
    encoding: opt.EncodingOpt = None,
    byte_level: opt.BytesOpt = None,
    max_mb: opt.MaxMbOpt = None,
    show: Annotated[int, typer.Option("--show", min=1, help="Most frequent symbols listed.")] = 40,
    rarest: Annotated[int, typer.Option("--rarest", min=0, help="Rarest symbols listed.")] = 10,
    cache_dir: opt.CacheOpt = None,
) -> None:
    """Show a text's vocabulary: size, characters with counts, the rarest ones."""
    from charrnn.corpora import resolve_corpus
    from charrnn.corpus import load_corpus
    from charrnn.display import stdout_console, vocab_table

    path, name = resolve_corpus(file, max_mb=max_mb or opt._DATA.max_mb, cache_dir=cache_dir)
    corpus = load_corpus(
        path,
        encoding=encoding or "utf-8",
        byte_level=bool(byte_level),
        cache_dir=cache_dir,
        name=name,
    )
    console = stdout_console()
    label = name if file is None else str(file)
    for part in vocab_table(corpus.vocab, corpus.counts, label, show=show, rarest=rarest):
        console.print(part)


@app.command()
@friendly_errors
def hello(
    steps: Annotated[int, typer.Option("--steps", min=1, help="Training steps.")] = 300,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed for the initial weights.")] = 0,
) -> None:
    """The lecture's example: a 3-unit RNN learns "hello" (takes a second)."""
    from charrnn.display import hello_tables, stdout_console
    from charrnn.hello import run_hello

    result = run_hello(steps=steps, seed=seed)
    console = stdout_console()
    for part in hello_tables(result):
        console.print(part)
    console.print(
        f"sampled from 'h', always taking the most likely next character: [bold]{result.sample}[/]"
    )


# -- corpus --------------------------------------------------------------------------------

corpus_app = typer.Typer(
    help="List, generate and download corpora (train on one with corpus:NAME).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(corpus_app, name="corpus")


@corpus_app.command("list")
@friendly_errors
def corpus_list(cache_dir: opt.CacheOpt = None) -> None:
    """Every corpus charrnn knows: name, kind, size, what it is good for."""
    from charrnn.corpora import list_corpora
    from charrnn.display import corpus_table, stdout_console

    stdout_console().print(corpus_table(list_corpora(cache_dir)))


@corpus_app.command("make")
@friendly_errors
def corpus_make(
    name: Annotated[
        str,
        typer.Argument(
            help="A generated corpus (see corpus list), or python-stdlib.", show_default=False
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write.", show_default=False)],
    size: Annotated[
        int, typer.Option("--size", help="Characters to generate (whole lines, at least 1).")
    ] = 1_000_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (>= 0).")] = 0,
    distance: Annotated[
        int | None,
        typer.Option(
            "--distance",
            help="How far back the answer lies, in characters "
            "(recall, brackets). [default: per generator]",
            show_default=False,
        ),
    ] = None,
    max_mb: opt.MaxMbOpt = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing file.")
    ] = False,
) -> None:
    """Write a generated corpus to a file and report its best achievable loss."""
    from charrnn.corpora import DEFAULT_CORPUS, build_stdlib_text, write_atomic
    from charrnn.generators import generate, unigram_entropy

    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite to replace it")
    if name == DEFAULT_CORPUS:
        write_atomic(out, build_stdlib_text(max_mb or opt._DATA.max_mb))
        typer.echo(f"wrote {out}: {out.stat().st_size:,} bytes of Python source", err=True)
        return
    made = generate(name, size=size, seed=seed, distance=distance)
    write_atomic(out, made.text)
    counts = Counter(made.text)
    unigram = unigram_entropy(tuple(counts.values()))
    typer.echo(
        f"wrote {out}: {len(made.text):,} characters, {len(counts)} symbols\n"
        f"best achievable loss {made.floor_nats:.4f} nats = {made.floor_bpc:.4f} bpc; "
        f"unigram baseline {unigram:.4f} nats = {unigram / 0.6931471805599453:.4f} bpc",
        err=True,
    )


@corpus_app.command("get")
@friendly_errors
def corpus_get(
    name: Annotated[
        str, typer.Argument(help="A downloadable corpus (see corpus list).", show_default=False)
    ],
    cache_dir: opt.CacheOpt = None,
) -> None:
    """Download a classic corpus into the cache, verify it, and print its path."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from charrnn.corpora import DOWNLOADS, get_download
    from charrnn.display import stderr_console

    if name not in DOWNLOADS:
        raise ConfigError(
            f"no downloadable corpus named {name!r}: choose one of {', '.join(DOWNLOADS)}"
        )
    entry = DOWNLOADS[name]
    with Progress(
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=stderr_console(),
        transient=True,
    ) as bar:
        task = bar.add_task(name, total=entry.archive_size or entry.size)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        path = get_download(entry, cache_dir, progress=progress)
    typer.echo(f"{name}: {path.stat().st_size:,} bytes, verified ({entry.check})", err=True)
    typer.echo(str(path))


def main() -> None:
    """Console-script entry point."""
    app()
