from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY_CLI
from typer.testing import CliRunner

from charrnn.cli.app import app
from charrnn.data import catalog as corpora
from charrnn.data.catalog import Download
from charrnn.rundir import RunDir

runner = CliRunner()
TINY = [*TINY_CLI, "--sample-length", "0", "-q"]


def test_list_shows_every_kind() -> None:
    result = runner.invoke(app, ["corpus", "list"])
    assert result.exit_code == 0, result.output
    for text in (
        "hello",
        "recall",
        "brackets",
        "counting",
        "python-stdlib",
        "tinyshakespeare",
        "enwik8",
        "text8",
        "bundled",
        "generated",
        "download",
        "size only",
    ):
        assert text in result.stdout, text


def test_make_writes_the_corpus_and_reports_the_floor(tmp_path: Path) -> None:
    out = tmp_path / "recall.txt"
    result = runner.invoke(
        app,
        [
            "corpus",
            "make",
            "recall",
            "--out",
            str(out),
            "--size",
            "2000",
            "--distance",
            "30",
            "--seed",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "best achievable loss" in result.stderr and "unigram baseline" in result.stderr
    first = out.read_text().splitlines()[0]
    assert len(first) == 1 + 1 + 30 + 1 + 1
    again = runner.invoke(app, ["corpus", "make", "recall", "--out", str(out)])
    assert again.exit_code == 1 and "exists" in again.stderr
    assert len(out.read_text()) < 3000, "the existing file was left alone"


@pytest.mark.parametrize(
    ("args", "message", "code"),
    [
        (["fibonacci"], "no generator named", 1),
        (["counting", "--distance", "3"], "no --distance", 1),
        (["recall", "--size", "0"], "--size", 2),  # out of range: a usage error
        (["recall", "--size", "10000000000"], "--size", 2),
        (["recall", "--distance", "100000000"], "--distance", 2),
    ],
)
def test_make_errors(tmp_path: Path, args: list[str], message: str, code: int) -> None:
    result = runner.invoke(app, ["corpus", "make", *args, "--out", str(tmp_path / "x.txt")])
    assert result.exit_code == code and message in result.stderr
    assert not (tmp_path / "x.txt").exists()


def test_make_stdlib(tmp_path: Path) -> None:
    out = tmp_path / "std.py.txt"
    result = runner.invoke(
        app, ["corpus", "make", "python-stdlib", "--out", str(out), "--max-mb", "0.05"]
    )
    assert result.exit_code == 0, result.output
    assert 0 < out.stat().st_size <= 50_000


def test_train_on_a_generated_corpus_by_name(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["train", "corpus:alphabet", "--steps", "5", "--out", str(out), *TINY]
    )
    assert result.exit_code == 0, result.output
    assert 'path = "corpus:alphabet"' in (out / "config.toml").read_text()
    assert RunDir(out).read_metrics()[-1]["step"] == 5


def test_default_run_name_for_named_corpora(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(
        app, ["train", "corpus:counting", "--steps", "2", "--cell", "rnn", *TINY]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "counting-rnn" / "last.pt").exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("nope", "no corpus named 'nope'"),
        ("../../etc/passwd", "no corpus named"),
        ("hello", "needs at least"),
    ],
)
def test_named_corpus_errors(tmp_path: Path, name: str, message: str) -> None:
    result = runner.invoke(
        app, ["train", f"corpus:{name}", "--out", str(tmp_path / "r"), "--val-frac", "0.4", *TINY]
    )
    assert result.exit_code == 1, result.output
    assert message in result.stderr


def test_get_unknown_and_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["corpus", "get", "wikipedia"])
    assert result.exit_code == 1 and "no downloadable corpus" in result.stderr
    offline = Download(
        "tinyshakespeare", "http://127.0.0.1:9/input.txt", size=10, sha256=None, description="test"
    )
    monkeypatch.setitem(corpora.DOWNLOADS, "tinyshakespeare", offline)
    result = runner.invoke(app, ["corpus", "get", "tinyshakespeare", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "cannot download" in result.stderr and "place it at" in result.stderr
    placed = corpora.download_path(offline, tmp_path)
    placed.write_bytes(b"0123456789")
    result = runner.invoke(app, ["corpus", "get", "tinyshakespeare", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(placed)
