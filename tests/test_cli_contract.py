"""The CLI's contract with the library, with the heavy work patched out.

Each command parses, calls one library function with the settings the user gave, and
renders; these tests check what is passed, and how errors come out, in milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from charrnn.cli.app import app
from charrnn.compare import run as comparison
from charrnn.compare.report import RunResult
from charrnn.errors import CorpusError
from charrnn.layering import Layers
from charrnn.training import launch

runner = CliRunner()


class Calls:
    def __init__(self) -> None:
        self.args: tuple[Any, ...] = ()
        self.kwargs: dict[str, Any] = {}

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


@pytest.fixture
def trained(monkeypatch: pytest.MonkeyPatch) -> Calls:
    calls = Calls()
    monkeypatch.setattr(launch, "train", calls)
    return calls


@pytest.fixture
def any_work(monkeypatch: pytest.MonkeyPatch, trained: Calls) -> list[str]:
    """Every library call a command starts its work with, recorded by name (each
    command imports them when it runs, so a patched module attribute is what it gets)."""
    import charrnn.checkpoint
    import charrnn.compare.run
    import charrnn.inspection.run
    import charrnn.lecture.hello
    import charrnn.sharing.export

    ran: list[str] = []
    entries = [
        (launch, "train"), (launch, "resume"), (charrnn.checkpoint, "load_model"),
        (charrnn.checkpoint, "load_checkpoint"), (charrnn.sharing.export, "export"),
        (charrnn.inspection.run, "inspect_run"), (charrnn.compare.run, "compare"),
        (charrnn.lecture.hello, "run_hello"),
    ]  # fmt: skip
    for module, name in entries:
        monkeypatch.setattr(module, name, lambda *a, _n=name, **k: ran.append(_n))
    return ran


def test_train_passes_the_layered_settings(trained: Calls, tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "train",
            "t.txt",
            "--cell",
            "gru",
            "--layers",
            "3",
            "--time",
            "90s",
            "--lr",
            "0.01",
            "--out",
            str(tmp_path / "r"),
            "-q",
            "--overwrite",
        ],
    )
    assert result.exit_code == 0, result.output
    layers, out = trained.args
    assert out == tmp_path / "r" and trained.kwargs["overwrite"] is True
    assert isinstance(layers, Layers) and layers.auto  # auto chooses the rest, in the library
    config = layers.settle()
    assert config.model.cell == "gru" and config.model.num_layers == 3
    assert config.train.time_s == 90.0 and config.train.steps is None and config.train.lr == 0.01
    assert config.data.path == "t.txt"


def test_train_names_the_run_after_corpus_and_cell(trained: Calls) -> None:
    result = runner.invoke(app, ["train", "some/poems.txt", "--cell", "rnn", "-q"])
    assert result.exit_code == 0, result.output
    layers, out = trained.args
    assert out is None, "no --out: the library names the run"
    named = launch.default_out(layers.settle())
    assert named.parent == Path("runs") and named.name.startswith("poems-rnn")


def test_init_from_is_passed_to_the_library_which_merges_its_shape(
    trained: Calls, tmp_path: Path
) -> None:
    result = runner.invoke(app, ["train", "t.txt", "--init-from", str(tmp_path / "r0"), "-q"])
    assert result.exit_code == 0, result.output
    assert trained.kwargs["init_from"] == tmp_path / "r0"
    layers, _ = trained.args
    assert "init_from" not in layers.given.get("train", {}), "the CLI merges no tables"


def test_resume_passes_only_the_new_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    monkeypatch.setattr(launch, "resume", calls)
    result = runner.invoke(app, ["train", "--resume", "runs/x", "--epochs", "2.5", "-q"])
    assert result.exit_code == 0, result.output
    assert calls.args == (Path("runs/x"),)
    assert calls.kwargs["epochs"] == 2.5 and calls.kwargs["steps"] is None


def test_a_domain_error_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(*args: object, **kwargs: object) -> None:
        raise CorpusError("t.txt: is empty")

    monkeypatch.setattr(launch, "train", fails)
    result = runner.invoke(app, ["train", "t.txt", "-q"])
    assert result.exit_code == 1 and result.stderr == "error: t.txt: is empty\n"


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--cell", "transformer"],
        ["train", "--layers", "0"],
        ["train", "--seed", "-1"],
        ["train", "--seed", str(2**64)],
        ["train", "--time", "soon"],
        ["sample", "x", "--length", "-3"],
        ["sample", "x", "--num-samples", "0"],
        ["sample", "x", "--num-samples", str(10**9)],
        ["sample", "x", "--top-k", "-1"],
        ["sample", "x", "--temperature", "-1"],
        ["sample", "x", "--beam", "0"],
        ["sample", "x", "--novel-span", "1"],
        ["sample", "x", "--min-chars", "-1"],
        ["train", "--docs", "words"],
        ["train", "--resume", "runs/x", "--docs", "lines"],
        ["train", "--init-from", "runs/x", "--layers", "2"],
        ["export", "x", "--format", "tflite"],
        ["inspect", "x", "--unit", "first"],
        ["inspect", "x", "--max-chars", "0"],
        ["compare", "--layers", "a,b"],
        ["hello", "--seed", str(2**63)],
    ],
)
def test_usage_errors_exit_2_in_one_line(any_work: list[str], args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert any_work == []  # no command got as far as its work


def test_the_work_spy_sees_each_commands_work(any_work: list[str]) -> None:
    """The check above can fail: a valid command is seen starting its work."""
    runner.invoke(app, ["hello", "--steps", "1"])
    runner.invoke(app, ["export", "x"])
    assert "run_hello" in any_work and "export" in any_work


def test_compare_passes_grid_and_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = Calls()

    def fake(*args: Any, **kwargs: Any) -> comparison.Comparison:
        calls(*args, **kwargs)
        row = RunResult("gru-1x8", "gru", 1, 8, 100, 5, 2.0, 1.9, 2.7, 1000.0, 1.0, [])
        return comparison.Comparison(tmp_path, [row], {}, [tmp_path / "compare.json"])

    monkeypatch.setattr(comparison, "compare", fake)
    result = runner.invoke(
        app,
        [
            "compare",
            "t.txt",
            "--cells",
            "rnn,gru",
            "--layers",
            "1,2",
            "--hidden",
            "8",
            "--steps",
            "5",
            "-q",
            "--sample-length",
            "0",
        ],
    )
    assert result.exit_code == 0, result.output
    (base,) = calls.args
    assert base.train.steps == 5 and base.data.path == "t.txt"
    assert calls.kwargs["cells"] == ["rnn", "gru"] and calls.kwargs["layers"] == [1, 2]
    assert calls.kwargs["hiddens"] == [8] and calls.kwargs["sample_length"] == 0
    assert "gru" in result.stdout and "saved in" in result.stdout
