"""Ctrl-C and termination signals during training: save, say where, exit 128 + the
signal's number, and resume from there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import tiny_cli
from typer.testing import CliRunner

from charrnn.checkpoint import load_checkpoint
from charrnn.cli.app import app
from charrnn.rundir import RunDir
from charrnn.training.launch import resume

runner = CliRunner()


def train_command(corpus_file: Path, out: Path, *options: str) -> list[str]:
    return [sys.executable, "-m", "charrnn", "train", str(corpus_file), "--out", str(out), *options]


def start_training(out: Path, corpus_file: Path) -> subprocess.Popen[str]:
    """A long tiny run, returned once its first evaluation is written (training runs)."""
    proc = subprocess.Popen(
        train_command(
            corpus_file,
            out,
            "--steps",
            "1000000",
            *tiny_cli(embed=None, eval_every=50, sample_length=0),
            "-q",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (out / "metrics.jsonl").exists():  # first evaluation done: training runs
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(("training did not start", proc.communicate()))
        time.sleep(0.05)
    return proc


def stop_with(proc: subprocess.Popen[str], signum: int) -> str:
    try:
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return err


@pytest.mark.slow  # a process that imports torch: Ctrl-C from outside, then resume
def test_ctrl_c_saves_and_exits_cleanly(tmp_path: Path, corpus_file: Path) -> None:
    out = tmp_path / "run"
    proc = start_training(out, corpus_file)
    err = stop_with(proc, signal.SIGINT)
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "last.pt" in err and "--resume" in err
    assert "Traceback" not in err
    step = load_checkpoint(out / "last.pt").step
    assert step >= 50
    summary = resume(out, steps=step + 10)
    assert summary.step == step + 10


@pytest.mark.slow  # a process that imports torch: the real signal from outside
def test_sigterm_saves_like_ctrl_c(tmp_path: Path, corpus_file: Path) -> None:
    # Before: SIGTERM (scancel, SLURM preemption), SIGHUP and SIGQUIT ended the process at
    # once and lost up to --save-every - 1 steps.
    out = tmp_path / "run"
    proc = start_training(out, corpus_file)
    err = stop_with(proc, signal.SIGTERM)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by signal SIGTERM at step" in err and "--resume" in err
    step = load_checkpoint(out / "last.pt").step
    assert 50 <= step < 500, (
        "last.pt exists before the first --save-every (500): the signal saved it"
    )


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"])
def test_every_stop_signal_saves_and_exits_with_its_code(
    tmp_path: Path, corpus_file: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The signal is sent to this process, mid-run (after the first evaluation), through
    the command itself: one handler (launch.graceful_interrupt) serves them all, so no
    process need be started for each; the two tests above send it from outside."""
    signum = getattr(signal, name)
    out = tmp_path / "run"
    # Had training installed no handler, the signal lands here instead of ending pytest.
    unhandled: list[int] = []
    previous = signal.signal(signum, lambda s, f: unhandled.append(s))
    append = RunDir.append_metrics

    def signal_after_evaluating(self: RunDir, record: dict[str, object]) -> None:
        append(self, record)
        if record["step"] == 50:
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(RunDir, "append_metrics", signal_after_evaluating)
    options = tiny_cli(embed=None, eval_every=50, sample_length=0, steps=400)
    try:
        result = runner.invoke(app, ["train", str(corpus_file), "--out", str(out), *options])
    finally:
        signal.signal(signum, previous)
    said = "interrupted" if name == "SIGINT" else f"stopped by signal {name}"
    assert unhandled == [] and result.exit_code == 128 + signum, result.output
    assert f"{said} at step" in result.stderr and "--resume" in result.stderr
    assert "Traceback" not in result.output
    saved = load_checkpoint(out / "last.pt")
    # No save before the end (--save-every 500 > --steps 400): the signal saved last.pt.
    assert 50 <= saved.step < 400 and not saved.finished


@pytest.mark.slow  # a process that imports torch: a real pipe closed by its reader
def test_a_closed_output_pipe_never_stops_training(tmp_path: Path, corpus_file: Path) -> None:
    # Before: `charrnn train ... --json | head -c 5` ended with exit 1, no message and no
    # final save.
    out = tmp_path / "run"
    proc = subprocess.Popen(
        train_command(
            corpus_file,
            out,
            "--steps",
            "60",
            "--json",
            *tiny_cli(eval_every=2, save_every=1000, sample_length=0),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(5)  # like head -c 5: read a little, then go away
    proc.stdout.close()
    proc.stderr.close()
    assert proc.wait(timeout=120) == 0
    final = load_checkpoint(out / "last.pt")
    assert final.step == 60 and final.finished
