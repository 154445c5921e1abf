"""The inputs people have: a folder, several files or a pipe as one corpus."""

from __future__ import annotations

import io
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_text, tiny_cli
from typer.testing import CliRunner

from charrnn.cli.app import app
from charrnn.data.sources import file_starts, gather, read_manifest, read_stdin, resolve_inputs
from charrnn.data.streams import StreamBatches
from charrnn.errors import CorpusError

runner = CliRunner()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Nested texts, and one of each kind that must be skipped."""
    root = tmp_path / "poems"
    (root / "b" / "deep").mkdir(parents=True)
    (root / "a.txt").write_text(make_text(3000, seed=1), encoding="utf-8")
    (root / "b" / "c.txt").write_text(make_text(3000, seed=2) + "no newline at end")
    (root / "b" / "deep" / "d.md").write_text(make_text(3000, seed=3), encoding="utf-8")
    (root / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(100))
    (root / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    (root / "empty.txt").write_bytes(b"")
    (root / "b" / "loop").symlink_to(root, target_is_directory=True)  # a loop
    return root


def test_a_folder_is_its_text_files_in_a_stable_order(folder: Path, tmp_path: Path) -> None:
    made = gather([str(folder)], cache_dir=tmp_path / "cache")
    names = [Path(s.path).relative_to(folder).as_posix() for s in made.files]
    assert names == ["a.txt", "b/c.txt", "b/deep/d.md"]
    assert made.skipped == {"binary": 1, "undecodable": 1, "empty": 1}
    text = made.path.read_text(encoding="utf-8")
    assert text.count("no newline at end\n") == 1  # each file ends its own line
    starts = file_starts(made.path, byte_level=False)
    assert starts is not None and starts[0] == 0
    assert text[starts[1] :].startswith((folder / "b" / "c.txt").read_text()[:50])
    again = gather([str(folder)], cache_dir=tmp_path / "cache")
    assert again.path == made.path and again.files == made.files  # reused, not rewritten


def test_strict_refuses_what_would_be_skipped(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match=r"binary|undecodable|empty"):
        gather([str(folder)], strict=True, cache_dir=tmp_path / "cache")


def test_a_git_checkout_honours_its_gitignore(folder: Path, tmp_path: Path) -> None:
    (folder / ".git").mkdir()
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / ".gitignore").write_text("b/deep/\n*.png\n")
    made = gather([str(folder)], cache_dir=tmp_path / "cache")
    names = [Path(s.path).relative_to(folder).as_posix() for s in made.files]
    assert names == ["a.txt", "b/c.txt"]  # .gitignore is hidden, as any dotfile
    assert made.skipped["ignored by git rules"] == 2  # b/deep/ (one folder) and image.png
    assert made.skipped["hidden"] == 1


@pytest.mark.slow  # a scale test: 10,000 files written, then joined
def test_ten_thousand_tiny_files_stay_quick_and_small(tmp_path: Path) -> None:
    root = tmp_path / "many"
    for group in range(100):
        (root / f"{group:03d}").mkdir(parents=True)
        for i in range(100):
            (root / f"{group:03d}" / f"{i:03d}.txt").write_text(f"line {group} {i}\n")
    before_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    made = gather([str(root)], cache_dir=tmp_path / "cache")
    spent = time.monotonic() - started
    assert len(made.files) == 10_000 and made.path.read_text().count("\n") == 10_000
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_rss) / 1024
    # Generous bounds (a slow, shared machine): the point is nothing per file lingers.
    assert spent < 30 and grown_mb < 100, (spent, grown_mb)


def test_standard_input_is_read_once_into_the_cache(tmp_path: Path) -> None:
    path = read_stdin(io.BytesIO(b"piped text\n" * 100), cache_dir=tmp_path / "cache")
    assert path.read_bytes() == b"piped text\n" * 100
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    with pytest.raises(CorpusError, match="over 10 bytes"):
        read_stdin(io.BytesIO(b"x" * 11), cache_dir=tmp_path / "cache", limit=10)
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    with pytest.raises(CorpusError, match="empty"):
        read_stdin(io.BytesIO(b""), cache_dir=tmp_path / "cache")
    with pytest.raises(CorpusError, match="cannot be joined"):
        resolve_inputs(["-", "a.txt"])


def test_a_window_after_a_file_boundary_starts_from_a_fresh_state() -> None:
    ids = np.arange(400) % 7
    batches = StreamBatches(ids, batch_size=2, seq_len=10, file_starts=np.array([0, 35, 250]))
    # Row 0 reads 0..199, row 1 200..399: file starts 35 and 250 are crossed in
    # windows 3 (30-39) and 4 (240-249 -> row 1 at 250 is window 5's start).
    fresh = [batches.window(k).fresh.tolist() for k in range(7)]  # type: ignore[union-attr]
    assert [f[0] for f in fresh] == [False, False, False, False, True, False, False]
    assert [f[1] for f in fresh] == [False, False, False, False, False, True, False]


def test_train_on_a_folder_records_its_files_and_resume_checks_them(
    folder: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    options = ["--steps", "8", "--out", str(out), *tiny_cli()]
    result = runner.invoke(app, ["train", str(folder), *options])
    assert result.exit_code == 0, result.output
    assert "3 files (skipped 1 binary, 1 undecodable, 1 empty)" in result.output
    listed = json.loads((out / "sources.json").read_text())["files"]
    assert [Path(f["path"]).name for f in listed] == ["a.txt", "c.txt", "d.md"]
    shown = runner.invoke(app, ["info", str(out)])
    assert "3 joined" in shown.stdout
    (folder / "a.txt").write_text("changed\n")
    again = runner.invoke(app, ["train", "--resume", str(out), "--steps", "12"])
    assert again.exit_code == 1 and "1 of the run's 3 files changed" in again.stderr


def test_several_files_and_a_pipe_work_for_every_command(tmp_path: Path) -> None:
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_text(make_text(4000, seed=4))
    two.write_text(make_text(4000, seed=5))
    out = tmp_path / "run"
    trained = runner.invoke(app, ["train", str(one), str(two), "--steps", "5", "--out", str(out),
                                  "-q", *tiny_cli()])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    vocab = runner.invoke(app, ["vocab", str(one), str(two)])
    assert vocab.exit_code == 0 and "symbols" in vocab.stdout
    scored = runner.invoke(app, ["score", str(out), str(one), str(two), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["characters"] == 8002  # each gained its final newline
    piped = runner.invoke(app, ["vocab", "-"], input=one.read_text())
    assert piped.exit_code == 0, piped.output
    from_pipe = runner.invoke(
        app, ["train", "-", "--steps", "3", "--out", str(tmp_path / "p"), "-q", *tiny_cli()],
        input=one.read_text(),
    )  # fmt: skip
    assert from_pipe.exit_code == 0, from_pipe.output


def test_whole_files_are_held_out_when_there_are_enough(tmp_path: Path) -> None:
    from charrnn.data.dataset import split_files

    ids = np.arange(1000)
    starts = np.arange(0, 1000, 50)  # 20 files of 50
    _, val = split_files(ids, 0.07, starts)
    assert len(val) in (50, 100) and int(val[0]) % 50 == 0  # a boundary, not 70 in
    _, val = split_files(ids, 0.07, starts[:5])  # too few files: the tail, exactly
    assert len(val) == 70


def test_a_missing_input_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", str(tmp_path / "nope"), str(tmp_path)])
    assert result.exit_code == 1 and "no such file or folder" in result.stderr
    assert read_manifest(tmp_path / "x.txt") is None
    assert not os.path.exists(tmp_path / "cache" / "joined")
