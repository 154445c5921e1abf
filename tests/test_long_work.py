"""Long work says how far it has got on stderr: drawing samples into a file, exporting,
and the training bar while an evaluation runs. The bars are drawn only on a terminal,
so each test hands the CLI a console that is one (into a buffer)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import tiny_run
from rich.console import Console
from typer.testing import CliRunner

import charrnn.cli.live as live
from charrnn.cli.app import app

runner = CliRunner()


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """What the CLI draws on a terminal's stderr, collected."""
    screen = io.StringIO()
    monkeypatch.setenv("TERM", "xterm")  # Rich draws no live display on a dumb one

    def console() -> Console:
        return Console(
            file=screen, force_terminal=True, force_interactive=True, width=150, color_system=None
        )

    monkeypatch.setattr(live, "stderr_console", console)
    return screen


def test_sample_into_a_file_shows_how_much_is_drawn(
    tmp_path: Path, terminal: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: `sample -n 2000000 --out F` drew for minutes without a word."""
    import charrnn.sampling.endings as endings

    monkeypatch.setattr(live, "PROGRESS_FROM_CHARS", 1000)  # 50k is seconds, not a test
    monkeypatch.setattr(endings, "PROGRESS_EVERY", 256)
    run = tiny_run(tmp_path)
    out = tmp_path / "drawn.txt"
    result = runner.invoke(app, ["sample", str(run), "-n", "3000", "--seed", "1", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert len(out.read_text(encoding="utf-8")) == 3001  # the samples and a newline
    shown = terminal.getvalue()
    assert "drawing" in shown and "/3000" in shown and "2816/3000" in shown


def test_a_short_sample_draws_no_bar(tmp_path: Path, terminal: io.StringIO) -> None:
    run = tiny_run(tmp_path)
    out = tmp_path / "drawn.txt"
    assert runner.invoke(app, ["sample", str(run), "-n", "300", "-o", str(out)]).exit_code == 0
    assert "drawing" not in terminal.getvalue()


def test_export_says_it_is_working(tmp_path: Path, terminal: io.StringIO) -> None:
    """Before: tracing a model for export took 15-31 s with nothing on the screen."""
    run = tiny_run(tmp_path)
    target = tmp_path / "m.pt"
    result = runner.invoke(app, ["export", str(run), "-f", "torchscript", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert "exporting to torchscript" in terminal.getvalue() and target.exists()


def test_the_training_bar_says_when_it_is_evaluating(tmp_path: Path, terminal: io.StringIO) -> None:
    """Before: during an evaluation the bar stood still with its ETA, as if hung."""
    from charrnn.events import Progress, RunStart

    reporter = live.LiveReporter()
    start = RunStart(tmp_path, "t.txt", 20, 1000, 5000, 500, 10, "cpu", 0, 100)
    reporter.start(start)
    moment = dict(step=10, epoch=0.1, fraction=0.1, train_loss=2.0, lr=1e-3)
    reporter.progress(Progress(**moment, chars_per_s=1e4, elapsed_s=1.0, val_bpc=None))
    reporter.bar.refresh()
    assert "evaluating" not in terminal.getvalue()
    reporter.progress(
        Progress(**moment, chars_per_s=1e4, elapsed_s=1.0, val_bpc=None, evaluating=True)
    )
    reporter.bar.refresh()
    reporter.close()
    assert "evaluating ETA" in terminal.getvalue()
