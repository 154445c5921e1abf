"""Every file a person names (``export -o``, ``sample --out``, ``inspect --out``,
``hello --html``, ``corpus make -o``) follows one rule (charrnn.files.output_target):
an existing file is replaced only with --overwrite, a symbolic link is followed and
stays, a device or pipe is written through and stays what it was, a folder is refused,
and a stop signal mid-write leaves no temporary file behind."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import tiny_run
from typer.testing import CliRunner

from charrnn.cli.app import app

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("writers"))


# Each writer as the arguments that write TARGET, and a check that what it wrote is
# what that command writes.
WRITERS: dict[str, tuple[Callable[[Path, Path], list[str]], Callable[[bytes], bool]]] = {
    "export": (
        lambda run, target: ["export", str(run), "-f", "torchscript", "-o", str(target)],
        lambda data: data[:2] == b"PK",  # TorchScript is a zip archive
    ),
    "export web": (
        lambda run, target: ["export", str(run), "-f", "web", "-o", str(target)],
        lambda data: data.lower().startswith(b"<!doctype html>") and b'id="weights"' in data,
    ),
    "sample": (
        lambda run, target: ["sample", str(run), "--length", "50", "-o", str(target)],
        lambda data: len(data.decode()) == 51,
    ),
    "inspect": (
        lambda run, target: ["inspect", str(run), "--text", "the cat sat", "-o", str(target)],
        lambda data: data.lower().startswith(b"<!doctype html>"),
    ),
    "hello": (
        lambda run, target: ["hello", "--steps", "20", "--html", str(target)],
        lambda data: b"<html" in data,
    ),
    "corpus make": (
        lambda run, target: ["corpus", "make", "counting", "--size", "2000", "-o", str(target)],
        lambda data: len(data) >= 1000,
    ),
}


@pytest.mark.parametrize("writer", WRITERS)
def test_an_existing_file_is_replaced_only_when_asked(
    writer: str, run: Path, tmp_path: Path
) -> None:
    args, wrote = WRITERS[writer]
    target = tmp_path / "mine.txt"
    target.write_text("the user's own words\n")
    refused = runner.invoke(app, args(run, target))
    assert refused.exit_code == 1, refused.output
    assert refused.stderr.strip().endswith("exists; pass --overwrite to replace it")
    assert target.read_text() == "the user's own words\n"
    replaced = runner.invoke(app, [*args(run, target), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert wrote(target.read_bytes())
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("writer", WRITERS)
def test_a_symbolic_link_is_followed_and_stays_a_link(
    writer: str, run: Path, tmp_path: Path
) -> None:
    args, wrote = WRITERS[writer]
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "out.bin"
    link = tmp_path / "link.bin"
    link.symlink_to(target)
    result = runner.invoke(app, args(run, link))
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert wrote(target.read_bytes())


@pytest.mark.parametrize("writer", WRITERS)
def test_a_pipe_is_written_through_and_stays_a_pipe(writer: str, run: Path, tmp_path: Path) -> None:
    """A pipe stands for every non-file target that can take bytes (/dev/null,
    /dev/stdout as root): before the rule, the rename replaced it with a regular file."""
    args, wrote = WRITERS[writer]
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = runner.invoke(app, args(run, fifo))
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the pipe was replaced"
    assert received and wrote(received[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]  # no FILE.json beside it


@pytest.mark.parametrize("writer", WRITERS)
def test_a_folder_is_refused_before_any_work(writer: str, run: Path, tmp_path: Path) -> None:
    args, _ = WRITERS[writer]
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "keep.txt").write_text("kept")
    result = runner.invoke(app, args(run, folder))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: cannot write {folder}: it is a folder"
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


def test_a_symlink_loop_and_a_missing_folder_are_one_line(run: Path, tmp_path: Path) -> None:
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    result = runner.invoke(app, ["hello", "--steps", "5", "--html", str(loop)])
    assert result.exit_code == 1 and "symbolic link loop" in result.stderr
    missing = tmp_path / "no" / "page.html"
    result = runner.invoke(app, ["hello", "--steps", "5", "--html", str(missing)])
    assert result.exit_code == 1 and "does not exist" in result.stderr


# The child pauses inside the write (after the bytes, before the rename), says so, and
# waits for the signal the test sends.
_PAUSED_WRITE = """
import os, sys, time
real_fsync = os.fsync
def paused(fd):
    print("writing", flush=True)
    time.sleep(60)
os.fsync = paused
from charrnn.cli.app import main
sys.argv = ["charrnn", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
# Both write through files.output_target; hello's child imports torch (seconds), so the
# fast tier sends the signals to corpus make's and CI to both.
@pytest.mark.parametrize("writer", [pytest.param("hello", marks=pytest.mark.slow), "corpus make"])
def test_a_stop_signal_mid_write_leaves_no_temporary_file(
    writer: str, signum: int, tmp_path: Path
) -> None:
    args, _ = WRITERS[writer]
    target = tmp_path / "out.txt"
    child = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_WRITE, *args(tmp_path, target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == "writing\n"
        assert [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")], "not mid-write"
        child.send_signal(signum)
        _, err = child.communicate(timeout=30)
    finally:
        child.kill()
    assert child.returncode == 128 + signum
    assert err.strip() == f"stopped by signal {signal.Signals(signum).name}"
    assert list(tmp_path.iterdir()) == []
