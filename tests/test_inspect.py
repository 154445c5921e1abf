"""``charrnn inspect`` from the command line: the page, its caps, the terminal view and
the one-line errors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import make_text
from typer.testing import CliRunner

from charrnn.cli.app import app
from charrnn.inspection.page import NEURON_BUDGET

runner = CliRunner()


@pytest.fixture
def run(lstm_run: Path) -> Path:
    """The shared 2x16 LSTM run (conftest), trained once for these and the page test."""
    return lstm_run


def embedded(page: Path) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="data">(.*?)</script>', page.read_text())
    assert found
    return json.loads(found.group(1))


def test_the_page_is_self_contained_and_says_what_it_read(run: Path) -> None:
    result = runner.invoke(app, ["inspect", str(run), "--text", 'say "hi" (twice)\n' * 20])
    assert result.exit_code == 0, result.output
    page = run / "inspect.html"
    assert f"wrote {page}" in result.stderr and "bits per character" in result.stderr
    html = page.read_text()
    assert not re.search(r"(src|href)=\"?(https?:)?//", html), "the page must fetch nothing"
    data = embedded(page)
    assert len(data["bits"]) == 340 and set(data["states"]) == {"hidden", "cell"}
    assert len(data["states"]["cell"]) == 2  # both layers' cell states
    assert "Gradient flow through time" in html and "<polyline" in html
    features = {m["feature"] for m in data["matches"]}
    assert {"inside quotes", "inside brackets"} <= features


def test_a_big_text_is_capped_and_the_default_is_the_validation_text(
    run: Path, tmp_path: Path
) -> None:
    big = tmp_path / "big.txt"
    big.write_text(make_text(2_000_000, seed=3), encoding="utf-8")
    out = tmp_path / "page.html"
    result = runner.invoke(
        app, ["inspect", str(run), str(big), "-o", str(out), "--max-chars", "20000"]
    )
    assert result.exit_code == 0, result.output
    data = embedded(out)
    assert len(data["bits"]) == 20000 and "(first 20,000 characters or more)" in result.stderr
    units = 2 * 16 * 2  # two layers, hidden and cell, 16 units
    assert data["neuronChars"] == min(20000, NEURON_BUDGET // units)
    assert out.stat().st_size < 12_000_000
    default = runner.invoke(app, ["inspect", str(run)])
    assert default.exit_code == 0 and "the run's validation text" in default.stderr


def test_the_terminal_view_shows_the_text_and_the_unit_asked_for(run: Path) -> None:
    shown = runner.invoke(app, ["inspect", str(run), "--text", "the cat sat.\n", "--terminal",
                                "--unit", "2:cell:3"])  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert "layer 2 cell unit 3" in shown.stdout and "the cat sat." in shown.stdout


def test_a_text_too_short_to_correlate_offers_no_unit_and_says_why(run: Path) -> None:
    shown = runner.invoke(app, ["inspect", str(run), "--text", "the cat sat.\n"])
    assert shown.exit_code == 0, shown.output
    # 13 characters: no unit is offered as a finding, and the page and stderr say why
    assert "too short to correlate" in shown.stderr and "r = " not in shown.stderr
    page = (run / "inspect.html").read_text()
    assert 'id="matches-note"' in page and "too short to correlate" in page


def test_bad_inspect_input_is_one_line_with_the_right_exit_code(run: Path, tmp_path: Path) -> None:
    cases = [
        (["--text", "x", str(tmp_path)], 2, "not both"),
        (["--text", "ΩΩ"], 1, "Ω"),
        (["--text", "abc", "--terminal", "--unit", "9:cell:1"], 1, "2 layers of 16 units"),
        (["--text", "abc", "--unit", "one"], 2, "LAYER:hidden|cell:UNIT"),
        (["--text", "abc", "--max-chars", "0"], 2, "--max-chars"),
    ]
    for options, code, message in cases:
        result = runner.invoke(app, ["inspect", str(run), *options])
        assert result.exit_code == code, (options, result.output)
        assert message in result.stderr and "Traceback" not in result.stderr


def test_skip_unknown_drops_characters_the_model_does_not_know(run: Path) -> None:
    skipped = runner.invoke(app, ["inspect", str(run), "--text", "catΩ sat", "--skip-unknown"])
    assert skipped.exit_code == 0 and len(embedded(run / "inspect.html")["bits"]) == 7


def test_a_unit_is_checked_before_the_page_and_never_silently_ignored(
    run: Path, tmp_path: Path
) -> None:
    page = tmp_path / "page.html"
    bad = ["--text", "abc", "--terminal", "--unit", "9:cell:1", "-o", str(page)]
    result = runner.invoke(app, ["inspect", str(run), *bad])
    assert result.exit_code == 1 and not page.exists()  # the page was written before
    result = runner.invoke(app, ["inspect", str(run), "--text", "abc", "--unit", "1:cell:1"])
    assert result.exit_code == 2 and "add --terminal" in result.stderr  # was ignored
