"""Property tests: any file content and any option value ends in success or in one
clear error line — never a traceback, a hang, or a partly written file."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiny_cli
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from charrnn.checkpoint import load_checkpoint
from charrnn.cli.app import app

runner = CliRunner()
TINY = [
    *tiny_cli(hidden=8, embed=4, batch_size=2, seq_len=4, sample_length=5, eval_every=1, steps=2),
    "-q",
]


def assert_clean_outcome(result: object, run: Path) -> None:
    code = result.exit_code  # type: ignore[attr-defined]
    exception = result.exception  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    assert exception is None or isinstance(exception, SystemExit), repr(exception)
    assert code in (0, 1, 2), (code, stderr)
    if code == 1:
        assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    if run.exists():
        assert not list(run.glob(".*.tmp")), "temporary files left in the run directory"
        for name in ("last.pt", "best.pt"):
            if (run / name).exists():
                load_checkpoint(run / name)


ODD = {
    "empty": b"",
    "one char": b"a",
    "nul bytes": b"ab\x00cd\x00" * 20,
    "bom": "\ufeffhello world, hello again\n".encode() * 5,
    "crlf": b"line one\r\nline two\r\n" * 10,
    "lone cr": b"old mac\rtext\r" * 10,
    "invalid utf-8": b"good \xff\xfe bad",
    "emoji": "🙂🙃 smile 🎉\n".encode() * 10,
    "combining": "e\u0301a\u0300o\u0302 ".encode() * 20,
    "right to left": "שלום עולם مرحبا بالعالم\n".encode() * 10,
}


@pytest.mark.parametrize("name", list(ODD))
def test_odd_files(tmp_path: Path, name: str) -> None:
    path = tmp_path / "odd.txt"
    path.write_bytes(ODD[name])
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(path), "--out", str(run), "--val-frac", "0.3", *TINY])
    assert_clean_outcome(result, run)
    if name in ("empty", "one char", "invalid utf-8"):
        assert result.exit_code == 1
    else:
        assert result.exit_code == 0, result.output
    if name == "invalid utf-8":
        raw = runner.invoke(
            app,
            [
                "train",
                str(path),
                "--bytes",
                "--out",
                str(tmp_path / "b"),
                "--val-frac",
                "0.3",
                *TINY,
            ],
        )
        assert raw.exit_code in (0, 1) and "Traceback" not in raw.output


def test_a_single_line_of_ten_megabytes(tmp_path: Path) -> None:
    path = tmp_path / "line.txt"
    path.write_bytes(b"abcdefghij klmnopqrst " * 476_191)  # 10 MB, no newline
    run = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "train",
            str(path),
            "--out",
            str(run),
            "--val-frac",
            "0.001",
            *tiny_cli(hidden=8, embed=None, batch_size=32, seq_len=64, steps=3),
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert_clean_outcome(result, run)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.one_of(
        st.binary(max_size=400),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )
)
@example(content=b"\xef\xbb\xbf" + b"x" * 50)
def test_any_bytes(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    folder = tmp_path_factory.mktemp("any")
    path = folder / "in.txt"
    path.write_bytes(content)
    run = folder / "run"
    result = runner.invoke(app, ["train", str(path), "--out", str(run), "--val-frac", "0.3", *TINY])
    assert_clean_outcome(result, run)


NUMERIC_OPTIONS = [
    "--steps",
    "--lr",
    "--hidden",
    "--layers",
    "--embed",
    "--dropout",
    "--batch-size",
    "--seq-len",
    "--clip",
    "--warmup",
    "--val-frac",
    "--eval-every",
    "--save-every",
    "--seed",
    "--threads",
    "--weight-decay",
    "--epochs",
    "--time",
    "--max-bad-steps",
    "--sample-length",
]
ODD_VALUES = ["0", "-1", "1e30", "999999999999", "abc", "nan", "inf", ""]


@pytest.mark.parametrize("option", NUMERIC_OPTIONS)
def test_odd_option_values(tmp_path: Path, corpus_file: Path, option: str) -> None:
    for value in ODD_VALUES:
        run = tmp_path / f"run{ODD_VALUES.index(value)}"
        args = ["train", str(corpus_file), "--out", str(run), "--time", "1s", *TINY]
        args += [option, value]  # the odd value is given last, so it wins
        result = runner.invoke(app, args)
        assert_clean_outcome(result, run)


@pytest.mark.parametrize(
    "args",
    [
        ["--length", "-5"],
        ["--temperature", "nan"],
        ["--temperature", "-1"],
        ["--top-k", "-3"],
        ["--top-p", "nan"],
        ["--top-p", "2"],
        ["--num-samples", "0"],
        ["--seed", "-1"],
        ["--length", "abc"],
    ],
)
def test_odd_sample_options(tmp_path: Path, corpus_file: Path, args: list[str]) -> None:
    run = tmp_path / "run"
    trained = runner.invoke(app, ["train", str(corpus_file), "--out", str(run), *TINY])
    assert trained.exit_code == 0, trained.output
    result = runner.invoke(app, ["sample", str(run), *args])
    assert result.exit_code in (1, 2)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
