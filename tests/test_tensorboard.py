"""``train --tensorboard``: events that agree with metrics.jsonl, or one clear line
naming the extra when it is not installed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import tiny_cli
from typer.testing import CliRunner

from charrnn.cli.app import app

runner = CliRunner()


def test_tensorboard_events_match_the_metrics(tmp_path: Path, corpus_file: Path) -> None:
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason="the tensorboard extra is not installed",
    )
    run = tmp_path / "run"
    options = ["--steps", "30", "--eval-every", "10", "--sample-length", "40", "-q", *tiny_cli()]
    result = runner.invoke(
        app, ["train", str(corpus_file), "--out", str(run), "--tensorboard", *options]
    )
    assert result.exit_code == 0, result.output
    events = accumulator.EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = events.Scalars("loss/val")
    assert [e.step for e in val] == [m["step"] for m in metrics]
    assert [e.value for e in val] == pytest.approx([m["val_loss"] for m in metrics], rel=1e-6)
    assert {"loss/train", "bpc/val", "lr", "speed/chars_per_s"} <= set(events.Tags()["scalars"])
    assert "sample/text_summary" in events.Tags()["tensors"]


def test_without_the_extra_it_says_which_to_install(
    tmp_path: Path, corpus_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(corpus_file), "--out", str(out), "--tensorboard"])
    assert result.exit_code == 1
    assert "pip install 'charrnn[tensorboard]'" in result.stderr and not out.exists()


def test_a_broken_install_is_one_line_too(
    tmp_path: Path, corpus_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: an import that raised TypeError (a protobuf mismatch does) was a traceback."""
    import builtins

    real_import = builtins.__import__

    def broken(name: str, *args: object, **kwargs: object) -> object:
        if name == "torch.utils.tensorboard":
            raise TypeError("Descriptors cannot be created directly.")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    monkeypatch.setattr(builtins, "__import__", broken)
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", str(corpus_file), "--out", str(out), "--tensorboard"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "fails to import (TypeError: Descriptors" in result.stderr and not out.exists()
