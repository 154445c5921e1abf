"""``charrnn train``: settings from the options, one library call, the live display."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charrnn.cli import options as opt
from charrnn.cli.errors import UsageError, friendly_errors
from charrnn.events import Reporter
from charrnn.layering import Layers, overrides

InitFromOpt = Annotated[
    Path | None,
    typer.Option(
        "--init-from",
        help="Start from this trained run's weights (fine-tuning): its model shape is kept, "
        "characters FILE has and it lacks are added.",
        show_default=False,
    ),
]


TensorBoardOpt = Annotated[
    bool,
    typer.Option(
        "--tensorboard",
        help="Also write loss, bpc, learning rate and samples as TensorBoard events in "
        "RUN/tensorboard (needs the tensorboard extra).",
    ),
]


@friendly_errors
def train(
    files: opt.CorpusFiles = None,
    config: opt.ConfigOpt = None,
    resume: opt.ResumeOpt = None,
    init_from: InitFromOpt = None,
    out: opt.OutOpt = None,
    overwrite: opt.OverwriteOpt = False,
    preset: opt.PresetOpt = None,
    cell: opt.CellOpt = None,
    layers: opt.LayersOpt = None,
    hidden: opt.HiddenOpt = None,
    embed: opt.EmbedOpt = None,
    dropout: opt.DropoutOpt = None,
    input_dropout: opt.InputDropoutOpt = None,
    embed_dropout: opt.EmbedDropoutOpt = None,
    weight_drop: opt.WeightDropOpt = None,
    forget_bias: opt.ForgetBiasOpt = None,
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
    eval_chars: opt.EvalCharsOpt = None,
    average: opt.AverageOpt = None,
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
    strict: opt.StrictOpt = False,
    include_hidden: opt.IncludeHiddenOpt = False,
    tensorboard: TensorBoardOpt = False,
) -> None:
    """Train a model on FILE (default: Python's standard library source); several
    files or folders are joined into one corpus, - reads standard input.

    Model and training settings you do not give are chosen for the budget, the corpus
    and this machine (--preset auto, said in one line at start); the defaults below
    apply under a named --preset.
    """
    from charrnn.cli import command_started, exit_quickly
    from charrnn.cli.live import JsonReporter, LiveReporter, Quiet
    from charrnn.training import launch

    started = command_started()
    exit_quickly()

    if resume is not None:
        model = [dropout, input_dropout, embed_dropout, weight_drop, forget_bias]
        fixed = [
            files or None,
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
                started=started,
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
            eval_chars=eval_chars,
            average=average,
            patience=patience,
            save_every=save_every,
            sample_length=sample_length,
            seed=seed,
            device=device,
            threads=threads,
            max_bad_steps=max_bad_steps,
            precision=precision,
        )
        from charrnn.data.sources import resolve_inputs

        file = resolve_inputs(
            files or [],
            encoding=encoding or "utf-8",
            strict=strict,
            hidden=include_hidden,
            byte_level=bool(byte_level),
            cache_dir=cache_dir,
            reporter=reporter,
        )
        if init_from is not None and any(
            v is not None for v in (cell, layers, hidden, embed, byte_level)
        ):
            raise UsageError(
                "--init-from keeps the run's model shape and vocabulary kind: drop "
                "--cell, --layers, --hidden, --embed and --bytes/--chars"
            )
        launch.train(
            Layers(file=file, config_file=config, preset=preset, given=given),
            out,
            overwrite=overwrite,
            reporter=reporter,
            cache_dir=cache_dir,
            skip_unknown=skip_unknown,
            init_from=init_from,
            started=started,
        )
    finally:
        if isinstance(shown, LiveReporter):
            shown.close()  # stops the bar; safe on a closed stream
        if board is not None:
            board.close()  # the TensorBoard files
