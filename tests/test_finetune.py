"""``train --init-from``: weights carried over, vocabulary extended, and better than
training from scratch at the same small budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import make_text, tiny_cli
from typer.testing import CliRunner

from charrnn.cli.app import app
from charrnn.config import ModelConfig
from charrnn.data.vocab import Vocab
from charrnn.model.network import CharRNN
from charrnn.training.finetune import transplant

runner = CliRunner()


@pytest.mark.parametrize("embed", [6, 0])
def test_transplant_keeps_every_known_prediction(embed: int) -> None:
    old, new = Vocab.from_text("abd\n"), Vocab.from_text("abcd\nz")
    config = ModelConfig(cell="lstm", num_layers=2, hidden_size=10, embed_size=embed)
    torch.manual_seed(0)
    source, target = CharRNN(len(old), config), CharRNN(len(new), config)
    transplant(source, old, target, new)
    text = "abd\nda"
    with torch.no_grad():
        before, _ = source(torch.tensor(old.encode(text)).long()[None])
        after, _ = target(torch.tensor(new.encode(text)).long()[None])
    known = torch.tensor(old.remap(torch.arange(len(old)).numpy(), new)).long()
    assert torch.allclose(after[..., known], before, atol=1e-6)
    c = new.index_of("c")
    assert after[..., c].max() <= before.max()  # a new character starts unlikely


def test_fine_tuning_settings_take_the_source_shape_over_what_was_given(tmp_path: Path) -> None:
    # The merge the CLI used to write inline: shape and vocabulary kind from the source,
    # everything else from the new run's settings, for layers and whole configs alike.
    from dataclasses import replace

    from conftest import tiny_config

    from charrnn.checkpoint import Checkpoint
    from charrnn.layering import Layers
    from charrnn.training.finetune import Start, fine_tuning

    source_config = tiny_config(None)
    source_config = replace(
        source_config, model=replace(source_config.model, cell="lstm", hidden_size=12)
    )
    vocab = Vocab.from_text("abc\n")
    model = CharRNN(len(vocab), source_config.model)
    checkpoint = Checkpoint(config=source_config, vocab=vocab, model=model.state_dict(), step=5)
    start = Start(tmp_path / "source", model, checkpoint)
    given = {"model": {"hidden_size": 99}, "train": {"lr": 0.05, "steps": 7}}
    layers = fine_tuning(Layers(file="new.txt", given=given), start)
    assert isinstance(layers, Layers)
    settled = layers.settle()
    assert (settled.model.cell, settled.model.hidden_size) == ("lstm", 12)
    assert settled.train.lr == 0.05 and settled.train.steps == 7
    assert settled.train.init_from == str(tmp_path / "source")
    whole = fine_tuning(tiny_config(tmp_path / "new.txt", lr=0.05), start)
    assert not isinstance(whole, Layers)
    assert whole.model.hidden_size == 12 and whole.train.lr == 0.05
    assert whole.train.init_from == str(tmp_path / "source")


def best(run: Path) -> float:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return min(json.loads(line)["val_loss"] for line in lines)


def test_fine_tuning_beats_scratch_and_resumes(tmp_path: Path) -> None:
    big, small = tmp_path / "big.txt", tmp_path / "small.txt"
    big.write_text(make_text(30000, seed=1), encoding="utf-8")
    small.write_text(make_text(3000, seed=2).replace("o", "ö"), encoding="utf-8")  # a new letter
    tiny = [*tiny_cli(hidden=48), "--preset", "cpu-30m", "--lr", "0.01", "-q"]
    base = tmp_path / "base"
    result = runner.invoke(app, ["train", str(big), "--steps", "300", "--out", str(base), *tiny])
    assert result.exit_code == 0, result.output
    budget = ["--steps", "40", "--eval-every", "10"]
    tuned, scratch = tmp_path / "tuned", tmp_path / "scratch"
    result = runner.invoke(
        app,
        ["train", str(small), "--init-from", str(base), "--out", str(tuned), *budget,
         *tiny_cli(layers=None, hidden=None, embed=None), "--preset", "cpu-30m", "--lr", "0.01"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "added ö" in result.stderr
    result = runner.invoke(app, ["train", str(small), "--out", str(scratch), *budget, *tiny])
    assert result.exit_code == 0, result.output
    assert best(tuned) < best(scratch) - 0.1, (best(tuned), best(scratch))
    assert "init_from" in (tuned / "config.toml").read_text()
    assert "started from" in runner.invoke(app, ["info", str(tuned)]).stdout
    resumed = runner.invoke(app, ["train", "--resume", str(tuned), "--steps", "50", "-q"])
    assert resumed.exit_code == 0, resumed.output


def test_init_from_errors_are_one_line(tmp_path: Path) -> None:
    corpus = tmp_path / "t.txt"
    corpus.write_text(make_text(3000), encoding="utf-8")
    missing = runner.invoke(app, ["train", str(corpus), "--init-from", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "Traceback" not in missing.stderr
    shape = runner.invoke(
        app, ["train", str(corpus), "--init-from", str(tmp_path), "--hidden", "64"]
    )
    assert shape.exit_code == 2 and "keeps the run's model shape" in shape.stderr
