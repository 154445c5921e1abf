"""``charrnn score``: how well a trained model predicts a text."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from charrnn.cli import options as opt
from charrnn.cli.errors import friendly_errors
from charrnn.cli.live import printable, stdout_console
from charrnn.config import Device
from charrnn.units import to_bits

if TYPE_CHECKING:
    from charrnn.data.vocab import Vocab
    from charrnn.scoring.file import FileScore, Spot
    from charrnn.scoring.text import Line, Score


@friendly_errors
def score(
    checkpoint: opt.CheckpointArg,
    files: Annotated[
        list[Path],
        typer.Argument(
            help="UTF-8 text file to score; several files or folders are scored as one "
            "text, joined; - reads standard input.",
            show_default=False,
            metavar="FILE",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the totals as JSON.")] = False,
    per_line: Annotated[
        bool, typer.Option("--per-line", help="List the most surprising lines, worst first.")
    ] = False,
    show: Annotated[
        bool,
        typer.Option(
            "--show",
            help="Print the text coloured by surprisal (first 20,000 characters) and the "
            "spots where the model was most surprised, with what it expected.",
        ),
    ] = False,
    top: Annotated[
        int, typer.Option("--top", min=1, max=10_000, help="Lines or spots listed.")
    ] = 20,
    window: Annotated[
        int | None,
        typer.Option(
            "--window",
            min=1,
            help="Score in consecutive windows of this many characters, each from a fresh "
            "state (nanoGPT's protocol: 256 for shakespeare_char); default: one stream, the "
            "state carried through the text as in training.",
            show_default=False,
        ),
    ] = None,
    encoding: opt.EncodingOpt = None,
    skip_unknown: opt.SkipUnknownOpt = False,
    strict: opt.StrictOpt = False,
    include_hidden: opt.IncludeHiddenOpt = False,
    cache_dir: opt.CacheOpt = None,
    device: Annotated[Device, typer.Option("--device", help="Where to run the model.")] = (
        Device.cpu
    ),
) -> None:
    """Score FILE with a trained model: bits per character, perplexity, worst lines.

    Memory stays the same for any length of file; a long one shows a progress bar."""
    from charrnn.checkpoint import load_model
    from charrnn.cli.live import Noticed, Quiet, byte_progress
    from charrnn.data.sources import resolve_inputs
    from charrnn.hardware import select_device
    from charrnn.scoring.file import score_file

    model, vocab, saved = load_model(checkpoint, device=select_device(device.value))
    file = resolve_inputs(
        files,
        encoding=encoding or "utf-8",
        strict=strict,
        hidden=include_hidden,
        byte_level=saved.vocab.byte_level,
        cache_dir=cache_dir,
        reporter=Noticed(),  # what a folder gave and left out, on stderr
    )
    assert file is not None  # FILE is required
    label = " ".join(str(f) for f in files)
    with byte_progress(file, "scoring", quiet=as_json) as advance:
        result = score_file(
            model,
            vocab,
            file,
            encoding=encoding or "utf-8",
            skip_unknown=skip_unknown,
            docs=saved.config.data.docs,  # a --docs model scores item by item, as it trained
            show=SHOW_LIMIT if show else 0,
            worst_spots=top if show else 0,
            worst_lines=top if per_line and not as_json else 0,
            every_line=per_line and as_json,
            window=window,
            on_progress=advance,
            reporter=Quiet(),
        )
    if as_json:
        summary: dict[str, object] = {"file": label, **result.summary()}
        if result.window is not None:
            summary["window"] = result.window
        if result.all_lines is not None:
            summary["lines"] = [
                {"line": number, "bpc": to_bits(nats), "chars": chars}
                for number, chars, nats in result.all_lines
            ]
        typer.echo(json.dumps(summary, indent=2))
        return
    console = stdout_console()
    if show:
        assert result.head is not None
        console.print(coloured_text(result.head), soft_wrap=True)
        console.print(worst_table(result.vocab, result.spots))
    if per_line:
        console.print(lines_table(result.worst_lines, result.lines_seen))
    how = f" in windows of {result.window:,}, each from a fresh state" if result.window else ""
    console.print(score_table(f"{label} scored by {checkpoint}{how}", result))


# Background by surprisal in bits: what the model found easy stays plain.
_SHADES = ((1.0, ""), (2.0, "on grey30"), (4.0, "on dark_orange3"), (7.0, "on red3"))
_WORST_SHADE = "bold white on red1"
SHOW_LIMIT = 20_000  # characters coloured by --show; a terminal shows no more usefully


def score_table(label: str, score: FileScore) -> Table:
    t = Table(title=printable(label), title_justify="left", show_header=False)
    t.add_column("measure", style="bold")
    t.add_column("value", justify="right")
    t.add_row("characters scored", f"{score.predicted:,} (of {score.characters:,})")
    t.add_row("loss", f"{score.nats:.4f} nats per character")
    t.add_row("bits per character", f"{score.bpc:.4f}")
    t.add_row("perplexity", f"{score.perplexity:.3f}")
    return t


def lines_table(worst: list[Line], seen: int) -> Table:
    """The most surprising lines (``worst``, worst first) of the ``seen`` scored."""
    t = Table(title=f"the {len(worst)} most surprising of {seen:,} lines", title_justify="left")
    for column, justify in (
        ("line", "right"),
        ("bpc", "right"),
        ("chars", "right"),
        ("text", "left"),
    ):
        t.add_column(column, justify=justify)  # type: ignore[arg-type]
    for line in worst:
        shown = line.text if len(line.text) <= 80 else line.text[:77] + "..."
        t.add_row(str(line.number), f"{line.bpc:.3f}", str(line.predicted), Text(printable(shown)))
    return t


def _shade(bits: float) -> str:
    for limit, style in _SHADES:
        if bits < limit:
            return style
    return _WORST_SHADE


def coloured_text(score: Score, limit: int = SHOW_LIMIT) -> Text:
    """The text, each character on a background for its surprisal (first ``limit``)."""
    text = Text()
    bits = to_bits(score.surprisal[:limit])  # nats -> bits, all at once
    first = score.vocab.decode(score.ids[:1])
    text.append(first if first == "\n" or first.isprintable() else printable(first))
    for position in range(1, min(len(score.ids), limit)):
        char = score.vocab.decode(score.ids[position : position + 1])
        shown = char if char == "\n" or char.isprintable() else printable(char)
        text.append(shown, style=_shade(float(bits[position - 1])))
    return text


def worst_table(vocab: Vocab, spots: list[Spot]) -> Table:
    """Where the model was most surprised: the character, what it expected, the context."""
    from charrnn.data.vocab import describe_symbol

    t = Table(title=f"the {len(spots)} most surprising characters", title_justify="left")
    for column in ("position", "bits", "was", "expected", "context"):
        t.add_column(column, justify="left" if column == "context" else "right")
    for spot in spots:
        was = describe_symbol(vocab.symbols[spot.was], vocab.byte_level)
        wanted = describe_symbol(vocab.symbols[spot.expected], vocab.byte_level)
        context = Text(printable(vocab.decode(spot.before).replace("\n", "⏎")))
        context.append(was, style="bold red")
        t.add_row(f"{spot.position:,}", f"{spot.bits:.2f}", was, wanted, context)
    return t


def shaded(text: str, bits: Sequence[float]) -> Text:
    """``text``, each character on the background for its surprisal in ``bits``."""
    out = Text()
    for char, b in zip(text, bits, strict=True):
        shown = char if char == "\n" or char.isprintable() else printable(char)
        out.append(shown, style=_shade(float(b)))
    return out


def unit_text(text: str, values: Sequence[float]) -> Text:
    """``text`` coloured by a unit's values scaled to [-1, 1]: red positive, blue negative."""
    out = Text()
    for char, v in zip(text, values, strict=True):
        shown = char if char == "\n" or char.isprintable() else printable(char)
        level = int(min(abs(v), 1.0) * 4)
        style = "" if level == 0 else f"on {('blue', 'red')[v > 0]}{('', '', '3', '1')[level - 1]}"
        out.append(shown, style=style.replace("on blue1", "on blue").replace("on red1", "on red"))
    return out
