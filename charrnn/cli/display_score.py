"""Rich rendering of ``charrnn score``: the totals, the lines, the text coloured by
surprisal, and the spots where the model was most surprised."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from charrnn.cli.live import printable
from charrnn.data.vocab import describe_symbol
from charrnn.inspection.score import Line, Score
from charrnn.units import to_bits

# Background by surprisal in bits: what the model found easy stays plain.
_SHADES = ((1.0, ""), (2.0, "on grey30"), (4.0, "on dark_orange3"), (7.0, "on red3"))
_WORST_SHADE = "bold white on red1"
SHOW_LIMIT = 20_000  # characters coloured by --show; a terminal shows no more usefully


def score_table(label: str, score: Score) -> Table:
    t = Table(title=printable(label), title_justify="left", show_header=False)
    t.add_column("measure", style="bold")
    t.add_column("value", justify="right")
    t.add_row("characters scored", f"{score.predicted:,} (of {len(score.ids):,})")
    t.add_row("loss", f"{score.nats:.4f} nats per character")
    t.add_row("bits per character", f"{score.bpc:.4f}")
    t.add_row("perplexity", f"{score.perplexity:.3f}")
    return t


def lines_table(lines: list[Line], top: int) -> Table:
    """The ``top`` most surprising lines, worst first."""
    worst = sorted(lines, key=lambda line: line.nats, reverse=True)[:top]
    t = Table(
        title=f"the {len(worst)} most surprising of {len(lines):,} lines", title_justify="left"
    )
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
    bits = score.surprisal[:limit] / math.log(2)  # nats -> bits, all at once
    text.append(score.vocab.decode(score.ids[:1]))
    for position in range(1, min(len(score.ids), limit)):
        char = score.vocab.decode(score.ids[position : position + 1])
        shown = char if char == "\n" or char.isprintable() else printable(char)
        text.append(shown, style=_shade(float(bits[position - 1])))
    return text


def worst_table(score: Score, count: int) -> Table:
    """Where the model was most surprised: the character, what it expected, the context."""
    t = Table(title=f"the {count} most surprising characters", title_justify="left")
    for column in ("position", "bits", "was", "expected", "context"):
        t.add_column(column, justify="left" if column == "context" else "right")
    byte_level = score.vocab.byte_level
    for position in score.worst(count):
        before = score.vocab.decode(score.ids[max(position - 30, 0) : position])
        was = describe_symbol(score.vocab.symbols[score.ids[position]], byte_level)
        wanted = describe_symbol(score.vocab.symbols[score.expected[position - 1]], byte_level)
        context = Text(printable(before.replace("\n", "⏎")))
        context.append(was, style="bold red")
        t.add_row(
            f"{position:,}",
            f"{to_bits(float(score.surprisal[position - 1])):.2f}",
            was,
            wanted,
            context,
        )
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
