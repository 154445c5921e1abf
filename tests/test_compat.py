"""Run directories written by charrnn 0.1.0 keep working: sample, info and resume.

The fixtures in ``fixtures/v0_1_0`` were written by the 0.1.0 code itself (see
``fixtures/make_v0_1_0.py``), with checkpoint format 1; ``expected.json`` holds what
0.1.0's ``sample`` printed for a fixed seed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import make_text
from typer.testing import CliRunner

from charrnn.checkpoint import FORMAT_VERSION, load_checkpoint
from charrnn.cli.app import app

FIXTURES = Path(__file__).parent / "fixtures" / "v0_1_0"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
CORPUS = Path("/tmp/charrnn-v0_1_0-fixture/tiny.txt")  # where 0.1.0 recorded it
runner = CliRunner()


@pytest.mark.parametrize("cell", sorted(EXPECTED))
def test_the_same_seed_gives_the_text_0_1_0_gave(cell: str) -> None:
    result = runner.invoke(app, ["sample", str(FIXTURES / cell), *EXPECTED[cell]["sample_args"]])
    assert result.exit_code == 0, result.output
    assert result.stdout == EXPECTED[cell]["sample"]


@pytest.mark.parametrize("cell", sorted(EXPECTED))
def test_info_reads_a_format_1_checkpoint(cell: str) -> None:
    assert torch.load(FIXTURES / cell / "last.pt", weights_only=True)["format_version"] == 1
    result = runner.invoke(app, ["info", str(FIXTURES / cell), "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["step"] == 40 and facts["config"]["model"]["cell"] == cell
    assert facts["charrnn_version"] == "0.1.0"


def test_the_upgrade_turns_the_loss_sum_tensor_into_a_number() -> None:
    raw = torch.load(FIXTURES / "gru" / "last.pt", weights_only=True)
    assert isinstance(raw["train_loss_sum"], torch.Tensor)
    checkpoint = load_checkpoint(FIXTURES / "gru" / "last.pt")
    assert type(checkpoint.train_loss_sum) is float
    assert checkpoint.train_loss_sum == pytest.approx(float(raw["train_loss_sum"]))


@pytest.mark.parametrize("cell", sorted(EXPECTED))
def test_resume_continues_a_0_1_0_run(tmp_path: Path, cell: str) -> None:
    try:
        CORPUS.parent.mkdir(parents=True, exist_ok=True)
        CORPUS.write_text(make_text(6000), encoding="utf-8")
    except OSError as exc:
        pytest.skip(f"cannot place the fixture corpus at {CORPUS}: {exc}")
    run = tmp_path / cell
    shutil.copytree(FIXTURES / cell, run)
    result = runner.invoke(app, ["train", "--resume", str(run), "--steps", "60", "-q"])
    assert result.exit_code == 0, result.output
    resumed = load_checkpoint(run / "last.pt")
    assert resumed.step == 60 and resumed.chars_seen == 60 * 4 * 16
    assert torch.load(run / "last.pt", weights_only=True)["format_version"] == FORMAT_VERSION
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [20, 40, 60]


# -- 0.2.0: before --docs and --init-from --------------------------------------------------

FIXTURES_020 = Path(__file__).parent / "fixtures" / "v0_2_0"
CORPUS_020 = Path("/tmp/charrnn-v0_2_0-fixture/tiny.txt")  # where 0.2.0 recorded it


def test_a_0_2_0_run_samples_the_same_text_and_shows_its_info() -> None:
    expected = json.loads((FIXTURES_020 / "expected.json").read_text())["lstm"]
    result = runner.invoke(app, ["sample", str(FIXTURES_020 / "lstm"), *expected["sample_args"]])
    assert result.exit_code == 0, result.output
    assert result.stdout == expected["sample"]
    info = runner.invoke(app, ["info", str(FIXTURES_020 / "lstm"), "--json"])
    facts = json.loads(info.stdout)
    assert facts["charrnn_version"] == "0.2.0" and facts["config"]["data"]["docs"] == "none"
    assert facts["config"]["model"]["weight_drop"] == 0.1


def test_resume_continues_a_0_2_0_run(tmp_path: Path) -> None:
    """The run as 0.2.0 wrote it, its recorded corpus path moved under tmp_path (the
    file is the same text, so its SHA-256 still matches): nothing outside the test's
    folder is written."""
    corpus = tmp_path / "tiny.txt"
    corpus.write_text(make_text(6000), encoding="utf-8")
    run = tmp_path / "lstm"
    shutil.copytree(FIXTURES_020 / "lstm", run)
    for name in ("last.pt", "best.pt"):
        raw = torch.load(run / name, weights_only=True)
        assert raw["config"]["data"]["path"] == str(CORPUS_020)  # what 0.2.0 recorded
        raw["config"]["data"]["path"] = raw["corpus"]["path"] = str(corpus)
        torch.save(raw, run / name)
    result = runner.invoke(app, ["train", "--resume", str(run), "--steps", "60", "-q"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run / "last.pt").step == 60
    assert 'docs = "none"' in (run / "config.toml").read_text()  # rewritten by this version
