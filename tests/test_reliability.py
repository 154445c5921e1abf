"""Failures that must lose nothing: full disks, read-only folders, stale locks, odd names."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import TINY_CLI, Recorder, tiny_config
from typer.testing import CliRunner

from charrnn import files
from charrnn.checkpoint import load_checkpoint, save_checkpoint
from charrnn.cli.app import app
from charrnn.data.download import extract_member
from charrnn.data.vocab import Vocab
from charrnn.errors import CheckpointError, CorpusError
from charrnn.rundir import RunDir, default_run_name
from charrnn.training.launch import train

runner = CliRunner()


@pytest.mark.parametrize(
    ("where", "error"),
    [
        ("create", PermissionError(13, "Permission denied")),
        ("create", OSError(30, "Read-only file system")),
        ("save", OSError(28, "No space left on device")),
        ("replace", OSError(30, "Read-only file system")),
    ],
)
def test_failed_saves_keep_the_previous_checkpoint(
    tmp_path: Path,
    corpus_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
    error: OSError,
) -> None:
    run = tmp_path / "run"
    train(tiny_config(corpus_file, steps=10), run)
    before = (run / "last.pt").read_bytes()

    def fail(*args: object, **kwargs: object) -> None:
        raise error

    target = {
        "create": (files, "_create"),
        "save": (torch, "save"),
        "replace": (os, "replace"),
    }[where]
    monkeypatch.setattr(*target, fail)
    result = runner.invoke(app, ["train", "--resume", str(run), "--steps", "20", "-q"])
    monkeypatch.undo()
    assert result.exit_code == 1, result.output
    # os.replace also fails earlier, for metrics.jsonl: that is just as clear an error
    assert result.stderr.startswith("error: cannot ")
    assert error.strerror in result.stderr and result.stderr.count("\n") == 1
    assert (run / "last.pt").read_bytes() == before
    assert not list(run.glob(".*.tmp")), "temporary files left behind"


@pytest.mark.slow  # the holder is a process of its own, and it imports torch
def test_a_lock_held_by_a_killed_process_is_taken_over(tmp_path: Path, corpus_file: Path) -> None:
    run = RunDir(tmp_path / "run")
    run.make()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from charrnn.rundir import RunDir\n"
            "with RunDir(Path(sys.argv[1])).lock():\n"
            "    print('locked', flush=True); time.sleep(60)",
            str(run.path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = runner.invoke(
            app, ["train", str(corpus_file), "--out", str(run.path), "--steps", "3", "-q"]
        )
        assert result.exit_code == 1 and "another charrnn process" in result.stderr
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
    assert (run.path / ".lock").exists()  # left behind by the killed holder ...
    time.sleep(0.1)
    result = runner.invoke(
        app,
        ["train", str(corpus_file), "--out", str(run.path), "--steps", "3", "-q", "--threads", "1"],
    )
    assert result.exit_code == 0, result.output  # ... and taken over


def test_torn_metrics_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.append_metrics({"step": 1, "val_loss": 2.0})
    with run.metrics.open("a") as handle:
        handle.write('{"step": 2, "val_lo')
    recorder = Recorder()
    warnings = recorder.warnings
    assert run.read_metrics(recorder) == [{"step": 1, "val_loss": 2.0}]
    assert len(warnings) == 1 and "torn" in warnings[0] and "line 2" in warnings[0]


def test_checkpoint_with_a_wrong_vocabulary_size(tmp_path: Path, corpus_file: Path) -> None:
    train(tiny_config(corpus_file, steps=2), tmp_path / "run")
    record = load_checkpoint(tmp_path / "run" / "last.pt")
    shorter = Vocab(record.vocab.symbols[:-3], record.vocab.byte_level)
    save_checkpoint(tmp_path / "bad.pt", replace(record, vocab=shorter))
    result = runner.invoke(app, ["sample", str(tmp_path / "bad.pt")])
    assert result.exit_code == 1
    assert "weights do not match the stored settings" in result.stderr
    assert result.stderr.count("\n") == 1


def test_checkpoint_save_error_type(tmp_path: Path, corpus_file: Path) -> None:
    train(tiny_config(corpus_file, steps=2), tmp_path / "run")
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    with pytest.raises(CheckpointError, match="cannot save checkpoint"):
        save_checkpoint(Path("/nonexistent-folder/last.pt"), checkpoint)


@pytest.mark.parametrize("name", ["../../etc", "/abs/path", "a/b", "..", "", "💥 odd name!"])
def test_run_names_stay_inside_their_folder(name: str) -> None:
    run_name = default_run_name(name, "lstm")
    assert "/" not in run_name and "\\" not in run_name
    assert not run_name.startswith(".")
    assert (Path("runs") / run_name).resolve().parent == Path("runs").resolve()


def test_overwrite_never_deletes_what_a_live_run_owns(tmp_path: Path, corpus_file: Path) -> None:
    # Before: --overwrite deleted the live run's best.pt, config.toml and metrics.jsonl,
    # and only then was refused by the lock.
    run = tmp_path / "run"
    train(tiny_config(corpus_file, steps=10), run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if not p.name.startswith(".")}
    with RunDir(run).lock():  # a live process holds the run
        result = runner.invoke(
            app, ["train", str(corpus_file), "--out", str(run), "--overwrite", "-q", *TINY_CLI]
        )
    assert result.exit_code == 1 and "another charrnn process" in result.stderr
    after = {p.name: p.read_bytes() for p in run.iterdir() if not p.name.startswith(".")}
    assert after == before


def test_a_run_that_failed_before_its_first_checkpoint_can_be_retried(
    tmp_path: Path, corpus_file: Path
) -> None:
    # Before: the same --out was refused ("already holds a run: continue it with
    # --resume") and --resume then said there was no last.pt.
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text("[model]\n")
    (run / "metrics.jsonl").write_text("")
    result = runner.invoke(
        app, ["train", str(corpus_file), "--out", str(run), "--steps", "3", "-q", *TINY_CLI]
    )
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run / "last.pt").step == 3


def test_an_empty_out_is_a_usage_error(corpus_file: Path) -> None:
    result = runner.invoke(app, ["train", str(corpus_file), "--out", "", "-q"])
    assert result.exit_code == 2 and "--out" in result.stderr and "is empty" in result.stderr


def test_checkpoints_follow_the_umask_like_the_other_run_files(
    tmp_path: Path, corpus_file: Path
) -> None:
    # Before: checkpoints were created 0600 (mkstemp), so colleagues could not sample a
    # run in a shared folder; the other run files followed the umask.
    old = os.umask(0o022)
    try:
        train(tiny_config(corpus_file, steps=2), tmp_path / "run")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run").iterdir()}
    assert modes["last.pt"] == modes["config.toml"] == 0o644, modes


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 512 KB filesystem (tmpfs), so a full disk is the kernel's ENOSPC, not a fake."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode()[:80]}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path, leave: int) -> None:
    """Fill the filesystem of ``folder`` until about ``leave`` bytes are free."""
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    with suppress(OSError), (folder / "filler").open("wb") as handle:
        handle.write(b"\0" * max(free - leave, 0))


def test_a_real_full_disk_during_a_checkpoint_save(small_disk: Path, corpus_file: Path) -> None:
    # Before: torch.save raised RuntimeError ("enforce fail at inline_container.cc") on a
    # real full disk, so the save error was a traceback.
    scratch = corpus_file.parent / "scratch"
    train(tiny_config(corpus_file, steps=2), scratch)
    checkpoint = load_checkpoint(scratch / "last.pt")
    target = small_disk / "last.pt"
    save_checkpoint(target, checkpoint)
    before = target.read_bytes()
    fill(small_disk, leave=4096)
    with pytest.raises(CheckpointError, match="cannot save checkpoint") as caught:
        save_checkpoint(target, checkpoint)
    assert "\n" not in str(caught.value)
    assert target.read_bytes() == before
    assert not list(small_disk.glob(".*.tmp")), "temporary file left behind"


def test_a_real_full_disk_while_training_is_one_line(small_disk: Path, corpus_file: Path) -> None:
    fill(small_disk, leave=8192)
    result = runner.invoke(
        app,
        [
            "train",
            str(corpus_file),
            "--out",
            str(small_disk / "run"),
            "--steps",
            "3",
            "-q",
            *TINY_CLI,
        ],
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr


def test_a_real_full_disk_while_unpacking_a_zip(small_disk: Path, tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("inner", os.urandom(300_000))
    fill(small_disk, leave=8192)
    with pytest.raises(CorpusError, match="cannot unpack inner"):
        extract_member(archive, "inner", small_disk / "inner", size=300_000, sha256=None)
    assert not (small_disk / "inner").exists()
