"""Round four of hostile use (issue #34): nothing skipped in silence, `sample`'s
terminal output, and messages that say the true reason."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from conftest import make_text, tiny_cli
from typer.testing import CliRunner

from charrnn.checkpoint import check_optimizer_state
from charrnn.cli.app import app
from charrnn.data.run_sources import check_sources
from charrnn.data.sources import read_stdin
from charrnn.errors import CorpusError

runner = CliRunner()


def _stepped_adamw() -> tuple[torch.optim.Optimizer, dict]:
    layer = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(layer.parameters())
    layer(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    return optimizer, optimizer.state_dict()


def test_a_nan_optimizer_moment_is_called_not_finite_not_a_shape() -> None:
    optimizer, saved = _stepped_adamw()
    saved["state"][0]["exp_avg_sq"] = torch.full((3, 4), float("nan"))
    with pytest.raises(ValueError) as caught:
        check_optimizer_state(optimizer, saved)
    assert str(caught.value) == "its optimizer state 'exp_avg_sq' is not finite"


def test_a_misshapen_optimizer_moment_is_called_by_its_shape_alone() -> None:
    optimizer, saved = _stepped_adamw()
    saved["state"][0]["exp_avg"] = torch.zeros(4096, 1)
    with pytest.raises(ValueError) as caught:
        check_optimizer_state(optimizer, saved)
    assert str(caught.value) == "its optimizer state 'exp_avg' is (4096, 1), not (3, 4)"


# -- standard input is named as such, and binary input is refused as in a folder ------


def test_undecodable_standard_input_is_named_standard_input(tmp_path: Path) -> None:
    with pytest.raises(CorpusError) as caught:
        read_stdin(io.BytesIO(b"caf\xe9 au lait\n" * 3), cache_dir=tmp_path / "cache")
    message = str(caught.value)
    assert message.startswith("standard input: invalid utf-8 at byte offset 3"), message
    assert not list((tmp_path / "cache" / "stdin").iterdir())  # nothing kept
    result = runner.invoke(
        app, ["vocab", "-", "--cache-dir", str(tmp_path / "cache")], input=b"caf\xe9\n"
    )
    assert result.exit_code == 1
    assert "standard input: invalid utf-8" in result.stderr and "stdin-" not in result.stderr


def test_nul_bytes_on_standard_input_are_refused_as_a_binary_file_is(tmp_path: Path) -> None:
    for byte_level in (None, "utf-8"):  # a byte-level run too: a folder skips it either way
        with pytest.raises(CorpusError, match=r"^standard input: binary"):
            read_stdin(
                io.BytesIO(b"text\n" * 100 + b"\0"), cache_dir=tmp_path / "c", encoding=byte_level
            )
    piped = runner.invoke(app, ["vocab", "-", "--cache-dir", str(tmp_path / "c")], input=b"a\0b\n")
    assert piped.exit_code == 1 and "standard input: binary" in piped.stderr


def test_a_byte_level_run_takes_standard_input_that_does_not_decode(tmp_path: Path) -> None:
    path = read_stdin(io.BytesIO(b"caf\xe9\n"), cache_dir=tmp_path / "c", encoding=None)
    assert path.read_bytes() == b"caf\xe9\n"
    result = runner.invoke(
        app, ["vocab", "-", "--bytes", "--cache-dir", str(tmp_path / "c")], input=b"caf\xe9\n"
    )
    assert result.exit_code == 0, result.output


# -- a folder's run: what was left out is reported, an added file refuses a resume -----


def test_resume_refuses_a_text_file_added_to_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "poems"
    folder.mkdir()
    (folder / "a.txt").write_text(make_text(3000, seed=1))
    (folder / "b.txt").write_text(make_text(3000, seed=2))
    (folder / ".env").write_text("SECRET=x\n")
    out = tmp_path / "run"
    cache = ["--cache-dir", str(tmp_path / "cache")]
    trained = runner.invoke(
        app, ["train", str(folder), "--steps", "4", "--out", str(out), *cache, *tiny_cli()]
    )
    assert trained.exit_code == 0, trained.output
    assert "2 files (skipped 1 hidden; --include-hidden reads them)" in trained.output
    shown = runner.invoke(app, ["info", str(out)])
    assert "left out" in shown.stdout and "1 hidden" in shown.stdout, shown.stdout
    (folder / "junk.bin").write_bytes(b"\0" * 10)  # would be skipped: the text is the same
    (folder / ".more").write_text("hidden, left out as before\n")
    check_sources(out)
    (folder / "c.txt").write_text("a new poem\n")
    again = runner.invoke(app, ["train", "--resume", str(out), "--steps", "8", *cache])
    assert again.exit_code == 1, again.output
    assert "1 text file was added" in again.stderr and "c.txt" in again.stderr, again.stderr


# -- sample: a model's escape sequences never drive the terminal ------------------------


def test_escaped_output_shows_control_characters_and_keeps_lines() -> None:
    from charrnn.cli.sample import _Escaped

    sink = io.BytesIO()
    out = _Escaped(sink)  # type: ignore[arg-type]
    red = "\x1b[31mred\tok\n€".encode()
    out.write(red[:-2])  # the euro sign split across two writes
    out.write(red[-2:] + b"\xff\n")
    assert sink.getvalue().decode() == "\\x1b[31mred\tok\n€\\xff\n"


def _esc_run(tmp_path: Path) -> Path:
    """A tiny run whose vocabulary holds ESC, [ and the digits of a colour code."""
    from conftest import tiny_config

    from charrnn.events import Silent
    from charrnn.training.launch import train

    corpus = tmp_path / "esc.txt"
    corpus.write_text((make_text(300) + " \x1b[31mred\x1b[0m\n") * 8, encoding="utf-8")
    out = tmp_path / "run"
    config = tiny_config(corpus, steps=2, eval_every=2, save_every=2)
    train(config, out, reporter=Silent(), cache_dir=tmp_path / "cache")
    return out


@pytest.mark.slow
def test_sample_escapes_control_characters_on_a_terminal_only(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    run = _esc_run(tmp_path)
    command = [sys.executable, "-m", "charrnn", "sample", str(run), "--length", "30"]
    command += ["--seed", "1", "--prime", "\x1b[31mred"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    leader, follower = os.openpty()
    try:
        done = subprocess.run(
            command, stdout=follower, stderr=subprocess.PIPE, env=env, timeout=120, check=False
        )
        os.close(follower)
        follower = -1
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end has closed
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    assert done.returncode == 0, done.stderr
    assert b"\x1b" not in shown and b"\\x1b[31mred" in shown, shown
    piped = subprocess.run(command, capture_output=True, env=env, timeout=120, check=False)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.startswith(b"\x1b[31mred")  # a pipe gets the raw text
    written = tmp_path / "samples.txt"
    to_file = subprocess.run(
        [*command, "--out", str(written)], capture_output=True, env=env, timeout=120
    )
    assert to_file.returncode == 0, to_file.stderr
    assert written.read_bytes().startswith(b"\x1b[31mred")


def test_score_says_what_a_folder_left_out(tmp_path: Path) -> None:
    from conftest import tiny_run

    run = tiny_run(tmp_path)
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text(make_text(400))
    (folder / "b.bin").write_bytes(b"\0\1")
    (folder / ".env").write_text("SECRET=x\n")
    scored = runner.invoke(
        app, ["score", str(run), str(folder), "--cache-dir", str(tmp_path / "cache")]
    )
    assert scored.exit_code == 0, scored.output
    assert "1 file (skipped 1 binary, 1 hidden; --include-hidden reads them)" in scored.stderr
