"""charrnn score: the loss of any text under a trained model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_text, tiny_config
from typer.testing import CliRunner

from charrnn.checkpoint import load_model
from charrnn.cli.app import app
from charrnn.cli.score import coloured_text
from charrnn.config import ModelConfig
from charrnn.data.vocab import Vocab
from charrnn.errors import CorpusError, VocabError
from charrnn.events import Silent
from charrnn.model.network import CharRNN
from charrnn.scoring.text import CHUNK, score_text
from charrnn.training.launch import train

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One run the tests only read, trained once for the module on ``t.txt`` beside it."""
    folder = tmp_path_factory.mktemp("score")
    corpus = folder / "t.txt"
    corpus.write_text(make_text(6000), encoding="utf-8")
    out = folder / "run"
    # batch 1: training scores its validation text as one stream, as score does
    config = tiny_config(corpus, batch_size=1, steps=40, eval_every=20)
    train(config, out, reporter=Silent(), cache_dir=folder / "cache")
    return out


def test_score_agrees_with_the_validation_loss_training_reported(run: Path) -> None:
    model, vocab, checkpoint = load_model(run)  # best.pt: its loss is best_val_loss
    text = (run.parent / "t.txt").read_text()
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


# A text with runs of newlines at the edges and inside, where a block could be cut wrong.
ODD_LINES = "\n\nThe cat sat.\nA dog\n\n\nran far away.\n\nOld sky\nx\n\n" * 40 + "last line"


@pytest.mark.parametrize("docs", ["none", "lines", "blank-lines"])
def test_a_file_scored_in_small_blocks_equals_the_whole_text(
    docs: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from charrnn.scoring import file as file_score
    from charrnn.scoring import text as scoring

    torch.manual_seed(0)
    vocab = Vocab.from_text(ODD_LINES)
    model = CharRNN(len(vocab), ModelConfig(cell="lstm", num_layers=1, hidden_size=8)).eval()
    path = tmp_path / "t.txt"
    path.write_text(ODD_LINES, encoding="utf-8")
    whole = score_text(model, vocab, ODD_LINES, docs=docs)
    monkeypatch.setattr(file_score, "BLOCK", 37)  # cuts everywhere, items and lines included
    monkeypatch.setattr(scoring, "CHUNK", 11)
    part = file_score.score_file(
        model, vocab, path, docs=docs, show=50, worst_spots=7, worst_lines=5, every_line=True
    )
    assert (part.characters, part.predicted) == (len(whole.ids), whole.predicted)
    assert part.nats == pytest.approx(whole.nats, rel=1e-6)
    lines = whole.lines()
    assert part.all_lines is not None
    assert [n for n, _, _ in part.all_lines] == [line.number for line in lines]
    assert [c for _, c, _ in part.all_lines] == [line.predicted for line in lines]
    assert np.allclose([m for *_, m in part.all_lines], [line.nats for line in lines], atol=1e-6)
    worst_lines = sorted(lines, key=lambda line: line.nats, reverse=True)[:5]
    assert [line.number for line in part.worst_lines] == [line.number for line in worst_lines]
    assert [line.text for line in part.worst_lines] == [line.text for line in worst_lines]
    assert [spot.position for spot in part.spots] == whole.worst(7)
    spot = part.spots[0]
    assert spot.expected == whole.expected[spot.position - 1]
    assert (spot.before == whole.ids[max(spot.position - 30, 0) : spot.position]).all()
    assert part.head is not None and (part.head.ids == whole.ids[:50]).all()
    assert np.allclose(part.head.surprisal, whole.surprisal[:49], atol=1e-6)


_PEAK_RSS = """
import resource, sys
from pathlib import Path
from charrnn.config import ModelConfig
from charrnn.data.vocab import Vocab
from charrnn.scoring import file as file_score
from charrnn.model.network import CharRNN
file_score.BLOCK = int(sys.argv[2])
path = Path(sys.argv[1])
vocab = Vocab.from_text(path.read_text()[:1000])
model = CharRNN(len(vocab), ModelConfig(cell="gru", num_layers=1, hidden_size=8)).eval()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
file_score.score_file(model, vocab, path, show=20_000, worst_spots=20, worst_lines=20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""


@pytest.mark.slow  # two processes that import torch, to read their peak memory
def test_scoring_takes_the_same_memory_for_a_file_eight_times_longer(tmp_path: Path) -> None:
    """Before: the whole text, its ids and every loss were held (1.9 GB for 10 MB)."""
    import subprocess
    import sys

    line = "The cat sat on the mat and the dog ran far away home.\n"
    grown = []
    for repeat in (1_000, 8_000):  # 0.05 MB and 0.44 MB, read in blocks of 16 kB
        text = tmp_path / f"t{repeat}.txt"
        text.write_text(line * repeat, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-c", _PEAK_RSS, str(text), str(2**14)],
            capture_output=True, text=True, timeout=240, check=True,
        )  # fmt: skip
        grown.append(int(done.stdout) / 1024)  # MB (ru_maxrss is in kB on Linux)
    assert grown[1] - grown[0] < 20, f"peak memory grew {grown} MB with the file"


@pytest.mark.parametrize(("block", "chunk"), [(1 << 20, 4096), (37, 11), (53, 200)])
def test_windows_score_every_character_each_window_from_a_fresh_state(
    block: int, chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--window W`` is nanoGPT's protocol: consecutive windows of W predictions, each
    from a zero state, every character after the first scored — computed here window
    by window with the model itself, with blocks and chunks cut across the windows."""
    import torch.nn.functional as F

    from charrnn.scoring import file as file_score
    from charrnn.scoring import text as scoring

    torch.manual_seed(0)
    vocab = Vocab.from_text(ODD_LINES)
    model = CharRNN(len(vocab), ModelConfig(cell="gru", num_layers=2, hidden_size=8)).eval()
    path = tmp_path / "t.txt"
    path.write_text(ODD_LINES, encoding="utf-8")
    ids = torch.as_tensor(vocab.encode(ODD_LINES)).long()
    window = 29
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(ids) - 1, window):
            x = ids[start : min(start + window, len(ids) - 1)]
            y = ids[start + 1 : start + 1 + len(x)]
            logits, _ = model(x[None], None)
            total += F.cross_entropy(logits[0].float(), y, reduction="sum").item()
            count += len(y)
    monkeypatch.setattr(file_score, "BLOCK", block)
    monkeypatch.setattr(scoring, "CHUNK", chunk)
    windowed = file_score.score_file(model, vocab, path, window=window)
    assert windowed.predicted == count == len(ids) - 1
    assert windowed.nats == pytest.approx(total / count, rel=1e-5)
    assert windowed.window == window
    carried = file_score.score_file(model, vocab, path)
    assert carried.nats != pytest.approx(windowed.nats, rel=1e-4)  # the state matters here
    assert file_score.score_file(model, vocab, path, window=len(ids)).nats == pytest.approx(
        carried.nats, rel=1e-6
    )  # one window as long as the text is the carried stream


def test_score_window_on_the_command_line(run: Path, tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text(make_text(2_000), encoding="utf-8")
    result = runner.invoke(app, ["score", str(run), str(text), "--window", "64", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["window"] == 64 and summary["predicted"] == summary["characters"] - 1
    plain = json.loads(runner.invoke(app, ["score", str(run), str(text), "--json"]).output)
    assert "window" not in plain and plain["nats_per_char"] != summary["nats_per_char"]
    refused = runner.invoke(app, ["score", str(run), str(text), "--window", "0"])
    assert refused.exit_code == 2 and "Traceback" not in refused.output


def test_a_window_on_an_items_model_is_one_clear_error(tmp_path: Path) -> None:
    from charrnn.errors import ConfigError
    from charrnn.scoring.file import score_file

    vocab = Vocab.from_text(ODD_LINES)
    model = CharRNN(len(vocab), ModelConfig(cell="lstm", num_layers=1, hidden_size=8)).eval()
    path = tmp_path / "t.txt"
    path.write_text(ODD_LINES, encoding="utf-8")
    with pytest.raises(ConfigError, match="trained on items"):
        score_file(model, vocab, path, docs="lines", window=64)
