"""The weight average a run keeps beside its weights, and the plan that follows the
machine: the average's arithmetic, best.pt holding whichever validates better, the
average surviving a resume, crafted averages refused, and one warning when the run's
speed parts from auto's plan."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from conftest import Recorder, make_text, tiny_config
from test_training import stop_after

from charrnn.checkpoint import load_checkpoint, save_checkpoint
from charrnn.config import ModelConfig
from charrnn.data.dataset import load_dataset
from charrnn.errors import CheckpointError, TrainingInterrupted
from charrnn.events import Silent
from charrnn.model.network import CharRNN
from charrnn.rundir import RunDir
from charrnn.training.averaging import WeightAverage, gamma_for_width
from charrnn.training.clock import PlanWatch
from charrnn.training.evaluation import validation_loss
from charrnn.training.launch import resume, train
from charrnn.training.loop import Trainer


def _model(seed: int) -> CharRNN:
    torch.manual_seed(seed)
    return CharRNN(7, ModelConfig(cell="lstm", num_layers=1, hidden_size=5, embed_size=3))


def test_the_power_average_spans_a_share_of_the_steps_so_far() -> None:
    gamma = gamma_for_width(0.1)
    width = math.sqrt((gamma + 1) / ((gamma + 2) ** 2 * (gamma + 3)))
    assert width == pytest.approx(0.1, rel=1e-6)
    model = _model(0)
    average = WeightAverage(model, 0.1)
    # Weights that move by +1 each update: a plain mean of all of them would lag by
    # half the run; this average lags by a share of it, the same share at any length.
    lags = []
    for run_length in (100, 1000):
        average = WeightAverage(model, 0.1)
        with torch.no_grad():
            for t in range(1, run_length + 1):
                model.head.bias.fill_(float(t))
                average.update(model)
        lags.append((run_length - float(average.state_dict()["head.bias"][0])) / run_length)
    assert lags[0] == pytest.approx(lags[1], abs=0.01)
    assert 0.05 < lags[1] < 0.2, lags


def test_the_first_update_takes_the_weights_whatever_the_average_started_from() -> None:
    # A fine-tuned run builds its average before the weights are transplanted in.
    start, later = _model(0), _model(1)
    average = WeightAverage(start)
    average.update(later)
    for name, tensor in average.state_dict().items():
        assert torch.equal(tensor, later.state_dict()[name])


def _trainer(tmp_path: Path, **train_settings: object) -> Trainer:
    corpus = tmp_path / "t.txt"
    corpus.write_text(make_text(4000), encoding="utf-8")
    config = tiny_config(corpus, **train_settings)
    dataset = load_dataset(config, cache_dir=tmp_path / "cache")
    run_dir = RunDir(tmp_path / "run")
    run_dir.path.mkdir()
    return Trainer(config, dataset, run_dir, reporter=Silent())


def test_best_pt_holds_the_average_when_it_validates_better(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, steps=40, eval_every=1000)
    trainer.run()
    assert trainer.average is not None
    trained = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    # The weights now are noise, their average the trained ones: the final choice must
    # take the average, save its weights as best.pt and report its whole-text figure.
    trainer.average.load(trained, trainer.average.updates)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(torch.randn_like(p) * 3)
    trainer.run_dir.best.unlink()
    trainer.best_val_loss = math.inf
    trainer.step += 1
    trainer._evaluate_and_record(1e-3, 1.0, 1.0, True)
    best = load_checkpoint(trainer.run_dir.best)
    for name, tensor in trained.items():
        assert torch.equal(best.model[name], tensor), name
    model = CharRNN(len(trainer.vocab), trainer.config.model)
    model.load_state_dict(best.model)
    whole = validation_loss(model, trainer.validation, torch.device("cpu"))
    assert best.best_val_loss == pytest.approx(whole, abs=1e-9)
    last = json.loads(trainer.run_dir.metrics.read_text().splitlines()[-1])
    assert last["averaged"] is True and last["val_whole"] is True


def test_without_averaging_best_pt_is_the_weights_and_nothing_is_averaged(
    tmp_path: Path,
) -> None:
    trainer = _trainer(tmp_path, steps=20, eval_every=10, average=False)
    trainer.run()
    assert trainer.average is None
    checkpoint = load_checkpoint(trainer.run_dir.last)
    assert checkpoint.averaged is None
    rows = [json.loads(line) for line in trainer.run_dir.metrics.read_text().splitlines()]
    assert rows and not any(r["averaged"] for r in rows)


def test_the_average_is_saved_and_resumed_with_the_run(tmp_path: Path) -> None:
    corpus = tmp_path / "t.txt"
    corpus.write_text(make_text(4000), encoding="utf-8")
    config = tiny_config(corpus, steps=40, eval_every=20, save_every=20)
    train(config, tmp_path / "whole")
    with pytest.raises(TrainingInterrupted):
        train(config, tmp_path / "split", stop=stop_after(22))
    halfway = load_checkpoint(tmp_path / "split" / "last.pt")
    assert halfway.averaged is not None and halfway.averaged_updates == 22 // 4
    resume(tmp_path / "split")
    whole = load_checkpoint(tmp_path / "whole" / "last.pt")
    split = load_checkpoint(tmp_path / "split" / "last.pt")
    assert whole.averaged is not None and split.averaged is not None
    assert whole.averaged_updates == split.averaged_updates == 10
    for name, tensor in whole.averaged.items():
        assert torch.equal(split.averaged[name], tensor), name


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda a: a.__setitem__("head.bias", torch.full_like(a["head.bias"], math.nan)), "finite"),
        (lambda a: a.__setitem__("head.bias", torch.zeros(3)), "shaped like"),
        (lambda a: a.__setitem__("no.such.weight", torch.zeros(3)), "no.such.weight"),
    ],
)
def test_a_crafted_average_is_refused_in_one_line(
    tmp_path: Path, damage: object, message: str
) -> None:
    corpus = tmp_path / "t.txt"
    corpus.write_text(make_text(4000), encoding="utf-8")
    train(tiny_config(corpus, steps=8, eval_every=8, save_every=8), tmp_path / "run")
    path = tmp_path / "run" / "last.pt"
    checkpoint = load_checkpoint(path)
    assert checkpoint.averaged is not None
    damage(checkpoint.averaged)  # type: ignore[operator]
    save_checkpoint(path, checkpoint)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_the_plan_watch_speaks_once_after_a_sustained_drift() -> None:
    watch = PlanWatch(planned=10_000.0, time_s=100.0)  # holds for 10 s of drift
    said = [watch.observe(9_000.0, 0.2, t / 5, 100) for t in range(200)]
    assert not any(said), "within 1.5x of the plan: nothing to say"
    slowed = [watch.observe(2_000.0, 0.2, 40 + t / 5, 100) for t in range(200)]
    warnings = [s for s in slowed if s]
    assert len(warnings) == 1, "said once"
    first = slowed.index(warnings[0]) / 5
    assert 10 <= first <= 12, f"after the drift held for 10 s (+ smoothing), not {first} s"
    assert "at 2.00k characters/s" in warnings[0] and "10.00k auto planned" in warnings[0]
    # A blip shorter than the hold is not a drift.
    watch = PlanWatch(planned=10_000.0, time_s=100.0)
    blip = [watch.observe(1_000.0 if 20 <= t < 40 else 9_500.0, 0.2, t / 5, 0) for t in range(400)]
    assert not any(blip)
    assert PlanWatch(None, 100.0).observe(1.0, 0.2, 50.0, 0) is None  # nothing planned


@pytest.mark.slow  # a 3-second --time run, by design
def test_a_run_slower_than_planned_says_so_and_the_summary_shows_both_speeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from charrnn.layering import Layers
    from charrnn.training import auto, clock

    # auto "measures" a machine 1000x faster than this one: the plan is wrong from the start.
    real = auto.measure_speed
    monkeypatch.setattr("charrnn.training.launch.measure_speed", lambda *a: 1000 * real(*a))
    monkeypatch.setattr(clock, "PLAN_HOLD_S", 0.5)
    corpus = tmp_path / "t.txt"
    corpus.write_text(make_text(20_000), encoding="utf-8")
    # auto chooses the cell, batch and window; a tiny model is given, to train quickly.
    train_given = {"time_s": 3.0, "threads": 1, "sample_length": 0, "device": "cpu"}
    given = {"model": {"num_layers": 1, "hidden_size": 16}, "train": train_given}
    recorder = Recorder()
    summary = train(Layers(file=corpus, given=given), tmp_path / "run", reporter=recorder)
    drift = [w for w in recorder.warnings if "auto planned for" in w]
    assert len(drift) == 1, recorder.warnings
    assert summary.planned_chars_per_s is not None
    assert summary.chars_per_s > 0
    assert summary.planned_chars_per_s > 100 * summary.chars_per_s
