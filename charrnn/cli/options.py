"""Typer option types shared by the commands (each with its help text and default):
the data, the model's shape and regularisation, training and the shared arguments.

Options whose default lives in the settings dataclasses default to None here, so the
CLI can tell "not given" from "given": only given options override a preset or a
``--config`` file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charrnn.config import (
    Cell,
    DataConfig,
    Device,
    Docs,
    ModelConfig,
    Precision,
    SamplePrecision,
    Schedule,
    TrainConfig,
    Windows,
    parse_duration,
)
from charrnn.errors import ConfigError
from charrnn.presets import PRESETS

_D = TrainConfig()
_DATA = DataConfig()


CorpusFiles = Annotated[
    list[Path] | None,
    typer.Argument(
        metavar="FILE",
        help="UTF-8 text file, several files or folders (joined into one corpus), or - "
        "for standard input. Omitted: the Python standard library's own "
        "source (built from this interpreter, no download).",
        show_default=False,
    ),
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Refuse binary, undecodable or empty files in a folder or list, and entries "
        "that are not regular files (FIFOs, devices), instead of skipping them.",
    ),
]
IncludeHiddenOpt = Annotated[
    bool,
    typer.Option(
        "--include-hidden",
        help="Read a folder's hidden files and folders too (names starting with '.', "
        "such as .env); left out by default. Git's ignore rules apply either way.",
    ),
]
EncodingOpt = Annotated[
    str | None,
    typer.Option("--encoding", help="Codec of the text file. [default: utf-8]", show_default=False),
]
BytesOpt = Annotated[
    bool | None,
    typer.Option(
        "--bytes/--chars",
        help="Byte-level vocabulary (256 symbols, any file) instead of characters. "
        "[default: --chars]",
        show_default=False,
    ),
]
DocsOpt = Annotated[
    Docs | None,
    typer.Option(
        "--docs",
        help="Learn the text as a list of items: lines (one per line, e.g. names) or "
        "blank-lines (paragraphs, poems); each starts fresh, ends with its own line "
        "break, and validation holds out whole items. [default: none, one stream]",
        show_default=False,
    ),
]
MaxMbOpt = Annotated[
    float | None,
    typer.Option(
        "--max-mb",
        help=f"Size of the default corpus in MB. [default: {_DATA.max_mb:g}]",
        show_default=False,
        min=0.01,
    ),
]
CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Where encoded corpora are cached. [default: $CHARRNN_CACHE or ~/.cache/charrnn]",
        show_default=False,
        envvar="CHARRNN_CACHE",
    ),
]
SkipUnknownOpt = Annotated[
    bool,
    typer.Option(
        "--skip-unknown",
        help="Drop characters the vocabulary lacks (with a warning) instead of failing.",
    ),
]


ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML settings file ([data], [model], [train] tables); "
        "options on the command line override it.",
        show_default=False,
    ),
]


ResumeOpt = Annotated[
    Path | None,
    typer.Option(
        "--resume",
        help="Continue the run in this directory from its last.pt "
        "(a new --steps/--epochs/--time extends the budget).",
        show_default=False,
    ),
]


def _run_path(text: str) -> Path:
    if not text.strip():
        raise typer.BadParameter("is empty: name a run directory")
    return Path(text)


OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Run directory. [default: runs/<corpus>-<cell>]",
        show_default=False,
        parser=_run_path,
        metavar="<path>",
    ),
]


OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace the checkpoints of an existing run.")
]

# Every command that writes a file the user names follows charrnn.files.output_target:
# an existing file is replaced only when asked, a device or pipe is written through.
ReplaceFileOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace the output file if it exists.")
]


PresetOpt = Annotated[
    str | None,
    typer.Option(
        "--preset",
        help="Settings to start from: auto (the default: chosen from the budget, the "
        f"corpus and this machine's measured speed) or {', '.join(PRESETS)} (see the "
        "docs/runs.md); a --config file and other options override it.",
        show_default=False,
    ),
]


PatienceOpt = Annotated[
    int | None,
    typer.Option(
        "--patience",
        min=1,
        help="Stop after this many evaluations without a new best validation loss "
        "(best.pt keeps the best model). [default: off]",
        show_default=False,
    ),
]


WindowsOpt = Annotated[
    Windows | None,
    typer.Option(
        "--windows",
        help="streams: B contiguous streams, state carried from window to window "
        "(long context); random: each window from anywhere in the text, from a zero "
        f"state (more varied batches: better on short budgets). [default: {_D.windows}]",
        show_default=False,
    ),
]


BatchSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        "-b",
        min=1,
        help=f"Parallel text streams per step. [default: {_D.batch_size}]",
        show_default=False,
    ),
]


SeqLenOpt = Annotated[
    int | None,
    typer.Option(
        "--seq-len",
        "-t",
        min=1,
        help=f"Characters per window = backprop length. [default: {_D.seq_len}]",
        show_default=False,
    ),
]


LrOpt = Annotated[
    float | None,
    typer.Option(
        "--lr", help=f"Peak learning rate (AdamW). [default: {_D.lr:g}]", show_default=False
    ),
]


WeightDecayOpt = Annotated[
    float | None,
    typer.Option(
        "--weight-decay",
        help=f"AdamW weight decay on weight matrices. [default: {_D.weight_decay:g}]",
        show_default=False,
    ),
]


ClipOpt = Annotated[
    float | None,
    typer.Option(
        "--clip",
        help=f"Gradient-norm clipping threshold; 0 = off. [default: {_D.clip:g}]",
        show_default=False,
    ),
]


WarmupOpt = Annotated[
    float | None,
    typer.Option(
        "--warmup",
        help=f"Linear warm-up, as a fraction of the budget (0-0.5). [default: {_D.warmup:g}]",
        show_default=False,
    ),
]


ScheduleOpt = Annotated[
    Schedule | None,
    typer.Option(
        "--schedule",
        help="Decay after warm-up: cosine to 0.1 x lr (min_lr_frac in a --config file), step "
        f"(x0.3 at 50%, x0.1 at 75%), or constant. [default: {_D.schedule}]",
        show_default=False,
    ),
]


StepsOpt = Annotated[
    int | None,
    typer.Option(
        "--steps",
        min=1,
        help=f"Budget in optimizer steps. [default: {_D.steps} when no budget is given]",
        show_default=False,
    ),
]


EpochsOpt = Annotated[
    float | None,
    typer.Option(
        "--epochs",
        help="Budget in passes over the training text (may be fractional).",
        show_default=False,
    ),
]


def _seconds(text: str) -> float:
    try:
        return parse_duration(text)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


TimeBudgetOpt = Annotated[
    float | None,
    typer.Option(
        "--time",
        help="Budget in training time, e.g. 90s, 10m, 1h30m.",
        show_default=False,
        parser=_seconds,
        metavar="DURATION",
    ),
]


EvalEveryOpt = Annotated[
    int | None,
    typer.Option(
        "--eval-every",
        min=1,
        help="Steps between validations (and samples). [default: at each tenth of the "
        "budget, fewer if they would take over 8% of a --time budget]",
        show_default=False,
    ),
]


EvalCharsOpt = Annotated[
    int | None,
    typer.Option(
        "--eval-chars",
        min=0,
        help="Characters each validation during training reads: a fixed, seeded part of "
        "the validation text (0: all of it). The final validation reads all of it. "
        "[default: sized to take about 8% of the budget]",
        show_default=False,
    ),
]


AverageOpt = Annotated[
    bool | None,
    typer.Option(
        "--average/--no-average",
        help="Keep a running average of the weights over about the last tenth of the "
        "steps, validate it beside them and keep whichever is better. [default: on]",
        show_default=False,
    ),
]


SaveEveryOpt = Annotated[
    int | None,
    typer.Option(
        "--save-every",
        min=1,
        help=f"Steps between saves of last.pt. [default: {_D.save_every}]",
        show_default=False,
    ),
]


SampleLengthOpt = Annotated[
    int | None,
    typer.Option(
        "--sample-length",
        min=0,
        help=f"Characters sampled at each validation; 0 = none. [default: {_D.sample_length}]",
        show_default=False,
    ),
]


SeedOpt = Annotated[
    int | None,
    typer.Option(
        "--seed",
        min=0,
        max=2**63 - 1,
        help=f"Random seed. [default: {_D.seed}]",
        show_default=False,
    ),
]


ValFracOpt = Annotated[
    float | None,
    typer.Option(
        "--val-frac",
        help=f"Share of the text (its end) held out for validation. [default: {_DATA.val_frac:g}]",
        show_default=False,
    ),
]


ValFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--val-file",
        help="Separate validation text (instead of --val-frac).",
        show_default=False,
    ),
]


DeviceOpt = Annotated[
    Device | None,
    typer.Option(
        "--device",
        help="auto picks cuda, then mps, then cpu. [default: auto]",
        show_default=False,
    ),
]


ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads", min=1, help="CPU threads. [default: torch's choice]", show_default=False
    ),
]


QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Show nothing while training.")]


JsonLinesOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON object per validation to stdout.")
]


MaxBadStepsOpt = Annotated[
    int | None,
    typer.Option(
        "--max-bad-steps",
        min=1,
        help="Steps in a row with a non-finite loss or gradient (each skipped) before "
        f"training stops. [default: {_D.max_bad_steps}]",
        show_default=False,
    ),
]


PrecisionOpt = Annotated[
    Precision | None,
    typer.Option(
        "--precision",
        help="Arithmetic of the forward pass: fp32, bf16 (autocast; CPUs with bf16 "
        "instructions, recent GPUs), fp16 (autocast with a gradient scaler; CUDA only) or "
        "auto (bf16 where the device has it natively, else fp32). "
        f"[default: {_D.precision}]",
        show_default=False,
    ),
]


SamplePrecisionOpt = Annotated[
    SamplePrecision,
    typer.Option(
        "--precision",
        help="Weights used while drawing: fp32, or bf16 (about 1.5x faster on CPUs with "
        "bf16 instructions; the text differs from fp32's for the same seed).",
    ),
]


_M = ModelConfig()


CellOpt = Annotated[
    Cell | None,
    typer.Option("--cell", help=f"Recurrent cell. [default: {_M.cell}]", show_default=False),
]


LayersOpt = Annotated[
    int | None,
    typer.Option(
        "--layers",
        min=1,
        help=f"Recurrent layers. [default: {_M.num_layers}]",
        show_default=False,
    ),
]


HiddenOpt = Annotated[
    int | None,
    typer.Option(
        "--hidden",
        min=1,
        help=f"Hidden units per layer. [default: {_M.hidden_size}]",
        show_default=False,
    ),
]


EmbedOpt = Annotated[
    int | None,
    typer.Option(
        "--embed",
        min=0,
        help=f"Character embedding size; 0 = one-hot inputs. [default: {_M.embed_size}]",
        show_default=False,
    ),
]


DropoutOpt = Annotated[
    float | None,
    typer.Option(
        "--dropout",
        min=0.0,
        max=0.95,
        help="Locked dropout between layers and before the output (one mask per "
        f"sequence), 0-0.95. [default: {_M.dropout}]",
        show_default=False,
    ),
]


InputDropoutOpt = Annotated[
    float | None,
    typer.Option(
        "--input-dropout",
        min=0.0,
        max=0.95,
        help=f"Locked dropout on the model's inputs: one mask per sequence. "
        f"[default: {_M.input_dropout}]",
        show_default=False,
    ),
]

EmbedDropoutOpt = Annotated[
    float | None,
    typer.Option(
        "--embed-dropout",
        min=0.0,
        max=0.95,
        help=f"Share of characters whose embedding is dropped from a batch. "
        f"[default: {_M.embed_dropout}]",
        show_default=False,
    ),
]

WeightDropOpt = Annotated[
    float | None,
    typer.Option(
        "--weight-drop",
        min=0.0,
        max=0.95,
        help=f"DropConnect on the recurrent weight matrices, one mask per batch. "
        f"[default: {_M.weight_drop}]",
        show_default=False,
    ),
]


ForgetBiasOpt = Annotated[
    float | None,
    typer.Option(
        "--forget-bias",
        min=-10.0,
        max=10.0,
        help=f"Starting bias of the LSTM's forget gates. [default: {_M.forget_bias:g}]",
        show_default=False,
    ),
]


CheckpointArg = Annotated[
    Path,
    typer.Argument(
        help="A run directory (its best.pt), a checkpoint file, or a shared model folder.",
        show_default=False,
        metavar="RUN",
    ),
]
