"""Typer arguments and options of single commands (sample, compare, info, corpus make).

The options that set a run's settings, shared by ``train`` and ``compare``, are in
:mod:`charrnn.cli.options`. Ranges are declared here, so Typer rejects a value out of
range as a usage error (exit code 2) before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

CheckpointArg = Annotated[
    Path,
    typer.Argument(help="A run directory (its best.pt) or a checkpoint file.", show_default=False),
]

# -- train ----------------------------------------------------------------------------------

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

# -- sample ---------------------------------------------------------------------------------

LengthOpt = Annotated[
    int | None,
    typer.Option(
        "--length",
        "-n",
        min=0,
        help="How much to generate: characters, or whole items for a run trained with "
        "--docs. [default: 500 characters, 20 items]",
        show_default=False,
    ),
]
TemperatureOpt = Annotated[
    float,
    typer.Option(
        "--temperature",
        "-T",
        min=0.0,
        max=100.0,
        help="Sharpness: <1 safer, >1 wilder, 0 = always the most likely character.",
    ),
]
PrimeOpt = Annotated[
    str,
    typer.Option(
        "--prime",
        "-p",
        help="Text to start from (printed first); '-' reads it "
        "from stdin. [default: a newline, not printed]",
        show_default=False,
    ),
]
SampleSeedOpt = Annotated[
    int | None,
    typer.Option(
        "--seed",
        min=0,
        max=2**63 - 1,
        help="Seed for reproducible samples. [default: random]",
        show_default=False,
    ),
]
TopKOpt = Annotated[
    int,
    typer.Option("--top-k", min=0, help="Draw only from the k most likely characters; 0 = off."),
]


def _positive(value: float) -> float:
    if value <= 0:
        raise typer.BadParameter(f"{value} is not in the range 0<x<=1.")
    return value


TopPOpt = Annotated[
    float,
    typer.Option(
        "--top-p",
        min=0.0,
        max=1.0,
        callback=_positive,
        help="Draw from the smallest set of characters whose "
        "probability reaches p, in (0, 1]; 1 = off.",
    ),
]
NumSamplesOpt = Annotated[
    int,
    typer.Option(
        "--num-samples",
        "-m",
        min=1,
        max=100_000,
        help="Samples drawn together as one batch (1-100000).",
    ),
]

StopOpt = Annotated[
    str | None,
    typer.Option(
        "--stop",
        help="End each sample where this text appears (left out), e.g. $'\\n\\n' for a "
        "blank line; --length still caps it.",
        show_default=False,
    ),
]
MinCharsOpt = Annotated[
    int,
    typer.Option("--min-chars", min=0, help="No sample or item ends before this many characters."),
]
NovelOpt = Annotated[
    bool,
    typer.Option(
        "--novel",
        help="Never hand back training text: items already in the training set are "
        "redrawn; in a stream, a character that would complete a --novel-span long "
        "stretch of the training text is redrawn. Says on stderr how many were new.",
    ),
]
NovelSpanOpt = Annotated[
    int,
    typer.Option(
        "--novel-span",
        min=2,
        max=1000,
        help="For --novel on a stream: the shortest stretch of training text that counts "
        "as copied.",
    ),
]
BeamOpt = Annotated[
    int | None,
    typer.Option(
        "--beam",
        min=1,
        max=1000,
        help="Beam search with this many beams: the most likely continuation instead of "
        "a random one (temperature, top-k and top-p do not apply).",
        show_default=False,
    ),
]
SampleOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Write the samples to this file (atomically) and the settings and seed that "
        "drew them to FILE.json, instead of printing them.",
        show_default=False,
    ),
]

# -- compare --------------------------------------------------------------------------------

CellsOpt = Annotated[str, typer.Option("--cells", help="Comma-separated cells to compare.")]
LayersGridOpt = Annotated[
    str,
    typer.Option(
        "--layers", help="Comma-separated layer counts; every combination with --hidden runs."
    ),
]
HiddenGridOpt = Annotated[str, typer.Option("--hidden", help="Comma-separated hidden sizes.")]
MatchParamsOpt = Annotated[
    bool,
    typer.Option(
        "--match-params",
        help="Size each cell's hidden layer to about the "
        "parameter count of an LSTM with --hidden (reported in the table).",
    ),
]
CompareOutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out", "-o", help="Comparison folder. [default: compare/<corpus>]", show_default=False
    ),
]
CompareResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume", help="Continue an interrupted comparison in --out, keeping finished runs."
    ),
]
ComparePrimeOpt = Annotated[
    str,
    typer.Option(
        "--prime",
        help="Priming text for the final samples. [default: a newline]",
        show_default=False,
    ),
]
CompareSampleLengthOpt = Annotated[
    int, typer.Option("--sample-length", min=0, help="Characters in each final sample.")
]

# -- corpus make ----------------------------------------------------------------------------

GeneratorArg = Annotated[
    str,
    typer.Argument(
        help="A generated corpus (see corpus list), or python-stdlib.", show_default=False
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
