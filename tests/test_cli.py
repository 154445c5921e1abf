from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_CLI, make_text
from typer.testing import CliRunner

from charrnn import __version__
from charrnn.cli.app import app
from charrnn.rundir import RunDir

runner = CliRunner()
TINY = [*TINY_CLI, "--device", "cpu", "--sample-length", "20"]


def run(*args: str, input: str | None = None) -> object:
    return runner.invoke(app, list(args), input=input)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LSTM trained 20 steps on ``t.txt`` beside it, once for the module: the
    tests that only read a run share it (one that changes a run copies it first)."""
    folder = tmp_path_factory.mktemp("cli-run")
    corpus = folder / "t.txt"
    corpus.write_text(make_text(6000), encoding="utf-8")
    out = folder / "run"
    options = ["--steps", "20", "--eval-every", "10", "--cache-dir", str(folder / "cache")]
    result = run("train", str(corpus), "--out", str(out), *options, *TINY)
    assert result.exit_code == 0, result.output
    return out


def copied(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of ``run_dir`` of this test's own, to change."""
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def test_help_lists_every_command() -> None:
    result = run("--help")
    assert result.exit_code == 0, result.output
    import typer.main

    registered = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert registered == {
        "train", "sample", "score", "serve", "export", "inspect", "compare", "info", "vocab",
        "hello", "corpus",
    }  # fmt: skip
    listed = {line.split()[0] for line in result.output.splitlines() if line.startswith("  ")}
    assert registered <= listed, registered - listed


def test_every_option_has_help_text() -> None:
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            assert getattr(param, "help", None) or param.param_type_name == "argument", (
                f"{name} {param.name} has no help"
            )


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_python_dash_m_works() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "charrnn", "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "train" in done.stdout and "sample" in done.stdout


def test_bad_cell_is_a_usage_error(corpus_file: Path) -> None:
    result = run("train", str(corpus_file), "--cell", "transformer")
    assert result.exit_code == 2
    assert "transformer" in result.output


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "no files to read"),  # a folder is its files: here none
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_bytes(b"abc\xfe\xffdef"), "invalid utf-8 at byte offset 3"),
        (lambda p: p.write_text("tiny"), "needs at least"),
    ],
)
def test_corpus_errors_are_one_line_without_traceback(
    tmp_path: Path, make: object, message: str
) -> None:
    path = tmp_path / "corpus.txt"
    make(path)  # type: ignore[operator]
    result = run("train", str(path), "--out", str(tmp_path / "run"), "--val-frac", "0.5")
    assert result.exit_code == 1, result.output
    assert message in result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists(), "no run directory for a failed start"


def test_vocab_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    result = run("vocab", str(tmp_path / "missing.txt"))
    assert result.exit_code == 1 and "no such file" in result.stderr


def test_vocab_table_lists_the_commonest_and_rarest(corpus_file: Path) -> None:
    result = run("vocab", str(corpus_file), "--show", "3", "--rarest", "2")
    assert result.exit_code == 0, result.output
    assert "the 3 most frequent" in result.stdout and "the 2 rarest" in result.stdout
    assert "␠" in result.stdout  # space is the commonest symbol of this text
    bytes_result = run("vocab", str(corpus_file), "--bytes")
    assert "256 symbols" in bytes_result.stdout


def test_vocab_counts_without_writing_an_encoded_copy(tmp_path: Path, corpus_file: Path) -> None:
    # vocab read the text twice and cached its encoding (17.7 MB/s on 100 MB, RSS
    # growing): now one counting pass, and nothing written.
    text = corpus_file.read_text()
    result = run("vocab", str(corpus_file), "--show", "1", "--rarest", "0")
    assert result.exit_code == 0, result.output
    assert f"{len(set(text))} symbols, {len(text):,} characters" in result.stdout
    assert not list((tmp_path / "cache").rglob("*.npy")), "vocab wrote an encoded copy"
    top = max(set(text), key=text.count)
    assert f"{text.count(top):,}" in result.stdout  # the commonest symbol's count


def test_vocab_never_loads_torch(corpus_file: Path) -> None:
    # Every command's error wrapper imported torch (1.4 s, 200 MB) to learn its rank.
    code = (
        "import sys\nfrom charrnn.cli.app import main\n"
        f"sys.argv = ['charrnn', 'vocab', {str(corpus_file)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('torch loaded' if 'torch' in sys.modules else 'no torch', file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "symbols" in done.stdout and done.stderr.strip().endswith("no torch"), done.stderr


def test_vocab_of_the_default_corpus() -> None:
    result = run("vocab", "--max-mb", "0.1")
    assert result.exit_code == 0, result.output
    assert "python-stdlib" in result.stdout


def test_train_sample_info_round_trip(trained: Path) -> None:
    out = trained
    assert {"last.pt", "best.pt", "metrics.jsonl", "config.toml"} <= {p.name for p in out.iterdir()}

    result = run("sample", str(out), "--length", "50", "--seed", "1", "--prime", "The ")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("The ") and len(result.stdout) == 4 + 50 + 1
    again = run("sample", str(out), "--length", "50", "--seed", "1", "--prime", "The ")
    assert again.stdout == result.stdout

    many = run("sample", str(out / "last.pt"), "-n", "10", "-m", "3", "--seed", "2")
    assert many.exit_code == 0, many.output
    assert many.stdout.count("\n") == 3 and many.stderr.count("sample") == 3

    info = run("info", str(out))
    assert info.exit_code == 0, info.output
    for text in ("lstm", "1 x 16", "steps trained", "20", "bpc"):
        assert text in info.stdout
    as_json = json.loads(run("info", str(out), "--json").stdout)
    assert as_json["step"] == 20 and as_json["best_val_bpc"] > 0


def test_sample_primes_from_stdin(trained: Path) -> None:
    out = trained
    result = run("sample", str(out), "-n", "5", "--prime", "-", "--seed", "0", input="The cat")
    assert result.exit_code == 0 and result.stdout.startswith("The cat")


def test_sample_errors_are_one_line(tmp_path: Path, trained: Path) -> None:
    out = trained
    bad = run("sample", str(out), "--prime", "Zebra€")
    assert bad.exit_code == 1 and "'€'" in bad.stderr and bad.stdout == ""
    skipped = run("sample", str(out), "--prime", "Zebra€", "--skip-unknown", "-n", "5")
    assert skipped.exit_code == 0 and "warning" in skipped.stderr
    for args, message in (
        (["--temperature", "-1"], "temperature"),
        (["--top-p", "0"], "top-p"),
        (["--top-p", "1.5"], "top-p"),
        (["--length", "-3"], "length"),
    ):
        result = run("sample", str(out), *args)
        # A value out of range is a usage error: exit 2, one line naming the option.
        assert result.exit_code == 2 and message in result.stderr, (args, result.output)
        assert result.stderr.count("\n") == 1, result.stderr
    missing = run("sample", str(tmp_path / "nothing"))
    assert missing.exit_code == 1 and "no such checkpoint" in missing.stderr
    (tmp_path / "evil.pt").write_bytes(b"\x80\x04junk")
    corrupt = run("sample", str(tmp_path / "evil.pt"))
    assert corrupt.exit_code == 1 and "Traceback" not in corrupt.output


def test_json_writes_one_line_per_evaluation(tmp_path: Path, corpus_file: Path) -> None:
    out = tmp_path / "j"
    result = run(
        "train",
        str(corpus_file),
        "--out",
        str(out),
        "--steps",
        "20",
        "--eval-every",
        "10",
        "--json",
        *TINY,
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["step"] for line in lines] == [10, 20]


def test_quiet_prints_nothing(tmp_path: Path, corpus_file: Path) -> None:
    quiet = run(
        "train", str(corpus_file), "--out", str(tmp_path / "q"), "--steps", "5", "-q", *TINY
    )
    assert quiet.exit_code == 0 and quiet.output == ""


def test_live_display_shows_progress_and_samples(tmp_path: Path, corpus_file: Path) -> None:
    result = run(
        "train",
        str(corpus_file),
        "--out",
        str(tmp_path / "r"),
        "--steps",
        "20",
        "--eval-every",
        "10",
        *TINY,
    )
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert "step 10" in err and "bpc" in err and "char/s" in err
    assert "done after 20 steps" in err


def test_config_file_and_overrides(tmp_path: Path, corpus_file: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text(
        '[model]\ncell = "rnn"\nhidden_size = 12\n[train]\nsteps = 7\nseq_len = 9\nbatch_size = 3\n'
    )
    out = tmp_path / "run"
    result = run(
        "train",
        str(corpus_file),
        "--config",
        str(config),
        "--hidden",
        "10",
        "--out",
        str(out),
        "-q",
        "--threads",
        "1",
    )
    assert result.exit_code == 0, result.output
    saved = (out / "config.toml").read_text()
    assert 'cell = "rnn"' in saved and "hidden_size = 10" in saved and "steps = 7" in saved
    assert "seq_len = 9" in saved
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\ncolour = 'blue'\n")
    result = run("train", str(corpus_file), "--config", str(bad))
    assert result.exit_code == 1 and "unknown setting(s) [model] colour" in result.stderr


def test_time_budget_replaces_the_default_steps(tmp_path: Path, corpus_file: Path) -> None:
    out = tmp_path / "t"
    result = run("train", str(corpus_file), "--out", str(out), "--time", "1s", "-q", *TINY)
    assert result.exit_code == 0, result.output
    saved = (out / "config.toml").read_text()
    train_lines = saved.split("[train]")[1].splitlines()
    assert "time_s = 1.0" in train_lines and not any(x.startswith("steps =") for x in train_lines)
    bad = run("train", str(corpus_file), "--time", "soon")
    assert bad.exit_code == 2 and "invalid duration" in bad.stderr


def test_an_existing_run_is_never_trained_over(
    tmp_path: Path, corpus_file: Path, trained: Path
) -> None:
    out = copied(trained, tmp_path)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    again = run("train", str(corpus_file), "--out", str(out), "--steps", "20", *TINY)
    assert again.exit_code == 1 and "already holds a run" in again.stderr
    conflict = run("train", "--resume", str(out), "--hidden", "99")
    assert conflict.exit_code == 2 and "--resume takes" in conflict.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_resume_continues_to_a_new_budget_and_no_further(tmp_path: Path, trained: Path) -> None:
    out = copied(trained, tmp_path)
    more = run("train", "--resume", str(out), "--steps", "30", "-q")
    assert more.exit_code == 0, more.output
    assert [r["step"] for r in RunDir(out).read_metrics()] == [10, 20, 30]
    done = run("train", "--resume", str(out), "-q")
    assert done.exit_code == 1 and "already used its budget" in done.stderr


def test_default_run_directory_name(tmp_path: Path, corpus_file: Path) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = run("train", str(corpus_file), "--steps", "3", "-q", "--cell", "gru", *TINY)
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "tiny-gru" / "last.pt").exists()


def test_hello_command() -> None:
    result = run("hello")
    assert result.exit_code == 0, result.output
    assert "before training" in result.stdout and "after 300 steps" in result.stdout
    assert result.stdout.rstrip().endswith("hello")


@pytest.mark.slow  # a process that imports torch, writing into a real pipe
def test_sample_streams_into_a_closed_pipe(trained: Path) -> None:
    out = trained
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(
        f"{sys.executable} -m charrnn sample {out} --length 100000000 | head -c 1000",
        shell=True,
        capture_output=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0
    assert len(done.stdout) == 1000
    assert b"Traceback" not in done.stderr and b"Error" not in done.stderr, done.stderr


def test_unreadable_corpus(
    tmp_path: Path, corpus_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", refuse)
    result = run("train", str(corpus_file), "--out", str(tmp_path / "run"))
    assert result.exit_code == 1
    assert result.stderr == f"error: {corpus_file}: cannot read: Permission denied\n"


def test_train_on_the_default_corpus(tmp_path: Path) -> None:
    out = tmp_path / "std"
    result = run("train", "--max-mb", "0.05", "--steps", "3", "--out", str(out), "-q", *TINY)
    assert result.exit_code == 0, result.output
    assert "max_mb = 0.05" in (out / "config.toml").read_text()
    info = json.loads(run("info", str(out), "--json").stdout)
    assert info["corpus"]["name"] == "python-stdlib"


def test_resume_from_another_directory(tmp_path: Path, corpus_file: Path) -> None:
    cwd = os.getcwd()
    os.chdir(corpus_file.parent)
    try:
        first = run("train", corpus_file.name, "--out", "rel", "--steps", "5", "-q", *TINY)
    finally:
        os.chdir(cwd)
    assert first.exit_code == 0, first.output
    more = run("train", "--resume", str(corpus_file.parent / "rel"), "--steps", "8", "-q")
    assert more.exit_code == 0, more.output
