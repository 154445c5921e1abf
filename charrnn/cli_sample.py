"""``charrnn sample``: stream text from a trained model to stdout."""

from __future__ import annotations

import os
import sys
import time
from typing import Annotated, BinaryIO

import typer

from charrnn import cli_args as arg
from charrnn import cli_options as opt
from charrnn.cli_errors import friendly_errors
from charrnn.config import Device, SamplePrecision


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
    length: arg.LengthOpt = 500,
    temperature: arg.TemperatureOpt = 1.0,
    prime: arg.PrimeOpt = "",
    seed: arg.SampleSeedOpt = None,
    top_k: arg.TopKOpt = 0,
    top_p: arg.TopPOpt = 1.0,
    num_samples: arg.NumSamplesOpt = 1,
    device: Annotated[Device, typer.Option("--device", help="Where to run the model.")] = (
        Device.cpu
    ),
    skip_unknown: opt.SkipUnknownOpt = False,
    precision: opt.SamplePrecisionOpt = SamplePrecision.fp32,
) -> None:
    """Generate text from a trained model, streaming it as it is drawn."""
    from charrnn.checkpoint import load_model
    from charrnn.display import Quiet
    from charrnn.hardware import select_device
    from charrnn.sample import SampleSettings, encoded_samples, stream

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
        reporter=Quiet(),
        precision=precision.value,
    )
    out = _Throttled(typer.get_binary_stream("stdout"))
    head = prime.encode("utf-8", "surrogateescape")
    if skip_unknown:  # print the priming text the model saw, without the dropped characters
        head = vocab.decode_bytes(vocab.encode(prime, on_unknown="drop"))
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
        # The reader (e.g. `head`) has gone: stop quietly, like any Unix filter.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
