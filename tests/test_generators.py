from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from pathlib import Path

import pytest

from charrnn.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from charrnn.data.generators import GENERATORS, generate, long_range, unigram_entropy
from charrnn.errors import ConfigError
from charrnn.training.launch import train


@pytest.mark.parametrize("name", list(GENERATORS))
def test_deterministic_with_a_seed_and_sized(name: str) -> None:
    a = generate(name, size=5000, seed=1)
    assert a == generate(name, size=5000, seed=1)
    assert a.text != generate(name, size=5000, seed=2).text
    assert 5000 <= len(a.text) < 5000 + 400  # whole lines, stopping past the size
    assert a.text.endswith("\n")
    assert 0 < a.floor_nats < unigram_entropy(tuple(Counter(a.text).values()))


def lines(name: str, **kwargs: int) -> list[str]:
    return generate(name, size=4000, seed=3, **kwargs).text.splitlines()


def test_counting_rule() -> None:
    for line in lines("counting"):
        numbers = [int(n) for n in line.split()]
        assert len(numbers) == 8 and numbers == list(range(numbers[0], numbers[0] + 8))
    assert len({line.split()[0] for line in lines("counting")}) > 50  # random starts


def test_alphabet_rule() -> None:
    letters = "abcdefghijklmnopqrstuvwxyz"
    for line in lines("alphabet"):
        start = letters.index(line[0])
        assert line == letters[start:] + letters[:start]


def test_arithmetic_and_geometric_rules() -> None:
    for line in lines("arithmetic"):
        n = [int(x) for x in line.split()]
        assert len({b - a for a, b in itertools.pairwise(n)}) == 1
    for line in lines("geometric"):
        n = [int(x) for x in line.split()]
        ratios = {b / a for a, b in itertools.pairwise(n)}
        assert len(ratios) == 1 and ratios.pop() in (2, 3, 4, 5)


@pytest.mark.parametrize("distance", [0, 5, 50])
def test_recall_repeats_the_key_after_the_distance(distance: int) -> None:
    for line in lines("recall", distance=distance):
        match = re.fullmatch(r"([a-z]):(\.*)=([a-z])", line)
        assert match and match[1] == match[3] and len(match[2]) == distance


@pytest.mark.parametrize("distance", [0, 3])
def test_brackets_are_balanced_and_spaced(distance: int) -> None:
    pairs = {")": "(", "]": "[", "}": "{", ">": "<"}
    for line in lines("brackets", distance=distance):
        symbols = line.split(".") if distance else list(line)
        symbols = [s for s in symbols if s]
        assert all(len(s) == 1 for s in symbols)
        if distance:
            assert "." * distance in line and "." * (distance + 1) not in line
        stack: list[str] = []
        for s in symbols:
            if s in pairs:
                assert stack.pop() == pairs[s]
            else:
                stack.append(s)
                assert len(stack) <= 4
        assert not stack and len(symbols) == 12


def test_floor_is_the_entropy_of_the_random_parts() -> None:
    made = generate("alphabet", size=2700, seed=0)
    n_lines = made.text.count("\n")
    assert made.nll_nats == pytest.approx(n_lines * math.log(26))
    recall = generate("recall", size=1000, seed=0, distance=7)
    assert recall.nll_nats == pytest.approx(recall.text.count("\n") * math.log(26))


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="no generator named"):
        generate("fibonacci")
    with pytest.raises(ConfigError, match="counting has no --distance"):
        generate("counting", distance=5)
    with pytest.raises(ConfigError, match="--size"):
        generate("recall", size=0)
    with pytest.raises(ConfigError, match="--distance"):
        generate("recall", distance=-1)
    assert set(long_range()) == {"recall", "brackets"}


@pytest.mark.parametrize("name", list(GENERATORS))
def test_a_small_model_beats_the_unigram_baseline(name: str, tmp_path: Path) -> None:
    made = generate(name, size=12000, seed=0, distance=8 if name in long_range() else None)
    path = tmp_path / f"{name}.txt"
    path.write_text(made.text)
    config = RunConfig(
        DataConfig(path=str(path), val_frac=0.1),
        ModelConfig(cell="gru", num_layers=1, hidden_size=32, embed_size=8),
        TrainConfig(
            batch_size=8,
            seq_len=32,
            steps=150,
            eval_every=150,
            lr=1e-2,
            sample_length=0,
            threads=1,
            device="cpu",
        ),
    )
    summary = train(config, tmp_path / "run")
    unigram = unigram_entropy(tuple(Counter(made.text).values()))
    assert summary.best_val_loss < 0.8 * unigram, (summary.best_val_loss, unigram)
    assert summary.best_val_loss > 0.9 * made.floor_nats  # and never below what is possible
