"""Round two of the hostile new user: values and files that used to end in a traceback.

Each test names what it did before the fix.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import TINY_CLI, tiny_config
from typer.testing import CliRunner

from charrnn.checkpoint import CorpusRecord, load_checkpoint, save_checkpoint
from charrnn.cli.app import app
from charrnn.config import ModelConfig, RunConfig
from charrnn.data import text as corpus_module
from charrnn.data.dataset import load_dataset
from charrnn.data.text import load_corpus
from charrnn.data.vocab import Vocab
from charrnn.errors import CharRNNError, ConfigError, CorpusError, VocabError
from charrnn.layering import read_toml
from charrnn.model.network import CharRNN
from charrnn.sampling.sampler import SampleSettings, choose, generate
from charrnn.training.launch import train

runner = CliRunner()


def one_line_error(result: object, code: int = 1) -> str:
    assert result.exit_code == code, result.output  # type: ignore[attr-defined]
    err: str = result.stderr  # type: ignore[attr-defined]
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[data]\nbyte_level = "false"\n',
            "byte_level must be true or false",
        ),  # was: taken as true
        ("[data]\nencoding = 5\n", "encoding must be text"),
        ("[data]\npath = 5\n", "path must be text"),
        ('[data]\nencoding = "rot13"\n', "'rot13' is not a text encoding"),
        ("[train]\nseed = 9223372036854775808\n", r"seed must be an integer in \[0, 2\^63\)"),
    ],
)
def test_toml_values_of_the_wrong_kind(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "run.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict(read_toml(path))


def test_a_toml_file_that_is_not_utf8(tmp_path: Path, corpus_file: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_bytes(b"[model]\nhidden_size = 8 # \xff\xfe\n")
    result = runner.invoke(app, ["train", str(corpus_file), "--config", str(path), "-q"])
    assert "not UTF-8 text" in one_line_error(result)


@pytest.mark.parametrize("codec", ["hex", "base64", "zlib", "rot13"])
def test_non_text_codecs_are_refused(tmp_path: Path, corpus_file: Path, codec: str) -> None:
    result = runner.invoke(app, ["train", str(corpus_file), "--encoding", codec, "-q"])
    assert "is not a text encoding" in one_line_error(result)


def test_surrogate_code_points_never_reach_a_vocabulary(tmp_path: Path, corpus_file: Path) -> None:
    # Before: via --encoding unicode_escape they crashed sampling mid-run, nothing saved.
    path = tmp_path / "escaped.txt"
    path.write_text("abc \\ud800 def " * 20, encoding="ascii")
    result = runner.invoke(
        app, ["train", str(path), "--encoding", "unicode_escape", "--steps", "2", "-q", *TINY_CLI]
    )
    assert "surrogate code points (U+D800)" in one_line_error(result)
    with pytest.raises(VocabError, match="surrogate"):
        Vocab((0x41, 0xDC00))


def test_a_pipe_is_not_mistaken_for_an_empty_file(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = runner.invoke(app, ["train", str(fifo), "-q"])
    assert "is not a regular file" in one_line_error(result)


def test_a_tiny_temperature_is_greedy_not_nan() -> None:
    # Before: --temperature 1e-39 overflowed the logits and the draw failed.
    logits = torch.tensor([[1.0, 3.0, 2.0], [0.5, 0.1, 0.2]])
    drawn = choose(logits, SampleSettings(temperature=1e-39), torch.Generator().manual_seed(0))
    assert drawn.tolist() == [1, 0]


def test_too_many_samples_is_a_clear_error() -> None:
    vocab = Vocab.from_text("abc\n")
    model = CharRNN(len(vocab), ModelConfig(hidden_size=4, embed_size=2, num_layers=1))
    with pytest.raises(ConfigError, match="num-samples must be 1 to 100,000"):
        generate(model, vocab, length=1, num_samples=10**9)


def test_a_long_priming_text_runs_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: a 4 MB --prime went through the model in one call (2.9 GB).
    vocab = Vocab.from_text("ab\n")
    model = CharRNN(len(vocab), ModelConfig(hidden_size=4, embed_size=2, num_layers=1))
    lengths: list[int] = []
    forward = model.forward

    def spy(x: torch.Tensor, state: object = None) -> object:
        lengths.append(x.shape[1])
        return forward(x, state)  # type: ignore[arg-type]

    monkeypatch.setattr(model, "forward", spy)
    generate(model, vocab, length=2, prime="ab" * 5000, seed=0)
    assert lengths == [4096, 4096, 1808]


def _trained(tmp_path: Path, corpus_file: Path) -> Path:
    run = tmp_path / "run"
    train(tiny_config(corpus_file, steps=2, eval_every=2, save_every=2), run)
    return run


def test_resume_never_caches_a_file_the_checkpoint_merely_names(
    tmp_path: Path, corpus_file: Path
) -> None:
    # Before: a checkpoint naming the password-shadow file made --resume read it and
    # write its encoding, world-readable, into the cache.
    run = _trained(tmp_path, corpus_file)
    secret = tmp_path / "secret.txt"
    secret.write_text(corpus_file.read_text()[::-1])
    checkpoint = load_checkpoint(run / "last.pt")
    data = replace(checkpoint.config.data, path=str(secret))
    save_checkpoint(
        run / "last.pt", replace(checkpoint, config=replace(checkpoint.config, data=data))
    )
    cached = set((tmp_path / "cache").rglob("*"))
    result = runner.invoke(app, ["train", "--resume", str(run), "--steps", "4", "-q"])
    assert "is not the text this run trained on" in one_line_error(result)
    assert set((tmp_path / "cache").rglob("*")) == cached, "nothing new was cached"


def test_the_cache_is_no_more_readable_than_its_source(tmp_path: Path) -> None:
    private = tmp_path / "private.txt"
    private.write_text("only mine " * 50)
    private.chmod(0o600)
    load_corpus(private, cache_dir=tmp_path / "c")
    cached = [p for p in (tmp_path / "c").rglob("*") if p.is_file()]
    assert cached and all(p.stat().st_mode & 0o077 == 0 for p in cached), cached


def test_non_finite_weights_are_refused_before_sampling(tmp_path: Path, corpus_file: Path) -> None:
    run = _trained(tmp_path, corpus_file)
    checkpoint = load_checkpoint(run / "best.pt")
    poisoned = {k: torch.full_like(v, float("nan")) for k, v in checkpoint.model.items()}
    save_checkpoint(run / "best.pt", replace(checkpoint, model=poisoned))
    result = runner.invoke(app, ["sample", str(run), "-n", "5"])
    assert "weights are not finite" in one_line_error(result)


@pytest.mark.parametrize(
    ("content", "wrong"),
    [
        (random.Random(0).randbytes(4096), "could run code"),
        (b"just some text\n" * 20, "1936747893"),
    ],
    ids=["random bytes", "a text file"],
)
def test_files_that_are_not_checkpoints_are_named_as_such(
    tmp_path: Path, content: bytes, wrong: str
) -> None:
    # Before: random bytes were "Python objects that could run code"; a text file was
    # "not a checkpoint (1936747893)".
    path = tmp_path / "x.pt"
    path.write_bytes(b"\x11" + content)
    result = runner.invoke(app, ["info", str(path)])
    err = one_line_error(result)
    assert "not a checkpoint (not a file PyTorch wrote)" in err and wrong not in err


def test_a_same_size_different_vocabulary_names_the_characters(
    tmp_path: Path, corpus_file: Path
) -> None:
    run = _trained(tmp_path, corpus_file)
    text = corpus_file.read_text()
    swapped = text.replace("k", "Z")  # as many symbols, one of them different
    assert "k" in text and "Z" not in text
    corpus_file.write_text(swapped)
    with pytest.raises(CharRNNError) as caught:
        load_dataset(
            load_checkpoint(run / "last.pt").config, vocab=load_checkpoint(run / "last.pt").vocab
        )
    assert "new Z; missing k" in str(caught.value)


def test_info_shows_terminal_escapes_from_a_file_escaped(tmp_path: Path, corpus_file: Path) -> None:
    run = _trained(tmp_path, corpus_file)
    checkpoint = load_checkpoint(run / "best.pt")
    evil = CorpusRecord("\x1b]0;pwned\x07[bold]x[/bold]", "", "/tmp/\x1b[2J")
    save_checkpoint(run / "best.pt", replace(checkpoint, corpus=evil))
    result = runner.invoke(app, ["info", str(run)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "\\x1b]0;pwned\\x07[bold]x[/bold]" in result.stdout


def test_a_metrics_line_without_a_step_number_is_skipped(tmp_path: Path, corpus_file: Path) -> None:
    run = _trained(tmp_path, corpus_file)
    with (run / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": "ten", "val_loss": 1.0}\n')
    result = runner.invoke(app, ["train", "--resume", str(run), "--steps", "4", "-q"])
    assert result.exit_code == 0, result.output
    assert "skipped line 2, it has no step number" in result.stderr


def test_skip_unknown_does_not_echo_the_dropped_characters(
    tmp_path: Path, corpus_file: Path
) -> None:
    run = _trained(tmp_path, corpus_file)
    result = runner.invoke(
        app, ["sample", str(run), "--prime", "The €cat", "--skip-unknown", "-n", "0"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "The cat\n" and "'€'" in result.stderr


def test_the_command_line_starts_without_loading_torch() -> None:
    # So --help is quick and a Ctrl-C during start-up meets our handler, not torch's
    # import machinery (it once aborted in pybind11).
    code = "import sys, charrnn.cli.app; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_ctrl_c_before_a_command_starts_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import charrnn.cli.app as cli

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "app", interrupted)
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 130 and capsys.readouterr().err == "interrupted\n"


def test_a_malformed_rng_state_is_a_clear_error(tmp_path: Path, corpus_file: Path) -> None:
    run = _trained(tmp_path, corpus_file)
    checkpoint = load_checkpoint(run / "last.pt")
    save_checkpoint(
        run / "last.pt", replace(checkpoint, rng={"torch": torch.zeros(3, dtype=torch.uint8)})
    )
    result = runner.invoke(app, ["train", "--resume", str(run), "--steps", "4", "-q"])
    assert "cannot resume from this checkpoint" in one_line_error(result)


def test_a_claimed_million_layers_is_refused_by_arithmetic(
    tmp_path: Path, corpus_file: Path
) -> None:
    # Before: `info` hung (killed after 120 s, memory growing) building the model.
    run = _trained(tmp_path, corpus_file)
    checkpoint = load_checkpoint(run / "best.pt")
    model = replace(checkpoint.config.model, num_layers=10**6)
    save_checkpoint(
        run / "best.pt", replace(checkpoint, config=replace(checkpoint.config, model=model))
    )
    result = runner.invoke(app, ["info", str(run)])
    assert "1000000x16" in one_line_error(result)  # refused from the shapes, at once


def test_a_file_changed_between_the_two_passes_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before: it was reported as "unknown characters".
    path = tmp_path / "t.txt"
    path.write_text("abc abc abc\n" * 10)
    scan = corpus_module._scan

    def scan_then_change(source: Path, *args: object) -> object:
        result = scan(source, *args)  # type: ignore[arg-type]
        source.write_text("xyz xyz xyz\n" * 10)  # another process edits it in between
        return result

    monkeypatch.setattr(corpus_module, "_scan", scan_then_change)
    with pytest.raises(CorpusError, match="changed while it was being read"):
        load_corpus(path, cache_dir=tmp_path / "c")
