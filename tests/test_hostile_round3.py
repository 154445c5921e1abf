"""Round three of the hostile user: what broke in the newer features. Each test names
what it did before the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import make_text, tiny_cli, tiny_run
from typer.testing import CliRunner

from charrnn.cli.app import app

runner = CliRunner()

# A clear-screen, a window-title change and a bell: what a text can make a terminal do.
ESCAPES = "\x1b[2J\x1b]0;pwned\x07"


@pytest.fixture(scope="module")
def trained_on_escapes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A run trained on a text full of escapes, and what its training printed."""
    folder = tmp_path_factory.mktemp("escapes")
    corpus = folder / "t.txt"
    corpus.write_text((ESCAPES + make_text(300) + "\n") * 12, encoding="utf-8")
    out = folder / "run"
    options = ["--steps", "20", "--eval-every", "10", "--sample-length", "300", "--out", str(out)]
    result = runner.invoke(app, ["train", str(corpus), *options, *tiny_cli()])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_progress_samples_print_terminal_escapes_escaped(
    trained_on_escapes: tuple[Path, str],
) -> None:
    _, printed = trained_on_escapes
    assert "step 20" in printed
    assert "\x1b" not in printed and "\x07" not in printed  # printed raw before


def test_score_show_escapes_its_first_character_too(
    trained_on_escapes: tuple[Path, str], tmp_path: Path
) -> None:
    run, _ = trained_on_escapes
    text = tmp_path / "probe.txt"
    text.write_text(ESCAPES + "the cat sat\n", encoding="utf-8")
    result = runner.invoke(app, ["score", str(run), str(text), "--show"])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\\x1b" in result.output  # the first was raw


def test_sample_stdout_stays_the_raw_text(trained_on_escapes: tuple[Path, str]) -> None:
    run, _ = trained_on_escapes
    result = runner.invoke(app, ["sample", str(run), "--prime", "\x1b[2J", "--length", "5"])
    assert result.exit_code == 0 and result.stdout.startswith("\x1b[2J")  # the data itself


def test_a_crafted_optimizer_state_is_refused_on_resume(tmp_path: Path) -> None:
    run = tiny_run(tmp_path)
    raw = torch.load(run / "last.pt", weights_only=True)
    moments = next(iter(raw["optimizer"]["state"].values()))
    moments["exp_avg"] = torch.zeros(4096, 1)  # broadcast at every step: grew to 4.3 GB
    torch.save(raw, run / "last.pt")
    before = (run / "last.pt").read_bytes()
    result = runner.invoke(app, ["train", "--resume", str(run), "--steps", "20", "-q"])
    assert result.exit_code == 1, result.output
    assert "cannot resume" in result.stderr and "exp_avg" in result.stderr
    assert result.stderr.count("\n") == 1
    assert (run / "last.pt").read_bytes() == before  # nothing lost


def test_a_nan_carried_state_is_refused_on_resume(tmp_path: Path) -> None:
    run = tiny_run(tmp_path)
    raw = torch.load(run / "last.pt", weights_only=True)
    raw["state"] = [torch.full_like(s, float("nan")) for s in raw["state"]]  # was accepted
    torch.save(raw, run / "last.pt")
    result = runner.invoke(app, ["train", "--resume", str(run), "--steps", "20", "-q"])
    assert result.exit_code == 1 and "is not finite" in result.stderr
