"""``charrnn sample``: stream text from a trained model to stdout."""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Annotated, BinaryIO

import typer

from charrnn.cli import args as arg
from charrnn.cli import options as opt
from charrnn.cli.errors import UsageError, friendly_errors
from charrnn.config import Device, SamplePrecision

if TYPE_CHECKING:
    from charrnn.data.vocab import Vocab
    from charrnn.model.network import CharRNN
    from charrnn.sampling.request import Request


class _Throttled:
    """Writes bytes at once but flushes at most every 30 ms (a pipe to head still works)."""

    def __init__(self, stream: BinaryIO) -> None:
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


@friendly_errors
def sample(
    checkpoint: arg.CheckpointArg,
    length: arg.LengthOpt = None,
    temperature: arg.TemperatureOpt = 1.0,
    prime: arg.PrimeOpt = "",
    seed: arg.SampleSeedOpt = None,
    top_k: arg.TopKOpt = 0,
    top_p: arg.TopPOpt = 1.0,
    num_samples: arg.NumSamplesOpt = 1,
    stop: arg.StopOpt = None,
    min_chars: arg.MinCharsOpt = 0,
    novel: arg.NovelOpt = False,
    novel_span: arg.NovelSpanOpt = 20,
    beam: arg.BeamOpt = None,
    out_file: arg.SampleOutOpt = None,
    device: Annotated[Device, typer.Option("--device", help="Where to run the model.")] = (
        Device.cpu
    ),
    skip_unknown: opt.SkipUnknownOpt = False,
    precision: opt.SamplePrecisionOpt = SamplePrecision.fp32,
    cache_dir: opt.CacheOpt = None,
) -> None:
    """Generate text from a trained model, streaming it as it is drawn.

    A run trained with --docs writes whole items (-n of them), one per line. --stop,
    --min-chars, --novel, --beam and --out print each sample once it is finished.
    """
    from charrnn.checkpoint import load_model
    from charrnn.cli.live import Quiet
    from charrnn.hardware import select_device
    from charrnn.sampling.request import Request, shaped_samples, wants_shaping
    from charrnn.sampling.sampler import SampleSettings, fresh_seed

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
    items = saved.config.data.docs != "none"
    if items and num_samples != 1:
        raise UsageError("a --docs run draws -n items; --num-samples is for streams")
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
        _stream(model, vocab, request, prime_given=prime)
        return
    shaped = shaped_samples(model, saved, request, cache_dir=cache_dir, reporter=Quiet())
    text = shaped.separator.join(shaped.texts) + "\n"
    if out_file is not None:
        from charrnn.sampling.request import write_samples

        write_samples(out_file, text, request, checkpoint)
        typer.echo(
            f"wrote {len(shaped.texts)} samples to {out_file} (how: {out_file}.json)", err=True
        )
    else:
        _write(text.encode("utf-8", "surrogateescape"))
    if shaped.report:
        typer.echo(shaped.report, err=True)


def _write(data: bytes) -> None:
    out = typer.get_binary_stream("stdout")
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


def _stream(model: CharRNN, vocab: Vocab, request: Request, *, prime_given: str) -> None:
    """Print the samples of a plain request as they are drawn."""
    from charrnn.cli.live import Quiet
    from charrnn.sampling.sampler import encoded_samples, stream

    num_samples = request.count
    steps = stream(
        model,
        vocab,
        length=request.length,
        prime=prime_given,
        settings=request.settings,
        num_samples=num_samples,
        seed=request.seed,
        skip_unknown=request.skip_unknown,
        reporter=Quiet(),
        precision=request.precision,
    )
    out = _Throttled(typer.get_binary_stream("stdout"))
    head = prime_given.encode("utf-8", "surrogateescape")
    if request.skip_unknown:  # the priming text the model saw, without dropped characters
        head = vocab.decode_bytes(vocab.encode(prime_given, on_unknown="drop"))
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
