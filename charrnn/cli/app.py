"""The ``charrnn`` command line: parse options, call one library function, render.

A :class:`CharRNNError` (a domain error: a bad file, a damaged checkpoint, settings
that contradict each other) becomes one line on stderr and exit code 1; a usage error
(an unknown option, a number out of range) one line and exit code 2. Anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from charrnn._version import __version__
from charrnn.cli import args as arg
from charrnn.cli import model_options as model_opt
from charrnn.cli import options as opt
from charrnn.cli.compare import compare
from charrnn.cli.corpus import corpus_app
from charrnn.cli.errors import OneLineErrors, UsageError, friendly_errors
from charrnn.cli.export import export
from charrnn.cli.inspect import inspect
from charrnn.cli.sample import sample
from charrnn.cli.score import score
from charrnn.config import RunConfig, Tables, layered, overrides
from charrnn.events import Reporter
from charrnn.presets import AUTO

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


# -- train ---------------------------------------------------------------------------------


@app.command()
@friendly_errors
def train(
    file: opt.CorpusFile = None,
    config: opt.ConfigOpt = None,
    resume: opt.ResumeOpt = None,
    init_from: arg.InitFromOpt = None,
    out: opt.OutOpt = None,
    overwrite: opt.OverwriteOpt = False,
    preset: opt.PresetOpt = None,
    cell: model_opt.CellOpt = None,
    layers: model_opt.LayersOpt = None,
    hidden: model_opt.HiddenOpt = None,
    embed: model_opt.EmbedOpt = None,
    dropout: model_opt.DropoutOpt = None,
    input_dropout: model_opt.InputDropoutOpt = None,
    embed_dropout: model_opt.EmbedDropoutOpt = None,
    weight_drop: model_opt.WeightDropOpt = None,
    forget_bias: model_opt.ForgetBiasOpt = None,
    batch_size: opt.BatchSizeOpt = None,
    seq_len: opt.SeqLenOpt = None,
    windows: opt.WindowsOpt = None,
    lr: opt.LrOpt = None,
    weight_decay: opt.WeightDecayOpt = None,
    clip: opt.ClipOpt = None,
    warmup: opt.WarmupOpt = None,
    schedule: opt.ScheduleOpt = None,
    steps: opt.StepsOpt = None,
    epochs: opt.EpochsOpt = None,
    time_s: opt.TimeBudgetOpt = None,
    eval_every: opt.EvalEveryOpt = None,
    patience: opt.PatienceOpt = None,
    save_every: opt.SaveEveryOpt = None,
    sample_length: opt.SampleLengthOpt = None,
    seed: opt.SeedOpt = None,
    val_frac: opt.ValFracOpt = None,
    val_file: opt.ValFileOpt = None,
    encoding: opt.EncodingOpt = None,
    byte_level: opt.BytesOpt = None,
    docs: opt.DocsOpt = None,
    max_mb: opt.MaxMbOpt = None,
    device: opt.DeviceOpt = None,
    threads: opt.ThreadsOpt = None,
    max_bad_steps: opt.MaxBadStepsOpt = None,
    precision: opt.PrecisionOpt = None,
    quiet: opt.QuietOpt = False,
    json_lines: opt.JsonLinesOpt = False,
    skip_unknown: opt.SkipUnknownOpt = False,
    cache_dir: opt.CacheOpt = None,
    tensorboard: arg.TensorBoardOpt = False,
) -> None:
    """Train a model on FILE (default: Python's standard library source).

    Model and training settings you do not give are chosen for the budget, the corpus
    and this machine (--preset auto, said in one line at start); the defaults below
    apply under a named --preset.
    """
    from charrnn.cli.live import JsonReporter, LiveReporter, Quiet
    from charrnn.data.catalog import corpus_name
    from charrnn.rundir import default_run_name
    from charrnn.training.finetune import Start, source_tables
    from charrnn.training import launch

    if resume is not None:
        model = [dropout, input_dropout, embed_dropout, weight_drop, forget_bias]
        fixed = [
            file,
            config,
            preset,
            cell,
            layers,
            hidden,
            embed,
            *model,
            byte_level,
            docs,
            out,
            init_from,
        ]
        if any(v is not None for v in fixed):
            raise UsageError(
                "--resume takes its corpus, settings and model from the run; only "
                "--steps, --epochs and --time may change"
            )
    shown = JsonReporter() if json_lines else Quiet() if quiet else LiveReporter()
    reporter: Reporter = shown
    board = None
    if tensorboard:
        from charrnn.training.tensorboard import TensorBoardReporter

        reporter = board = TensorBoardReporter(shown)
    try:
        if resume is not None:
            launch.resume(
                resume,
                steps=steps,
                epochs=epochs,
                time_s=time_s,
                reporter=reporter,
                cache_dir=cache_dir,
                skip_unknown=skip_unknown,
            )
            return
        given = overrides(
            encoding=encoding,
            byte_level=byte_level,
            docs=docs,
            val_frac=val_frac,
            val_file=val_file,
            max_mb=max_mb,
            cell=cell,
            layers=layers,
            hidden=hidden,
            embed=embed,
            dropout=dropout,
            input_dropout=input_dropout,
            embed_dropout=embed_dropout,
            weight_drop=weight_drop,
            forget_bias=forget_bias,
            batch_size=batch_size,
            seq_len=seq_len,
            windows=windows,
            lr=lr,
            weight_decay=weight_decay,
            clip=clip,
            warmup=warmup,
            schedule=schedule,
            steps=steps,
            epochs=epochs,
            time_s=time_s,
            eval_every=eval_every,
            patience=patience,
            save_every=save_every,
            sample_length=sample_length,
            seed=seed,
            device=device,
            threads=threads,
            max_bad_steps=max_bad_steps,
            precision=precision,
        )
        start = None
        if init_from is not None:
            if any(v is not None for v in (cell, layers, hidden, embed, byte_level)):
                raise UsageError(
                    "--init-from keeps the run's model shape and vocabulary kind: drop "
                    "--cell, --layers, --hidden, --embed and --bytes/--chars"
                )
            start = Start.load(init_from)
            given = {
                **given,
                **{
                    k: {**given.get(k, {}), **v} for k, v in source_tables(start.checkpoint).items()
                },
            }
            given["train"] = {**given.get("train", {}), "init_from": str(start.run)}
        settings = layered(file=file, config_file=config, preset=preset, given=given)
        settle = None
        if preset in (None, AUTO):

            def settle(chosen: Tables) -> RunConfig:
                return layered(file=file, config_file=config, chosen=chosen, given=given)

        if out is None:
            name = corpus_name(settings.data.path)
            out = Path("runs") / default_run_name(name, settings.model.cell)
        launch.train(
            settings,
            out,
            overwrite=overwrite,
            reporter=reporter,
            cache_dir=cache_dir,
            skip_unknown=skip_unknown,
            settle=settle,
            start=start,
        )
    finally:
        if isinstance(shown, LiveReporter):
            shown.close()  # stops the bar; safe on a closed stream
        if board is not None:
            board.close()  # the TensorBoard files


app.command()(compare)
app.command()(sample)
app.command()(score)
app.command()(export)
app.command()(inspect)


# -- info, vocab, hello --------------------------------------------------------------------


@app.command()
@friendly_errors
def info(
    checkpoint: arg.CheckpointArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
) -> None:
    """Show a checkpoint's settings, size, progress and validation loss."""
    from charrnn.checkpoint import check_weights, load_checkpoint, resolve_checkpoint
    from charrnn.cli.live import info_dict, info_table, stdout_console

    path = resolve_checkpoint(checkpoint)
    record = load_checkpoint(path)
    check_weights(record, path)  # the weights fit the settings, without building the model
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
    from charrnn.cli.live import stdout_console, vocab_table
    from charrnn.data.catalog import resolve_corpus
    from charrnn.data.text import load_corpus

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
    seed: Annotated[
        int, typer.Option("--seed", min=0, max=2**63 - 1, help="Seed for the initial weights.")
    ] = 0,
    page: Annotated[
        Path | None,
        typer.Option(
            "--html",
            help="Also write the four steps, hidden states and predictions before and after "
            "training as a page to this file.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """The lecture's example: a 3-unit RNN learns "hello" (takes a second)."""
    from charrnn.cli.live import hello_tables, stdout_console
    from charrnn.inspection.hello import run_hello

    result = run_hello(steps=steps, seed=seed)
    if page is not None:
        from charrnn.errors import ConfigError
        from charrnn.files import atomic_write_text
        from charrnn.inspection.hello_page import hello_page

        try:
            atomic_write_text(page, hello_page(result))
        except OSError as exc:
            raise ConfigError(f"cannot write {page}: {exc.strerror}") from None
        typer.echo(f"wrote {page} — open it in a browser", err=True)
    console = stdout_console()
    for part in hello_tables(result):
        console.print(part)
    console.print(
        f"sampled from 'h', always taking the most likely next character: [bold]{result.sample}[/]"
    )


app.add_typer(corpus_app, name="corpus")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C before a command started (while loading, say)
        sys.stderr.write("interrupted\n")
        sys.exit(130)
