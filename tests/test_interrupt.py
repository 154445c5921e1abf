"""Ctrl-C during training: save, say where, exit 130, and resume from there."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import tiny_cli

from charrnn.checkpoint import load_checkpoint
from charrnn.launch import resume


def test_ctrl_c_saves_and_exits_cleanly(tmp_path: Path, corpus_file: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "charrnn",
            "train",
            str(corpus_file),
            "--out",
            str(out),
            "--steps",
            "1000000",
            *tiny_cli(embed=None, eval_every=50, sample_length=0),
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "metrics.jsonl").exists():  # first evaluation done: training runs
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted at step" in err and "last.pt" in err and "--resume" in err
    assert "Traceback" not in err
    step = load_checkpoint(out / "last.pt").step
    assert step >= 50
    summary = resume(out, steps=step + 10)
    assert summary.step == step + 10
