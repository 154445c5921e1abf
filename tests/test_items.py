"""Item (document) mode: finding items, batching them, holding whole ones out, and
sampling whole, new items from the command line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_cli
from typer.testing import CliRunner

from charrnn.cli.app import app
from charrnn.config import ModelConfig
from charrnn.data.items import IGNORE, ItemBatches, ItemValidation, find_items, split_items
from charrnn.data.vocab import Vocab
from charrnn.errors import CorpusError
from charrnn.model.network import CharRNN
from charrnn.training.evaluation import validation_loss

runner = CliRunner()


def encoded(text: str) -> tuple[Vocab, np.ndarray, int]:
    vocab = Vocab.from_text(text + "\n")
    newline = vocab.index_of("\n")
    assert newline is not None
    return vocab, vocab.encode(text).astype(np.int64), newline


def item_texts(vocab: Vocab, text: str, docs: str) -> list[str]:
    _, ids, newline = encoded(text)
    items = find_items(ids, newline, docs)
    return [vocab.decode(ids[s : s + n]) for s, n in zip(items.starts, items.lengths, strict=True)]


def test_lines_are_items_and_empty_lines_are_skipped() -> None:
    text = "cat\n\ndog\nemu"
    vocab, _, _ = encoded(text)
    assert item_texts(vocab, text, "lines") == ["cat", "dog", "emu"]


def test_blank_lines_split_paragraphs_and_keep_their_single_newlines() -> None:
    text = "\nroses are\nred\n\n\nviolets\n\nblue\n"
    vocab, _, _ = encoded(text)
    assert item_texts(vocab, text, "blank-lines") == ["roses are\nred", "violets", "blue"]


def test_no_line_break_is_a_clear_error() -> None:
    _, ids, newline = encoded("just one long line")
    with pytest.raises(CorpusError, match="no line breaks"):
        find_items(ids[: len(ids)], newline if (ids == newline).any() else None, "lines")


def test_a_batch_starts_each_item_at_a_newline_and_pads_what_is_not_scored() -> None:
    text = "ab\nc\n"
    vocab, ids, nl = encoded(text)
    items = find_items(ids, nl, "lines")
    x, y = items.batch(np.arange(2))
    a, b, c = (int(vocab.encode(ch)[0]) for ch in "abc")
    assert x.tolist() == [[nl, a, b], [nl, c, nl]]
    assert y.tolist() == [[a, b, nl], [c, nl, IGNORE]]
    paragraphs = find_items(*encoded("ab\nc\n\nd")[1:], "blank-lines")
    x, y = paragraphs.batch(np.arange(1))
    assert x.tolist() == [[nl, a, b, nl, c, nl]]
    assert y.tolist() == [[a, b, nl, c, nl, nl]]  # the end is a blank line


def test_validation_holds_out_whole_items_at_random_the_same_every_time() -> None:
    names = [f"name{i:03d}" for i in range(200)]
    _, ids, nl = encoded("\n".join(names))
    items = find_items(ids, nl, "lines")
    train, val = split_items(items, 0.1)
    again = split_items(items, 0.1)[1]
    assert len(val) == 20 and len(train) == 180 and (val.starts == again.starts).all()
    assert not set(train.starts) & set(val.starts)
    assert train.keys().isdisjoint(val.keys())
    assert val.starts.max() > items.starts[100]  # not just the tail of a sorted list
    with pytest.raises(CorpusError, match="too few"):
        split_items(find_items(*encoded("a\nb")[1:], "lines"), 0.1)


def test_item_validation_loss_scores_each_item_from_a_zero_state() -> None:
    text = "\n".join(["abc", "bcaab", "c", "abcabcab", "ba"])
    vocab, ids, nl = encoded(text)
    items = find_items(ids, nl, "lines")
    torch.manual_seed(0)
    model = CharRNN(len(vocab), ModelConfig(cell="gru", num_layers=1, hidden_size=8))
    model.requires_grad_(False)
    loss = validation_loss(model, ItemValidation(items, 2, 16), torch.device("cpu"))
    total = count = 0.0
    for i in range(len(items)):  # one item at a time, nothing carried
        x, y = items.batch(np.array([i]))
        logits, _ = model(x)
        total += F.cross_entropy(logits[0], y[0], reduction="sum").item()
        count += len(y[0])
    assert loss == pytest.approx(total / count, rel=1e-6)


def test_batches_of_items_are_independent_and_follow_the_seed() -> None:
    _, ids, nl = encoded("\n".join(f"item{i}" for i in range(40)))
    items = find_items(ids, nl, "lines")
    batches = ItemBatches(items, 8, 16, seed=3)
    first = batches.window(7)
    assert first.reset and first.x.shape[0] == 8
    assert torch.equal(first.x, ItemBatches(items, 8, 16, seed=3).window(7).x)
    with pytest.raises(CorpusError, match="window of 7, longer than --seq-len 5"):
        ItemBatches(items, 8, 5, seed=3)


# -- from the command line -----------------------------------------------------------------


def _name(rng: random.Random) -> str:
    """Made-up names from a few syllables: a list with structure to learn."""
    syllables = ["ka", "lo", "mi", "ra", "ne", "to", "su", "bel", "dan", "or"]
    return "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))).capitalize()


_rng = random.Random(0)
NAMES = sorted({_name(_rng) for _ in range(1500)})


@pytest.fixture(scope="module")
def names_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("names")
    corpus = folder / "names.txt"
    corpus.write_text("\n".join(NAMES) + "\n", encoding="utf-8")
    run = folder / "run"
    options = tiny_cli(seq_len=None, hidden=32, batch_size=16)
    result = runner.invoke(
        app,
        ["train", str(corpus), "--docs", "lines", "--preset", "cpu-30m", "--steps", "150",
         "--lr", "0.01", "--out", str(run), "-q", *options],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return run


def test_sample_n_prints_whole_items_one_per_line_and_tallies_them(names_run: Path) -> None:
    result = runner.invoke(app, ["sample", str(names_run), "-n", "25", "--seed", "1"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.rstrip("\n").split("\n")
    assert len(lines) == 25 and all(lines)
    tally = result.stderr.strip().splitlines()[-1]
    new, train, val = (
        int(tally.split(word)[0].split()[-1]) for word in (" new", " in the tr", " in the v")
    )
    assert new + train + val == 25
    assert new == sum(line not in NAMES for line in lines)


def test_novel_items_are_never_training_items(names_run: Path) -> None:
    result = runner.invoke(
        app, ["sample", str(names_run), "-n", "30", "--seed", "2", "--novel", "-T", "0.6"]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.rstrip("\n").split("\n")
    assert len(lines) == 30 and not set(lines) & set(NAMES)
    assert result.stderr.strip().splitlines()[-1].startswith("30 new items (drew ")


def test_min_chars_and_beam_shape_items(names_run: Path) -> None:
    result = runner.invoke(app, ["sample", str(names_run), "-n", "20", "--min-chars", "6"])
    assert all(len(line) >= 6 for line in result.stdout.rstrip("\n").split("\n"))
    beam = runner.invoke(app, ["sample", str(names_run), "-n", "3", "--beam", "4"])
    assert beam.exit_code == 0, beam.output
    assert len(beam.stdout.rstrip("\n").split("\n")) == 3
    assert "most likely first" in beam.stderr
    # Before: the search stopped at the first ending that beat every live beam, so
    # -n 5 --beam 10 printed one item where the README shows five.
    wide = runner.invoke(app, ["sample", str(names_run), "-n", "5", "--beam", "10"])
    assert wide.exit_code == 0, wide.output
    assert len(wide.stdout.rstrip("\n").split("\n")) == 5
    scores = wide.stderr.split("-log p = ")[1].split(" nats")[0].split(", ")
    assert len(scores) == 5 and scores == sorted(scores, key=float)


def test_training_reports_whole_item_validation(names_run: Path) -> None:
    records = [json.loads(line) for line in (names_run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["val_loss"] < records[0]["val_loss"]
    assert 'docs = "lines"' in (names_run / "config.toml").read_text()
    assert "--docs lines" in runner.invoke(app, ["info", str(names_run)]).stdout


@pytest.mark.parametrize(
    ("text", "options", "message"),
    [
        ("no line break at all", [], "no line breaks"),
        ("short\n" * 50 + "x" * 80 + "\n", ["--seq-len", "32"], "needs a window of 81"),
    ],
)
def test_bad_item_corpora_fail_in_one_line(
    tmp_path: Path, text: str, options: list[str], message: str
) -> None:
    corpus = tmp_path / "list.txt"
    corpus.write_text(text, encoding="utf-8")
    result = runner.invoke(
        app,
        ["train", str(corpus), "--docs", "lines", "--steps", "2", "--out", str(tmp_path / "r"),
         *tiny_cli(seq_len=None), *options],
    )  # fmt: skip
    assert result.exit_code == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_score_on_an_item_model_is_its_validation_loss(tmp_path: Path) -> None:
    train, val = tmp_path / "train.txt", tmp_path / "val.txt"
    held = NAMES[5::10]
    train.write_text("\n".join(n for n in NAMES if n not in held) + "\n", encoding="utf-8")
    val.write_text("\n\n".join(held) + "\n", encoding="utf-8")  # blank lines: skipped
    run = tmp_path / "run"
    options = ["--docs", "lines", "--val-file", str(val), "--preset", "cpu-30m", "--steps", "40",
               "--out", str(run), "-q", *tiny_cli(seq_len=None, batch_size=16)]  # fmt: skip
    assert runner.invoke(app, ["train", str(train), *options]).exit_code == 0
    best = min(
        json.loads(line)["val_loss"] for line in (run / "metrics.jsonl").read_text().splitlines()
    )
    scored = runner.invoke(app, ["score", str(run), str(val), "--json"])
    assert scored.exit_code == 0, scored.output
    result = json.loads(scored.stdout)
    assert result["nats_per_char"] == pytest.approx(best, rel=1e-5)
    assert result["predicted"] == sum(len(n) + 1 for n in held)
