"""SIGKILL at many moments, including inside checkpoint saves: nothing is ever lost.

Each round starts a real training process (a new one, or ``--resume`` of the last),
waits until it has evaluated once, kills it with SIGKILL after a random delay and
checks what it left: ``last.pt`` and ``best.pt`` load, ``metrics.jsonl`` reads (a
torn last line is skipped), and the next round resumes from the last saved step.
Saves are slowed in the child process (it patches its own ``torch.save``) so that many kills
land between writing a checkpoint's temporary file and renaming it. At the end the
run is finished and its evaluations must equal those of a run never interrupted.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TINY_CLI
from typer.testing import CliRunner

from charrnn.checkpoint import load_checkpoint
from charrnn.cli.app import app
from charrnn.rundir import RunDir

runner = CliRunner()

KILL_POINTS = 12  # each a process start: 20 cost 143 s of a 10-minute suite
SETTINGS = [
    *TINY_CLI,
    "--sample-length",
    "0",
    "--steps",
    "240",
    "--eval-every",
    "8",
    "--save-every",
    "4",
    "--val-frac",
    "0.1",
    "--json",
]


# The child process slows its own saves: it pauses after writing a checkpoint and
# before the rename, so a SIGKILL can land inside a save. Nothing of this is in charrnn.
_SLOW_SAVES = """
import sys, time
import charrnn.checkpoint as checkpoint
real, delay = checkpoint.torch.save, float(sys.argv[1])
def slow_save(*args, **kwargs):
    real(*args, **kwargs)
    time.sleep(delay)
checkpoint.torch.save = slow_save
from charrnn.cli.app import main
sys.argv = ["charrnn", "train", *sys.argv[2:]]
main()
"""


def start(args: list[str], save_delay: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _SLOW_SAVES, str(save_delay), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def comparable(run: Path) -> list[tuple[int, float, float]]:
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in RunDir(run).read_metrics()]


@pytest.mark.slow
def test_sigkill_at_many_moments(tmp_path: Path, corpus_file: Path) -> None:
    # The run never interrupted, and the last resume below, need no process of their own.
    reference = tmp_path / "reference"
    done = runner.invoke(app, ["train", str(corpus_file), "--out", str(reference), *SETTINGS])
    assert done.exit_code == 0, done.output

    run = tmp_path / "killed"
    rng = random.Random(0)
    kills = in_save = 0
    last_step = -1
    for _ in range(KILL_POINTS):
        if (run / "last.pt").exists() and load_checkpoint(run / "last.pt").finished:
            break  # a kill landed after the final save: nothing left to resume
        if (run / "last.pt").exists():
            proc = start(["--resume", str(run), "--json"], 0.03)
        else:
            proc = start([str(corpus_file), "--out", str(run), "--overwrite", *SETTINGS], 0.03)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the first evaluation: training is under way
        if not first:  # finished (or failed) before we could kill it
            assert proc.wait(timeout=60) == 0, proc.communicate()
            break
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        kills += 1
        temporaries = list(run.glob(".*.tmp"))
        in_save += bool(temporaries)
        for name in ("last.pt", "best.pt"):
            if (run / name).exists():
                record = load_checkpoint(run / name)  # never torn
                assert record.step > 0
        step = load_checkpoint(run / "last.pt").step
        assert step >= last_step, "a resumed run must never go back"
        last_step = step
        RunDir(run).read_metrics()  # readable; a torn last line is skipped

    assert kills >= KILL_POINTS - 2, f"only {kills} kills landed"
    assert in_save >= 2, f"only {in_save} of {kills} kills landed inside a save"
    final = runner.invoke(app, ["train", "--resume", str(run), "-q"])
    assert final.exit_code in (0, 1), final.output
    if final.exit_code == 1:
        assert "already used its budget" in final.stderr
    assert not list(run.glob(".*.tmp")), "temporaries of killed saves are cleaned on resume"
    assert comparable(run) == comparable(reference)
    print(f"{kills} SIGKILLs, {in_save} inside a checkpoint save")
