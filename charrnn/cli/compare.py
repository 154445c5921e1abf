"""``charrnn compare``: RNN vs LSTM vs GRU under equal conditions."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.text import Text

from charrnn.cli import args as arg
from charrnn.cli import model_options as model_opt
from charrnn.cli import options as opt
from charrnn.cli.errors import friendly_errors
from charrnn.config import layered, overrides


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"takes comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise typer.BadParameter(f"takes positive integers, got {text!r}")
    return values


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@friendly_errors
def compare(
    file: opt.CorpusFile = None,
    cells: arg.CellsOpt = "rnn,lstm,gru",
    layers_grid: arg.LayersGridOpt = "2",
    hidden_grid: arg.HiddenGridOpt = "128",
    match_params: arg.MatchParamsOpt = False,
    out: arg.CompareOutOpt = None,
    resume: arg.CompareResumeOpt = False,
    prime: arg.ComparePrimeOpt = "",
    sample_length: arg.CompareSampleLengthOpt = 200,
    config: opt.ConfigOpt = None,
    preset: opt.PresetOpt = None,
    embed: model_opt.EmbedOpt = None,
    dropout: model_opt.DropoutOpt = None,
    batch_size: opt.BatchSizeOpt = None,
    seq_len: opt.SeqLenOpt = None,
    lr: opt.LrOpt = None,
    weight_decay: opt.WeightDecayOpt = None,
    clip: opt.ClipOpt = None,
    warmup: opt.WarmupOpt = None,
    schedule: opt.ScheduleOpt = None,
    steps: opt.StepsOpt = None,
    epochs: opt.EpochsOpt = None,
    time_s: opt.TimeBudgetOpt = None,
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
    from charrnn.cli.display_compare import CompareDisplay, compare_table
    from charrnn.cli.live import stdout_console
    from charrnn.compare.run import compare as run_compare
    from charrnn.inspection.measures import flow_summary

    given = overrides(
        encoding=encoding,
        byte_level=byte_level,
        val_frac=val_frac,
        val_file=val_file,
        max_mb=max_mb,
        embed=embed,
        dropout=dropout,
        batch_size=batch_size,
        seq_len=seq_len,
        lr=lr,
        weight_decay=weight_decay,
        clip=clip,
        warmup=warmup,
        schedule=schedule,
        steps=steps,
        epochs=epochs,
        time_s=time_s,
        eval_every=eval_every,
        seed=seed,
        device=device,
        threads=threads,
    )
    base = layered(file=file, config_file=config, preset=preset, given=given)
    display = None if quiet else CompareDisplay()
    try:
        result = run_compare(
            base,
            cells=_names(cells),
            layers=_int_list(layers_grid),
            hiddens=_int_list(hidden_grid),
            out=out,
            match_params=match_params,
            resume_existing=resume,
            prime=prime,
            sample_length=sample_length,
            reporter=display,
            cache_dir=cache_dir,
        )
    finally:
        if display is not None:
            display.close()
    console = stdout_console()
    console.print(compare_table(result.results))
    for name, text in result.samples.items():
        console.print(f"[bold]── {escape(name)}[/]")
        console.print(Text(prime + text), soft_wrap=True)
    for name, flow in result.flows.items():
        console.print(Text(f"gradient flow, {name}: {flow_summary(flow)}"))
    names = ", ".join(path.name for path in result.files)
    console.print(Text(f"saved in {result.out}: {names} and one run per model"))
