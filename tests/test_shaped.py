"""Shaping samples: --stop, --min-chars, --beam, --novel on a stream, --out, and the
one-line errors for bad requests."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_text, tiny_cli
from typer.testing import CliRunner

from charrnn.cli.app import app
from charrnn.config import ModelConfig
from charrnn.data.vocab import Vocab
from charrnn.model.network import CharRNN
from charrnn.sampling.beam import beam_search
from charrnn.sampling.endings import Ending, draw_until
from charrnn.sampling.novelty import NgramIndex, span_hashes
from charrnn.sampling.sampler import SampleSettings, generate

runner = CliRunner()
TEXT = make_text(8000, seed=5)


@pytest.fixture(scope="module")
def stream_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("stream")
    corpus = folder / "words.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    run = folder / "run"
    result = runner.invoke(
        app,
        ["train", str(corpus), "--preset", "cpu-30m", "--steps", "120", "--lr", "0.01",
         "--out", str(run), "-q", *tiny_cli(hidden=48)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return run


def sample(run: Path, *options: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["sample", str(run), *options])
    return result.exit_code, result.stdout, result.stderr


def test_stop_ends_each_sample_before_the_string(stream_run: Path) -> None:
    code, out, _ = sample(stream_run, "-n", "400", "-m", "4", "--stop", ".", "--seed", "3")
    assert code == 0
    samples = out.rstrip("\n").split("\n")
    assert len(samples) == 4 and all("." not in s for s in samples)
    code, out, _ = sample(
        stream_run, "-n", "400", "--stop", ".", "--min-chars", "60", "--seed", "3"
    )
    assert code == 0 and len(out.rstrip("\n")) >= 60


def test_novel_stream_never_repeats_a_training_span(stream_run: Path) -> None:
    span = 8
    code, out, err = sample(
        stream_run, "-n", "300", "--novel", "--novel-span", str(span), "-T", "0.5", "--seed", "1"
    )
    assert code == 0, err
    drawn = "\n" + out.rstrip("\n")  # the sample starts after a newline
    train = TEXT[: len(TEXT) - int(len(TEXT) * 0.05)]
    copied = [
        drawn[i : i + span] for i in range(len(drawn) - span + 1) if drawn[i : i + span] in train
    ]
    assert copied == []
    assert f"--novel {span}: " in err and "redrawn" in err
    (index,) = (Path(os.environ["CHARRNN_CACHE"]) / "ngrams").glob("*.npy")  # built once, kept
    built = index.stat().st_mtime_ns
    sample(stream_run, "-n", "20", "--novel", "--novel-span", str(span), "--seed", "2")
    assert index.stat().st_mtime_ns == built
    # the same settings without --novel do copy: the check above can fail
    code, plain, _ = sample(stream_run, "-n", "300", "-T", "0.5", "--seed", "1")
    drawn = "\n" + plain.rstrip("\n")
    assert any(drawn[i : i + span] in train for i in range(len(drawn) - span + 1))


def test_out_writes_samples_and_how_they_were_drawn(stream_run: Path, tmp_path: Path) -> None:
    target = tmp_path / "samples.txt"
    code, out, err = sample(stream_run, "-n", "80", "-m", "2", "-T", "0.7", "--out", str(target))
    assert code == 0 and out == "" and "wrote 2 samples" in err
    record = json.loads(Path(f"{target}.json").read_text())
    assert record["temperature"] == 0.7 and record["count"] == 2
    again = tmp_path / "again.txt"
    sample(stream_run, "-n", "80", "-m", "2", "-T", "0.7", "--seed", str(record["seed"]),
           "--out", str(again))  # fmt: skip
    assert again.read_text() == target.read_text()  # the recorded seed draws them again
    _, printed, _ = sample(
        stream_run, "-n", "80", "-m", "2", "-T", "0.7", "--seed", str(record["seed"])
    )
    assert printed.replace("\n", "") == target.read_text().replace("\n", "")  # as printed
    assert not list(tmp_path.glob("*.tmp*"))


@pytest.mark.parametrize(
    ("options", "code", "message"),
    [
        (["--beam", "0"], 2, "--beam"),
        (["--beam", "3", "-T", "0.5"], 2, "no --temperature"),
        (["--stop", "Ω"], 1, "never writes"),
        (["--min-chars", "5"], 1, "--min-chars needs"),
    ],
)
def test_bad_requests_fail_in_one_line(
    stream_run: Path, options: list[str], code: int, message: str
) -> None:
    result_code, _, err = sample(stream_run, *options)
    assert result_code == code and message in err
    assert "Traceback" not in err


VOCAB = Vocab.from_text("abcd\n")


@pytest.fixture
def model() -> CharRNN:
    torch.manual_seed(0)
    return CharRNN(len(VOCAB), ModelConfig(cell="lstm", num_layers=1, hidden_size=12, embed_size=4))


def test_beam_of_one_is_greedy_and_wider_beams_score_at_least_as_well(model: CharRNN) -> None:
    prime = np.array([VOCAB.index_of("a")])
    greedy = generate(model, VOCAB, length=12, prime="a", settings=SampleSettings(temperature=0))
    one = beam_search(model, prime, 1, Ending(12))[0]
    assert VOCAB.decode(one.ids) == greedy[0]
    wide = beam_search(model, prime, 6, Ending(12))[0]
    assert wide.log_prob >= one.log_prob - 1e-5
    # the score is the model's log-probability of the text
    x = torch.tensor([[int(prime[0]), *wide.ids[:-1]]])
    with torch.no_grad():
        logits, _ = model(x)
    log_p = logits.log_softmax(-1)[0, torch.arange(12), torch.tensor(wide.ids)].sum()
    assert float(log_p) == pytest.approx(wide.log_prob, abs=1e-4)


def test_draw_until_stops_rows_separately_and_keeps_min_chars(model: CharRNN) -> None:
    stop = (VOCAB.index_of("d"),)
    generator = torch.Generator().manual_seed(0)
    drawn = draw_until(model, np.array([0]), 16, Ending(50, stop, 3), SampleSettings(), generator)
    for ids, ended in zip(drawn.samples, drawn.ended, strict=True):
        assert stop[0] not in ids  # left out at the end, never drawn before 3
        assert len(ids) >= 3 if ended else len(ids) == 50


def test_the_span_index_answers_like_a_substring_search() -> None:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5, 3000)
    index = NgramIndex.build(ids, 6)
    text = "".join(map(str, ids))
    context = rng.integers(0, 5, (40, 5))
    found = index.completing(context, 5)
    for row, ctx in enumerate(context):
        for v in range(5):
            assert found[row, v] == ("".join(map(str, ctx)) + str(v) in text)
    assert len(span_hashes(ids, 6)) == len(ids) - 5


def test_a_beam_search_for_five_endings_finds_five() -> None:
    """A model that ends early often: before, the search stopped at the first step where
    an ending beat every live beam and gave two items for -n 5 (the README showed five)."""
    vocab = Vocab.from_text("ab\n")
    model = CharRNN(len(vocab), ModelConfig(cell="gru", num_layers=1, hidden_size=4)).eval()
    with torch.no_grad():  # the same odds after any text: newline 0.5, a 0.3, b 0.2
        model.head.weight.zero_()
        odds = {"\n": 0.5, "a": 0.3, "b": 0.2}
        model.head.bias.copy_(torch.tensor([odds[chr(s)] for s in vocab.symbols]).log())
    newline = vocab.index_of("\n")
    ending = Ending(20, (newline,), min_chars=1)
    found = beam_search(model, np.array([newline]), 10, ending, want=5)
    ended = [vocab.decode(h.ids) for h in found if h.ended]
    assert ended[:5] == ["a", "b", "aa", "ab", "ba"]
    scores = [h.log_prob for h in found if h.ended]
    assert scores == sorted(scores, reverse=True)


def test_a_byte_level_model_stops_at_the_bytes_of_its_stop_string() -> None:
    """--stop on a byte-level run was refused as 'characters the model never writes'
    (every byte is in its vocabulary): the stop is matched as its UTF-8 bytes."""
    from charrnn.data.vocab import Vocab
    from charrnn.sampling.shaping import _stop_ids

    vocab = Vocab.bytes_vocab()
    assert _stop_ids(vocab, "e") == (vocab.index_of("e"),)
    assert _stop_ids(vocab, "é") == tuple(int(i) for i in vocab.encode("é"))
    assert len(_stop_ids(vocab, "é")) == 2
