"""charrnn score: the loss of any text under a trained model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config
from typer.testing import CliRunner

from charrnn.checkpoint import load_model
from charrnn.cli.app import app
from charrnn.cli.score import coloured_text
from charrnn.config import ModelConfig
from charrnn.data.vocab import Vocab
from charrnn.errors import CorpusError, VocabError
from charrnn.inspection.score import CHUNK, score_text
from charrnn.model.network import CharRNN
from charrnn.training.launch import train

runner = CliRunner()


@pytest.fixture
def run(tmp_path: Path, corpus_file: Path) -> Path:
    # batch 1: training scores its validation text as one stream, as score does
    out = tmp_path / "run"
    train(tiny_config(corpus_file, batch_size=1, steps=40, eval_every=20), out)
    return out


def test_score_agrees_with_the_validation_loss_training_reported(
    run: Path, corpus_file: Path
) -> None:
    model, vocab, checkpoint = load_model(run)  # best.pt: its loss is best_val_loss
    text = corpus_file.read_text()
    validation = text[len(text) - int(len(text) * 0.1) :]
    result = score_text(model, vocab, validation)
    assert result.nats == pytest.approx(checkpoint.best_val_loss, rel=1e-5)
    assert result.bpc == pytest.approx(result.nats / math.log(2))
    assert result.perplexity == pytest.approx(math.exp(result.nats))


def test_chunks_carry_the_state_like_one_pass() -> None:
    torch.manual_seed(0)
    vocab = Vocab.from_text("abcd\n")
    model = CharRNN(len(vocab), ModelConfig(cell="gru", num_layers=1, hidden_size=8)).eval()
    ids = torch.randint(0, len(vocab), (CHUNK + 300,))
    text = vocab.decode(ids.numpy())
    with torch.no_grad():
        logits, _ = model(ids[:-1].unsqueeze(0))
        whole = torch.nn.functional.cross_entropy(logits[0], ids[1:], reduction="none")
    result = score_text(model, vocab, text)
    assert np.allclose(result.surprisal, whole.numpy(), atol=1e-5)
    assert (result.expected == logits[0].argmax(-1).numpy()).all()


def test_lines_cover_every_predicted_character(run: Path) -> None:
    model, vocab, _ = load_model(run)
    result = score_text(model, vocab, "The cat sat.\nA dog ran far away.\n\nOld sky.")
    lines = result.lines()
    assert [line.number for line in lines] == [1, 2, 3, 4]
    assert [line.text for line in lines] == ["The cat sat.", "A dog ran far away.", "", "Old sky."]
    assert sum(line.predicted for line in lines) == result.predicted
    total = sum(line.nats * line.predicted for line in lines)
    assert total == pytest.approx(float(result.surprisal.sum()), rel=1e-6)


def test_unknown_characters_are_named_or_skipped(run: Path) -> None:
    model, vocab, _ = load_model(run)
    with pytest.raises(VocabError, match="'€'"):
        score_text(model, vocab, "The € cat")
    skipped = score_text(model, vocab, "The € cat", skip_unknown=True)
    assert vocab.decode(skipped.ids) == "The  cat"
    with pytest.raises(CorpusError, match="at least 2 characters"):
        score_text(model, vocab, "T")


def test_show_colours_the_surprising_characters(run: Path) -> None:
    model, vocab, _ = load_model(run)
    result = score_text(model, vocab, "The cat sat on the mat.\nqqqqq")
    text = coloured_text(result)
    assert text.plain == "The cat sat on the mat.\nqqqqq"
    worst = result.worst(1)[0]
    styles = {str(span.style) for span in text.spans if span.start <= worst < span.end}
    assert styles and all(styles), "the most surprising character has a background"


def test_score_command(run: Path, tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("The cat sat on the mat.\nA dog ran.\n")
    result = runner.invoke(app, ["score", str(run), str(text), "--json", "--per-line"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["predicted"] == len(text.read_text()) - 1 and data["bits_per_char"] > 0
    assert [line["line"] for line in data["lines"]] == [1, 2]
    shown = runner.invoke(app, ["score", str(run), str(text), "--show", "--per-line", "--top", "3"])
    assert shown.exit_code == 0, shown.output
    assert "most surprising characters" in shown.stdout and "bits per character" in shown.stdout


def test_score_command_errors(run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = runner.invoke(app, ["score", str(run), str(empty)])
    assert (
        result.exit_code == 1
        and result.stderr.startswith("error: ")
        and "is empty" in result.stderr
    )
    odd = tmp_path / "odd.txt"
    odd.write_text("The € cat")
    result = runner.invoke(app, ["score", str(run), str(odd)])
    assert result.exit_code == 1 and "'€'" in result.stderr and "--skip-unknown" in result.stderr
    result = runner.invoke(app, ["score", str(run), str(odd), "--top", "0"])
    assert result.exit_code == 2
