"""Property tests: any file content and any option value ends in success or in one
clear error line — never a traceback, a hang, or a partly written file."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_text, tiny_cli
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from charrnn.checkpoint import load_checkpoint
from charrnn.cli.app import app
from charrnn.errors import ConfigError
from charrnn.layering import Layers
from charrnn.training import launch

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


# The odd values the option checks let through to training, each run for real below.
# The contract test fails when a check changes so that another one reaches training:
# then add it here (or refuse it).
REACHES_TRAINING = {
    "fit": [
        ("--embed", "0"), ("--dropout", "0"), ("--clip", "0"), ("--warmup", "0"),
        ("--weight-decay", "0"), ("--seed", "0"), ("--sample-length", "0"),
    ],
    "huge": [
        ("--steps", "999999999999"), ("--eval-every", "999999999999"),
        ("--save-every", "999999999999"), ("--max-bad-steps", "999999999999"),
        ("--seed", "999999999999"),
    ],
    "too big to build": [
        ("--hidden", "999999999999"), ("--layers", "999999999999"),
        ("--embed", "999999999999"), ("--batch-size", "999999999999"),
        ("--seq-len", "999999999999"),
    ],
}  # fmt: skip


def _same(a: object, b: object) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)


@pytest.mark.parametrize("option", NUMERIC_OPTIONS)
def test_odd_option_values_are_refused_or_passed_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, option: str
) -> None:
    """Each odd value is refused before any work, or reaches the library as given.

    Training is patched out (STYLE.md's fastapi-cli pattern): the command either stops
    with a usage error (exit 2, one line) without calling the library, or hands it the
    settings, which either refuse the value (``ConfigError``, one line, exit 1: see
    test_cli_contract) or hold it as given. The values that get through run for real in
    the tests below.
    """
    calls: list[Layers] = []
    monkeypatch.setattr(launch, "train", lambda layers, *a, **k: calls.append(layers))
    covered = {pair for pairs in REACHES_TRAINING.values() for pair in pairs}
    for value in ODD_VALUES:
        calls.clear()
        args = ["train", "t.txt", "--out", str(tmp_path / "run"), "--time", "1s", *TINY]
        result = runner.invoke(app, [*args, option, value])  # given last, so it wins
        assert result.exit_code in (0, 2), (value, result.output)
        if result.exit_code == 2:
            assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
            assert calls == [], "a usage error must stop before the library is called"
            continue
        assert len(calls) == 1, (value, result.output)
        layers = calls[0]
        try:
            config = layers.settle()
        except ConfigError as error:
            assert "\n" not in str(error)
            continue
        for section, table in layers.given.items():
            for key, wanted in table.items():
                held = getattr(getattr(config, section), key)
                assert _same(held, wanted), (option, value, section, key, held, wanted)
        assert (option, value) in covered, f"{option} {value} reaches training: test it below"


@pytest.mark.parametrize("case", ["fit", "huge"])
def test_odd_values_that_pass_the_checks_train(
    tmp_path: Path, corpus_file: Path, case: str
) -> None:
    """The odd values the checks let through, all at once: a real (short) run."""
    run = tmp_path / "run"
    odd = [part for pair in REACHES_TRAINING[case] for part in pair]
    args = ["train", str(corpus_file), "--out", str(run), "--time", "1s", *TINY, *odd]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert_clean_outcome(result, run)
    assert load_checkpoint(run / "last.pt").finished


@pytest.mark.parametrize(("option", "value"), REACHES_TRAINING["too big to build"])
def test_a_model_or_batch_too_big_is_refused_before_training(
    tmp_path: Path, corpus_file: Path, option: str, value: str
) -> None:
    run = tmp_path / "run"
    args = ["train", str(corpus_file), "--out", str(run), "--time", "1s", *TINY]
    result = runner.invoke(app, [*args, option, value])
    assert result.exit_code == 1, result.output
    assert_clean_outcome(result, run)
    assert not (run / "last.pt").exists()


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny run the sampling tests only read, trained once for the module."""
    folder = tmp_path_factory.mktemp("odd-sample")
    corpus = folder / "t.txt"
    corpus.write_text(make_text(6000), encoding="utf-8")
    run = folder / "run"
    cache = ["--cache-dir", str(folder / "cache")]
    trained = runner.invoke(app, ["train", str(corpus), "--out", str(run), *TINY, *cache])
    assert trained.exit_code == 0, trained.output
    return run


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
def test_odd_sample_options(sample_run: Path, args: list[str]) -> None:
    result = runner.invoke(app, ["sample", str(sample_run), *args])
    assert result.exit_code in (1, 2)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
