"""Two processes on 127.0.0.1 (gloo) train exactly what one process trains."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_text, tiny_cli
from typer.testing import CliRunner

from charrnn.cli.app import app
from charrnn.rundir import RunDir

runner = CliRunner()
SETTINGS = [
    *tiny_cli(layers=2, sample_length=0, eval_every=10, val_frac=0.1, cell="gru", lr=0.01),
    "--device",
    "cpu",  # gloo on the CPU, also where a GPU is present
    "-q",
]


def torchrun(*args: str, nproc: int = 2) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "charrnn",
            "train",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def metrics(run: Path) -> list[tuple[int, float, float]]:
    return [(r["step"], r["train_loss"], r["val_loss"]) for r in RunDir(run).read_metrics()]


def assert_close(a: list[tuple[int, float, float]], b: list[tuple[int, float, float]]) -> None:
    assert [s for s, _, _ in a] == [s for s, _, _ in b]
    for (_, ta, va), (_, tb, vb) in zip(a, b, strict=True):
        assert ta == pytest.approx(tb, rel=1e-4) and va == pytest.approx(vb, rel=1e-4)


@pytest.fixture
def text(tmp_path: Path) -> Path:
    path = tmp_path / "t.txt"
    path.write_text(make_text(20000, seed=3))
    return path


@pytest.mark.slow
def test_two_processes_match_one_and_resume(tmp_path: Path, text: Path) -> None:
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    done = runner.invoke(
        app, ["train", str(text), "--out", str(single), "--steps", "20", *SETTINGS]
    )
    assert done.exit_code == 0, done.output
    result = torchrun(str(text), "--out", str(ddp), "--steps", "20", *SETTINGS)
    assert result.returncode == 0, result.stderr
    assert_close(metrics(ddp), metrics(single))
    # one set of files, written once
    assert sorted(p.name for p in ddp.iterdir()) == [
        ".lock",
        "best.pt",
        "config.toml",
        "last.pt",
        "metrics.jsonl",
    ]
    runs = {p.name for p in tmp_path.iterdir() if p.is_dir()} - {"cache"}
    assert runs == {"single", "ddp"}, "no other rank wrote a run of its own"
    # a resumed distributed run continues as a resumed single-process run does
    more = runner.invoke(app, ["train", "--resume", str(single), "--steps", "30", "-q"])
    assert more.exit_code == 0, more.output
    result = torchrun("--resume", str(ddp), "--steps", "30", "-q")
    assert result.returncode == 0, result.stderr
    assert_close(metrics(ddp), metrics(single))
    assert len(metrics(ddp)) == 3


_DDP_AFTER_SESSION = """
import gc, os, weakref, torch
from torch.nn.parallel import DistributedDataParallel
from charrnn.training.distributed import session
gc.disable()  # only the session may collect
with session("cpu"):
    ddp = DistributedDataParallel(torch.nn.Linear(3, 3))
    ddp(torch.randn(2, 3)).sum().backward()
    alive = weakref.ref(ddp)
    del ddp
with open(f"rank{os.environ['RANK']}", "w") as out:
    out.write("freed" if alive() is None else "alive")
"""


@pytest.mark.slow
def test_the_session_frees_ddp_before_the_group_goes(tmp_path: Path) -> None:
    # DistributedDataParallel lives in reference cycles; freed by a later garbage
    # collection, after the process group is gone, its threads aborted a rank at
    # exit ("terminate called without an active exception", 3 of 12 resumes under load).
    script = tmp_path / "ddp.py"
    script.write_text(_DDP_AFTER_SESSION)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(script)],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [(tmp_path / f"rank{r}").read_text() for r in (0, 1)] == ["freed", "freed"]


@pytest.mark.slow
def test_uneven_batch_split_is_a_clear_error(tmp_path: Path, text: Path) -> None:
    args = [str(text), "--out", str(tmp_path / "r"), "--steps", "5", *SETTINGS]
    args[args.index("--batch-size") + 1] = "5"
    result = torchrun(*args)
    assert result.returncode != 0
    assert "does not split evenly among 2 processes" in result.stderr
    assert not (tmp_path / "r").exists()


def test_bf16_trains_on_the_cpu_and_fp16_needs_a_gpu(tmp_path: Path, text: Path) -> None:
    bf16 = runner.invoke(
        app,
        [
            "train",
            str(text),
            "--out",
            str(tmp_path / "b"),
            "--steps",
            "10",
            "--precision",
            "bf16",
            *SETTINGS,
        ],
    )
    assert bf16.exit_code == 0, bf16.output
    assert all(v < 5 for _, _, v in metrics(tmp_path / "b"))
    if not torch.cuda.is_available():
        fp16 = runner.invoke(
            app,
            ["train", str(text), "--out", str(tmp_path / "h"), "--precision", "fp16", *SETTINGS],
        )
        assert fp16.exit_code == 1 and "fp16 needs a CUDA GPU" in fp16.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_training(tmp_path: Path, text: Path, precision: str) -> None:
    result = runner.invoke(
        app,
        [
            "train",
            str(text),
            "--out",
            str(tmp_path / precision),
            "--precision",
            precision,
            "--steps",
            "20",
            *SETTINGS,
            "--device",
            "cuda",  # after SETTINGS, which name the CPU
        ],
    )
    assert result.exit_code == 0, result.output
    assert metrics(tmp_path / precision)[-1][2] < 4.0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "said"),
    [("SIGINT", "interrupted at step"), ("SIGTERM", "stopped by signal SIGTERM at step")],
)
def test_a_stop_signal_under_torchrun_saves_the_whole_batch_state(
    tmp_path: Path, text: Path, name: str, said: str
) -> None:
    # SIGINT: Ctrl-C in a terminal; SIGTERM: scancel / SLURM preemption, sent to the group.
    import signal
    import time

    from charrnn.checkpoint import load_checkpoint

    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "charrnn",
            "train",
            str(text),
            "--out",
            str(run),
            "--steps",
            "1000000",
            *SETTINGS,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, as a terminal would make it
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.jsonl").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        os.killpg(proc.pid, getattr(signal, name))  # reaches torchrun and its workers
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert err.count(said) == 1, err  # rank 0 alone says it
    record = load_checkpoint(run / "last.pt")
    assert all(s.shape[1] == 4 for s in record.state)  # every rank's rows were gathered
    if name == "SIGINT":
        return  # the saved state is the same either way: one resume (a torchrun) suffices
    result = torchrun("--resume", str(run), "--steps", str(record.step + 10), "-q")
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(run / "last.pt").step == record.step + 10


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Found on a 1-GPU machine: torchrun --nproc_per_node=2 with the GPU chosen made
    # rank 1 die in torch.cuda.set_device with "invalid device ordinal".
    from charrnn.errors import ConfigError
    from charrnn.training.distributed import session

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="no GPU of its own"), session("cuda"):
        pass
