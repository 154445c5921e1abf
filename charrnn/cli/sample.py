"""``charrnn sample``: stream text from a trained model to stdout."""

from __future__ import annotations

import codecs
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

from charrnn.cli import options as opt
from charrnn.cli.errors import UsageError, friendly_errors
from charrnn.cli.live import shown
from charrnn.config import Device, Docs, SamplePrecision

if TYPE_CHECKING:
    from charrnn.data.vocab import Vocab
    from charrnn.model.network import CharRNN
    from charrnn.sampling.sampler import Request


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


class _Throttled:
    """Writes bytes at once but flushes at most every 30 ms (a pipe to head still works)."""

    def __init__(self, stream: BinaryIO | _Escaped) -> None:
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


class _Escaped:
    """Standard output on a terminal: the model's control characters (``ESC[31m``
    among them) shown escaped, as training samples and ``score --show`` show them, so
    a model's text never drives the terminal. Line breaks and tabs are kept; bytes that
    are not UTF-8 (a byte-level model) are shown as ``\\xNN``."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        # Incremental: a character split across two writes is decoded whole.
        self.decoder = codecs.getincrementaldecoder("utf-8")("backslashreplace")

    def write(self, data: bytes) -> None:
        self.stream.write(shown(self.decoder.decode(data)).encode("utf-8"))

    def flush(self) -> None:
        self.stream.flush()


def _stdout() -> BinaryIO | _Escaped:
    """Where samples go: the raw bytes to a pipe or file, escaped text to a terminal."""
    stream = typer.get_binary_stream("stdout")
    try:
        terminal = stream.isatty()
    except (OSError, ValueError):  # closed or detached
        terminal = False
    return _Escaped(stream) if terminal else stream


@friendly_errors
def sample(
    checkpoint: opt.CheckpointArg,
    length: LengthOpt = None,
    temperature: TemperatureOpt = 1.0,
    prime: PrimeOpt = "",
    seed: SampleSeedOpt = None,
    top_k: TopKOpt = 0,
    top_p: TopPOpt = 1.0,
    num_samples: NumSamplesOpt = 1,
    stop: StopOpt = None,
    min_chars: MinCharsOpt = 0,
    novel: NovelOpt = False,
    novel_span: NovelSpanOpt = 20,
    beam: BeamOpt = None,
    out_file: SampleOutOpt = None,
    overwrite: opt.ReplaceFileOpt = False,
    device: Annotated[Device, typer.Option("--device", help="Where to run the model.")] = (
        Device.cpu
    ),
    skip_unknown: opt.SkipUnknownOpt = False,
    precision: opt.SamplePrecisionOpt = SamplePrecision.fp32,
    cache_dir: opt.CacheOpt = None,
) -> None:
    """Generate text from a trained model, streaming it as it is drawn.

    A run trained with --docs writes whole items (-n of them), one per line. --stop,
    --min-chars, --novel, --beam and --out print each sample once it is finished. On a
    terminal, control characters (escape sequences) are shown escaped; a pipe or --out
    gets the raw text.
    """
    from charrnn.checkpoint import load_model
    from charrnn.cli.live import Quiet, char_progress
    from charrnn.hardware import select_device
    from charrnn.sampling.sampler import Request, SampleSettings, fresh_seed
    from charrnn.sampling.shaping import shaped_samples, wants_shaping

    if prime == "-":
        prime = sys.stdin.read()
    if beam is not None and (temperature != 1.0 or top_k or top_p != 1.0):
        raise UsageError(
            "--beam finds the most likely text: it takes no --temperature, --top-k or --top-p"
        )
    settings = SampleSettings(
        temperature=temperature, top_k=top_k or None, top_p=top_p if top_p != 1.0 else None
    )
    model, vocab, saved = load_model(checkpoint, device=select_device(device.value))
    items = Docs(saved.config.data.docs).on
    if items and num_samples != 1:
        raise UsageError("a --docs run draws -n items; --num-samples is for streams")
    record = None
    if out_file is not None:
        from charrnn.sampling.shaping import check_samples_target

        record = check_samples_target(out_file, overwrite=overwrite)  # before the drawing
    if seed is None and out_file is not None:
        seed = fresh_seed()  # recorded beside the samples, so they can be drawn again
    request = Request(
        count=(length if length is not None else 20) if items else num_samples,
        length=length if length is not None else 500,
        prime=prime,
        settings=settings,
        seed=seed if seed is not None else fresh_seed(),
        stop=stop,
        min_chars=min_chars,
        novel=novel_span if novel else None,
        beam=beam,
        skip_unknown=skip_unknown,
        precision=precision.value,
    )
    if out_file is None and not wants_shaping(request, saved):
        _stream(model, vocab, request)
        return
    # Drawn whole before anything is written: a long draw shows how far it has got (the
    # rows of a batch are drawn side by side, so in characters of each sample).
    quiet = items or request.beam is not None  # counted in items, or a search: no bar
    with char_progress(request.length, "drawing", quiet=quiet) as advance:
        shaped = shaped_samples(
            model, saved, request, cache_dir=cache_dir, reporter=Quiet(), on_progress=advance
        )
    text = shaped.separator.join(shaped.texts) + "\n"
    if out_file is not None:
        from charrnn.sampling.shaping import write_samples

        write_samples(out_file, text, request, checkpoint, overwrite=overwrite)
        count = len(shaped.texts)
        typer.echo(
            f"wrote {count} sample{'s' if count != 1 else ''} to {out_file}"
            + (f" (how: {record})" if record is not None else ""),
            err=True,
        )
    else:
        _write(text.encode("utf-8", "surrogateescape"))
    if shaped.report:
        typer.echo(shown(shaped.report), err=True)


def _write(data: bytes) -> None:
    out = _stdout()
    try:
        out.write(data)
        out.flush()
    except BrokenPipeError:
        _quiet_stdout()


def _quiet_stdout() -> None:
    """The reader (e.g. `head`) has gone: stop quietly, like any Unix filter."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def _stream(model: CharRNN, vocab: Vocab, request: Request) -> None:
    """Print the samples of a plain request as they are drawn."""
    from charrnn.cli.live import Quiet
    from charrnn.sampling.sampler import encoded_samples, stream

    num_samples = request.count
    steps = stream(model, vocab, request, reporter=Quiet())
    out = _Throttled(_stdout())
    head = request.prime.encode("utf-8", "surrogateescape")
    if request.skip_unknown:  # the priming text the model saw, without dropped characters
        head = "".join(ch for ch in request.prime if ch in vocab).encode("utf-8", "surrogateescape")
    current = 0
    try:
        for number, chunk in encoded_samples(steps, vocab, num_samples):
            if number != current:  # a new sample begins
                if current:
                    out.write(b"\n")
                if num_samples > 1:
                    out.flush()
                    typer.echo(f"── sample {number}/{num_samples} ──", err=True)
                out.write(head)
                current = number
            out.write(chunk)
        if not current:  # nothing drawn (--length 0): the priming text alone
            out.write(head)
        out.write(b"\n")
        out.flush()
    except BrokenPipeError:
        _quiet_stdout()
